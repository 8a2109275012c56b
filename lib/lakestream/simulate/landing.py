"""The simulator's outputs: the ground-truth Delta table and the files a payment gateway would drop.

- ground truth: ``<lake_root>/sim/transactions`` (every column and label, partitioned by tx_date), for tests
  and benchmarks only — the pipeline learns labels from fraud-label events, never from this table;
- transaction events (no label), JSON lines under ``<landing_root>/transactions/date=YYYY-MM-DD/``;
- fraud-label events (chargebacks) for the frauds, landed under the date they are reported
  (tx_datetime + label delay): ``<landing_root>/fraud_labels/date=YYYY-MM-DD/``.

Landed files are written as text lines (so injected malformed lines really are broken JSON), one file per
day with a fixed name, in landing-time order. A re-run replaces exactly the days it generates: the same
parameters give byte-identical files at the same paths, so file-tracking readers see nothing new.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakestream.errors import ConfigError
from lakestream.io.delta import write_delta
from lakestream.io.schemas import TIMESTAMP_FORMAT, fraud_label_event_schema, transaction_event_schema
from lakestream.simulate.anomalies import DriftIntensity, DriftKind, apply_drift, inject_delivery_anomalies
from lakestream.simulate.generator import SimulationParams
from lakestream.simulate.spark_simulator import simulate_transactions_spark, summarize_transactions

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from lakestream.config.models import LakestreamConfig

logger = logging.getLogger(__name__)

TRANSACTIONS_KIND = "transactions"
FRAUD_LABELS_KIND = "fraud_labels"
LANDED_KINDS = (TRANSACTIONS_KIND, FRAUD_LABELS_KIND)
OUTPUTS = ("truth", TRANSACTIONS_KIND, FRAUD_LABELS_KIND)
GROUND_TRUTH_TABLE = ("sim", "transactions")
LANDED_FILE_NAME = "part-00000.json"
_DATE_FOLDER_PREFIX = "date="


@dataclass(frozen=True)
class AnomalyOptions:
    """What to inject: drift into the ground truth, delivery anomalies into the landed transaction events."""

    seed: int = 0
    malformed_share: float = 0.0
    duplicate_share: float = 0.0
    late_share: float = 0.0
    late_max_days: int = 3
    out_of_order: bool = False
    drift_from_day: int | None = None
    drift_kind: DriftKind = "new_fraud_pattern"
    drift_intensity: DriftIntensity = field(default_factory=DriftIntensity)


def simulated_dates(params: SimulationParams, *, shift_days: int = 0) -> list[date]:
    """The calendar days a simulation covers (event dates), optionally shifted (label report dates)."""
    first = date.fromisoformat(params.start_date) + timedelta(days=shift_days)
    return [first + timedelta(days=day) for day in range(params.nb_days)]


def landed_folder(landing_root: Path, kind: str) -> Path:
    """<landing_root>/<kind>: the folder whose date=YYYY-MM-DD/ subfolders hold one kind of landed events."""
    return landing_root / kind


def _event_struct(schema_fields: Iterable[Any], overrides: dict[str, Column]) -> Column:
    """A struct with exactly the schema's fields, in its order and types (formatted timestamps overridden)."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.struct(
        *[
            overrides.get(field.name, F.col(field.name)).cast(field.dataType).alias(field.name)
            for field in schema_fields
        ]
    )


def build_transaction_event_lines(transactions: DataFrame) -> DataFrame:
    """Ground truth -> landed lines, one clean transaction event per transaction, landed at its event time.

    Lines: transaction_id, event_at, landed_at (timestamps), copy (0), anomaly (null), value (JSON text
    following io.schemas.transaction_event_schema, tx_datetime as "yyyy-MM-dd HH:mm:ss" UTC).
    """
    from pyspark.sql import functions as F  # noqa: N812

    value = F.to_json(
        _event_struct(
            transaction_event_schema().fields, {"tx_datetime": F.date_format("tx_datetime", TIMESTAMP_FORMAT)}
        )
    )
    return transactions.select(
        "transaction_id",
        F.col("tx_datetime").alias("event_at"),
        F.col("tx_datetime").alias("landed_at"),
        F.lit(0).alias("copy"),
        F.lit(None).cast("string").alias("anomaly"),
        value.alias("value"),
    )


def build_fraud_label_lines(transactions: DataFrame, *, label_delay_days: int) -> DataFrame:
    """Ground truth -> landed lines, one chargeback per fraudulent transaction, landed when reported.

    reported_at = tx_datetime + label_delay_days; event_at = landed_at = reported_at; value follows
    io.schemas.fraud_label_event_schema.
    """
    from pyspark.sql import functions as F  # noqa: N812

    reported_at = F.timestamp_seconds(F.unix_seconds("tx_datetime") + label_delay_days * 86_400)
    frauds = transactions.where(F.col("tx_fraud") == 1).withColumn("reported_at", reported_at)
    value = F.to_json(
        _event_struct(
            fraud_label_event_schema().fields,
            {
                "tx_datetime": F.date_format("tx_datetime", TIMESTAMP_FORMAT),
                "reported_at": F.date_format("reported_at", TIMESTAMP_FORMAT),
            },
        )
    )
    return frauds.select(
        "transaction_id",
        F.col("reported_at").alias("event_at"),
        F.col("reported_at").alias("landed_at"),
        F.lit(0).alias("copy"),
        F.lit(None).cast("string").alias("anomaly"),
        value.alias("value"),
    )


def write_ground_truth(transactions: DataFrame, path: Path, *, dates: Sequence[date]) -> None:
    """Write the labelled table to Delta, partitioned by tx_date, replacing exactly the simulated days."""
    from pyspark.sql import functions as F  # noqa: N812

    first, last = min(dates), max(dates)
    frame = transactions.withColumn("tx_date", F.to_date("tx_datetime")).repartition("tx_date")
    write_delta(
        frame,
        path,
        partition_by=["tx_date"],
        replace_where=f"tx_date >= DATE'{first.isoformat()}' AND tx_date <= DATE'{last.isoformat()}'",
    )


def write_transaction_events(lines: DataFrame, landing_root: Path, *, dates: Sequence[date]) -> list[date]:
    """Land transaction event lines under <landing_root>/transactions/date=…/; returns the days written."""
    return _write_landed_lines(lines, landed_folder(landing_root, TRANSACTIONS_KIND), dates=dates)


def write_fraud_label_events(lines: DataFrame, landing_root: Path, *, dates: Sequence[date]) -> list[date]:
    """Land fraud-label event lines under <landing_root>/fraud_labels/date=…/; returns the days written."""
    return _write_landed_lines(lines, landed_folder(landing_root, FRAUD_LABELS_KIND), dates=dates)


def _write_landed_lines(lines: DataFrame, folder: Path, *, dates: Sequence[date]) -> list[date]:
    """One file per landing day, lines in (landed_at, transaction_id, copy) order; `dates` are cleared first.

    Spark writes to a staging folder next to the kinds; each day's single part file is then moved to its
    fixed name, and every other file of the day (and days of `dates` that got no line) is removed.
    """
    from pyspark.sql import functions as F  # noqa: N812

    staging = folder.parent / "_staging" / f"{folder.name}-{uuid.uuid4().hex}"
    (
        lines.select(
            F.date_format("landed_at", "yyyy-MM-dd").alias("date"), "landed_at", "transaction_id", "copy", "value"
        )
        .repartition("date")
        .sortWithinPartitions("date", "landed_at", "transaction_id", "copy")
        .select("date", "value")
        .write.partitionBy("date")
        .text(str(staging))
    )
    try:
        written = _publish_staged_days(staging, folder)
        for day in sorted(set(dates) - set(written)):
            stale = folder / f"{_DATE_FOLDER_PREFIX}{day.isoformat()}"
            if stale.exists():
                shutil.rmtree(stale)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # other writers may still be staging next to us
            staging.parent.rmdir()
    logger.info("landed %d day files under %s", len(written), folder)
    return written


def _publish_staged_days(staging: Path, folder: Path) -> list[date]:
    """Move each staged day's lines to <folder>/date=D/part-00000.json (atomic rename per day)."""
    written = []
    for day_dir in sorted(staging.glob(f"{_DATE_FOLDER_PREFIX}*")):
        parts = sorted(p for p in day_dir.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
        target_dir = folder / day_dir.name
        target_dir.mkdir(parents=True, exist_ok=True)
        temporary = target_dir / f".{LANDED_FILE_NAME}.{uuid.uuid4().hex}.tmp"
        if len(parts) == 1:
            shutil.move(parts[0], temporary)
        else:  # only if Spark split a day over several tasks: keep their order
            with temporary.open("wb") as out:
                for part in parts:
                    with part.open("rb") as source:
                        shutil.copyfileobj(source, out)
        os.replace(temporary, target_dir / LANDED_FILE_NAME)
        for other in target_dir.iterdir():
            if other.name != LANDED_FILE_NAME:
                other.unlink()
        written.append(date.fromisoformat(day_dir.name.removeprefix(_DATE_FOLDER_PREFIX)))
    return written


def land_simulation(
    spark: SparkSession,
    config: LakestreamConfig,
    params: SimulationParams,
    *,
    outputs: Sequence[str] = OUTPUTS,
    anomalies: AnomalyOptions = AnomalyOptions(),
    customers_per_task: int | None = None,
    label_delay_days: int | None = None,
) -> dict[str, Any]:
    """Simulate, apply drift, write the requested outputs; returns the summary of the ground truth written."""
    from pyspark import StorageLevel

    unknown = sorted(set(outputs) - set(OUTPUTS))
    if unknown:
        raise ConfigError(f"unknown outputs {unknown}; choose from {list(OUTPUTS)}")
    delay = config.simulation.label_delay_days if label_delay_days is None else label_delay_days
    truth = simulate_transactions_spark(
        spark, params, customers_per_task=customers_per_task or config.simulation.customers_per_task
    )
    generated = truth
    if anomalies.drift_from_day is not None:
        truth = apply_drift(
            truth,
            kind=anomalies.drift_kind,
            from_day=anomalies.drift_from_day,
            seed=anomalies.seed,
            intensity=anomalies.drift_intensity,
        ).persist(StorageLevel.MEMORY_AND_DISK)
        logger.info("drift %s from day %d applied", anomalies.drift_kind, anomalies.drift_from_day)
    summary = summarize_transactions(truth)
    if generated is not truth:
        generated.unpersist()
    event_dates = simulated_dates(params)
    if "truth" in outputs:
        path = config.table_path(*GROUND_TRUTH_TABLE)
        write_ground_truth(truth, path, dates=event_dates)
        summary["truth_path"] = str(path)
    if TRANSACTIONS_KIND in outputs:
        lines = inject_delivery_anomalies(
            build_transaction_event_lines(truth),
            seed=anomalies.seed,
            duplicate_share=anomalies.duplicate_share,
            late_share=anomalies.late_share,
            late_max_days=anomalies.late_max_days,
            out_of_order=anomalies.out_of_order,
            malformed_share=anomalies.malformed_share,
        )
        written = write_transaction_events(lines, config.paths.landing_root, dates=event_dates)
        summary["transaction_days"] = len(written)
    if FRAUD_LABELS_KIND in outputs:
        written = write_fraud_label_events(
            build_fraud_label_lines(truth, label_delay_days=delay),
            config.paths.landing_root,
            dates=simulated_dates(params, shift_days=delay),
        )
        summary["label_days"] = len(written)
    truth.unpersist()
    return summary


def write_silver_from_truth(
    spark: SparkSession, config: LakestreamConfig, *, label_delay_days: int | None = None
) -> int:
    """The shortcut past ingest and clean: sim.transactions -> silver.transactions and silver.fraud_labels.

    Writes what the clean jobs would keep from a landing without anomalies (valid rows; every fraud reported
    `label_delay_days` after it happened, by default the simulation's `label_delay_days`), replacing both tables,
    for benchmarks and tests of the stages after silver. Returns the silver row count.
    """
    from pyspark.sql import functions as F  # noqa: N812

    from lakestream.io.delta import read_delta

    truth = read_delta(spark, config.table_path(*GROUND_TRUTH_TABLE)).where(F.col("tx_amount") > 0)
    silver = config.table_path("silver", "transactions")
    write_delta(
        truth.select(
            "transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount",
            F.to_date("tx_datetime").alias("tx_date"),
        ),
        silver,
        mode="overwrite",
        partition_by=["tx_date"],
    )  # fmt: skip
    delay = config.simulation.label_delay_days if label_delay_days is None else label_delay_days
    reported = F.timestamp_seconds(F.unix_seconds("tx_datetime") + delay * 86_400)
    write_delta(
        truth.where(F.col("tx_fraud") == 1).select(
            "transaction_id",
            "tx_datetime",
            reported.alias("reported_at"),
            F.col("tx_fraud").cast("int"),
            F.col("tx_fraud_scenario").cast("int"),
            F.to_date("tx_datetime").alias("tx_date"),
            F.to_date(reported).alias("reported_date"),
        ),
        config.table_path("silver", "fraud_labels"),
        mode="overwrite",
    )
    return read_delta(spark, silver).count()
