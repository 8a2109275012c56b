"""Exactly once into Delta: kill -9 the streaming driver at random points, restart, and count every row once."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812
from stream_harness import stream_config, train_champion

from lakestream.io.delta import read_delta
from lakestream.streaming.pipeline import scores_path
from lakestream.streaming.replay import replay_span
from lakestream.streaming.service import scored_rows

if TYPE_CHECKING:
    from conftest import TrainingLake

    from lakestream.config import LakestreamConfig

JOB = Path(__file__).resolve().parents[2] / "streaming" / "score_transactions.py"


def child_environment(training_lake: TrainingLake, config: LakestreamConfig) -> dict[str, str]:
    """Environment of a stream process that sees this lake, these topics, this model and query."""
    topics = config.kafka.topics
    streaming = config.streaming
    return training_lake.environ(
        **{
            "kafka.bootstrap_servers": config.kafka.bootstrap_servers,
            "kafka.topics.transactions.name": topics.transactions.name,
            "kafka.topics.fraud_labels.name": topics.fraud_labels.name,
            "kafka.topics.fraud_alerts.name": topics.fraud_alerts.name,
            "mlflow.registered_model": config.mlflow.registered_model,
            "streaming.query_name": streaming.query_name,
            "streaming.scores_table": streaming.scores_table,
            "streaming.metrics_table": streaming.metrics_table,
            "streaming.dead_letter_table": streaming.dead_letter_table,
            "streaming.max_offsets_per_trigger": streaming.max_offsets_per_trigger,
        }
    )


@pytest.mark.timeout(900)
def test_kill_dash_nine_and_restart_loses_and_duplicates_nothing(
    spark: SparkSession, training_lake: TrainingLake, kafka_broker: LakestreamConfig, tmp_path: Path
) -> None:
    base = training_lake.config.model_copy(update={"kafka": kafka_broker.kafka})
    config = stream_config(base, "crash", max_offsets_per_trigger=1500)
    train_champion(spark, config)
    start, end = dt.datetime(2018, 5, 8), dt.datetime(2018, 5, 22)
    sent = replay_span(spark, config, start=start, end=end)
    env = child_environment(training_lake, config)
    rng = random.Random(7)
    kills = 0
    for attempt in range(3):
        log = (tmp_path / f"run-{attempt}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, str(JOB), "--bootstrap-until", start.isoformat(sep=" ")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        before = scored_rows(config)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None and scored_rows(config) <= before:
            time.sleep(1)
        assert process.poll() is None, (tmp_path / f"run-{attempt}.log").read_text()[-3000:]
        time.sleep(rng.uniform(0.0, 4.0))  # somewhere inside a later micro-batch
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
    done = subprocess.run(
        [sys.executable, str(JOB), "--available-now"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["stopped_by"] == "drained"
    scores = read_delta(spark, scores_path(config))
    assert kills == 3
    assert scores.count() == sent["transactions"]
    assert scores.select("transaction_id").distinct().count() == sent["transactions"]
    assert scores.groupBy("batch_id").count().where(F.col("count") == 0).count() == 0
