"""The same jobs on a real Spark standalone cluster (master and two workers as separate processes on loopback).

Each job is a real `spark-submit --master spark://...` of its entry point into a lake of its own, compared with
the same work done in local mode by the test session: the simulator's rows, the fraud_v1 features (built while
one worker is killed with SIGKILL mid-job), an xgboost.spark model trained across two executors, and a short
replay scored by the stream on the cluster. The cluster is stopped at the end and every process is gone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from lakestream.config import LakestreamConfig, load_config
from lakestream.io.delta import read_delta
from lakestream.platform.process import free_ports, pid_is_alive
from lakestream.platform.spark_cluster import (
    cluster_status,
    master_url,
    start_cluster,
    stop_cluster,
    worker_service,
)
from lakestream.simulate.landing import write_silver_from_truth

pytestmark = pytest.mark.slow
START = dt.date(2018, 4, 1)
DAYS = 45
CUSTOMERS, TERMINALS = 200, 400
TRAIN_START = dt.date(2018, 4, 20)  # train 04-20..04-26, delay 7, test 05-04..05-10


def cluster_overrides(state: Path) -> dict[str, Any]:
    port, webui_port = free_ports(2)
    return {
        "paths.state_dir": str(state),
        "cluster.port": port,
        "cluster.webui_port": webui_port,
        "cluster.worker_memory": "2g",
        "spark.executor_memory": "1g",
        "training.xgboost.num_workers": 2,
        "training.xgboost.num_boost_round": 30,
        "training.split.train_start": TRAIN_START.isoformat(),
        "mlflow.registered_model": "it-cluster",
    }


def environment(values: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in values.items():
        env["LAKESTREAM__" + key.replace(".", "__").upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


def submit(config: LakestreamConfig, env: dict[str, str], script: str, *args: str, wait: bool = True) -> Any:
    """`lakestream submit --master spark://... script args` as a user runs it."""
    command = [sys.executable, "-m", "lakestream.cli", "submit", "--master", master_url(config), script, *args]
    if not wait:
        return subprocess.Popen(
            command, cwd=config.home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    result = subprocess.run(command, cwd=config.home, env=env, capture_output=True, text=True, check=False, timeout=900)
    assert result.returncode == 0, failure_excerpt(result.stderr) + "\nstdout: " + result.stdout[-2000:]
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def failure_excerpt(stderr: str) -> str:
    """The last Python traceback of a failed job (Spark's INFO lines bury it), else the end of its stderr."""
    start = stderr.rfind("Traceback (most recent call last)")
    return stderr[start : start + 6000] if start >= 0 else stderr[-4000:]


def same_rows(left: DataFrame, right: DataFrame) -> None:
    assert left.count() == right.count() > 0
    assert left.exceptAll(right).count() == 0
    assert right.exceptAll(left).count() == 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LakestreamConfig, dict[str, Any]]]:
    values = cluster_overrides(tmp_path_factory.mktemp("cluster") / "var")
    config = load_config(overrides=values)
    status = start_cluster(config)
    assert status.alive_workers == 2
    assert status.cores == 2
    try:
        yield config, values
    finally:
        pids = [s.pid for s in (status.master, *status.workers) if s.pid]
        stop_cluster(config)
        deadline = time.monotonic() + 30
        while any(pid_is_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(pid_is_alive(pid) for pid in pids)
        assert not cluster_status(config).master.running


@pytest.fixture(scope="module")
def local_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> LakestreamConfig:
    """The reference, in local mode: the same simulation's ground truth, silver and fraud_v1 features."""
    from lakestream.features.spec import feature_set_path, load_feature_set
    from lakestream.features.store import build_feature_table
    from lakestream.simulate.generator import SimulationParams
    from lakestream.simulate.landing import land_simulation

    config = load_config(overrides={"paths.state_dir": str(tmp_path_factory.mktemp("local") / "var")})
    land_simulation(
        spark, config, SimulationParams(CUSTOMERS, TERMINALS, DAYS, start_date=START.isoformat()), outputs=["truth"]
    )
    write_silver_from_truth(spark, config)
    spec = load_feature_set(feature_set_path(config.home / "conf" / "features", "fraud_v1"))
    build_feature_table(spark, config, spec, start=START, end=START + dt.timedelta(days=DAYS - 1))
    return config


def test_the_simulator_on_the_cluster_gives_the_local_rows(
    spark: SparkSession, cluster: tuple[LakestreamConfig, dict[str, Any]], local_lake: LakestreamConfig
) -> None:
    config, values = cluster
    summary = submit(
        config, environment(values), "jobs/generate_transactions.py",
        "--customers", str(CUSTOMERS), "--terminals", str(TERMINALS), "--days", str(DAYS), "--output", "truth",
    )  # fmt: skip
    assert summary["transactions"] > 10_000
    same_rows(
        read_delta(spark, config.table_path("sim", "transactions")),
        read_delta(spark, local_lake.table_path("sim", "transactions")),
    )
    write_silver_from_truth(spark, config)


def test_features_survive_a_worker_killed_mid_build_and_equal_local(
    spark: SparkSession, cluster: tuple[LakestreamConfig, dict[str, Any]], local_lake: LakestreamConfig
) -> None:
    config, values = cluster
    end = START + dt.timedelta(days=DAYS - 1)
    job = submit(
        config,
        environment(values),
        "jobs/build_features.py",
        "--feature-set",
        "fraud_v1",
        "--start",
        str(START),
        "--end",
        str(end),
        wait=False,
    )
    victim = worker_service(config, 2)
    assert victim.pid() is not None
    deadline = time.monotonic() + 120
    while _busy_workers(config) < 2 and time.monotonic() < deadline:  # an executor on each worker
        time.sleep(0.5)
    time.sleep(3)  # inside the build (about a minute): both executors run its tasks
    if _busy_workers(config) < 2 or job.poll() is not None:  # the victim's executor must work for the running build
        job.kill()
        pytest.fail(f"the build did not run on both workers: {job.communicate()[1][-4000:]}")
    os.killpg(victim.pid(), signal.SIGKILL)  # the worker and its executor, like a machine lost
    _, err = job.communicate(timeout=900)
    assert job.returncode == 0, err[-4000:]
    start_cluster(config)  # the lost worker comes back for the next tests
    same_features(spark, config, local_lake)


def same_features(spark: SparkSession, config: LakestreamConfig, local_lake: LakestreamConfig) -> None:
    """The cluster lake's fraud_v1 feature table equals the local one (lineage columns aside)."""
    columns = lambda frame: frame.drop("built_at", "source_version", "run_id")  # noqa: E731 - lineage columns
    cluster_features = read_delta(spark, config.table_path("gold", "features_fraud_v1"))
    local_features = read_delta(spark, local_lake.table_path("gold", "features_fraud_v1"))
    keep = [c for c in local_features.columns if c in cluster_features.columns]
    same_rows(columns(cluster_features.select(*keep)), columns(local_features.select(*keep)))


def test_an_airflow_spark_task_runs_on_the_cluster_its_connection_names(
    spark: SparkSession, cluster: tuple[LakestreamConfig, dict[str, Any]], local_lake: LakestreamConfig
) -> None:
    """`airflow tasks test` of the daily DAG's feature build with the Spark connection set to the cluster."""
    from lakestream.orchestration.airflow_server import airflow_environment, prepare_airflow
    from lakestream.orchestration.resources import SPARK_CONN_ID

    config, values = cluster
    prepare_airflow(config)
    host, port = master_url(config).removeprefix("spark://").rsplit(":", 1)
    overrides = {key: value for key, value in environment(values).items() if key.startswith("LAKESTREAM__")}
    env = {**airflow_environment(config), **overrides}
    connection = {"conn_type": "spark", "host": f"spark://{host}", "port": int(port)}
    env[f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}"] = json.dumps(connection)
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run(
        [airflow, "tasks", "test", "lakestream_daily", "build_features", "2018-05-11"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert f"to {master_url(config)} with" in output, output[-6000:]
    assert "Task instance in success state" in output or "state=success" in output.lower(), output[-6000:]
    same_features(spark, config, local_lake)


def _busy_workers(config: LakestreamConfig) -> int:
    """Live workers whose cores an application's executor holds, from the master's JSON status."""
    from lakestream.platform.spark_cluster import _master_state

    state = _master_state(config) or {}
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE" and int(w.get("coresused", 0)) > 0)


def test_xgboost_trains_across_two_executors_with_the_local_metrics(
    spark: SparkSession, cluster: tuple[LakestreamConfig, dict[str, Any]], local_lake: LakestreamConfig
) -> None:
    from lakestream.training.splits import build_time_split
    from lakestream.training.trainer import TrainingRequest, train_model

    config, values = cluster
    remote = submit(
        config,
        environment(values),
        "jobs/train_model.py",
        "--feature-set",
        "fraud_v1",
        "--mode",
        "spark",
        "--no-register",
    )
    local_config = local_lake.model_copy(update={"training": config.training, "mlflow": config.mlflow})
    local = train_model(
        spark,
        local_config,
        TrainingRequest(
            feature_set="fraud_v1", mode="spark", split=build_time_split(train_start=TRAIN_START), register=False
        ),
    )
    for metric in ("auc_roc", "average_precision", "card_precision_at_100"):
        assert round(remote["test"][metric], 3) == round(local.metrics[metric], 3), metric


def test_the_stream_on_the_cluster_scores_a_replay_as_batch_does(
    spark: SparkSession, cluster: tuple[LakestreamConfig, dict[str, Any]], kafka_broker: LakestreamConfig
) -> None:
    """A replay of three days, scored by streaming/score_transactions.py submitted to the cluster, equals batch."""
    import uuid

    from mlflow import MlflowClient

    from lakestream.io.kafka import ensure_topics
    from lakestream.registry.models import CHAMPION, load_model_version, resolve_version
    from lakestream.streaming.parity import compare_with_batch, parity_holds
    from lakestream.streaming.replay import replay_span
    from lakestream.training.splits import build_time_split
    from lakestream.training.trainer import TrainingRequest, train_model

    _, values = cluster
    suffix = uuid.uuid4().hex[:6]
    topics = {
        "kafka.bootstrap_servers": kafka_broker.kafka.bootstrap_servers,
        "kafka.topics.transactions.name": f"transactions-cluster-{suffix}",
        "kafka.topics.fraud_labels.name": f"fraud-labels-cluster-{suffix}",
        "kafka.topics.fraud_alerts.name": f"fraud-alerts-cluster-{suffix}",
    }
    values = {**values, **topics}
    config = load_config(overrides=values)
    result = train_model(
        spark,
        config,
        TrainingRequest(feature_set="fraud_v1", mode="single_node", split=build_time_split(train_start=TRAIN_START)),
    )
    MlflowClient().set_registered_model_alias(config.mlflow.registered_model, CHAMPION, result.registered_version)
    ensure_topics(config.kafka)
    warm, end = dt.datetime(2018, 5, 8), dt.datetime(2018, 5, 11)
    sent = replay_span(spark, config, start=warm, end=end)
    summary = submit(
        config,
        environment(values),
        "streaming/score_transactions.py",
        "--available-now",
        "--bootstrap-until",
        warm.isoformat(sep=" "),
    )
    assert summary["batches"] >= 1
    client = MlflowClient()
    model = load_model_version(client, config, resolve_version(client, config.mlflow.registered_model, CHAMPION))
    parity = compare_with_batch(spark, config, model, start=warm, end=end)
    assert parity["transactions"] == sent["transactions"]
    assert parity_holds(parity), parity
