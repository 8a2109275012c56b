"""Replay quarantined rows after a rule, a threshold or a producer was fixed.

The selected rows (kind, optionally rules and process days) go through exactly the silver classification
again, with the configuration in force now and against the silver tables as they are now:

- rows that pass and whose transaction id is not in their silver day yet are inserted (Delta MERGE on
  partition + transaction_id, so nothing is ever inserted twice) and deleted from quarantine;
- rows that pass but whose id is already in silver with the same payload are exact re-sends: recorded in
  quality.duplicates and deleted from quarantine (the same record already in silver just leaves quarantine);
- every other row stays quarantined, its rules and reason updated to what it breaks now.

So a second replay of the same selection changes nothing, and the bronze = silver + quarantine + duplicates
equation keeps holding over the tables. A later silver re-run of the day gives the same result, because it
applies the same rules to the same bronze rows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from lakestream.errors import ConfigError
from lakestream.io.lake_tables import (
    apply_quarantine_resolutions,
    ensure_tables,
    insert_missing_rows,
    read_table,
)
from lakestream.io.table_schemas import DUPLICATES, INGEST_AUDIT, QUARANTINE, SILVER_TRANSACTIONS
from lakestream.quality.audit import STAGE_REPLAY, AuditRecord, write_audit_records
from lakestream.quality.kinds import FRAUD_LABELS, EventKind
from lakestream.quality.rules import (
    DUPLICATE_TRANSACTION_ID,
    OUTCOME_DUPLICATE,
    OUTCOME_QUARANTINE,
    OUTCOME_SILVER,
    RULES,
)
from lakestream.quality.silver import (
    classify_bronze_rows,
    read_known_transactions,
    select_duplicate_rows,
    select_silver_rows,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from lakestream.config.models import LakestreamConfig

logger = logging.getLogger(__name__)

PROMOTED = "promoted"
DUPLICATE = "duplicate"
STILL_QUARANTINED = "quarantined"


@dataclass(frozen=True)
class ReplayResult:
    """What one replay of quarantined rows of one kind did."""

    kind: str
    run_id: str
    selected_rows: int
    promoted_rows: int
    duplicate_rows: int
    still_quarantined_rows: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return asdict(self)


def select_quarantined(
    quarantine: DataFrame,
    *,
    kind: EventKind,
    rules: Sequence[str] = (),
    start: date | None = None,
    end: date | None = None,
) -> DataFrame:
    """Quarantine rows of `kind`, breaking any of `rules` (all when empty), with process_date in [start, end]."""
    from pyspark.sql import functions as F  # noqa: N812

    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        raise ConfigError(f"unknown quarantine rule(s) {unknown}; the rules are {list(RULES)}")
    condition: Column = F.col("kind") == kind.name
    if rules:
        condition = condition & F.arrays_overlap("rules", F.array(*[F.lit(rule) for rule in rules]))
    if start is not None:
        condition = condition & (F.col("process_date") >= F.lit(start))
    if end is not None:
        condition = condition & (F.col("process_date") <= F.lit(end))
    return quarantine.where(condition)


def quarantined_as_bronze(quarantined: DataFrame) -> DataFrame:
    """Quarantine rows -> bronze-shaped rows (+ `_quarantined_on`, the process_date they are filed under)."""
    from pyspark.sql import functions as F  # noqa: N812

    return quarantined.select(
        "record_id",
        "value",
        "source_file",
        "landing_date",
        F.col("bronze_batch_id").alias("batch_id"),
        F.col("process_date").alias("_quarantined_on"),
    )


def resolve_against_silver(
    classified: DataFrame, silver_keys: DataFrame, *, payload_fields: Sequence[str]
) -> DataFrame:
    """Classified replay rows -> + `_resolution` (promoted | duplicate | quarantined), given silver's rows.

    `silver_keys`: process_date, transaction_id, _silver_record_id, _silver_payload (one row per key).
    A passing row whose key is in silver is the same record (promoted earlier), a re-send (duplicate) or
    a conflict (quarantined as duplicate_transaction_id).
    """
    from pyspark.sql import functions as F  # noqa: N812

    payload = F.struct(*[F.col(name) for name in payload_fields])
    joined = classified.join(silver_keys, ["process_date", "transaction_id"], "left")
    in_silver = F.col("_silver_record_id").isNotNull()
    passes = F.col("_outcome") == OUTCOME_SILVER
    same_record = F.col("_silver_record_id") == F.col("record_id")
    conflict = passes & in_silver & ~same_record & (payload != F.col("_silver_payload"))
    reason = F.concat(
        F.lit("transaction_id "),
        F.col("transaction_id").cast("string"),
        F.lit(" already in silver from record "),
        F.col("_silver_record_id"),
        F.lit(" with a different payload"),
    )
    resolution = (
        F.when(passes & (~in_silver | same_record), F.lit(PROMOTED))
        .when(passes & in_silver & ~conflict, F.lit(DUPLICATE))
        .when(F.col("_outcome") == OUTCOME_DUPLICATE, F.lit(DUPLICATE))
        .otherwise(F.lit(STILL_QUARANTINED))
    )
    return joined.withColumns(
        {
            "_resolution": resolution,
            "_kept_record_id": F.when(
                passes & in_silver & ~conflict & ~same_record, F.col("_silver_record_id")
            ).otherwise(F.col("_kept_record_id")),
            "rules": F.when(conflict, F.array(F.lit(DUPLICATE_TRANSACTION_ID))).otherwise(F.col("rules")),
            "reason": F.when(conflict, reason).otherwise(F.col("reason")),
        }
    ).withColumn(
        # Rows already in silver as this very record need no insert; only new ones are "silver" for the merge.
        "_outcome",
        F.when(F.col("_resolution") == DUPLICATE, F.lit(OUTCOME_DUPLICATE))
        .when(F.col("_resolution") == STILL_QUARANTINED, F.lit(OUTCOME_QUARANTINE))
        .otherwise(F.col("_outcome")),
    )


def replay_quarantine(
    spark: SparkSession,
    config: LakestreamConfig,
    *,
    kind: EventKind,
    rules: Sequence[str] = (),
    start: date | None = None,
    end: date | None = None,
) -> ReplayResult:
    """Re-classify selected quarantine rows of `kind` now; promote, record or keep them (see module doc)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F  # noqa: N812

    started_at = datetime.now(UTC)
    run_id = f"replay-{kind.name}-{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    ensure_tables(spark, config, (kind.silver, SILVER_TRANSACTIONS, QUARANTINE, DUPLICATES, INGEST_AUDIT))
    selected = select_quarantined(
        read_table(spark, config, QUARANTINE), kind=kind, rules=rules, start=start, end=end
    ).transform(quarantined_as_bronze)
    known = read_known_transactions(spark, config) if kind is FRAUD_LABELS else None
    classified = classify_bronze_rows(selected, kind=kind, config=config, known_transactions=known)
    silver_keys = read_table(spark, config, kind.silver).select(
        F.col(kind.partition_column).alias("process_date"),
        "transaction_id",
        F.col("record_id").alias("_silver_record_id"),
        F.struct(*kind.field_names).alias("_silver_payload"),
    )
    resolved = resolve_against_silver(classified, silver_keys, payload_fields=kind.field_names).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        counts = {row["_resolution"]: int(row["count"]) for row in resolved.groupBy("_resolution").count().collect()}
        if counts.get(PROMOTED):
            insert_missing_rows(
                spark,
                select_silver_rows(resolved, kind=kind, run_id=run_id),
                config,
                kind.silver,
                keys=(kind.partition_column, "transaction_id"),
            )
        if counts.get(DUPLICATE):
            insert_missing_rows(
                spark,
                select_duplicate_rows(resolved, kind=kind, run_id=run_id),
                config,
                DUPLICATES,
                keys=("record_id",),
            )
        if counts:
            apply_quarantine_resolutions(
                spark,
                resolved.select(
                    F.lit(kind.name).alias("kind"),
                    F.col("_quarantined_on").alias("process_date"),
                    "record_id",
                    (F.col("_resolution") != STILL_QUARANTINED).alias("resolved"),
                    "rules",
                    "reason",
                ),
                config,
                QUARANTINE,
            )
    finally:
        resolved.unpersist()

    result = ReplayResult(
        kind=kind.name,
        run_id=run_id,
        selected_rows=sum(counts.values()),
        promoted_rows=counts.get(PROMOTED, 0),
        duplicate_rows=counts.get(DUPLICATE, 0),
        still_quarantined_rows=counts.get(STILL_QUARANTINED, 0),
    )
    write_audit_records(
        spark,
        config,
        [
            AuditRecord(
                run_id=run_id,
                stage=STAGE_REPLAY,
                kind=kind.name,
                process_date=None,
                started_at=started_at,
                finished_at=datetime.now(UTC),
                input_rows=result.selected_rows,
                silver_rows=result.promoted_rows,
                quarantined_rows=result.still_quarantined_rows,
                duplicate_rows=result.duplicate_rows,
            )
        ],
    )
    logger.info(
        "replayed %d quarantined %s: %d promoted to silver, %d duplicates, %d still quarantined",
        result.selected_rows,
        kind.name,
        result.promoted_rows,
        result.duplicate_rows,
        result.still_quarantined_rows,
    )
    return result
