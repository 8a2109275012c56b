"""Schemas are code: one StructType per lake table of the ingestion path, with its layout and constraints.

Tables live at ``<lake_root>/<database>/<table>`` (``LakestreamConfig.table_path``):

- ``bronze.transactions``, ``bronze.fraud_labels``: every landed line as is, plus ingestion metadata;
  append-only, partitioned by ``landing_date`` (the ``date=`` folder the file was dropped in);
- ``silver.transactions`` (partitioned by ``tx_date``) and ``silver.fraud_labels`` (by ``reported_date``):
  typed, validated, deduplicated events with lineage back to bronze (``record_id``);
- ``quarantine.records``: every bronze row that broke a rule, for both kinds, with the raw payload and all
  the rules it broke; partitioned by ``kind`` and ``process_date`` (the silver day whose run owns it);
- ``quality.duplicates``: every exact re-send dropped on the way to silver, pointing at the kept copy;
- ``quality.ingest_audit``: one row per bronze run and per (silver run, day) and per replay, with counts.

NOT NULL comes from the schemas (Delta enforces non-nullable columns); CHECK constraints from
``TableSpec.checks`` are structural invariants. Business thresholds (max amount, id ranges) are rules in
configuration, not constraints, so that changing them never needs a table migration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from pyspark.sql.types import StructField, StructType

    from lakestream.config.models import LakestreamConfig


@dataclass(frozen=True)
class TableSpec:
    """Where a table lives, its schema builder, partition columns and CHECK constraints (name -> SQL)."""

    database: str
    table: str
    schema_name: str
    partition_by: tuple[str, ...] = ()
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """database.table, as registered in the session catalog."""
        return f"{self.database}.{self.table}"

    def schema(self) -> StructType:
        """The StructType of this table."""
        return _SCHEMAS[self.schema_name]()

    def path(self, config: LakestreamConfig) -> Path:
        """Location of the table in the lake."""
        return config.table_path(self.database, self.table)


def bronze_landed_schema() -> StructType:
    """bronze.<kind>: one row per landed line (raw text) with where/when it was ingested."""
    from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType, TimestampType

    return StructType(
        [
            StructField("record_id", StringType(), nullable=False),  # uuid of this bronze row: lineage key
            StructField("value", StringType(), nullable=False),  # the landed line, untouched
            StructField("source_file", StringType(), nullable=False),
            StructField("landing_date", DateType()),  # from date=YYYY-MM-DD; null only for an impossible date
            StructField("ingested_at", TimestampType(), nullable=False),
            StructField("batch_id", LongType(), nullable=False),  # micro-batch of the bronze stream
        ]
    )


def silver_transactions_schema() -> StructType:
    """silver.transactions: one valid, deduplicated transaction per transaction_id and tx_date."""
    from pyspark.sql.types import (
        DateType,
        DoubleType,
        LongType,
        StructField,
        StructType,
        TimestampType,
    )

    return StructType(
        [
            StructField("transaction_id", LongType(), nullable=False),
            StructField("tx_datetime", TimestampType(), nullable=False),
            StructField("customer_id", LongType(), nullable=False),
            StructField("terminal_id", LongType(), nullable=False),
            StructField("tx_amount", DoubleType(), nullable=False),
            StructField("tx_date", DateType(), nullable=False),
            *_silver_lineage_fields(),
        ]
    )


def silver_fraud_labels_schema() -> StructType:
    """silver.fraud_labels: one valid chargeback per transaction_id and reported_date."""
    from pyspark.sql.types import (
        DateType,
        IntegerType,
        LongType,
        StructField,
        StructType,
        TimestampType,
    )

    return StructType(
        [
            StructField("transaction_id", LongType(), nullable=False),
            StructField("tx_datetime", TimestampType(), nullable=False),
            StructField("reported_at", TimestampType(), nullable=False),
            StructField("tx_fraud", IntegerType(), nullable=False),
            StructField("tx_fraud_scenario", IntegerType(), nullable=False),
            StructField("tx_date", DateType(), nullable=False),
            StructField("reported_date", DateType(), nullable=False),
            *_silver_lineage_fields(),
        ]
    )


def _silver_lineage_fields() -> list[StructField]:
    from pyspark.sql.types import DateType, LongType, StringType, StructField

    return [
        StructField("record_id", StringType(), nullable=False),
        StructField("source_file", StringType(), nullable=False),
        StructField("landing_date", DateType(), nullable=False),
        StructField("bronze_batch_id", LongType(), nullable=False),
        StructField("run_id", StringType(), nullable=False),
    ]


def quarantine_schema() -> StructType:
    """quarantine.records: a bronze row that broke rules, with the raw payload and every rule it broke."""
    from pyspark.sql.types import (
        ArrayType,
        DateType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    return StructType(
        [
            StructField("record_id", StringType(), nullable=False),
            StructField("kind", StringType(), nullable=False),
            StructField("process_date", DateType(), nullable=False),
            StructField("rules", ArrayType(StringType(), containsNull=False), nullable=False),
            StructField("reason", StringType(), nullable=False),
            StructField("value", StringType(), nullable=False),
            StructField("transaction_id", LongType()),  # when it could be read
            StructField("event_date", DateType()),  # when the event time could be read
            StructField("source_file", StringType(), nullable=False),
            StructField("landing_date", DateType(), nullable=False),
            StructField("bronze_batch_id", LongType(), nullable=False),
            StructField("run_id", StringType(), nullable=False),
            StructField("quarantined_at", TimestampType(), nullable=False),
        ]
    )


def duplicates_schema() -> StructType:
    """quality.duplicates: a dropped exact re-send (same transaction id and content as the kept copy)."""
    from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType, TimestampType

    return StructType(
        [
            StructField("record_id", StringType(), nullable=False),
            StructField("kind", StringType(), nullable=False),
            StructField("process_date", DateType(), nullable=False),
            StructField("transaction_id", LongType(), nullable=False),
            StructField("kept_record_id", StringType(), nullable=False),
            StructField("value", StringType(), nullable=False),
            StructField("source_file", StringType(), nullable=False),
            StructField("landing_date", DateType(), nullable=False),
            StructField("bronze_batch_id", LongType(), nullable=False),
            StructField("run_id", StringType(), nullable=False),
            StructField("recorded_at", TimestampType(), nullable=False),
        ]
    )


def ingest_audit_schema() -> StructType:
    """quality.ingest_audit: one row per bronze run, per (silver run, day) and per quarantine replay."""
    from pyspark.sql.types import (
        ArrayType,
        DateType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    return StructType(
        [
            StructField("run_id", StringType(), nullable=False),
            StructField("stage", StringType(), nullable=False),  # bronze | silver | replay
            StructField("kind", StringType(), nullable=False),
            StructField("process_date", DateType()),  # silver: the day; bronze/replay: null
            StructField("started_at", TimestampType(), nullable=False),
            StructField("finished_at", TimestampType(), nullable=False),
            StructField("input_rows", LongType(), nullable=False),
            StructField("silver_rows", LongType(), nullable=False),
            StructField("quarantined_rows", LongType(), nullable=False),
            StructField("duplicate_rows", LongType(), nullable=False),
            StructField("unknown_field_rows", LongType(), nullable=False),
            StructField("unknown_fields", ArrayType(StringType(), containsNull=False), nullable=False),
            StructField("source_files", LongType(), nullable=False),
            StructField("bronze_version", LongType()),
        ]
    )


_SCHEMAS = {
    "bronze_landed": bronze_landed_schema,
    "silver_transactions": silver_transactions_schema,
    "silver_fraud_labels": silver_fraud_labels_schema,
    "quarantine": quarantine_schema,
    "duplicates": duplicates_schema,
    "ingest_audit": ingest_audit_schema,
}

BRONZE_TRANSACTIONS = TableSpec("bronze", "transactions", "bronze_landed", ("landing_date",))
BRONZE_FRAUD_LABELS = TableSpec("bronze", "fraud_labels", "bronze_landed", ("landing_date",))
SILVER_TRANSACTIONS = TableSpec(
    "silver",
    "transactions",
    "silver_transactions",
    ("tx_date",),
    {
        "tx_amount_positive_finite": "tx_amount > 0 AND NOT isnan(tx_amount) AND tx_amount < double('Infinity')",
        "tx_date_of_tx_datetime": "tx_date = to_date(tx_datetime)",
        "ids_non_negative": "transaction_id >= 0 AND customer_id >= 0 AND terminal_id >= 0",
    },
)
SILVER_FRAUD_LABELS = TableSpec(
    "silver",
    "fraud_labels",
    "silver_fraud_labels",
    ("reported_date",),
    {
        "tx_fraud_is_flag": "tx_fraud IN (0, 1)",
        "reported_after_transaction": "reported_at >= tx_datetime",
        "reported_date_of_reported_at": "reported_date = to_date(reported_at)",
        "tx_date_of_tx_datetime": "tx_date = to_date(tx_datetime)",
    },
)
QUARANTINE = TableSpec(
    "quarantine",
    "records",
    "quarantine",
    ("kind", "process_date"),
    {"breaks_a_rule": "size(rules) > 0"},
)
DUPLICATES = TableSpec("quality", "duplicates", "duplicates", ("kind", "process_date"))
INGEST_AUDIT = TableSpec(
    "quality",
    "ingest_audit",
    "ingest_audit",
    (),
    {
        "rows_add_up": "stage = 'bronze' OR input_rows = silver_rows + quarantined_rows + duplicate_rows",
    },
)

INGESTION_TABLES: tuple[TableSpec, ...] = (
    BRONZE_TRANSACTIONS,
    BRONZE_FRAUD_LABELS,
    SILVER_TRANSACTIONS,
    SILVER_FRAUD_LABELS,
    QUARANTINE,
    DUPLICATES,
    INGEST_AUDIT,
)
