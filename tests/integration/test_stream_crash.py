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
from lakestream.registry.models import CHAMPION, load_model_version, resolve_version
from lakestream.streaming.parity import compare_with_batch, parity_holds
from lakestream.streaming.pipeline import BOOTSTRAP_FOLDER, has_committed_batch, scores_path
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


def replayed_with_champion(
    spark: SparkSession,
    training_lake: TrainingLake,
    broker: LakestreamConfig,
    name: str,
    max_offsets_per_trigger: int,
    *,
    start: dt.datetime,
    days: int,
) -> tuple[LakestreamConfig, dict[str, str], dict[str, int]]:
    """A stream's config with a champion, `days` replayed into Kafka from `start`; (config, job env, sent counts)."""
    base = training_lake.config.model_copy(update={"kafka": broker.kafka})
    config = stream_config(base, name, max_offsets_per_trigger=max_offsets_per_trigger)
    train_champion(spark, config)
    sent = replay_span(spark, config, start=start, end=start + dt.timedelta(days=days))
    return config, child_environment(training_lake, config), sent


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
    start = dt.datetime(2018, 5, 8)
    config, env, sent = replayed_with_champion(spark, training_lake, kafka_broker, "crash", 1500, start=start, days=14)
    happened = crash_and_recover(
        config, env, kafka_broker, tmp_path, start=start, runs=3, broker_restart_run=1, max_pause_s=4.0
    )
    assert happened["kills"] >= 2
    assert happened["broker_restarts"] == 1
    assert_exactly_once(spark, config, sent["transactions"])
    # the restarts after a commit removed the warm start's rows: the state holds them
    assert not (config.checkpoint_path(config.streaming.query_name) / BOOTSTRAP_FOLDER).exists()


@pytest.mark.timeout(900)
def test_kill_dash_nine_in_the_first_micro_batch_loads_the_warm_start_again(
    spark: SparkSession, training_lake: TrainingLake, kafka_broker: LakestreamConfig, tmp_path: Path
) -> None:
    """A run killed inside its first micro-batch (the one that loads the 37-day warm start into the state) leaves
    the checkpoint with offsets but no commit; the restart bootstraps again, so the stream still equals batch."""
    from mlflow import MlflowClient

    start, end = dt.datetime(2018, 5, 8), dt.datetime(2018, 5, 15)
    config, env, sent = replayed_with_champion(
        spark, training_lake, kafka_broker, "crash_first", 2500, start=start, days=7
    )
    checkpoint = config.checkpoint_path(config.streaming.query_name)
    command = [sys.executable, str(JOB), "--bootstrap-until", start.isoformat(sep=" ")]
    log = tmp_path / "first-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not (checkpoint / "offsets" / "0").exists():
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (checkpoint / "offsets" / "0").exists(), log.read_text()[-3000:]
    assert (checkpoint / BOOTSTRAP_FOLDER).is_dir()
    assert not has_committed_batch(checkpoint)  # killed before the first commit

    done = subprocess.run(
        [*command, "--available-now"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bootstrapping the online state" in done.stderr
    assert_exactly_once(spark, config, sent["transactions"])
    client = MlflowClient()
    model = load_model_version(client, config, resolve_version(client, config.mlflow.registered_model, CHAMPION))
    result = compare_with_batch(spark, config, model, start=start, end=end)
    assert parity_holds(result), result


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
