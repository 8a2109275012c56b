"""The scoring stream equals batch: two weeks replayed through Kafka after a 37-day warm-up from silver."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812
from stream_harness import stream_config, train_champion

from lakestream.io.delta import read_delta
from lakestream.io.kafka import spark_kafka_options
from lakestream.registry.models import CHAMPION, load_model_version, resolve_version
from lakestream.streaming.online_features import SharedCopies, copies_scope
from lakestream.streaming.parity import compare_with_batch, parity_holds
from lakestream.streaming.pipeline import BOOTSTRAP_FOLDER, metrics_path, scores_path
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
    # the Python workers left their states for each other in shared memory; the stopped query's are gone
    query = config.streaming.query_name
    copies = SharedCopies.on_this_machine(copies_scope(query, config.checkpoint_path(query)))
    assert summary["state_copies_removed"] > 0
    assert not copies.root.exists()
    return config


def test_streaming_features_and_scores_equal_batch(spark: SparkSession, parity_run: LakestreamConfig) -> None:
    """Every transaction once, features equal (counts exactly, others within 1e-9), same scores and decisions."""
    from mlflow import MlflowClient

    client = MlflowClient()
    version = resolve_version(client, parity_run.mlflow.registered_model, CHAMPION)
    model = load_model_version(client, parity_run, version)
    result = compare_with_batch(spark, parity_run, model, start=WARM_UNTIL, end=SPAN_END)
    assert result["transactions"] > 5000
    assert parity_holds(result), result
    stream = read_delta(spark, scores_path(parity_run))
    assert stream.count() == stream.select("transaction_id").distinct().count() == result["transactions"]


def test_metrics_rows_describe_every_batch(spark: SparkSession, parity_run: LakestreamConfig) -> None:
    metrics = read_delta(spark, metrics_path(parity_run))
    rows = metrics.collect()
    assert len(rows) == metrics.select("batch_id").distinct().count() >= 3
    scored = read_delta(spark, scores_path(parity_run)).count()
    assert sum(r["scored"] for r in rows) == scored
    assert all(r["latency_p99_ms"] is not None and r["registry_ok"] for r in rows if r["scored"])


def test_the_alerts_topic_holds_each_flagged_row_once(spark: SparkSession, parity_run: LakestreamConfig) -> None:
    """No restart here, so at-least-once delivers exactly once: one record per review/block row, keyed by its id."""
    records = (
        spark.read.format("kafka")
        .options(**spark_kafka_options(parity_run.kafka))
        .option("subscribe", parity_run.kafka.topics.fraud_alerts.name)
        .option("startingOffsets", "earliest")
        .load()
        .select(
            F.col("key").cast("string").alias("key"),
            F.get_json_object(F.col("value").cast("string"), "$.decision").alias("decision"),
            F.get_json_object(F.col("value").cast("string"), "$.transaction_id").alias("transaction_id"),
        )
        .collect()
    )
    flagged = read_delta(spark, scores_path(parity_run)).where(F.col("decision") != "approve").collect()
    assert len(flagged) > 0
    assert len(records) == len(flagged)
    assert all(r["key"] == r["transaction_id"] for r in records)
    assert {r["key"]: r["decision"] for r in records} == {str(r["transaction_id"]): r["decision"] for r in flagged}
    metrics = read_delta(spark, metrics_path(parity_run)).agg(F.sum("alerts")).first()[0]
    assert metrics == len(flagged)


def test_the_warm_start_is_read_from_parquet_under_the_checkpoint(
    spark: SparkSession, parity_run: LakestreamConfig
) -> None:
    """The bootstrap rows are materialized once: the query plans a Parquet scan per batch, not silver's Delta log."""
    from lakestream.streaming.online_features import OnlinePlan
    from lakestream.training.trainer import load_training_feature_set

    folder = parity_run.checkpoint_path(parity_run.streaming.query_name) / BOOTSTRAP_FOLDER
    assert any(folder.glob("*.parquet"))
    plan = OnlinePlan.from_spec(
        load_training_feature_set(parity_run, "fraud_v1"),  # the champion's (stream_harness.train_champion)
        allowed_lateness_seconds=parity_run.streaming.allowed_lateness_seconds,
    )
    since = WARM_UNTIL - dt.timedelta(seconds=plan.retention_seconds)
    silver = read_delta(spark, parity_run.table_path("silver", "transactions"))
    expected = silver.where((F.col("tx_datetime") >= F.lit(since)) & (F.col("tx_datetime") < F.lit(WARM_UNTIL)))
    bootstrap = spark.read.parquet(str(folder)).where(F.col("kind") == "tx")
    assert bootstrap.select("transaction_id").distinct().count() == expected.count() > 0
