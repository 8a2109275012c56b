"""The reference profile stored with every model: what "normal" looked like when it was trained.

Built by the training run (Spark aggregates, no collect of rows) and logged as the MLflow artifact
``monitoring/reference_profile.json`` of the run that registered the version, so monitoring compares every
served window with the distributions of the version that actually scored it:

- per model input: fixed bins from the training window (``bins``-quantile edges, de-duplicated, so a flag
  has two bins and a count a handful), the share of each bin, the null rate and the mean;
- the score: bins and shares of the model's scores on its test window (what it predicts out of sample),
  and its alert rate there;
- volume: transactions per day and per hour of the day in the training window (expected volume);
- the model's test metrics (AP, CP@k, AUC): the reference of the label-delayed performance rules.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F  # noqa: N812

from lakestream.monitoring.drift import BIN, FEATURE, assign_bins, count_bins, melt_columns

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from pyspark.sql import Column, DataFrame

logger = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "monitoring/reference_profile.json"
SCORE = "score"
QUANTILE_ACCURACY = 10_000
TAIL = 0.001  # the training range of a model input is its [TAIL, 1 - TAIL] quantiles ...
RANGE_MARGIN = 0.25  # ... widened by this share of their distance on each side


@dataclass(frozen=True)
class BinnedDistribution:
    """Fixed bins (ascending edges; m edges make m + 1 bins) and the reference share of each, nulls aside."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    rows: int
    null_rate: float
    mean: float | None
    # The training range: the TAIL and 1 - TAIL quantiles widened by RANGE_MARGIN of their distance on each side
    # (rows of one busy customer or terminal are not independent draws, so the bare quantiles are crossed by
    # noise), and the share of training values outside it. A new pattern shows up there first.
    low: float | None = None
    high: float | None = None
    outside_share: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BinnedDistribution:
        """From the JSON artifact."""

        def number(key: str) -> float | None:
            return None if data.get(key) is None else float(data[key])

        return cls(
            edges=tuple(float(v) for v in data["edges"]),
            shares=tuple(float(v) for v in data["shares"]),
            rows=int(data["rows"]),
            null_rate=float(data["null_rate"]),
            mean=number("mean"),
            low=number("low"),
            high=number("high"),
            outside_share=number("outside_share"),
        )


@dataclass(frozen=True)
class ReferenceProfile:
    """The reference of one model version (see module doc)."""

    model_inputs: dict[str, BinnedDistribution]
    score: BinnedDistribution | None
    alert_rate: float | None
    daily_volume: float
    hourly_volume: tuple[float, ...]  # mean transactions per hour of the day 0..23
    metrics: dict[str, float] = field(default_factory=dict)
    window: dict[str, str] = field(default_factory=dict)
    bins: int = 10

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """From the JSON artifact."""
        return cls(
            model_inputs={name: BinnedDistribution.from_dict(d) for name, d in data["model_inputs"].items()},
            score=BinnedDistribution.from_dict(data["score"]) if data.get("score") else None,
            alert_rate=data.get("alert_rate"),
            daily_volume=float(data["daily_volume"]),
            hourly_volume=tuple(float(v) for v in data["hourly_volume"]),
            metrics={key: float(value) for key, value in (data.get("metrics") or {}).items()},
            window=dict(data.get("window") or {}),
            bins=int(data.get("bins", 10)),
        )


def compute_quantile_edges(frame: DataFrame, *, columns: Sequence[str], bins: int) -> dict[str, tuple[float, ...]]:
    """Per column: the distinct (1/bins .. (bins-1)/bins)-quantiles of its non-null values, ascending."""
    probabilities = [index / bins for index in range(1, bins)]
    row = frame.agg(
        *[
            F.percentile_approx(F.col(name).cast("double"), probabilities, QUANTILE_ACCURACY).alias(name)
            for name in columns
        ]
    ).first()
    return {name: tuple(sorted({float(v) for v in (row[name] or []) if v is not None})) for name in columns}


def outside_range(value: Column, low: Column, high: Column) -> Column:
    """1.0 when value < low or value > high, 0.0 inside, null for a null value."""
    return F.when(value.isNull(), F.lit(None)).otherwise(((value < low) | (value > high)).cast("double"))


def compute_ranges(frame: DataFrame, *, columns: Sequence[str]) -> dict[str, tuple[float | None, float | None, float]]:
    """Per column: (low, high, share of the non-null values outside [low, high]): the widened tail quantiles."""
    quantiles = frame.agg(
        *[
            F.percentile_approx(F.col(name).cast("double"), [TAIL, 1 - TAIL], QUANTILE_ACCURACY).alias(name)
            for name in columns
        ]
    ).first()
    bounds: dict[str, tuple[float | None, float | None]] = {}
    for name in columns:
        if not quantiles[name] or quantiles[name][0] is None:
            bounds[name] = (None, None)
            continue
        low, high = float(quantiles[name][0]), float(quantiles[name][1])
        margin = RANGE_MARGIN * (high - low)
        bounds[name] = (low - margin, high + margin)
    outside = frame.agg(
        *[
            F.avg(
                outside_range(
                    F.col(name).cast("double"),
                    F.lit(bounds[name][0]).cast("double"),
                    F.lit(bounds[name][1]).cast("double"),
                )
            ).alias(name)
            for name in columns
        ]
    ).first()
    return {name: (bounds[name][0], bounds[name][1], float(outside[name] or 0.0)) for name in columns}


def compute_distributions(frame: DataFrame, *, edges: Mapping[str, Sequence[float]]) -> dict[str, BinnedDistribution]:
    """Shares per fixed bin, null rate, mean and training range of each column of `edges` (three passes)."""
    columns = list(edges)
    long = melt_columns(frame, columns=columns, keys=[])
    binned = assign_bins(long, edges=edges, key=F.col(FEATURE))
    counts: dict[str, dict[int, int]] = {name: {} for name in columns}
    for row in count_bins(binned, groups=[]).collect():
        counts[row[FEATURE]][int(row[BIN])] = int(row["n"])
    stats = {
        row[FEATURE]: row
        for row in long.groupBy(FEATURE)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("value").isNull().cast("long")).alias("nulls"),
            F.avg("value").alias("mean"),
        )
        .collect()
    }
    ranges = compute_ranges(frame, columns=columns)
    result = {}
    for name in columns:
        per_bin = counts[name]
        total = sum(per_bin.values())
        shares = tuple((per_bin.get(index, 0) / total) if total else 0.0 for index in range(len(edges[name]) + 1))
        row = stats.get(name)
        rows = int(row["rows"]) if row else 0
        result[name] = BinnedDistribution(
            edges=tuple(float(e) for e in edges[name]),
            shares=shares,
            rows=rows,
            null_rate=(int(row["nulls"]) / rows) if row and rows else 0.0,
            mean=None if not row or row["mean"] is None else float(row["mean"]),
            low=ranges[name][0],
            high=ranges[name][1],
            outside_share=ranges[name][2],
        )
    return result


def compute_volumes(frame: DataFrame, *, time_column: str = "tx_datetime") -> tuple[float, tuple[float, ...]]:
    """(mean transactions per day, mean transactions per hour of the day 0..23) over the frame's days."""
    per_hour = {
        int(row["hour"]): int(row["n"])
        for row in frame.groupBy(F.hour(time_column).alias("hour")).agg(F.count(F.lit(1)).alias("n")).collect()
    }
    days = frame.select(F.to_date(time_column).alias("day")).distinct().count()
    if days == 0:
        return 0.0, tuple(0.0 for _ in range(24))
    return sum(per_hour.values()) / days, tuple(per_hour.get(hour, 0) / days for hour in range(24))


def build_reference_profile(
    train: DataFrame,
    scored_test: DataFrame,
    *,
    features: Sequence[str],
    bins: int,
    review_threshold: float,
    metrics: Mapping[str, float],
    window: Mapping[str, str],
) -> ReferenceProfile:
    """The profile of a model from its train rows (inputs, volume) and its scored test rows (score)."""
    input_edges = compute_quantile_edges(train, columns=list(features), bins=bins)
    inputs = compute_distributions(train, edges=input_edges)
    score_edges = compute_quantile_edges(scored_test, columns=[SCORE], bins=bins)
    score = compute_distributions(scored_test, edges=score_edges)[SCORE]
    alert_rate = scored_test.agg(F.avg((F.col(SCORE) >= F.lit(review_threshold)).cast("double"))).first()[0]
    daily, hourly = compute_volumes(train)
    return ReferenceProfile(
        model_inputs=inputs,
        score=score,
        alert_rate=None if alert_rate is None else float(alert_rate),
        daily_volume=daily,
        hourly_volume=hourly,
        metrics={key: float(value) for key, value in metrics.items()},
        window=dict(window),
        bins=bins,
    )


def log_reference_profile(profile: ReferenceProfile) -> None:
    """Log the profile into the active MLflow run (the run that registers the model)."""
    import mlflow

    mlflow.log_dict(profile.to_dict(), REFERENCE_ARTIFACT)


def load_reference_profile(version: ModelVersion) -> ReferenceProfile | None:
    """The profile logged by the run of a model version, or None (models trained before profiles existed)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if not version.run_id:
        return None
    try:
        path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=REFERENCE_ARTIFACT)
    except (MlflowException, OSError) as exc:
        logger.warning(
            "%s v%s has no reference profile (%s): drift and volume of its windows are not judged",
            version.name,
            version.version,
            exc,
        )
        return None
    with open(path, encoding="utf-8") as handle:
        return ReferenceProfile.from_dict(json.load(handle))
