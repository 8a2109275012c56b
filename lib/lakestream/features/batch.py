"""The batch feature engine: compiles a FeatureSetSpec to native Spark window expressions.

Pure transforms only (DataFrame -> DataFrame, no IO, no actions). Windows are event-time range frames over
the epoch second of each row, partitioned by the entity:

- ``(t - w, t]`` for undelayed windows, ``(t - d - w, t - d]`` for a label delay ``d``; both ends in whole
  seconds, so the frame is ``rangeBetween(-(d + w) + 1, -d)``.
- Same-second ties (``ties: earlier_only``, the book's behaviour): a row counts only the rows of its second
  with a smaller transaction id; count, sum, mean and stddev subtract the later peers' contributions.
- Label aggregations read ``label_known``: the label of a row counts only if it was reported within the
  label delay, so a feature at time t never uses a label reported after t (point-in-time correct).
- ``last`` / ``time_since_last`` read the previous event in an undelayed window; in a delayed window they read
  its latest event, ``time_since_first`` its earliest, as min / max over the frame (known frauds with on_label).
- Counts, label sums and sums of fixed-point columns (``source.fixed_point``, e.g. amounts in cents) are
  differences of running totals (O(1) per row, exact); other sums re-add the frame's rows (O(frame) per row).
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import TYPE_CHECKING

from pyspark.sql import Column, Window
from pyspark.sql import functions as F  # noqa: N812

from lakestream.features.spec import (
    DELAYED_EDGE_KINDS,
    SECONDS_PER_DAY,
    Aggregation,
    FeatureSetSpec,
    RowFeature,
    WindowGroup,
)
from lakestream.spark import balanced_partitions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TS = "_ts"  # epoch seconds of the event
LABEL_KNOWN = "_label_known"


def compute_features(events: DataFrame, *, spec: FeatureSetSpec, start: dt.date | None = None) -> DataFrame:
    """Source rows (+ label, reported_at) -> source columns + every feature of the spec; one row per event.

    With ``start`` only the rows of days >= start are wanted (the earlier ones are look-back): the window groups
    then run from the longest look-back to the shortest, and before each group the rows older than that group's
    own look-back are dropped (a daily fraud_v1 build reads 37 days for the terminal risk, but the customer
    windows need only 30; for fraud_v2 67 days against 30 and 7). The rows of days >= start get the same values
    as in a build over the whole history; the earlier rows' features are not complete and must be discarded.
    """
    source = spec.source
    frame = events.withColumn(TS, F.col(source.timestamp).cast("timestamp").cast("long"))
    if any(a.on_label for group in spec.windows for a in group.aggregations):
        frame = frame.withColumn(LABEL_KNOWN, label_known(spec))
    frame = add_row_features(frame, spec)
    columns = frame.columns
    groups = list(spec.windows)
    if start is not None:
        groups.sort(key=lambda group: group.lookback_days, reverse=True)
        start_ts = calendar.timegm(start.timetuple())
    kept_from = None
    partitions = balanced_partitions(events.sparkSession)
    for group in groups:
        if start is not None:
            needed = start_ts - round(group.lookback_days * SECONDS_PER_DAY)
            if kept_from is None or needed > kept_from:  # a filter between window stages: never pushed below them
                frame = frame.where(F.col(TS) > F.lit(needed))
                kept_from = needed
        # rows of an entity in (time, id) order: the window operators keep it (no sort of their own), so a frame's
        # sums add the same rows in the same order whatever ran before or was read: bit-equal days
        frame = frame.repartition(partitions, group.entity).sortWithinPartitions(group.entity, TS, source.id)
        frame = frame.select("*", *_window_columns(group, spec))
    frame = frame.select(*columns, *spec.window_feature_names())  # the declared column order, whatever ran first
    frame = add_derived_features(frame, spec)
    helpers = [c for c in frame.columns if c.startswith("_")]
    return frame.drop(*helpers, source.label, source.label_reported_at)


def add_row_features(frame: DataFrame, spec: FeatureSetSpec) -> DataFrame:
    """+ the spec's row features (weekend, night, ...): the streaming engine reuses the batch expressions."""
    return frame.select("*", *[_row_feature(f, spec) for f in spec.row_features])


def add_derived_features(frame: DataFrame, spec: FeatureSetSpec) -> DataFrame:
    """+ the spec's derived features (ratios, z-scores over window features), as in batch."""
    for feature in spec.derived_features:
        frame = frame.withColumn(feature.name, _row_feature_expr(feature, spec))
    return frame


def label_known(spec: FeatureSetSpec) -> Column:
    """1 if the row is a fraud whose label was reported within the label delay, else 0."""
    source = spec.source
    delay_seconds = round(spec.label_delay_days * SECONDS_PER_DAY)
    reported = F.col(source.label_reported_at).cast("timestamp").cast("long")
    known = (F.col(source.label) == 1) & reported.isNotNull() & (reported <= F.col(TS) + F.lit(delay_seconds))
    return F.when(known, F.lit(1)).otherwise(F.lit(0))


def _row_feature(feature: RowFeature, spec: FeatureSetSpec) -> Column:
    return _row_feature_expr(feature, spec).alias(feature.name)


def _row_feature_expr(feature: RowFeature, spec: FeatureSetSpec) -> Column:
    ts = F.col(spec.source.timestamp)
    if feature.kind == "is_weekend":
        return F.dayofweek(ts).isin(1, 7).cast("int")  # Spark: Sunday = 1, Saturday = 7
    if feature.kind == "is_night":
        return (F.hour(ts) <= feature.night_end_hour).cast("int")
    if feature.kind == "hour_of_day":
        return F.hour(ts)
    if feature.kind == "copy":
        return F.col(str(feature.column))
    if feature.kind == "ratio":
        denominator = F.col(str(feature.denominator)).cast("double")
        ok = denominator.isNotNull() & (denominator != 0)
        return F.when(ok, F.col(str(feature.column)) / denominator).otherwise(F.lit(feature.default))
    # zscore
    std = F.col(str(feature.std)).cast("double")
    ok = std.isNotNull() & (std > 0) & F.col(str(feature.mean)).isNotNull()
    return F.when(ok, (F.col(str(feature.column)) - F.col(str(feature.mean))) / std).otherwise(F.lit(feature.default))


def _window_columns(group: WindowGroup, spec: FeatureSetSpec) -> list[Column]:
    entity_order = Window.partitionBy(group.entity).orderBy(TS)
    by_id = Window.partitionBy(group.entity).orderBy(TS, spec.source.id)
    later_peers = Window.partitionBy(group.entity, TS).orderBy(spec.source.id).rowsBetween(1, Window.unboundedFollowing)
    delay = round(group.delay_days * SECONDS_PER_DAY)
    subtract_peers = delay == 0 and group.ties == "earlier_only"
    columns = []
    for window_days, aggregation, name in group.expanded():
        width = round(window_days * SECONDS_PER_DAY)
        value = _aggregation_input(aggregation)
        if delay > 0 and aggregation.agg in DELAYED_EDGE_KINDS:
            frame = entity_order.rangeBetween(-(delay + width) + 1, -delay)
            result = _delayed_edge(aggregation, value, frame, spec)
        elif aggregation.agg == "time_since_last":
            gap = F.col(TS) - F.lag(TS).over(by_id)
            result = F.when(gap.isNotNull() & (gap < width), gap.cast("double"))
        elif aggregation.agg == "last":
            gap = F.col(TS) - F.lag(TS).over(by_id)
            result = F.when(gap.isNotNull() & (gap < width), F.lag(value).over(by_id))
        elif aggregation.agg in {"min", "max"}:
            result = _extreme_aggregate(
                aggregation,
                value,
                entity_order=entity_order,
                width=width,
                delay=delay,
                group=group,
                same_second=Window.partitionBy(group.entity, TS).orderBy(spec.source.id),
            )
        else:
            result = _moment_aggregate(
                aggregation,
                value,
                decimals=_exact_decimals(aggregation, spec),
                entity_order=entity_order,
                lower=-(delay + width),
                upper=-delay,
                later_peers=later_peers if subtract_peers else None,
                exclude_current=delay == 0 and not group.include_current,
            )
        default = aggregation.default
        if default is None and aggregation.agg == "count":
            default = 0.0
        if default is not None:
            result = F.coalesce(result, F.lit(default))
        if aggregation.agg == "count":
            result = result.cast("long")
        columns.append(result.alias(name))
    return columns


def _delayed_edge(aggregation: Aggregation, value: Column, frame: Window, spec: FeatureSetSpec) -> Column:
    """last / time_since_last / time_since_first over a delayed frame (t - d - w, t - d]: its latest event's value
    (latest in (time, id) order), or the seconds since its latest / earliest event (known fraud with on_label)."""
    if aggregation.agg == "last":
        return F.max(F.struct(F.col(TS), F.col(spec.source.id), value.alias("value"))).over(frame)["value"]
    times = F.when(F.col(LABEL_KNOWN) == 1, F.col(TS)) if aggregation.on_label else F.col(TS)
    edge = (F.min if aggregation.agg == "time_since_first" else F.max)(times).over(frame)
    return (F.col(TS) - edge).cast("double")


def _extreme_aggregate(
    aggregation: Aggregation,
    value: Column,
    *,
    entity_order: Window,
    width: int,
    delay: int,
    group: WindowGroup,
    same_second: Window,
) -> Column:
    """min / max: earlier seconds by range frame, the current second by id order (peers cannot be subtracted)."""
    agg_fn, combine = (F.min, F.least) if aggregation.agg == "min" else (F.max, F.greatest)
    if delay > 0:
        return agg_fn(value).over(entity_order.rangeBetween(-(delay + width) + 1, -delay))
    parts = [
        agg_fn(value).over(entity_order.rangeBetween(-width + 1, -1)),  # earlier seconds
        agg_fn(value).over(same_second.rowsBetween(Window.unboundedPreceding, -1)),  # earlier ids, this second
    ]
    if group.include_current:
        parts.append(value)
    if group.ties == "all":
        parts.append(agg_fn(value).over(same_second.rowsBetween(1, Window.unboundedFollowing)))
    return combine(*parts)


def _aggregation_input(aggregation: Aggregation) -> Column:
    if aggregation.on_label:
        return F.col(LABEL_KNOWN)
    if aggregation.column is None:
        return F.lit(1)
    return F.col(aggregation.column).cast("double")


def _exact_decimals(aggregation: Aggregation, spec: FeatureSetSpec) -> int | None:
    """N when the input's window sums are exact integer sums of value * 10^N (labels, counts, fixed-point columns)."""
    if aggregation.on_label or aggregation.column is None:
        return 0
    return spec.source.fixed_point.get(aggregation.column)


def _moment_aggregate(
    aggregation: Aggregation,
    value: Column,
    *,
    decimals: int | None,
    entity_order: Window,
    lower: int,
    upper: int,
    later_peers: Window | None,
    exclude_current: bool,
) -> Column:
    """count / sum / mean / stddev over (t + lower, t + upper], minus excluded rows.

    Counts, and sums of integers (labels, fixed-point amounts as value * 10^decimals), are differences of running
    totals: frames from UNBOUNDED PRECEDING grow incrementally (O(1) per row) and integer differences are exact,
    whatever history was read. Sums of other doubles (and stddev's squares) come from the window's own rows: a
    difference of running float sums would depend on how much history was read, and an incremental day must equal
    a full recompute bit for bit.
    """

    def running(bound: int, column: Column) -> Column:
        return F.sum(column).over(entity_order.rangeBetween(Window.unboundedPreceding, bound))

    def exact_sum(column: Column) -> Column:
        return F.coalesce(running(upper, column), F.lit(0)) - F.coalesce(running(lower, column), F.lit(0))

    window = entity_order.rangeBetween(lower + 1, upper)
    one = F.lit(1)
    count = exact_sum(one)
    if decimals is not None:  # integer units (cents for 2 decimals): exact sums
        units = F.round(value * F.lit(10**decimals)).cast("long")
        total = exact_sum(units)
    else:
        units = value
        total = F.coalesce(F.sum(value).over(window), F.lit(0.0))
    squares = F.coalesce(F.sum(value * value).over(window), F.lit(0.0))
    if later_peers is not None:
        count = count - F.count(one).over(later_peers)
        total = total - F.coalesce(F.sum(units).over(later_peers), F.lit(0))
        squares = squares - F.coalesce(F.sum(value * value).over(later_peers), F.lit(0.0))
    if exclude_current:
        count = count - 1
        total = total - units
        squares = squares - value * value
    scale = float(10**decimals) if decimals is not None else 1.0
    if aggregation.agg == "count":
        return count
    if aggregation.agg == "sum":
        return F.when(count > 0, total / F.lit(scale))
    if aggregation.agg == "mean":
        return F.when(count > 0, total / (count * F.lit(scale)))  # one rounding: exact total over exact divisor
    # stddev: sample standard deviation (ddof = 1), as pandas' rolling std
    mean_total = total / F.lit(scale)
    variance = (squares - mean_total * mean_total / count) / (count - 1)
    return F.when(count > 1, F.sqrt(F.greatest(variance, F.lit(0.0))))
