"""Ingest landed files of one kind into bronze, incrementally and idempotently, and audit the run.

`<landing_root>/<kind>/date=YYYY-MM-DD/*.json` -> ``bronze.<kind>`` through an ``availableNow`` file stream
with its checkpoint at ``checkpoint_path("bronze-<kind>")``: a re-run reads only files it has not seen, so
running it twice never duplicates a line. One ``quality.ingest_audit`` row (stage ``bronze``) per run.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakestream.errors import DataError
from lakestream.io.lake_tables import ensure_table, read_table
from lakestream.io.landed_files import read_landed_lines_stream, select_bronze_columns, start_bronze_stream
from lakestream.io.table_schemas import INGEST_AUDIT
from lakestream.quality.audit import STAGE_BRONZE, AuditRecord, write_audit_records
from lakestream.quality.kinds import EventKind

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakestream.config.models import LakestreamConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BronzeIngestResult:
    """What one bronze run appended."""

    kind: str
    run_id: str
    batches: int
    rows: int
    files: int
    rows_without_landing_date: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return asdict(self)


def ingest_landed_files(spark: SparkSession, config: LakestreamConfig, *, kind: EventKind) -> BronzeIngestResult:
    """Append every landed file of `kind` not ingested yet to bronze.<kind>; returns the counts of this run."""
    from pyspark.sql import functions as F  # noqa: N812

    started_at = datetime.now(UTC)
    run_id = f"bronze-{kind.name}-{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    folder = config.paths.landing_root / kind.name
    ensure_table(spark, config, kind.bronze)
    ensure_table(spark, config, INGEST_AUDIT)
    batch_ids: list[int] = []
    if folder.is_dir():
        lines = read_landed_lines_stream(spark, folder, max_files_per_trigger=config.quality.max_files_per_trigger)
        query = start_bronze_stream(
            select_bronze_columns(lines),
            table=kind.bronze.path(config),
            checkpoint=config.checkpoint_path(f"bronze-{kind.name}"),
            query_name=f"bronze-{kind.name}",
            on_batch=batch_ids.append,
        )
        query.awaitTermination()
        if query.exception() is not None:
            raise DataError(f"bronze ingestion of {folder} failed: {query.exception()}")
    else:
        logger.warning("no landed %s yet: %s does not exist", kind.name, folder)

    stats = (
        read_table(spark, config, kind.bronze)
        .where(F.col("batch_id").isin(batch_ids) if batch_ids else F.lit(False))
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.count_distinct("source_file").alias("files"),
            F.count_if(F.col("landing_date").isNull()).alias("no_date"),
        )
        .first()
    )
    result = BronzeIngestResult(
        kind=kind.name,
        run_id=run_id,
        batches=len(batch_ids),
        rows=int(stats["rows"]),
        files=int(stats["files"]),
        rows_without_landing_date=int(stats["no_date"] or 0),
    )
    if result.rows_without_landing_date:
        logger.warning(
            "%d bronze rows of %s have no readable landing date (impossible date= folder); they stay in bronze "
            "but no silver day will read them: rename the folder and re-land the files",
            result.rows_without_landing_date,
            kind.name,
        )
    write_audit_records(
        spark,
        config,
        [
            AuditRecord(
                run_id=run_id,
                stage=STAGE_BRONZE,
                kind=kind.name,
                process_date=None,
                started_at=started_at,
                finished_at=datetime.now(UTC),
                input_rows=result.rows,
                source_files=result.files,
            )
        ],
    )
    logger.info("bronze %s: %d rows from %d files in %d batches", kind.name, result.rows, result.files, result.batches)
    return result
