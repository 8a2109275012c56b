"""Shared fixtures: one isolated Lakestream home per test session, one Spark session, one real broker.

The session-wide environment points every piece of state (lake, checkpoints, broker data, MLflow store)
at a temporary folder and gives the broker and servers free ports, so the suite never touches var/ or a
running local stack, and child processes (spark-submit, the CLI) see the same configuration.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakestream.config import LakestreamConfig, load_config
from lakestream.platform.process import free_ports


@pytest.fixture(scope="session", autouse=True)
def lakestream_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point configuration at a temporary state folder and free ports for the whole session."""
    state = tmp_path_factory.mktemp("lakestream") / "var"
    broker_port, controller_port, mlflow_port = free_ports(3)
    values = {
        "LAKESTREAM_ENV": "test",
        "LAKESTREAM__PATHS__STATE_DIR": str(state),
        "LAKESTREAM__KAFKA__BROKER__PORT": str(broker_port),
        "LAKESTREAM__KAFKA__BROKER__CONTROLLER_PORT": str(controller_port),
        "LAKESTREAM__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
        "LAKESTREAM__MLFLOW__SERVER__PORT": str(mlflow_port),
        "AIRFLOW_HOME": str(state / "airflow"),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    yield state
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def config(lakestream_environment: Path) -> LakestreamConfig:
    """The test environment's resolved configuration."""
    return load_config()


@pytest.fixture(scope="session")
def spark(config: LakestreamConfig):
    """One local[2] Spark session with Delta and the Kafka connector for the whole test session.

    It runs for the whole session, so it keeps the JIT's optimizing compiler that the test configuration turns
    off for short spark-submit jobs (spark.java_options).
    """
    from lakestream.spark import build_spark_session

    long_lived = config.model_copy(update={"spark": config.spark.model_copy(update={"java_options": ""})})
    session = build_spark_session(long_lived, "tests", extra_conf={"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def kafka_broker(config: LakestreamConfig) -> Iterator[LakestreamConfig]:
    """The project's real KRaft broker on a free loopback port, started once and stopped at the end."""
    from lakestream.platform.kafka_broker import start_broker, stop_broker

    start_broker(config)
    yield config
    stop_broker(config)
