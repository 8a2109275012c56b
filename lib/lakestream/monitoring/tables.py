"""The monitoring tables (Delta, database ``monitoring.database``): schemas, rows and idempotent writes.

- ``monitoring.metrics``: one row per (window, model version, family, metric, dimension); a run replaces
  exactly the windows it computed (``replaceWhere``), so re-runs and backfills give the same table;
- ``monitoring.alerts``: one row per breaching window of a rule, keyed by a deterministic ``alert_id``
  (MERGE: a re-run does not raise the same alert twice);
- ``monitoring.retraining``: one row per monitoring run: did it ask for a retraining, as of which day, why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from lakestream.config.models import LakestreamConfig


@dataclass(frozen=True)
class MetricRow:
    """One monitoring metric of one window (and model version, when it is about a model)."""

    window_start: dt.datetime
    window_end: dt.datetime
    granularity: str  # hour | day
    family: str  # feature_drift | prediction_drift | data_quality | performance | stream_health
    metric: str
    dimension: str  # feature name, dead-letter reason, ... ('' when none)
    value: float | None
    sample_size: int
    model_name: str | None = None
    model_version: str | None = None
    reference: float | None = None  # the reference value when there is one (training mean, test AP, ...)
    labels_as_of: dt.datetime | None = None  # performance: labels reported before this instant were used


@dataclass(frozen=True)
class Alert:
    """A rule breached by a window: which metric, how far, since when."""

    alert_id: str
    rule: str
    family: str
    metric: str
    dimension: str
    model_version: str | None
    granularity: str
    window_start: dt.datetime
    window_end: dt.datetime
    since: dt.datetime  # first window of the run of consecutive breaches this one belongs to
    breaches: int  # consecutive breaching windows up to this one
    value: float
    compared: float  # the value judged: value, or value - reference for relative rules
    reference: float | None
    threshold: float
    direction: str  # above | below
    excess: float  # how far past the threshold (positive)
    sample_size: int
    severity: str
    retrain: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (ISO datetimes)."""
        return {
            key: value.isoformat() if isinstance(value, dt.datetime) else value for key, value in asdict(self).items()
        }


def build_alert_id(*parts: object) -> str:
    """A stable id from the series and window of an alert (a re-run finds the same id)."""
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:20]


def metrics_schema() -> StructType:
    """monitoring.metrics."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType, TimestampType

    return StructType(
        [
            StructField("window_start", TimestampType(), nullable=False),
            StructField("window_end", TimestampType(), nullable=False),
            StructField("granularity", StringType(), nullable=False),
            StructField("source", StringType(), nullable=False),
            StructField("model_name", StringType()),
            StructField("model_version", StringType()),
            StructField("family", StringType(), nullable=False),
            StructField("metric", StringType(), nullable=False),
            StructField("dimension", StringType(), nullable=False),
            StructField("value", DoubleType()),
            StructField("sample_size", LongType(), nullable=False),
            StructField("reference", DoubleType()),
            StructField("labels_as_of", TimestampType()),
            StructField("run_id", StringType(), nullable=False),
            StructField("computed_at", TimestampType(), nullable=False),
        ]
    )


def alerts_schema() -> StructType:
    """monitoring.alerts."""
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    return StructType(
        [
            StructField("alert_id", StringType(), nullable=False),
            StructField("rule", StringType(), nullable=False),
            StructField("family", StringType(), nullable=False),
            StructField("metric", StringType(), nullable=False),
            StructField("dimension", StringType(), nullable=False),
            StructField("model_version", StringType()),
            StructField("granularity", StringType(), nullable=False),
            StructField("window_start", TimestampType(), nullable=False),
            StructField("window_end", TimestampType(), nullable=False),
            StructField("since", TimestampType(), nullable=False),
            StructField("breaches", IntegerType(), nullable=False),
            StructField("value", DoubleType(), nullable=False),
            StructField("compared", DoubleType(), nullable=False),
            StructField("reference", DoubleType()),
            StructField("threshold", DoubleType(), nullable=False),
            StructField("direction", StringType(), nullable=False),
            StructField("excess", DoubleType(), nullable=False),
            StructField("sample_size", LongType(), nullable=False),
            StructField("severity", StringType(), nullable=False),
            StructField("retrain", BooleanType(), nullable=False),
            StructField("message", StringType(), nullable=False),
            StructField("source", StringType(), nullable=False),
            StructField("run_id", StringType(), nullable=False),
            StructField("raised_at", TimestampType(), nullable=False),
        ]
    )


def decisions_schema() -> StructType:
    """monitoring.retraining: one row per monitoring run."""
    from pyspark.sql.types import ArrayType, BooleanType, DateType, StringType, StructField, StructType, TimestampType

    return StructType(
        [
            StructField("run_id", StringType(), nullable=False),
            StructField("decided_at", TimestampType(), nullable=False),
            StructField("monitored_until", DateType(), nullable=False),
            StructField("needed", BooleanType(), nullable=False),
            StructField("as_of", DateType()),
            StructField("mode", StringType(), nullable=False),
            StructField("reason", StringType(), nullable=False),
            StructField("champion_version", StringType()),
            StructField("since", TimestampType()),
            StructField("alert_ids", ArrayType(StringType(), containsNull=False), nullable=False),
        ]
    )


def metrics_path(config: LakestreamConfig) -> Path:
    """monitoring.metrics."""
    return config.table_path(config.monitoring.database, config.monitoring.metrics_table)


def alerts_path(config: LakestreamConfig) -> Path:
    """monitoring.alerts."""
    return config.table_path(config.monitoring.database, config.monitoring.alerts_table)


def decisions_path(config: LakestreamConfig) -> Path:
    """monitoring.retraining."""
    return config.table_path(config.monitoring.database, config.monitoring.decisions_table)


def metric_rows_frame(
    spark: SparkSession, rows: list[MetricRow], *, source: str, run_id: str, computed_at: dt.datetime
) -> DataFrame:
    """MetricRow objects -> a frame of monitoring.metrics."""
    records = [
        (
            r.window_start,
            r.window_end,
            r.granularity,
            source,
            r.model_name,
            r.model_version,
            r.family,
            r.metric,
            r.dimension,
            None if r.value is None else float(r.value),
            int(r.sample_size),
            None if r.reference is None else float(r.reference),
            r.labels_as_of,
            run_id,
            computed_at,
        )
        for r in rows
    ]
    return spark.createDataFrame(records, schema=metrics_schema())


def replace_metrics(
    frame: DataFrame,
    config: LakestreamConfig,
    *,
    source: str,
    windows: tuple[dt.datetime, dt.datetime],
    performance_windows: tuple[dt.datetime, dt.datetime] | None,
) -> None:
    """Write a run's metrics, replacing exactly the windows it computed (idempotent)."""
    from lakestream.io.delta import write_delta

    def between(bounds: tuple[dt.datetime, dt.datetime]) -> str:
        return f"window_start >= '{bounds[0]:%Y-%m-%d %H:%M:%S}' AND window_start < '{bounds[1]:%Y-%m-%d %H:%M:%S}'"

    predicate = f"(family <> 'performance' AND {between(windows)})"
    if performance_windows is not None:
        predicate += f" OR (family = 'performance' AND {between(performance_windows)})"
    write_delta(frame, metrics_path(config), replace_where=f"source = '{source}' AND ({predicate})")


def merge_alerts(spark: SparkSession, config: LakestreamConfig, frame: DataFrame) -> None:
    """Insert alerts not raised before (by alert_id); an alert raised again by a re-run keeps its first row."""
    from delta.tables import DeltaTable

    from lakestream.io.delta import is_delta_table, write_delta

    path = alerts_path(config)
    if not is_delta_table(path):
        write_delta(frame, path)
        return
    (
        DeltaTable.forPath(spark, str(path))
        .alias("t")
        .merge(frame.alias("s"), "t.alert_id = s.alert_id")
        .whenNotMatchedInsertAll()
        .execute()
    )


def alerts_frame(
    spark: SparkSession, alerts: list[Alert], *, source: str, run_id: str, raised_at: dt.datetime
) -> DataFrame:
    """Alert objects -> a frame of monitoring.alerts."""
    names = [field.name for field in alerts_schema().fields]
    records = [
        tuple({**asdict(a), "source": source, "run_id": run_id, "raised_at": raised_at}[n] for n in names)
        for a in alerts
    ]
    return spark.createDataFrame(records, schema=alerts_schema())
