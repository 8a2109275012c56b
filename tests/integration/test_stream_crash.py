"""Exactly once into Delta: kill -9 the streaming driver at random points and restart the broker once during the
replay; after restarts every transaction is in the scores table exactly once."""

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
from stream_harness import child_environment, stream_config, train_champion

from lakestream.io.delta import read_delta
from lakestream.platform.kafka_broker import start_broker, stop_broker
from lakestream.streaming.pipeline import scores_path
from lakestream.streaming.replay import replay_span
from lakestream.streaming.service import scored_rows

if TYPE_CHECKING:
    from conftest import TrainingLake

    from lakestream.config import LakestreamConfig

JOB = Path(__file__).resolve().parents[2] / "streaming" / "score_transactions.py"


def crash_and_recover(
    config: LakestreamConfig,
    env: dict[str, str],
    broker: LakestreamConfig,
    logs: Path,
    *,
    start: dt.datetime,
    runs: int,
    broker_restart_run: int,
    max_pause_s: float,
) -> dict[str, int]:
    """Start the stream `runs` times, kill -9 each run at a random point after it made progress (restarting the
    broker under run `broker_restart_run`), then drain with availableNow; returns what happened."""
    rng = random.Random(7)
    kills = restarts = 0
    for attempt in range(runs):
        log = logs / f"run-{attempt}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(JOB), "--bootstrap-until", start.isoformat(sep=" ")],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_progress(config, process, timeout_s=240)
        assert process.poll() is None, log.read_text()[-3000:]
        if attempt == broker_restart_run:  # the broker goes away under the running stream, comes back with its data
            stop_broker(broker)
            start_broker(broker, create_topics=False)
            restarts += 1
            wait_for_progress(config, process, timeout_s=120)
        time.sleep(rng.uniform(0.0, max_pause_s))  # somewhere inside a later micro-batch
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    done = subprocess.run(
        [sys.executable, str(JOB), "--available-now"], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["stopped_by"] == "drained"
    return {"kills": kills, "broker_restarts": restarts}


def wait_for_progress(config: LakestreamConfig, process: subprocess.Popen, *, timeout_s: float) -> None:
    before = scored_rows(config)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None and scored_rows(config) <= before:
        time.sleep(1)


def assert_exactly_once(spark: SparkSession, config: LakestreamConfig, transactions: int) -> None:
    scores = read_delta(spark, scores_path(config))
    assert scores.count() == transactions
    assert scores.select("transaction_id").distinct().count() == transactions
    assert scores.groupBy("batch_id").count().where(F.col("count") == 0).count() == 0


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
    happened = crash_and_recover(
        config, env, kafka_broker, tmp_path, start=start, runs=3, broker_restart_run=1, max_pause_s=4.0
    )
    assert happened["kills"] >= 2
    assert happened["broker_restarts"] == 1
    assert_exactly_once(spark, config, sent["transactions"])


@pytest.mark.long
@pytest.mark.timeout(2400)
def test_kill_dash_nine_during_a_replay_of_200k_events(
    spark: SparkSession, training_lake: TrainingLake, kafka_broker: LakestreamConfig, tmp_path: Path
) -> None:
    """The issue's full variant: the book's default size (5,000 customers, 10,000 terminals), 37 days of warm-up
    then 21 days (over 200k transactions) replayed; five kill -9 and a broker restart (`make test-long`)."""
    from conftest import write_simulated_silver

    from lakestream.simulate.generator import SimulationParams

    lake = training_lake.config.model_copy(
        update={"paths": training_lake.config.paths.model_copy(update={"lake_root": tmp_path / "lake"})}
    )
    write_simulated_silver(spark, lake, SimulationParams(n_customers=5000, n_terminals=10000, nb_days=58))
    config = stream_config(lake.model_copy(update={"kafka": kafka_broker.kafka}), "crash_long")
    config = config.model_copy(
        update={"streaming": config.streaming.model_copy(update={"max_offsets_per_trigger": 25_000})}
    )
    # trained on the small lake's gold features, registered under this stream's model name
    train_champion(spark, training_lake.config.model_copy(update={"mlflow": config.mlflow}))
    start, end = dt.datetime(2018, 5, 8), dt.datetime(2018, 5, 29)
    sent = replay_span(spark, config, start=start, end=end)
    assert sent["transactions"] >= 200_000
    env = child_environment(training_lake, config) | {
        "LAKESTREAM__PATHS__LAKE_ROOT": json.dumps(str(tmp_path / "lake"))
    }
    happened = crash_and_recover(
        config, env, kafka_broker, tmp_path, start=start, runs=6, broker_restart_run=2, max_pause_s=10.0
    )
    assert happened["kills"] >= 5
    assert_exactly_once(spark, config, sent["transactions"])
