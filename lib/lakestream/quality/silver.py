"""Bronze -> silver for a range of days: typed, validated, deduplicated rows; the rest quarantined or recorded.

Design decisions (the why lives here, the how in lakestream.quality.rules):

Late events. The landing folder date is when a file arrived, not when its events happened. Each bronze row
is owned by exactly one silver day, its ``process_date``: the event date when the row landed at most
``quality.allowed_lateness_days`` days after it (or the day before, for clock skew within
``future_tolerance_minutes``), otherwise its landing date. So silver day D is rebuilt from the bronze
landing partitions D-1 .. D+allowed_lateness and every late event reaches its own event-date partition;
an event later than that is quarantined under its landing day with rule ``late_beyond_allowed_lateness``.
Rows that cannot be read (malformed, missing or invalid timestamp) and timestamps after their landing day
are owned by their landing day too. Operationally: re-clean day D once D+allowed_lateness has landed (a
daily schedule cleans the last allowed_lateness+1 days; each run replaces its days, so that is safe).

Duplicates. Among the rows of one day that pass every rule, one row per transaction id is kept (earliest
landed). Exact re-sends (same id, same content) are dropped from silver but recorded one by one in
``quality.duplicates`` (with the kept record) and counted in the audit; a different payload under a kept id
is a conflict and is quarantined as ``duplicate_transaction_id``. Dedup is within a silver day (an id lives
on its event date); labels are deduplicated the same way within their reported day.

Unknown extra fields. By default (``quality.unknown_fields: drop``) a row with extra keys is accepted: the
extras are dropped from silver, the raw line keeps them in bronze, and the audit records how many rows had
extras and which keys; ``quarantine`` turns them into the ``unknown_fields`` rule instead.

Labels. A chargeback must name a silver transaction on the date of its own tx_datetime (checked against
``silver.transactions`` at clean time; labels arrive 7 days after the transaction, so that day is built by
then). A label that arrives first is quarantined as ``unknown_transaction`` and `replay-quarantine --rule
unknown_transaction` promotes it once the transaction is in silver.

Accounting. For every (kind, day): bronze rows owned by the day = silver rows + quarantined rows + duplicate
rows, counted back from the tables after the writes; a mismatch fails the run (DataError) and the audit
table's CHECK constraint refuses rows that do not add up. A re-run replaces exactly its days in silver
(``replaceWhere`` on the partition), in quarantine and in duplicates, so retries and backfills are safe.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lakestream.errors import ConfigError, DataError
from lakestream.io.delta import table_version
from lakestream.io.lake_tables import ensure_tables, read_table, replace_rows
from lakestream.io.table_schemas import DUPLICATES, INGEST_AUDIT, QUARANTINE, SILVER_TRANSACTIONS
from lakestream.quality.audit import STAGE_SILVER, AuditRecord, write_audit_records
from lakestream.quality.kinds import FRAUD_LABELS, TRANSACTIONS, EventKind
from lakestream.quality.rules import (
    OUTCOME_DUPLICATE,
    OUTCOME_QUARANTINE,
    OUTCOME_SILVER,
    assign_process_date,
    check_fraud_label_rules,
    check_transaction_rules,
    parse_landed_events,
    resolve_duplicates,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakestream.config.models import LakestreamConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DayCounts:
    """Where the bronze rows owned by one silver day went."""

    process_date: str
    input_rows: int
    silver_rows: int
    quarantined_rows: int
    duplicate_rows: int
    unknown_field_rows: int


@dataclass(frozen=True)
class CleanResult:
    """One silver run over a range of days."""

    kind: str
    run_id: str
    start_date: str
    end_date: str
    input_rows: int
    silver_rows: int
    quarantined_rows: int
    duplicate_rows: int
    days: tuple[DayCounts, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-day counts included)."""
        return asdict(self)


def days_between(start: date, end: date) -> Iterator[date]:
    """Every day from start to end, inclusive."""
    if end < start:
        raise ConfigError(f"end date {end} is before start date {start}; pass --start-date <= --end-date")
    for offset in range((end - start).days + 1):
        yield start + timedelta(days=offset)


def classify_bronze_rows(
    bronze: DataFrame,
    *,
    kind: EventKind,
    config: LakestreamConfig,
    known_transactions: DataFrame | None = None,
) -> DataFrame:
    """Bronze rows -> the same rows classified (process_date, _outcome, rules, reason, typed fields...).

    `known_transactions` (transaction_id, tx_date) is required for fraud labels.
    """
    quality = config.quality
    required = kind.required_fields(quality)
    parsed = bronze.transform(
        parse_landed_events, event_schema=kind.event_schema(), timestamp_fields=kind.timestamp_fields
    ).transform(
        assign_process_date,
        event_time_field=kind.event_time_field,
        allowed_lateness_days=quality.allowed_lateness_days,
    )
    if kind is TRANSACTIONS:
        checked = parsed.transform(
            check_transaction_rules, quality=quality, rules=quality.transactions, required_fields=required
        )
    elif kind is FRAUD_LABELS:
        if known_transactions is None:
            raise ConfigError("cleaning fraud labels needs the silver transactions (known_transactions)")
        checked = parsed.transform(
            check_fraud_label_rules,
            known_transactions=known_transactions,
            quality=quality,
            rules=quality.fraud_labels,
            transaction_rules=quality.transactions,
            required_fields=required,
        )
    else:
        raise ConfigError(f"no rules for event kind {kind.name!r}")
    return checked.transform(resolve_duplicates, payload_fields=kind.field_names)


def select_silver_rows(classified: DataFrame, *, kind: EventKind, run_id: str) -> DataFrame:
    """Classified rows -> silver.<kind> rows (outcome silver)."""
    from pyspark.sql import functions as F  # noqa: N812

    return classified.where(F.col("_outcome") == OUTCOME_SILVER).select(
        *kind.field_names,
        F.to_date("tx_datetime").alias("tx_date"),
        *([F.to_date("reported_at").alias("reported_date")] if kind is FRAUD_LABELS else []),
        "record_id",
        "source_file",
        "landing_date",
        F.col("batch_id").alias("bronze_batch_id"),
        F.lit(run_id).alias("run_id"),
    )


def select_quarantine_rows(classified: DataFrame, *, kind: EventKind, run_id: str) -> DataFrame:
    """Classified rows -> quarantine.records rows (outcome quarantine), with the raw line and its rules."""
    from pyspark.sql import functions as F  # noqa: N812

    return classified.where(F.col("_outcome") == OUTCOME_QUARANTINE).select(
        "record_id",
        F.lit(kind.name).alias("kind"),
        "process_date",
        "rules",
        "reason",
        "value",
        "transaction_id",
        "event_date",
        "source_file",
        "landing_date",
        F.col("batch_id").alias("bronze_batch_id"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("quarantined_at"),
    )


def select_duplicate_rows(classified: DataFrame, *, kind: EventKind, run_id: str) -> DataFrame:
    """Classified rows -> quality.duplicates rows (outcome duplicate), pointing at the kept record."""
    from pyspark.sql import functions as F  # noqa: N812

    return classified.where(F.col("_outcome") == OUTCOME_DUPLICATE).select(
        "record_id",
        F.lit(kind.name).alias("kind"),
        "process_date",
        "transaction_id",
        F.col("_kept_record_id").alias("kept_record_id"),
        "value",
        "source_file",
        "landing_date",
        F.col("batch_id").alias("bronze_batch_id"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("recorded_at"),
    )


def read_known_transactions(spark: SparkSession, config: LakestreamConfig) -> DataFrame:
    """silver.transactions keys (transaction_id, tx_date): what a label may refer to."""
    return read_table(spark, config, SILVER_TRANSACTIONS).select("transaction_id", "tx_date")


def clean_landed_days(
    spark: SparkSession, config: LakestreamConfig, *, kind: EventKind, start: date, end: date
) -> CleanResult:
    """Rebuild silver.<kind> days start..end from bronze, with their quarantine, duplicates and audit rows."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F  # noqa: N812

    days = list(days_between(start, end))
    started_at = datetime.now(UTC)
    run_id = f"silver-{kind.name}-{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    lateness = config.quality.allowed_lateness_days
    ensure_tables(spark, config, (kind.bronze, kind.silver, SILVER_TRANSACTIONS, QUARANTINE, DUPLICATES, INGEST_AUDIT))
    bronze_version = table_version(spark, kind.bronze.path(config))
    logger.info(
        "cleaning %s %s..%s from bronze landing days %s..%s (bronze version %d, run %s)",
        kind.name,
        start,
        end,
        start - timedelta(days=1),
        end + timedelta(days=lateness),
        bronze_version,
        run_id,
    )
    bronze = read_table(spark, config, kind.bronze).where(
        F.col("landing_date").between(F.lit(start - timedelta(days=1)), F.lit(end + timedelta(days=lateness)))
    )
    known = read_known_transactions(spark, config) if kind is FRAUD_LABELS else None
    classified = (
        classify_bronze_rows(bronze, kind=kind, config=config, known_transactions=known)
        .where(F.col("process_date").between(F.lit(start), F.lit(end)))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        inputs = {
            row["process_date"]: row
            for row in classified.groupBy("process_date")
            .agg(
                F.count(F.lit(1)).alias("rows"),
                F.count_if(F.size("unknown_fields") > 0).alias("unknown_rows"),
                F.array_sort(F.array_distinct(F.flatten(F.collect_list("unknown_fields")))).alias("unknown"),
            )
            .collect()
        }
        # No BETWEEN here: Spark 4.2 rewrites it to a With expression Delta's replaceWhere check cannot resolve.
        first, last = f"DATE'{start.isoformat()}'", f"DATE'{end.isoformat()}'"
        replace_rows(
            select_silver_rows(classified, kind=kind, run_id=run_id),
            config,
            kind.silver,
            where=f"{kind.partition_column} >= {first} AND {kind.partition_column} <= {last}",
        )
        own_rows = f"kind = '{kind.name}' AND process_date >= {first} AND process_date <= {last}"
        replace_rows(select_quarantine_rows(classified, kind=kind, run_id=run_id), config, QUARANTINE, where=own_rows)
        replace_rows(select_duplicate_rows(classified, kind=kind, run_id=run_id), config, DUPLICATES, where=own_rows)
    finally:
        classified.unpersist()

    outputs = _count_written_rows(spark, config, kind=kind, start=start, end=end)
    finished_at = datetime.now(UTC)
    counts, records = [], []
    for day in days:
        given = inputs.get(day)
        silver, quarantined, duplicates = (outputs.get((table, day), 0) for table in ("silver", "q", "d"))
        day_counts = DayCounts(
            process_date=day.isoformat(),
            input_rows=int(given["rows"]) if given else 0,
            silver_rows=silver,
            quarantined_rows=quarantined,
            duplicate_rows=duplicates,
            unknown_field_rows=int(given["unknown_rows"]) if given else 0,
        )
        if day_counts.input_rows != silver + quarantined + duplicates:
            raise DataError(
                f"{kind.name} {day}: {day_counts.input_rows} bronze rows but {silver} silver + {quarantined} "
                f"quarantined + {duplicates} duplicates were written (run {run_id}); the tables changed during "
                "the run or a rule dropped rows: re-run this day and report a bug if it persists"
            )
        counts.append(day_counts)
        records.append(
            AuditRecord(
                run_id=run_id,
                stage=STAGE_SILVER,
                kind=kind.name,
                process_date=day,
                started_at=started_at,
                finished_at=finished_at,
                input_rows=day_counts.input_rows,
                silver_rows=silver,
                quarantined_rows=quarantined,
                duplicate_rows=duplicates,
                unknown_field_rows=day_counts.unknown_field_rows,
                unknown_fields=list(given["unknown"]) if given else [],
                bronze_version=bronze_version,
            )
        )
    write_audit_records(spark, config, records)
    result = CleanResult(
        kind=kind.name,
        run_id=run_id,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        input_rows=sum(c.input_rows for c in counts),
        silver_rows=sum(c.silver_rows for c in counts),
        quarantined_rows=sum(c.quarantined_rows for c in counts),
        duplicate_rows=sum(c.duplicate_rows for c in counts),
        days=tuple(counts),
    )
    for c in counts:
        logger.info(
            "%s %s: %d in = %d silver + %d quarantined + %d duplicates",
            kind.name,
            c.process_date,
            c.input_rows,
            c.silver_rows,
            c.quarantined_rows,
            c.duplicate_rows,
        )
    return result


def _count_written_rows(
    spark: SparkSession, config: LakestreamConfig, *, kind: EventKind, start: date, end: date
) -> dict[tuple[str, date], int]:
    """Rows per day now in silver ("silver"), quarantine ("q") and duplicates ("d") for the kind and days."""
    from pyspark.sql import functions as F  # noqa: N812

    silver = (
        read_table(spark, config, kind.silver)
        .where(F.col(kind.partition_column).between(F.lit(start), F.lit(end)))
        .groupBy(F.lit("silver").alias("t"), F.col(kind.partition_column).alias("d"))
        .count()
    )
    others = [
        read_table(spark, config, spec)
        .where((F.col("kind") == kind.name) & F.col("process_date").between(F.lit(start), F.lit(end)))
        .groupBy(F.lit(tag).alias("t"), F.col("process_date").alias("d"))
        .count()
        for spec, tag in ((QUARANTINE, "q"), (DUPLICATES, "d"))
    ]
    union = silver.unionByName(others[0]).unionByName(others[1])
    return {(row["t"], row["d"]): int(row["count"]) for row in union.collect()}
