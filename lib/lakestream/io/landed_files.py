"""Landed files -> bronze: a Structured Streaming file source (text lines) into an append-only Delta table.

The file source remembers in its checkpoint which files it has read, so a re-run only picks up new files;
each micro-batch is written with Delta's ``txnAppId``/``txnVersion`` so a batch retried after a crash is
committed once. Lines are kept exactly as landed (``value``): an empty file adds nothing, and a truncated
last line is just a line that silver will quarantine as malformed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lakestream.errors import DataError
from lakestream.io.delta import write_delta

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

logger = logging.getLogger(__name__)

# Only well-formed day folders and *.json files; names starting with "." or "_" (in-flight temporary
# files) are skipped by Spark's file listing anyway.
LANDED_FILES_GLOB = "date=[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]/*.json"
_LANDING_DATE_PATTERN = r"/date=(\d{4}-\d{2}-\d{2})/[^/]*$"


def read_landed_lines_stream(spark: SparkSession, folder: Path, *, max_files_per_trigger: int) -> DataFrame:
    """A streaming DataFrame of every line of <folder>/date=YYYY-MM-DD/*.json: value, plus the hidden _metadata."""
    return (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", str(max_files_per_trigger))
        .load(str(folder / LANDED_FILES_GLOB))
    )


def select_bronze_columns(lines: DataFrame) -> DataFrame:
    """Landed lines -> record_id (uuid), value, source_file, landing_date (from the date= folder), ingested_at."""
    from pyspark.sql import functions as F  # noqa: N812

    source_file = F.col("_metadata.file_path")
    return lines.select(
        F.expr("uuid()").alias("record_id"),
        F.col("value"),
        source_file.alias("source_file"),
        F.try_to_date(F.regexp_extract(source_file, _LANDING_DATE_PATTERN, 1), "yyyy-MM-dd").alias("landing_date"),
        F.current_timestamp().alias("ingested_at"),
    )


def streaming_query_id(checkpoint: Path) -> str:
    """The id a streaming query keeps for life in its checkpoint (stable across restarts)."""
    metadata = checkpoint / "metadata"
    try:
        return str(json.loads(metadata.read_text(encoding="utf-8").splitlines()[0])["id"])
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise DataError(
            f"cannot read the query id from {metadata} ({exc}); the checkpoint is damaged: move it away "
            "and re-run (bronze would then re-ingest every landed file)"
        ) from None


def start_bronze_stream(
    lines: DataFrame,
    *,
    table: Path,
    checkpoint: Path,
    query_name: str,
    on_batch: Callable[[int], None] | None = None,
) -> StreamingQuery:
    """Start lines (bronze columns) -> Delta `table`, availableNow, each micro-batch once with batch_id added."""
    from pyspark.sql import functions as F  # noqa: N812

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        app_id = f"{query_name}-{streaming_query_id(checkpoint)}"
        write_delta(
            batch.withColumn("batch_id", F.lit(batch_id).cast("bigint")),
            table,
            partition_by=("landing_date",),
            txn=(app_id, batch_id),
        )
        if on_batch is not None:
            on_batch(batch_id)

    logger.info("streaming landed files into %s (checkpoint %s)", table, checkpoint)
    return (
        lines.writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", str(checkpoint))
        .queryName(query_name)
        .trigger(availableNow=True)
        .start()
    )
