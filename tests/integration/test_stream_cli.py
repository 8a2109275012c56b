"""`lakestream stream start|status|stop`: the stream as a background spark-submit service, as an operator runs it."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pyspark.sql import SparkSession
from stream_harness import child_environment, stream_config, train_champion

from lakestream.io.delta import read_delta
from lakestream.streaming.pipeline import scores_path
from lakestream.streaming.replay import replay_span
from lakestream.streaming.service import scored_rows

if TYPE_CHECKING:
    from conftest import TrainingLake

    from lakestream.config import LakestreamConfig

CLI = Path(sys.executable).parent / "lakestream"


def lakestream(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.timeout(900)
def test_stream_start_status_stop_and_restart(
    spark: SparkSession, training_lake: TrainingLake, kafka_broker: LakestreamConfig
) -> None:
    base = training_lake.config.model_copy(update={"kafka": kafka_broker.kafka})
    config = stream_config(base, "cli", max_offsets_per_trigger=4000)
    train_champion(spark, config)
    env = child_environment(training_lake, config)
    warm = dt.datetime(2018, 5, 8)
    try:
        assert "stream: running" in lakestream(env, "stream", "start", "--bootstrap-until", warm.isoformat(sep=" "))
        assert json.loads(lakestream(env, "stream", "status"))["running"] is True
        first = replay_span(spark, config, start=warm, end=warm + dt.timedelta(days=2))
        wait_for_rows(config, first["transactions"])
        assert lakestream(env, "stream", "stop").strip() == "stream: stopped"
        status = json.loads(lakestream(env, "stream", "status"))
        assert status["running"] is False
        assert status["latest_batch"]["scored"] > 0
        # events sent while it is down are scored after a restart from the checkpoint (no bootstrap needed)
        second = replay_span(spark, config, start=warm + dt.timedelta(days=2), end=warm + dt.timedelta(days=4))
        lakestream(env, "stream", "start")
        wait_for_rows(config, first["transactions"] + second["transactions"])
    finally:
        lakestream(env, "stream", "stop")
    scores = read_delta(spark, scores_path(config))
    total = first["transactions"] + second["transactions"]
    assert scores.count() == scores.select("transaction_id").distinct().count() == total
    assert lakestream(env, "stream", "stop").strip() == "stream: was not running"


def wait_for_rows(config: LakestreamConfig, expected: int, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and scored_rows(config) < expected:
        time.sleep(2)
    assert scored_rows(config) == expected
