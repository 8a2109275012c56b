"""The smoke pipeline as a user runs it: `lakestream submit jobs/smoke_pipeline.py` (real spark-submit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
from mlflow import MlflowClient

from lakestream.config import LakestreamConfig


def test_smoke_pipeline_through_spark_submit(kafka_broker: LakestreamConfig) -> None:
    config = kafka_broker
    result = subprocess.run(
        [sys.executable, "-m", "lakestream.cli", "submit", "jobs/smoke_pipeline.py", "--events", "300"],
        cwd=config.home,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["events_written"] == 300
    assert summary["events_landed"] == 300

    mlflow.set_tracking_uri(config.tracking_uri)
    run = MlflowClient().get_run(summary["mlflow_run_id"])
    assert run.data.metrics["events_landed"] == 300.0
    assert run.data.tags["lakestream.run_tag"] == summary["run_tag"]
    assert (config.table_path("smoke", "events_from_kafka") / "_delta_log").is_dir()
