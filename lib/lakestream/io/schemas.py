"""Schemas are code: one StructType per Kafka message / landed file kind and per table.

The landed JSON files and the Kafka messages of a kind share one schema, so the batch and the
streaming halves parse the same contract. Field names are snake_case versions of the book's columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

# Timestamps in messages are ISO-8601 strings in UTC without zone ("2018-04-01 00:00:31").
TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"


def transaction_event_schema() -> StructType:
    """A card transaction as the payment gateway emits it (no label): one JSON object per line/message."""
    from pyspark.sql.types import (
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    return StructType(
        [
            StructField("transaction_id", LongType()),
            StructField("tx_datetime", StringType()),
            StructField("customer_id", LongType()),
            StructField("terminal_id", LongType()),
            StructField("tx_amount", DoubleType()),
        ]
    )


def fraud_label_event_schema() -> StructType:
    """A chargeback report: the transaction it concerns, when it was reported, and the fraud scenario."""
    from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

    return StructType(
        [
            StructField("transaction_id", LongType()),
            StructField("tx_datetime", StringType()),
            StructField("reported_at", StringType()),
            StructField("tx_fraud", IntegerType()),
            StructField("tx_fraud_scenario", IntegerType()),
        ]
    )
