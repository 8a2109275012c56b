"""Replay silver events into Kafka for the stream: transactions and chargebacks of a time span, in event order.

The messages follow the topics' contracts (io.schemas; chargebacks carry the terminal, see
pipeline.stream_label_event_schema). Spark's Kafka writer sends them from one task in event-time order, so a
replay is as fast as the broker takes it; the Kafka timestamp is the send time (latency is measured from it).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from pyspark.sql import functions as F  # noqa: N812

from lakestream.errors import DataError
from lakestream.io.delta import is_delta_table, read_delta
from lakestream.io.kafka import ensure_topics, spark_kafka_options
from lakestream.io.schemas import TIMESTAMP_FORMAT

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from lakestream.config.models import LakestreamConfig

logger = logging.getLogger(__name__)


def span_events(
    spark: SparkSession, config: LakestreamConfig, *, start: dt.datetime, end: dt.datetime
) -> tuple[DataFrame, DataFrame]:
    """(transactions with tx_datetime in [start, end), chargebacks reported in [start, end)) from silver."""
    tx_path = config.table_path("silver", "transactions")
    labels_path = config.table_path("silver", "fraud_labels")
    if not is_delta_table(tx_path):
        raise DataError(f"nothing to replay: no silver transactions at {tx_path}")
    all_tx = read_delta(spark, tx_path)
    transactions = all_tx.where((F.col("tx_datetime") >= F.lit(start)) & (F.col("tx_datetime") < F.lit(end)))
    if not is_delta_table(labels_path):
        labels = None
    else:
        labels = (
            read_delta(spark, labels_path)
            .where((F.col("reported_at") >= F.lit(start)) & (F.col("reported_at") < F.lit(end)))
            .join(all_tx.select("transaction_id", "terminal_id"), on="transaction_id")
        )
    return transactions, labels


def transaction_fields() -> list[Column | str]:
    """The JSON fields of a transaction event, in order (alerts start with them too)."""
    return [
        "transaction_id",
        F.date_format("tx_datetime", TIMESTAMP_FORMAT).alias("tx_datetime"),
        "customer_id",
        "terminal_id",
        "tx_amount",
    ]


def transaction_messages(transactions: DataFrame) -> DataFrame:
    """Silver transactions -> (key, value, _ts) of the transactions topic."""
    value = F.to_json(F.struct(*transaction_fields()))
    # keyed by card: one customer's transactions share a partition, hence their order
    return transactions.select(
        F.col("customer_id").cast("string").alias("key"), value.alias("value"), F.col("tx_datetime").alias("_ts")
    )


def label_messages(labels: DataFrame) -> DataFrame:
    """Silver chargebacks (+ terminal_id) -> (key, value, _ts) of the fraud-labels topic."""
    value = F.to_json(
        F.struct(
            "transaction_id",
            F.date_format("tx_datetime", TIMESTAMP_FORMAT).alias("tx_datetime"),
            F.date_format("reported_at", TIMESTAMP_FORMAT).alias("reported_at"),
            "tx_fraud",
            "tx_fraud_scenario",
            "terminal_id",
        )
    )
    return labels.select(
        F.col("transaction_id").cast("string").alias("key"), value.alias("value"), F.col("reported_at").alias("_ts")
    )


def send_in_order(messages: DataFrame, config: LakestreamConfig, topic: str) -> int:
    """Write messages to a topic from one task, sorted by event time then value; returns the count."""
    ordered = messages.repartition(1).sortWithinPartitions("_ts", "value").select("key", "value")
    ordered = ordered.persist()
    try:
        count = ordered.count()
        ordered.write.format("kafka").options(**spark_kafka_options(config.kafka)).option("topic", topic).save()
    finally:
        ordered.unpersist()
    return count


def replay_span(
    spark: SparkSession, config: LakestreamConfig, *, start: dt.datetime, end: dt.datetime, labels_first: bool = True
) -> dict[str, int]:
    """Send the span's chargebacks then its transactions (labels first: see online_features on why it is safe)."""
    ensure_topics(config.kafka)
    transactions, labels = span_events(spark, config, start=start, end=end)
    topics = config.kafka.topics
    sent = {"fraud_labels": 0, "transactions": 0}
    steps = [("fraud_labels", labels), ("transactions", transactions)]
    if not labels_first:
        steps.reverse()
    for name, frame in steps:
        if frame is None:
            continue
        messages = label_messages(frame) if name == "fraud_labels" else transaction_messages(frame)
        sent[name] = send_in_order(messages, config, getattr(topics, name).name)
    logger.info(
        "replayed %s..%s: %d transactions, %d chargebacks", start, end, sent["transactions"], sent["fraud_labels"]
    )
    return sent
