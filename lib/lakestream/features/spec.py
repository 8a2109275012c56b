"""Declarative feature sets: one definition (conf/features/<name>.yaml) for the batch and the streaming engines.

A feature set declares its source columns, row-level features (weekend, night, …), event-time window
aggregations per entity (count, sum, mean, min, max, stddev, last, time since last / first) with an optional
label delay, and derived features computed from the others (ratios, z-scores). In an undelayed window `last`
and `time_since_last` read the entity's previous event; in a delayed (label) window (t - d - w, t - d] they read
the window's latest event, `time_since_first` its earliest, and with `on_label: true` the time-since kinds
count only known frauds (e.g. how long ago a terminal's first known fraud of the last weeks happened; a
terminal compromise lasts a fixed time). Loading validates the spec
as a whole: unknown columns, windows <= 0, delays that leak labels, duplicate names and dangling model
inputs are refused with a message naming the offending entry.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lakestream.errors import ConfigError

SECONDS_PER_DAY = 86_400
MAX_FIXED_POINT_DECIMALS = 6  # 10^6 * value still leaves room for long running totals

AggKind = Literal["count", "sum", "mean", "min", "max", "stddev", "last", "time_since_last", "time_since_first"]
# Aggregations that read a source column (count and the time-since kinds do not).
_NEEDS_COLUMN = {"sum", "mean", "min", "max", "stddev", "last"}
# Seconds from an event of the window to t; with on_label, from a known fraud of the window.
_TIME_SINCE = {"time_since_last", "time_since_first"}
# Aggregations that pick one event of a delayed window (its latest or earliest) instead of reducing all of them.
DELAYED_EDGE_KINDS = frozenset({"last", *_TIME_SINCE})


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSpec(_Spec):
    """The event table the features are computed from (silver transactions joined with labels)."""

    id: str = "transaction_id"
    timestamp: str = "tx_datetime"
    columns: tuple[str, ...] = ("transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount")
    label: str = "tx_fraud"
    label_reported_at: str = "reported_at"
    # Columns holding fixed-point values (amounts in a currency with N decimals): window sums and means over them
    # add the integers value * 10^N, exact whatever the order or the history read, so the engine keeps running
    # totals (O(1) per row) instead of re-adding each frame. A value with more than N decimals is rounded to N.
    fixed_point: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fixed_point_columns(self) -> SourceSpec:
        for column, decimals in self.fixed_point.items():
            if column not in self.columns:
                raise ValueError(f"source.fixed_point names {column!r}, not one of source.columns {list(self.columns)}")
            if not 0 <= decimals <= MAX_FIXED_POINT_DECIMALS:
                raise ValueError(
                    f"source.fixed_point.{column}: {decimals} decimals; expected 0 to {MAX_FIXED_POINT_DECIMALS}"
                )
        return self


class Aggregation(_Spec):
    """One aggregation of a window group; `name` may use {w} for the window length in days."""

    name: str
    agg: AggKind
    column: str | None = None
    on_label: bool = False  # aggregate the label (known labels only, see WindowGroup.delay_days)
    default: float | None = None  # value when the window holds no rows (None: count -> 0, others -> null)

    @model_validator(mode="after")
    def _column_matches_kind(self) -> Aggregation:
        if self.on_label and self.column is not None:
            raise ValueError(f"aggregation {self.name}: on_label aggregates the label; do not also set column")
        if self.agg in _NEEDS_COLUMN and self.column is None and not self.on_label:
            raise ValueError(f"aggregation {self.name}: agg {self.agg!r} needs a column (or on_label: true)")
        if self.agg == "count" and (self.column is not None or self.on_label):
            raise ValueError(f"aggregation {self.name}: agg 'count' takes no column")
        if self.agg in _TIME_SINCE and self.column is not None:
            raise ValueError(
                f"aggregation {self.name}: agg {self.agg!r} takes no column (on_label: true = over known frauds)"
            )
        return self


class WindowGroup(_Spec):
    """Aggregations over the rows of one entity in event-time windows (t - delay - w, t - delay]."""

    entity: str
    windows_days: tuple[float, ...] = Field(min_length=1)
    delay_days: float = 0.0
    include_current: bool = True  # with delay 0: the current transaction counts in its own window
    ties: Literal["earlier_only", "all"] = "earlier_only"  # rows in the same second: only earlier ids count
    aggregations: tuple[Aggregation, ...] = Field(min_length=1)

    @property
    def lookback_days(self) -> float:
        """How far before a row the group's frames reach: longest window + delay."""
        return max(self.windows_days) + self.delay_days

    def expanded(self) -> list[tuple[float, Aggregation, str]]:
        """(window_days, aggregation, feature name) for every window x aggregation."""
        result = []
        for window in self.windows_days:
            for aggregation in self.aggregations:
                label = f"{window:g}"
                result.append((window, aggregation, aggregation.name.format(w=label)))
        return result


class RowFeature(_Spec):
    """A feature of the row itself, computed before or after the windows (derived ones may use them)."""

    name: str
    kind: Literal["is_weekend", "is_night", "hour_of_day", "ratio", "zscore", "copy"]
    night_end_hour: int = Field(default=6, ge=0, le=23)  # is_night: hour <= night_end_hour
    column: str | None = None  # copy / ratio numerator / zscore value
    denominator: str | None = None  # ratio
    mean: str | None = None  # zscore
    std: str | None = None  # zscore
    default: float = 0.0  # ratio or zscore with a zero/null denominator

    def inputs(self) -> list[str]:
        """Columns or features this feature reads (besides the timestamp)."""
        return [name for name in (self.column, self.denominator, self.mean, self.std) if name is not None]

    @model_validator(mode="after")
    def _inputs_match_kind(self) -> RowFeature:
        needs = {"ratio": ("column", "denominator"), "zscore": ("column", "mean", "std"), "copy": ("column",)}
        missing = [field for field in needs.get(self.kind, ()) if getattr(self, field) is None]
        if missing:
            raise ValueError(f"feature {self.name}: kind {self.kind!r} needs {missing}")
        return self


class FeatureSetSpec(_Spec):
    """A versioned feature set: what is computed, in which order, and which columns the model takes."""

    name: str
    version: int = Field(ge=1)
    description: str = ""
    label_delay_days: float = Field(default=7.0, ge=0)
    source: SourceSpec = SourceSpec()
    row_features: tuple[RowFeature, ...] = ()
    windows: tuple[WindowGroup, ...] = ()
    derived_features: tuple[RowFeature, ...] = ()
    model_inputs: tuple[str, ...] = Field(min_length=1)

    @property
    def lookback_days(self) -> float:
        """How far back a computation must read to get every window right: longest window + its delay."""
        return max((group.lookback_days for group in self.windows), default=0.0)

    def first_day_to_read(self, start: dt.date) -> dt.date:
        """The earliest day of source rows a build from `start` needs: start - ceil(look-back) days."""
        return start - dt.timedelta(days=math.ceil(self.lookback_days))

    def window_feature_names(self) -> list[str]:
        """Names of every window feature, in declaration order."""
        return [name for group in self.windows for _, _, name in group.expanded()]

    def feature_names(self) -> list[str]:
        """Every feature the set produces, in computation order."""
        return (
            [f.name for f in self.row_features] + self.window_feature_names() + [f.name for f in self.derived_features]
        )

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSetSpec:
        columns = set(self.source.columns)
        for required in (self.source.id, self.source.timestamp):
            if required not in columns:
                raise ValueError(f"source.{required!r} must be one of source.columns {sorted(columns)}")
        known = set(columns)
        for feature in self.row_features:
            _check_inputs(feature, known, stage="row_features")
            known.add(feature.name)
        window_features: set[str] = set()
        for group in self.windows:
            if group.entity not in columns:
                raise ValueError(f"window entity {group.entity!r} is not a source column; known: {sorted(columns)}")
            for window in group.windows_days:
                if not window > 0:
                    raise ValueError(f"window of {window} days for entity {group.entity!r}: windows must be > 0")
            if group.delay_days < 0:
                raise ValueError(f"delay_days of {group.entity!r} windows must be >= 0, got {group.delay_days}")
            on_label = [a.name for a in group.aggregations if a.on_label]
            if group.delay_days > 0 and not on_label:
                raise ValueError(
                    f"windows of {group.entity!r} have delay_days={group.delay_days:g} but no label aggregation: "
                    "a delay only makes sense for label aggregations (labels are known late); remove it"
                )
            if on_label and group.delay_days < self.label_delay_days:
                raise ValueError(
                    f"label aggregations {on_label} use delay_days={group.delay_days:g} < label_delay_days="
                    f"{self.label_delay_days:g}: they would read labels not yet known (leakage)"
                )
            if group.delay_days > 0 and not group.include_current:
                raise ValueError(f"include_current has no meaning with a delay ({group.entity!r} windows)")
            first = [a.name for a in group.aggregations if a.agg == "time_since_first"]
            if first and group.delay_days == 0:
                raise ValueError(
                    f"time_since_first aggregations {first} need a delayed (label) window of {group.entity!r}: "
                    "undelayed windows have time_since_last (the previous event)"
                )
            for _, aggregation, _ in group.expanded():
                if aggregation.column is not None and aggregation.column in window_features:
                    raise ValueError(
                        f"aggregation {aggregation.name} of the {group.entity!r} windows reads {aggregation.column!r}, "
                        "a window feature of an earlier group: window features can feed derived features, not "
                        "other windows (a build from a start day reads each group's own look-back only, so the "
                        "earlier group's values in this window would not be the whole history's)"
                    )
                if aggregation.column is not None and aggregation.column not in known:
                    raise ValueError(
                        f"aggregation {aggregation.name} reads unknown column {aggregation.column!r}; "
                        f"known: {sorted(known)}"
                    )
            window_features.update(name for _, _, name in group.expanded())
        known.update(window_features)  # for the derived features and the model inputs
        for feature in self.derived_features:
            _check_inputs(feature, known, stage="derived_features")
            known.add(feature.name)
        names = self.feature_names()
        duplicates = sorted({name for name in names if names.count(name) > 1} | (set(names) & columns))
        if duplicates:
            raise ValueError(f"duplicate feature names (or names equal to source columns): {duplicates}")
        unknown_inputs = [name for name in self.model_inputs if name not in known]
        if unknown_inputs:
            raise ValueError(f"model_inputs {unknown_inputs} are neither source columns nor features")
        return self


def _check_inputs(feature: RowFeature, known: set[str], *, stage: str) -> None:
    unknown = [name for name in feature.inputs() if name not in known]
    if unknown:
        raise ValueError(f"{stage} {feature.name} reads unknown column(s) {unknown}; known so far: {sorted(known)}")


def load_feature_set(path: Path) -> FeatureSetSpec:
    """Read and validate one feature-set file, or raise a ConfigError naming the file and the problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read feature set {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"feature set {path} is not valid YAML: {exc}") from None
    try:
        return FeatureSetSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'spec'}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"invalid feature set {path}: {problems}") from None


def feature_set_path(features_dir: Path, name: str) -> Path:
    """conf/features/<name>.yaml, or a ConfigError listing the available feature sets."""
    path = features_dir / f"{name}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in features_dir.glob("*.yaml"))
        raise ConfigError(f"unknown feature set {name!r}: {path} does not exist; available: {available}")
    return path
