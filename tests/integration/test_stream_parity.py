"""The scoring stream equals batch: two weeks replayed through Kafka after a 37-day warm-up from silver."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812
from stream_harness import stream_config, train_champion

from lakestream.features.spec import feature_set_path, load_feature_set
from lakestream.features.store import feature_table_path
from lakestream.io.delta import read_delta
from lakestream.registry.models import CHAMPION, load_model_version, resolve_version
from lakestream.scoring.batch import build_scores
from lakestream.streaming.pipeline import metrics_path, scores_path
from lakestream.streaming.replay import replay_span
from lakestream.streaming.runner import run_stream

if TYPE_CHECKING:
    from conftest import TrainingLake

    from lakestream.config import LakestreamConfig

WARM_UNTIL = dt.datetime(2018, 5, 8)  # 37 days after the simulation's first day
SPAN_END = dt.datetime(2018, 5, 22)  # two weeks


@pytest.fixture(scope="module")
def parity_run(spark: SparkSession, training_lake: TrainingLake, kafka_broker: LakestreamConfig) -> LakestreamConfig:
    base = training_lake.config.model_copy(update={"kafka": kafka_broker.kafka})
    config = stream_config(base, "parity", max_offsets_per_trigger=2500)
    train_champion(spark, config)
    sent = replay_span(spark, config, start=WARM_UNTIL, end=SPAN_END)
    assert sent["transactions"] > 5000
    summary = run_stream(spark, config, available_now=True, bootstrap_until=WARM_UNTIL)
    assert summary["batches"] >= 3  # the rate limit splits the replay into several micro-batches
    return config


def test_streaming_features_equal_batch_features(spark: SparkSession, parity_run: LakestreamConfig) -> None:
    config = parity_run
    spec = load_feature_set(feature_set_path(config.home / "conf" / "features", "fraud_v1"))
    stream = read_delta(spark, scores_path(config))
    batch = read_delta(spark, feature_table_path(config, spec)).where(
        (F.col("tx_datetime") >= F.lit(WARM_UNTIL)) & (F.col("tx_datetime") < F.lit(SPAN_END))
    )
    assert stream.count() == batch.count() == stream.select("transaction_id").distinct().count()
    joined = stream.alias("s").join(batch.alias("b"), "transaction_id", "full_outer")
    assert joined.where(F.col("s.score").isNull() | F.col("b.tx_amount").isNull()).count() == 0
    mismatches = []
    for name in spec.feature_names():
        if "NB_TX" in name or name.startswith("TX_"):
            differs = F.col(f"s.{name}") != F.col(f"b.{name}")
        else:
            differs = F.abs(F.col(f"s.{name}") - F.col(f"b.{name}")) > 1e-9
        bad = joined.where(differs | (F.col(f"s.{name}").isNull() != F.col(f"b.{name}").isNull())).count()
        if bad:
            mismatches.append((name, bad))
    assert mismatches == []


def test_streaming_scores_equal_batch_scores_of_the_same_version(
    spark: SparkSession, parity_run: LakestreamConfig
) -> None:
    from mlflow import MlflowClient

    config = parity_run
    client = MlflowClient()
    model = load_model_version(client, config, resolve_version(client, config.mlflow.registered_model, CHAMPION))
    features = read_delta(spark, feature_table_path(config, model.feature_spec)).where(
        (F.col("tx_datetime") >= F.lit(WARM_UNTIL)) & (F.col("tx_datetime") < F.lit(SPAN_END))
    )
    batch = build_scores(
        features,
        model_bytes=model.raw_bytes,
        model_inputs=model.feature_names,
        model_name=model.name,
        model_version=model.version,
        scoring=config.training.scoring,
    )
    stream = read_delta(spark, scores_path(config))
    assert stream.select("model_version").distinct().collect()[0][0] == model.version
    joined = stream.alias("s").join(batch.alias("b"), "transaction_id")
    assert joined.count() == batch.count()
    assert joined.where(F.abs(F.col("s.score") - F.col("b.score")) > 1e-7).count() == 0
    assert joined.where(F.col("s.decision") != F.col("b.decision")).count() == 0


def test_metrics_rows_describe_every_batch(spark: SparkSession, parity_run: LakestreamConfig) -> None:
    metrics = read_delta(spark, metrics_path(parity_run))
    rows = metrics.collect()
    assert len(rows) == metrics.select("batch_id").distinct().count() >= 3
    scored = read_delta(spark, scores_path(parity_run)).count()
    assert sum(r["scored"] for r in rows) == scored
    assert all(r["latency_p99_ms"] is not None and r["registry_ok"] for r in rows if r["scored"])
