"""Land a Kafka topic in a Delta table as raw records (bytes plus Kafka coordinates), exactly once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lakestream.config.models import LakestreamConfig
from lakestream.io.kafka import spark_kafka_options

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

logger = logging.getLogger(__name__)


def read_kafka_stream(
    spark: SparkSession, config: LakestreamConfig, topic: str, *, starting_offsets: str = "earliest"
) -> DataFrame:
    """A streaming DataFrame over a topic with Kafka's fixed schema (key, value, topic, partition, offset, ...)."""
    return (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options(config.kafka))
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("maxOffsetsPerTrigger", str(config.kafka.max_offsets_per_trigger))
        .option("failOnDataLoss", "false")
        .load()
    )


def select_raw_columns(records: DataFrame) -> DataFrame:
    """Kafka records -> raw landing columns: key, value (bytes), topic, partition, offset, kafka_ts, ingested_at."""
    from pyspark.sql import functions as F  # noqa: N812

    return records.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_ts"),
        F.current_timestamp().alias("ingested_at"),
    )


def start_raw_ingest(
    spark: SparkSession,
    config: LakestreamConfig,
    *,
    topic: str,
    table: Path,
    checkpoint: Path,
    available_now: bool = False,
    processing_time: str = "10 seconds",
) -> StreamingQuery:
    """Start the topic -> Delta query; the Delta sink plus the checkpoint make it exactly once."""
    stream = select_raw_columns(read_kafka_stream(spark, config, topic))
    writer = (
        stream.writeStream.format("delta")
        .outputMode("append")
        .option("checkpointLocation", str(checkpoint))
        .queryName(f"raw-{topic}")
    )
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=processing_time)
    logger.info("streaming topic %s into %s (checkpoint %s)", topic, table, checkpoint)
    return writer.start(str(table))
