"""The ingestion audit: one quality.ingest_audit row per bronze run, per silver (run, day) and per replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from lakestream.io.lake_tables import append_rows
from lakestream.io.table_schemas import INGEST_AUDIT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakestream.config.models import LakestreamConfig

STAGE_BRONZE = "bronze"
STAGE_SILVER = "silver"
STAGE_REPLAY = "replay"


@dataclass(frozen=True)
class AuditRecord:
    """One audit row; fields in the order of io.table_schemas.ingest_audit_schema."""

    run_id: str
    stage: str
    kind: str
    process_date: date | None
    started_at: datetime
    finished_at: datetime
    input_rows: int
    silver_rows: int = 0
    quarantined_rows: int = 0
    duplicate_rows: int = 0
    unknown_field_rows: int = 0
    unknown_fields: list[str] = field(default_factory=list)
    source_files: int = 0
    bronze_version: int | None = None


def write_audit_records(spark: SparkSession, config: LakestreamConfig, records: Sequence[AuditRecord]) -> None:
    """Append the records to quality.ingest_audit (its CHECK rejects silver/replay rows that do not add up)."""
    if records:
        frame = spark.createDataFrame([astuple(record) for record in records], INGEST_AUDIT.schema())
        append_rows(frame, config, INGEST_AUDIT)
