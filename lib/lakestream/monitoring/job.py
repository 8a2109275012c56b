"""One monitoring run: the served scores of whole event-time days -> metrics, alerts, a retraining decision.

``run_monitoring(spark, config, request)`` for the days [start, end]:

1. reads the served rows of those days (``monitoring.source``: the stream's ``gold.stream_scores``, or batch
   ``gold.scores`` joined with the gold features of each model's feature set) and the models that scored
   them (registry tags and the reference profile logged with each version);
2. computes, with Spark, per hour and per day and per model version: feature drift (PSI, JS, mean of every
   model input against its training bins), prediction drift (score PSI / JS, mean score, alert and block
   rates), data quality (null rates, volume vs the reference, freshness, dead-letter rates by reason,
   quarantine rates of the batch path) and stream health; and for the days whose labels are complete by
   ``as_of`` (day + label delay), label-delayed AUC / AP / CP@k of the served scores;
3. replaces exactly those windows in ``monitoring.metrics``; evaluates the rules over the recent history;
   merges new alerts into ``monitoring.alerts`` (and logs each one); records the retraining decision in
   ``monitoring.retraining``;
4. writes the HTML report and logs the run (summary metrics, report, alerts, decision) to MLflow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F  # noqa: N812

from lakestream.errors import DataError
from lakestream.io.delta import is_delta_table, read_delta
from lakestream.monitoring import quality
from lakestream.monitoring.drift import (
    FEATURE,
    assign_bins,
    compute_divergences,
    count_bins,
    edge_key,
    edges_map,
    melt_columns,
    reference_shares_frame,
)
from lakestream.monitoring.performance import (
    compute_daily_performance,
    known_compromised_cards,
    label_served_scores,
    remove_known_compromised_cards,
)
from lakestream.monitoring.quality import WINDOW_KEYS, explode_windows
from lakestream.monitoring.reference import ReferenceProfile, load_reference_profile, outside_range
from lakestream.monitoring.retraining import Champion, RetrainingDecision, plan_retraining
from lakestream.monitoring.rules import RuleOutcome, evaluate_rules
from lakestream.monitoring.tables import (
    MetricRow,
    alerts_frame,
    decisions_path,
    decisions_schema,
    merge_alerts,
    metric_rows_frame,
    metrics_path,
    replace_metrics,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row, SparkSession

    from lakestream.config.models import LakestreamConfig

logger = logging.getLogger(__name__)

SCORE = "score"
SERVED_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    SCORE,
    "decision",
    "model_name",
    "model_version",
    "processed_at",
    "kafka_timestamp",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "batch_id",
)
HISTORY_DAYS = 45  # rules see this much metric history (runs of consecutive breaches longer than it are cut)
PERFORMANCE_KEYS = {"auc_roc": "auc_roc", "average_precision": "average_precision"}


@dataclass(frozen=True)
class MonitoringRequest:
    """Which event-time days to monitor, and the instant the labels are taken at (default: after end)."""

    start: dt.date
    end: dt.date
    as_of: dt.datetime | None = None
    run_id: str | None = None
    write_report: bool = True
    log_to_mlflow: bool = True

    @property
    def range_start(self) -> dt.datetime:
        """First instant monitored."""
        return dt.datetime.combine(self.start, dt.time())

    @property
    def range_end(self) -> dt.datetime:
        """End (exclusive) of the monitored days."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time())

    @property
    def labels_as_of(self) -> dt.datetime:
        """Labels reported before this instant are known."""
        return self.as_of or self.range_end


@dataclass(frozen=True)
class MonitoredModel:
    """A model version that served some of the rows: its inputs, reference profile and test metrics."""

    name: str
    version: str
    feature_set: str
    inputs: tuple[str, ...]
    reference: ReferenceProfile | None
    test_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitoringResult:
    """What a run computed and decided."""

    run_id: str
    start: dt.date
    end: dt.date
    served_rows: int
    metric_rows: int
    performance_days: tuple[dt.date, ...]
    rules: RuleOutcome
    decision: RetrainingDecision
    report: Path | None

    def summary(self) -> dict[str, Any]:
        """JSON-ready (what the job prints)."""
        return {
            "run_id": self.run_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "served_rows": self.served_rows,
            "metric_rows": self.metric_rows,
            "performance_days": [d.isoformat() for d in self.performance_days],
            "alerts": len(self.rules.alerts),
            "active_alerts": [a.message for a in self.rules.active],
            "retraining": self.decision.to_dict(),
            "report": str(self.report) if self.report else None,
        }


# ------------------------------------------------------------------------------------------------- reading


def _day_filter(start: dt.datetime, end: dt.datetime) -> Any:
    """Rows of [start, end) by event time, with partition pruning on tx_date."""
    days = F.col("tx_date").between(F.lit(start.date()), F.lit((end - dt.timedelta(microseconds=1)).date()))
    return days & (F.col("tx_datetime") >= F.lit(start)) & (F.col("tx_datetime") < F.lit(end))


def served_versions(
    spark: SparkSession, config: LakestreamConfig, *, start: dt.datetime, end: dt.datetime
) -> list[Row]:
    """Distinct (model_name, model_version, feature_set) that served rows of [start, end)."""
    path = served_path(config)
    if not is_delta_table(path):
        return []
    return (
        read_delta(spark, path)
        .where(_day_filter(start, end))
        .select("model_name", "model_version", "feature_set")
        .distinct()
        .collect()
    )


def served_path(config: LakestreamConfig) -> Path:
    """The served scores table of the configured source."""
    if config.monitoring.source == "stream":
        from lakestream.streaming.pipeline import scores_path

        return scores_path(config)
    from lakestream.scoring.batch import scores_table_path

    return scores_table_path(config)


def read_served(
    spark: SparkSession,
    config: LakestreamConfig,
    models: Sequence[MonitoredModel],
    *,
    start: dt.datetime,
    end: dt.datetime,
) -> DataFrame | None:
    """Served rows of [start, end): SERVED_COLUMNS + every model input of the models (null where not served)."""
    path = served_path(config)
    if not is_delta_table(path):
        return None
    inputs = sorted({name for model in models for name in model.inputs})
    frame = read_delta(spark, path).where(_day_filter(start, end))
    if config.monitoring.source == "stream":
        present = set(frame.columns)
        return frame.select(*[F.col(c) if c in present else F.lit(None).alias(c) for c in (*SERVED_COLUMNS, *inputs)])
    return _join_batch_features(spark, config, frame.withColumnRenamed("scored_at", "processed_at"), models, inputs)


def _join_batch_features(
    spark: SparkSession,
    config: LakestreamConfig,
    scores: DataFrame,
    models: Sequence[MonitoredModel],
    inputs: list[str],
) -> DataFrame:
    """gold.scores rows + the inputs of their model's feature set, from gold.features_<set>."""
    from lakestream.features.spec import feature_set_path, load_feature_set
    from lakestream.features.store import feature_table_path

    base = [
        F.col(c)
        if c in scores.columns
        else F.lit(None).cast("timestamp" if c == "kafka_timestamp" else "string").alias(c)
        for c in SERVED_COLUMNS
    ]
    parts = []
    for feature_set in sorted({m.feature_set for m in models}):
        spec = load_feature_set(feature_set_path(config.home / "conf" / "features", feature_set))
        features = read_delta(spark, feature_table_path(config, spec))
        wanted = [c for c in inputs if c in features.columns and c not in SERVED_COLUMNS]
        part = scores.where(F.col("feature_set") == feature_set).select(*base)
        part = part.join(features.select("transaction_id", *wanted), on="transaction_id", how="left")
        parts.append(
            part.select(
                *SERVED_COLUMNS, *[F.col(c) if c in wanted else F.lit(None).cast("double").alias(c) for c in inputs]
            )
        )
    if not parts:
        return scores.select(*base, *[F.lit(None).cast("double").alias(c) for c in inputs])
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return union


def load_models(config: LakestreamConfig, versions: Iterable[Row]) -> list[MonitoredModel]:
    """The registry's view of each serving version (inputs, feature set, reference profile, test metrics)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from lakestream.registry.models import TAG_FEATURE_SET, TAG_MODEL_INPUTS
    from lakestream.registry.tracking import configure_mlflow

    configure_mlflow(config)
    client = MlflowClient()
    k = config.monitoring.card_precision_k or config.training.evaluation.top_k
    models = []
    for row in versions:
        try:
            version = client.get_model_version(row["model_name"], str(row["model_version"]))
        except MlflowException as exc:
            logger.warning("model %s v%s is not in the registry (%s); its rows are not judged", *row[:2], exc)
            continue
        tags = dict(version.tags or {})
        if TAG_MODEL_INPUTS not in tags:
            logger.warning("model %s v%s has no %s tag; its rows are not judged", *row[:2], TAG_MODEL_INPUTS)
            continue
        reference = load_reference_profile(version)
        metrics = dict(reference.metrics) if reference else {}
        for key, tag in (
            ("auc_roc", "lakestream.test_auc_roc"),
            ("average_precision", "lakestream.test_average_precision"),
            (f"card_precision_at_{k}", f"lakestream.test_card_precision_at_{k}"),
        ):
            if key not in metrics and tag in tags:
                metrics[key] = float(tags[tag])
        models.append(
            MonitoredModel(
                name=version.name,
                version=str(version.version),
                feature_set=tags.get(TAG_FEATURE_SET, str(row["feature_set"])),
                inputs=tuple(json.loads(tags[TAG_MODEL_INPUTS])),
                reference=reference,
                test_metrics=metrics,
            )
        )
    return models


# -------------------------------------------------------------------------------------------- metric rows


def _row_window(row: Row) -> dict[str, Any]:
    return {"window_start": row["window_start"], "window_end": row["window_end"], "granularity": row["granularity"]}


def drift_rows(
    spark: SparkSession, windowed: DataFrame, models: Sequence[MonitoredModel], *, epsilon: float
) -> list[MetricRow]:
    """Feature drift (psi, js, mean per input), prediction drift (score psi, js) and null rates, per version."""
    by_version = {m.version: m for m in models}
    pairs = [edge_key(m.version, name) for m in models for name in m.inputs]
    columns = sorted({name for m in models for name in m.inputs} | {SCORE})
    long = melt_columns(windowed, columns=columns, keys=[*WINDOW_KEYS, "model_version"])
    key = F.concat_ws("|", "model_version", FEATURE)
    long = long.where(key.isin([*pairs, *[edge_key(m.version, SCORE) for m in models]])).persist()
    ranges = {
        edge_key(m.version, name): (dist.low, dist.high)
        for m in models
        if m.reference is not None
        for name, dist in m.reference.model_inputs.items()
        if dist.low is not None and dist.high is not None
    }
    bounds = F.element_at(edges_map(ranges), key)
    rows: list[MetricRow] = []
    try:
        stats = long.groupBy(*WINDOW_KEYS, "model_version", FEATURE).agg(
            F.avg(F.col("value").isNull().cast("double")).alias("null_rate"),
            F.avg("value").alias("mean"),
            F.count(F.lit(1)).alias("rows"),
            F.avg(outside_range(F.col("value"), bounds[0], bounds[1])).alias("outside"),
            F.count("value").alias("values"),
        )
        for r in stats.collect():
            model = by_version[r["model_version"]]
            feature = r[FEATURE]
            reference = model.reference
            if feature == SCORE:
                ref_mean = reference.score.mean if reference and reference.score else None
                rows.append(
                    _model_row(
                        r,
                        model,
                        ("prediction_drift", "mean_score", ""),
                        value=r["mean"],
                        samples=r["rows"],
                        reference=ref_mean,
                    )
                )
                continue
            dist = reference.model_inputs.get(feature) if reference else None
            rows.append(
                _model_row(
                    r,
                    model,
                    ("feature_drift", "mean", feature),
                    value=r["mean"],
                    samples=r["rows"],
                    reference=dist.mean if dist else None,
                )
            )
            if r["outside"] is not None:
                rows.append(
                    _model_row(
                        r,
                        model,
                        ("feature_drift", "out_of_range_share", feature),
                        value=r["outside"],
                        samples=r["values"],
                        reference=dist.outside_share if dist else None,
                    )
                )
            rows.append(
                _model_row(
                    r,
                    model,
                    ("data_quality", "null_rate", feature),
                    value=r["null_rate"],
                    samples=r["rows"],
                    reference=dist.null_rate if dist else None,
                )
            )
        edges: dict[str, tuple[float, ...]] = {}
        shares: dict[tuple[str, str], tuple[float, ...]] = {}
        for model in models:
            if model.reference is None:
                continue
            layouts = dict(model.reference.model_inputs)
            if model.reference.score is not None:
                layouts[SCORE] = model.reference.score
            for name, dist in layouts.items():
                if name in model.inputs or name == SCORE:
                    edges[edge_key(model.version, name)] = dist.edges
                    shares[(model.version, name)] = dist.shares
        if edges:
            counts = count_bins(assign_bins(long, edges=edges, key=key), groups=[*WINDOW_KEYS, "model_version"])
            divergences = compute_divergences(
                counts, reference_shares_frame(spark, shares), groups=[*WINDOW_KEYS, "model_version"], epsilon=epsilon
            )
            for r in divergences.collect():
                model = by_version[r["model_version"]]
                family, dimension = ("prediction_drift", "") if r[FEATURE] == SCORE else ("feature_drift", r[FEATURE])
                for metric in ("psi", "js"):
                    rows.append(
                        _model_row(
                            r,
                            model,
                            (family, metric, dimension),
                            value=r[metric],
                            samples=r["sample_size"],
                            reference=None,
                        )
                    )
            rows += score_share_rows(counts, by_version)
    finally:
        long.unpersist()
    return rows


def score_share_rows(counts: DataFrame, models: dict[str, MonitoredModel]) -> list[MetricRow]:
    """Daily share of the scores in each reference bin (dimension = bin index), next to the reference share."""
    daily = counts.where((F.col(FEATURE) == SCORE) & (F.col("granularity") == "day")).collect()
    totals: dict[tuple[Any, str], int] = {}
    for r in daily:
        totals[(r["window_start"], r["model_version"])] = (
            totals.get((r["window_start"], r["model_version"]), 0) + r["n"]
        )
    rows = []
    for r in daily:
        model = models[r["model_version"]]
        score = model.reference.score if model.reference else None
        total = totals[(r["window_start"], r["model_version"])]
        reference = score.shares[r["bin"]] if score and r["bin"] < len(score.shares) else None
        rows.append(
            _model_row(
                r,
                model,
                ("prediction_drift", "score_bin_share", f"{r['bin']:02d}"),
                value=r["n"] / total,
                samples=total,
                reference=reference,
            )
        )
    return rows


def _model_row(
    r: Row, model: MonitoredModel, what: tuple[str, str, str], *, value: Any, samples: Any, reference: Any
) -> MetricRow:
    """A metric row about one model version; what = (family, metric, dimension)."""
    family, metric, dimension = what
    return MetricRow(
        **_row_window(r),
        family=family,
        metric=metric,
        dimension=dimension,
        value=None if value is None else float(value),
        sample_size=int(samples),
        model_name=model.name,
        model_version=model.version,
        reference=reference,
    )


def _plain_row(r: Row, what: tuple[str, str, str], *, value: Any, samples: Any, reference: Any = None) -> MetricRow:
    """A metric row about the data (no model version); what = (family, metric, dimension)."""
    family, metric, dimension = what
    return MetricRow(
        **_row_window(r),
        family=family,
        metric=metric,
        dimension=dimension,
        value=None if value is None else float(value),
        sample_size=int(samples or 0),
        reference=None if reference is None else float(reference),
    )


def prediction_rows(windowed: DataFrame, models: Sequence[MonitoredModel]) -> list[MetricRow]:
    """alert_rate and block_rate per window and version (reference: the model's test-window alert rate)."""
    by_version = {m.version: m for m in models}
    rows = []
    for r in quality.compute_prediction_stats(windowed).collect():
        model = by_version.get(r["model_version"])
        if model is None:
            continue
        ref_alert = model.reference.alert_rate if model.reference else None
        rows.append(
            _model_row(
                r,
                model,
                ("prediction_drift", "alert_rate", ""),
                value=r["alert_rate"],
                samples=r["rows"],
                reference=ref_alert,
            )
        )
        rows.append(
            _model_row(
                r,
                model,
                ("prediction_drift", "block_rate", ""),
                value=r["block_rate"],
                samples=r["rows"],
                reference=None,
            )
        )
    return rows


def volume_rows(windowed: DataFrame, models: Sequence[MonitoredModel]) -> list[MetricRow]:
    """transactions and volume_ratio (vs the main serving version's reference volume for that hour or day)."""
    by_version = {m.version: m for m in models}
    rows = []
    for r in quality.compute_volume(windowed).collect():
        rows.append(_plain_row(r, ("data_quality", "transactions", ""), value=r["rows"], samples=r["rows"]))
        model = by_version.get(r["main_model_version"])
        if model is None or model.reference is None:
            continue
        reference = model.reference
        expected = (
            reference.daily_volume if r["granularity"] == "day" else reference.hourly_volume[r["window_start"].hour]
        )
        if expected > 0:
            rows.append(
                _plain_row(
                    r,
                    ("data_quality", "volume_ratio", ""),
                    value=r["rows"] / expected,
                    samples=r["rows"],
                    reference=expected,
                )
            )
    return rows


def stream_rows(
    spark: SparkSession,
    config: LakestreamConfig,
    windowed: DataFrame,
    *,
    start: dt.datetime,
    end: dt.datetime,
    granularities: Sequence[str],
) -> list[MetricRow]:
    """Freshness, dead-letter rates and stream health of the stream's windows."""
    from lakestream.streaming.pipeline import dead_letter_path
    from lakestream.streaming.pipeline import metrics_path as stream_metrics_path

    rows = []
    for r in quality.compute_freshness(windowed).collect():
        for metric in ("freshness_p50_seconds", "freshness_p95_seconds"):
            rows.append(_plain_row(r, ("data_quality", metric, ""), value=r[metric], samples=r["rows"]))
    letters_path = dead_letter_path(config)
    if is_delta_table(letters_path):
        margin = dt.timedelta(days=1)
        neighbours = read_delta(spark, served_path(config)).where(_day_filter(start - margin, end + margin))
        bounds = neighbours.agg(F.min("processed_at"), F.max("processed_at")).first()
        letters = read_delta(spark, letters_path)
        if "event_time" not in letters.columns:
            letters = letters.withColumn("event_time", F.lit(None).cast("timestamp"))
        in_range = (F.col("event_time") >= F.lit(start)) & (F.col("event_time") < F.lit(end))
        unplaced = F.col("event_time").isNull()
        if bounds[0] is not None:
            slack = dt.timedelta(hours=1)
            unplaced = unplaced & F.col("dead_lettered_at").between(F.lit(bounds[0] - slack), F.lit(bounds[1] + slack))
        letters = letters.where(in_range | unplaced)
        placed = quality.attribute_dead_letters(
            letters, neighbours.select("kafka_topic", "kafka_partition", "kafka_offset", "tx_datetime")
        ).where((F.col("tx_datetime") >= F.lit(start)) & (F.col("tx_datetime") < F.lit(end)))
        rates = quality.compute_dead_letter_rates(explode_windows(placed, granularities=granularities), windowed)
        for r in rates.collect():
            rows.append(
                _plain_row(
                    r,
                    ("data_quality", "dead_letter_rate", r["dimension"]),
                    value=r["dead_letter_rate"],
                    samples=r["records"],
                )
            )
    metrics = stream_metrics_path(config)
    if is_delta_table(metrics):
        health = quality.compute_stream_health(
            windowed.where(F.col("batch_id").isNotNull()), read_delta(spark, metrics)
        )
        for r in health.collect():
            for metric in ("batches", "max_batch_ms", "latency_p99_ms", "registry_failures"):
                rows.append(_plain_row(r, ("stream_health", metric, ""), value=r[metric], samples=r["batches"]))
    return rows


def quarantine_rows(spark: SparkSession, config: LakestreamConfig, *, start: dt.date, end: dt.date) -> list[MetricRow]:
    """Quarantine rates of the batch path per silver day (from the ingestion audit and quarantine tables)."""
    audit_path = config.table_path("quality", "ingest_audit")
    records_path = config.table_path("quarantine", "records")
    if not (is_delta_table(audit_path) and is_delta_table(records_path)):
        return []
    days = F.col("process_date").between(F.lit(start), F.lit(end))
    audit = read_delta(spark, audit_path).where(days)
    records = read_delta(spark, records_path).where(days)
    return [
        _plain_row(
            r, ("data_quality", "quarantine_rate", r["dimension"]), value=r["quarantine_rate"], samples=r["records"]
        )
        for r in quality.compute_quarantine_rates(audit, records).collect()
    ]


def performance_days(request: MonitoringRequest, delay_days: int) -> list[dt.date]:
    """Days whose labels are complete by labels_as_of, among [start - delay, end - delay]."""
    days = []
    day = request.start - dt.timedelta(days=delay_days)
    while day <= request.end - dt.timedelta(days=delay_days):
        complete_at = dt.datetime.combine(day + dt.timedelta(days=delay_days + 1), dt.time())
        if complete_at <= request.labels_as_of:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def performance_rows(
    spark: SparkSession,
    config: LakestreamConfig,
    models: Sequence[MonitoredModel],
    *,
    days: Sequence[dt.date],
    as_of: dt.datetime,
) -> list[MetricRow]:
    """Label-delayed AUC, AP and CP@k of the served scores per complete day and model version."""
    labels_path = config.table_path("silver", "fraud_labels")
    path = served_path(config)
    if not days or not is_delta_table(labels_path) or not is_delta_table(path):
        return []
    k = config.monitoring.card_precision_k or config.training.evaluation.top_k
    first = dt.datetime.combine(days[0], dt.time())
    last = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time())
    served = (
        read_delta(spark, path)
        .where(_day_filter(first, last))
        .select("transaction_id", "tx_datetime", "customer_id", SCORE, "model_name", "model_version")
    )
    memory = first - dt.timedelta(days=config.monitoring.compromised_card_memory_days)
    cards = read_delta(spark, path).where(_day_filter(memory, last)).select("transaction_id", "customer_id")
    labels = (
        read_delta(spark, labels_path)
        .where(F.col("tx_date").between(F.lit(memory.date()), F.lit(days[-1])))
        .select("transaction_id", "tx_fraud", "reported_at")
    )
    labelled = label_served_scores(served, labels, as_of=as_of).withColumn("day", F.to_date("tx_datetime"))
    labelled = remove_known_compromised_cards(
        labelled,
        known_compromised_cards(labels, cards, as_of=as_of),
        day_column="day",
        memory_days=config.monitoring.compromised_card_memory_days,
    )
    result = compute_daily_performance(labelled, groups=["day", "model_version"], k=k)
    by_version = {m.version: m for m in models}
    rows = []
    for r in result.collect():
        model = by_version.get(r["model_version"])
        if model is None:
            continue
        window = {
            "window_start": dt.datetime.combine(r["day"], dt.time()),
            "window_end": dt.datetime.combine(r["day"] + dt.timedelta(days=1), dt.time()),
            "granularity": "day",
        }
        metrics = {
            "auc_roc": (r["auc_roc"], model.test_metrics.get("auc_roc")),
            "average_precision": (r["average_precision"], model.test_metrics.get("average_precision")),
            "card_precision": (r["card_precision"], model.test_metrics.get(f"card_precision_at_{k}")),
            "fraud_rate": (r["frauds"] / r["transactions"] if r["transactions"] else None, None),
            "frauds": (r["frauds"], None),
        }
        for metric, (value, reference) in metrics.items():
            rows.append(
                MetricRow(
                    **window,
                    family="performance",
                    metric=metric,
                    dimension="",
                    value=None if value is None else float(value),
                    sample_size=int(r["transactions"]),
                    model_name=model.name,
                    model_version=model.version,
                    reference=reference,
                    labels_as_of=as_of,
                )
            )
    return rows


# ------------------------------------------------------------------------------------------------- the run


def read_metric_history(
    spark: SparkSession, config: LakestreamConfig, *, since: dt.datetime, until: dt.datetime
) -> list[MetricRow]:
    """Metric rows of the configured source with windows in [since, until)."""
    path = metrics_path(config)
    if not is_delta_table(path):
        return []
    frame = read_delta(spark, path).where(
        (F.col("source") == config.monitoring.source)
        & (F.col("window_start") >= F.lit(since))
        & (F.col("window_start") < F.lit(until))
    )
    names = [f for f in MetricRow.__dataclass_fields__]
    return [MetricRow(**{name: r[name] for name in names}) for r in frame.select(*names).collect()]


def _champion(config: LakestreamConfig) -> Champion | None:
    from mlflow import MlflowClient

    from lakestream.registry.models import CHAMPION, find_version_by_alias

    version = find_version_by_alias(MlflowClient(), config.mlflow.registered_model, CHAMPION)
    if version is None:
        return None
    train_end = (version.tags or {}).get("lakestream.train_end")
    return Champion(str(version.version), dt.date.fromisoformat(train_end) if train_end else None)


def _has_training_features(config: LakestreamConfig) -> bool:
    """Whether the gold table of the configured training feature set exists (something to train on)."""
    from lakestream.features.spec import feature_set_path, load_feature_set
    from lakestream.features.store import feature_table_path

    spec = load_feature_set(feature_set_path(config.home / "conf" / "features", config.training.feature_set))
    return is_delta_table(feature_table_path(config, spec))


def _last_request(spark: SparkSession, config: LakestreamConfig, *, before: dt.date) -> dt.date | None:
    path = decisions_path(config)
    if not is_delta_table(path):
        return None
    row = (
        read_delta(spark, path)
        .where(F.col("needed") & (F.col("monitored_until") < F.lit(before)))
        .agg(F.max("as_of"))
        .first()
    )
    return row[0] if row else None


def record_decision(
    spark: SparkSession,
    config: LakestreamConfig,
    decision: RetrainingDecision,
    *,
    run_id: str,
    monitored_until: dt.date,
) -> None:
    """One row per run in monitoring.retraining (a re-run with the same run id replaces its row)."""
    from lakestream.io.delta import write_delta

    row = (
        run_id,
        dt.datetime.now(dt.UTC).replace(tzinfo=None),
        monitored_until,
        decision.needed,
        decision.as_of,
        decision.mode,
        decision.reason,
        decision.champion_version,
        decision.since,
        list(decision.alert_ids),
    )
    frame = spark.createDataFrame([row], schema=decisions_schema())
    write_delta(frame, decisions_path(config), replace_where=f"run_id = '{run_id}'")


def run_monitoring(spark: SparkSession, config: LakestreamConfig, request: MonitoringRequest) -> MonitoringResult:
    """Monitor the days [start, end] (see module doc); returns what was computed and decided."""
    if request.end < request.start:
        raise DataError(f"monitoring: end {request.end} is before start {request.start}")
    monitoring = config.monitoring
    run_id = request.run_id or f"monitor-{request.start}-{request.end}-{uuid.uuid4().hex[:8]}"
    computed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start, end = request.range_start, request.range_end
    delay = config.training.split.delay_days
    perf_days = performance_days(request, delay)
    perf_start = dt.datetime.combine(perf_days[0], dt.time()) if perf_days else None
    perf_end = dt.datetime.combine(perf_days[-1] + dt.timedelta(days=1), dt.time()) if perf_days else None

    versions = served_versions(spark, config, start=start, end=end)
    if perf_days:
        versions += served_versions(spark, config, start=perf_start, end=perf_end)  # type: ignore[arg-type]
    unique = {(r["model_name"], r["model_version"]): r for r in versions}
    models = load_models(config, unique.values())
    logger.info(
        "monitoring %s..%s (%s scores, models %s); performance days %s with labels as of %s",
        request.start,
        request.end,
        monitoring.source,
        ", ".join(f"{m.name} v{m.version}" for m in models) or "none",
        ", ".join(d.isoformat() for d in perf_days) or "none",
        request.labels_as_of,
    )
    rows: list[MetricRow] = []
    served_count = 0
    served = read_served(spark, config, models, start=start, end=end) if models else None
    if served is not None:
        windowed = explode_windows(served, granularities=monitoring.granularities).persist()
        try:
            served_count = windowed.where(F.col("granularity") == monitoring.granularities[0]).count()
            if served_count:
                rows += drift_rows(spark, windowed, models, epsilon=monitoring.psi_epsilon)
                rows += prediction_rows(windowed, models)
                rows += volume_rows(windowed, models)
                if monitoring.source == "stream":
                    rows += stream_rows(
                        spark, config, windowed, start=start, end=end, granularities=monitoring.granularities
                    )
        finally:
            windowed.unpersist()
    rows += quarantine_rows(spark, config, start=request.start, end=request.end)
    rows += performance_rows(spark, config, models, days=perf_days, as_of=request.labels_as_of)
    replace_metrics(
        metric_rows_frame(spark, rows, source=monitoring.source, run_id=run_id, computed_at=computed_at),
        config,
        source=monitoring.source,
        windows=(start, end),
        performance_windows=(perf_start, perf_end) if perf_start and perf_end else None,
    )
    judge_from = min(start, perf_start) if perf_start else start
    history = read_metric_history(spark, config, since=judge_from - dt.timedelta(days=HISTORY_DAYS), until=end)
    outcome = evaluate_rules(history, monitoring.rules, judge_from=judge_from)
    for alert in outcome.alerts:
        logger.warning("ALERT [%s] %s", alert.severity, alert.message)
    if outcome.alerts:
        merge_alerts(
            spark,
            config,
            alerts_frame(spark, outcome.alerts, source=monitoring.source, run_id=run_id, raised_at=computed_at),
        )
    from lakestream.registry.tracking import configure_mlflow

    configure_mlflow(config)
    decision = plan_retraining(
        outcome.active,
        as_of=request.end,
        champion=_champion(config),
        split=config.training.split,
        policy=monitoring.retraining,
        last_request=_last_request(spark, config, before=request.end),
        trainable=_has_training_features(config),
    )
    record_decision(spark, config, decision, run_id=run_id, monitored_until=request.end)
    logger.info("retraining %s: %s", "requested" if decision.needed else "not requested", decision.reason)
    report = None
    if request.write_report:
        from lakestream.monitoring.report import write_report

        report = write_report(config, history, outcome, decision, start=request.start, end=request.end, run_id=run_id)
    result = MonitoringResult(
        run_id=run_id,
        start=request.start,
        end=request.end,
        served_rows=served_count,
        metric_rows=len(rows),
        performance_days=tuple(perf_days),
        rules=outcome,
        decision=decision,
        report=report,
    )
    if request.log_to_mlflow:
        _log_run(config, result, rows)
    return result


def _log_run(config: LakestreamConfig, result: MonitoringResult, rows: Sequence[MetricRow]) -> None:
    """One MLflow run per monitoring run: parameters, summary metrics, report, alerts and decision."""
    import mlflow

    from lakestream.registry.tracking import configure_mlflow

    configure_mlflow(config, experiment=config.monitoring.experiment)
    summary: dict[str, float] = {
        "served_rows": float(result.served_rows),
        "alerts": float(len(result.rules.alerts)),
        "active_alerts": float(len(result.rules.active)),
        "retraining_requested": float(result.decision.needed),
    }
    for family, metric in (("feature_drift", "psi"), ("prediction_drift", "psi")):
        values = [
            r.value
            for r in rows
            if r.family == family and r.metric == metric and r.granularity == "day" and r.value is not None
        ]
        if values:
            summary[f"max_daily_{family}_{metric}"] = max(values)
    for metric in ("average_precision", "card_precision", "auc_roc"):
        values = [r.value for r in rows if r.family == "performance" and r.metric == metric and r.value is not None]
        if values:
            summary[f"mean_daily_{metric}"] = sum(values) / len(values)
    with mlflow.start_run(run_name=result.run_id):
        mlflow.set_tags({"lakestream.pipeline": "monitoring", "lakestream.source": config.monitoring.source})
        mlflow.log_params({"start": result.start.isoformat(), "end": result.end.isoformat()})
        mlflow.log_metrics(summary)
        mlflow.log_dict([a.to_dict() for a in result.rules.alerts], "monitoring/alerts.json")
        mlflow.log_dict(result.decision.to_dict(), "monitoring/retraining_decision.json")
        if result.report is not None:
            mlflow.log_artifact(str(result.report), "monitoring")
