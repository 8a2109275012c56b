"""The smoke pipeline: one pass through every component of the local stack.

Writes a Delta table, produces its rows to Kafka through Spark's Kafka sink, lands them back in Delta with
a Structured Streaming query (availableNow, exactly once through the checkpoint), and logs the run to
MLflow. Proves the stack works end to end before the real pipeline runs.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from lakestream.config.models import LakestreamConfig, TopicConfig
from lakestream.errors import DataError
from lakestream.io.delta import read_delta, table_version, write_delta
from lakestream.io.kafka import ensure_topics, spark_kafka_options
from lakestream.registry.tracking import configure_mlflow
from lakestream.streaming.raw_ingest import start_raw_ingest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

SMOKE_TOPIC = TopicConfig(name="lakestream-smoke", partitions=2, retention_ms=24 * 3600 * 1000)


@dataclass(frozen=True)
class SmokeResult:
    """What one smoke run produced."""

    run_tag: str
    events_written: int
    events_delta_version: int
    events_produced: int
    events_landed: int
    mlflow_run_id: str


def build_smoke_events(spark: SparkSession, *, n_events: int, run_tag: str) -> DataFrame:
    """A small deterministic event table: event_id, run_tag, amount, event_time."""
    from pyspark.sql import functions as F  # noqa: N812

    return spark.range(n_events).select(
        F.col("id").alias("event_id"),
        F.lit(run_tag).alias("run_tag"),
        F.round(F.col("id") * 1.5 + 0.25, 2).alias("amount"),
        F.timestamp_seconds(F.lit(1_522_540_800) + F.col("id") * 60).alias("event_time"),
    )


def run_smoke_pipeline(spark: SparkSession, config: LakestreamConfig, *, n_events: int = 1000) -> SmokeResult:
    """Delta write -> Kafka (Spark sink) -> Kafka (Spark streaming source) -> Delta -> MLflow run."""
    from pyspark.sql import functions as F  # noqa: N812

    run_tag = uuid.uuid4().hex[:12]
    events_path = config.table_path("smoke", "events")
    landed_path = config.table_path("smoke", "events_from_kafka")

    events = build_smoke_events(spark, n_events=n_events, run_tag=run_tag)
    write_delta(events, events_path, mode="overwrite")
    version = table_version(spark, events_path)
    logger.info("step 1/4: wrote %d events to %s (version %d)", n_events, events_path, version)

    ensure_topics(config.kafka, [SMOKE_TOPIC])
    (
        read_delta(spark, events_path)
        .select(F.col("event_id").cast("string").alias("key"), F.to_json(F.struct("*")).alias("value"))
        .write.format("kafka")
        .options(**spark_kafka_options(config.kafka))
        .option("topic", SMOKE_TOPIC.name)
        .save()
    )
    logger.info("step 2/4: produced %d events to topic %s", n_events, SMOKE_TOPIC.name)

    query = start_raw_ingest(
        spark,
        config,
        topic=SMOKE_TOPIC.name,
        table=landed_path,
        checkpoint=config.checkpoint_path("smoke-events-from-kafka"),
        available_now=True,
    )
    query.awaitTermination()
    landed = (
        read_delta(spark, landed_path)
        .select(F.get_json_object(F.col("value").cast("string"), "$.run_tag").alias("run_tag"))
        .where(F.col("run_tag") == run_tag)
        .count()
    )
    logger.info("step 3/4: streamed %d events of this run back into %s", landed, landed_path)
    if landed != n_events:
        raise DataError(f"smoke run {run_tag}: produced {n_events} events to Kafka but {landed} landed in Delta")

    import mlflow

    configure_mlflow(config)
    with mlflow.start_run(run_name="smoke-pipeline") as run:
        mlflow.set_tags({"lakestream.pipeline": "smoke", "lakestream.run_tag": run_tag})
        mlflow.log_params({"n_events": n_events, "topic": SMOKE_TOPIC.name, "spark_master": config.spark.master})
        mlflow.log_metrics({"events_written": n_events, "events_landed": landed, "events_delta_version": version})
        result = SmokeResult(run_tag, n_events, version, n_events, landed, run.info.run_id)
        mlflow.log_dict(asdict(result), "smoke_result.json")
    logger.info("step 4/4: logged MLflow run %s to %s", result.mlflow_run_id, config.tracking_uri)
    return result
