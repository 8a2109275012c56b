"""A model promoted mid-stream is picked up within the refresh interval, without restarting the query."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812
from stream_harness import stream_config, train_champion
from test_stream_bad_inputs import tx

from lakestream.io.delta import read_delta
from lakestream.io.kafka import build_producer, ensure_topics
from lakestream.registry.models import CHAMPION
from lakestream.streaming.pipeline import metrics_path, scores_path
from lakestream.streaming.runner import run_stream, stop_file
from lakestream.streaming.service import scored_rows

if TYPE_CHECKING:
    from conftest import TrainingLake

    from lakestream.config import LakestreamConfig


def test_promotion_mid_stream_is_hot_swapped(
    spark: SparkSession, training_lake: TrainingLake, kafka_broker: LakestreamConfig
) -> None:
    base = training_lake.config.model_copy(update={"kafka": kafka_broker.kafka})
    config = stream_config(base, "swap", model_refresh_seconds=1.0, trigger_interval="1 second")
    first = train_champion(spark, config)
    second = train_champion(spark, config, seed=1)
    client = MlflowClient()
    client.set_registered_model_alias(config.mlflow.registered_model, CHAMPION, first)
    ensure_topics(config.kafka)
    path = scores_path(config)
    errors: list[BaseException] = []

    def scored() -> int:
        return scored_rows(config)

    def drive() -> None:
        try:
            producer = build_producer(config.kafka)
            for wave, alias_to in ((0, None), (1, second)):
                if alias_to is not None:
                    client.set_registered_model_alias(config.mlflow.registered_model, CHAMPION, alias_to)
                    time.sleep(3)  # > the refresh interval
                for i in range(20):
                    minute = wave * 30 + i
                    producer.send(
                        config.kafka.topics.transactions.name,
                        value=tx(700_000 + wave * 100 + i, when=f"2018-05-10 12:{minute:02d}:00"),
                        partition=0,
                    )
                producer.flush()
                deadline = time.monotonic() + 120
                while scored() < 20 * (wave + 1) and time.monotonic() < deadline:
                    time.sleep(1)
            producer.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            stop_file(config).touch()

    driver = threading.Thread(target=drive)
    driver.start()
    summary = run_stream(spark, config, max_seconds=300)
    driver.join()
    assert not errors, errors
    scores = read_delta(spark, path)
    versions = {r["transaction_id"] // 100 % 10: r["model_version"] for r in scores.collect()}
    assert versions == {0: first, 1: second}
    assert summary["model_swaps"] == 1
    metrics = read_delta(spark, metrics_path(config))
    assert metrics.where(F.col("model_version") == second).count() >= 1
