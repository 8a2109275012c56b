"""The batch feature engine: compiles a FeatureSetSpec to native Spark window expressions.

Pure transforms only (DataFrame -> DataFrame, no IO, no actions). Windows are event-time range frames over
the epoch second of each row, partitioned by the entity:

- ``(t - w, t]`` for undelayed windows, ``(t - d - w, t - d]`` for a label delay ``d``; both ends in whole
  seconds, so the frame is ``rangeBetween(-(d + w) + 1, -d)``.
- Same-second ties (``ties: earlier_only``, the book's behaviour): a row counts only the rows of its second
  with a smaller transaction id: exact sums (counts, labels, fixed-point columns) end at the row itself in
  (time, id) order, a ROWS frame over the rows as sorted; sums of other doubles and stddev subtract the later
  peers' contributions.
- Label aggregations read ``label_known``: the label of a row counts only if it was reported within the
  label delay, so a feature at time t never uses a label reported after t (point-in-time correct).
- ``last`` / ``time_since_last`` read the previous event in an undelayed window; in a delayed window they read
  its latest event, ``time_since_first`` its earliest, as min / max over the frame (known frauds with on_label).
- Counts, label sums and sums of fixed-point columns (``source.fixed_point``, e.g. amounts in cents) are
  differences of running totals (O(1) per row, exact); other sums re-add the frame's rows (O(frame) per row).
- A build of a few days (``end`` - ``start`` < PAIR_JOIN_MAX_DAYS) sums the groups of exact sums differently:
  the wanted rows (broadcast) join the look-back rows of their entity, and a grouped sum per wanted row adds
  the pairs inside each frame; no window runs over the look-back.
"""

from __future__ import annotations

import calendar
import datetime as dt
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pyspark.sql import Column, Window
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.types import IntegralType

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
    from pyspark.sql import DataFrame, SparkSession

TS = "_ts"  # epoch seconds of the event
LABEL_KNOWN = "_label_known"
# A build of at most this many days sums each wanted row's frames from joined pairs instead of window functions:
# a daily fraud_v1 build pairs ~10k rows with the look-back rows of their entities (tens each), cheaper than
# windows over all 38 days it reads (364k rows); the pairs grow with the days built, the windows' work does not.
PAIR_JOIN_MAX_DAYS = 3
# Columns kept per JVM (_compiled): a few feature sets' groups, pair sums and name lists
COMPILED_ENTRIES = 64
_COMPILED: dict[tuple[object, ...], tuple[object, Any]] = {}
_COMPILED_LOCK = threading.Lock()
_T = TypeVar("_T")
# session time zones known to be UTC by name (add_row_features asks the JVM about any other)
UTC_ZONES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00"})


def compute_features(
    events: DataFrame,
    *,
    spec: FeatureSetSpec,
    start: dt.date | None = None,
    end: dt.date | None = None,
    date_column: str | None = None,
) -> DataFrame:
    """Source rows (+ label, reported_at) -> source columns + every feature of the spec; one row per event.

    With ``start`` only the rows of days >= start are wanted (the earlier ones are look-back): the window groups
    then run from the longest look-back to the shortest, and before each group the rows older than that group's
    own look-back are dropped (a daily fraud_v1 build reads 37 days for the terminal risk, but the customer
    windows need only 30; for fraud_v2 67 days against 30 and 7). The rows of days >= start get the same values
    as in a build over the whole history; the earlier rows' features are not complete and must be discarded.

    With ``start`` and ``end`` spanning at most PAIR_JOIN_MAX_DAYS days (a daily build), the window groups whose every
    aggregation is an exact sum (counts, label sums, fixed-point sums and means) skip the windows altogether: each
    wanted row is joined to the look-back rows of its entity and the frame's rows are summed per row (see
    ``_pair_columns``); integer sums are the same whatever the order, so the values are byte-equal.

    ``date_column`` names a column of ``events`` holding each event's UTC date (the source's partition column):
    the daily reads then also filter on it, so a partitioned source opens only the partitions they need.
    """
    source = spec.source
    frame = events.withColumn(TS, F.col(source.timestamp).cast("timestamp").cast("long"))
    if any(a.on_label for group in spec.windows for a in group.aggregations):
        frame = frame.withColumn(LABEL_KNOWN, label_known(spec))
    # the row features come after the windows (they depend on the row alone: not carried through the windows'
    # shuffles and sorts), unless a window aggregation reads one of them
    read = {aggregation.column for group in spec.windows for aggregation in group.aggregations}
    rows_first = any(feature.name in read for feature in spec.row_features)
    if rows_first:
        frame = add_row_features(frame, spec)
    columns = frame.columns if rows_first else [*frame.columns, *(feature.name for feature in spec.row_features)]
    groups = list(spec.windows)
    paired: list[WindowGroup] = []
    if start is not None:
        groups.sort(key=lambda group: group.lookback_days, reverse=True)
        start_ts = calendar.timegm(start.timetuple())
        if end is not None and (end - start).days < PAIR_JOIN_MAX_DAYS:
            paired = [group for group in groups if _pairable(group, spec)]
            groups = [group for group in groups if group not in paired]
    history = frame
    kept_from = None
    spec_key = spec.model_dump_json()  # names the spec's compiled Columns (_compiled)
    for number, group in enumerate(groups):
        if start is not None:
            needed = start_ts - round(group.lookback_days * SECONDS_PER_DAY)
            if kept_from is None or needed > kept_from:  # a filter between window stages: never pushed below them
                frame = frame.where(F.col(TS) > F.lit(needed))
                kept_from = needed
        # rows of an entity in (time, id) order: the window operators keep it (no sort of their own), so a frame's
        # sums add the same rows in the same order whatever ran before or was read: bit-equal days
        partitions = balanced_partitions(frame.sparkSession, frame)
        frame = _entity_ordered(frame.repartition(partitions, group.entity), group.entity, source.id)
        kept = frame.columns
        terms, features = _group_columns(frame.sparkSession, group, spec, spec_key, number)
        # the group's distinct window aggregates first (computed by the Window operators), then its features
        frame = frame.select("*", *terms).select(*_named_columns(frame.sparkSession, kept), *features)
    if paired:
        frame = frame.where(_at_or_after(source.timestamp, start_ts, date_column))
        for group in paired:
            needed = start_ts - round(group.lookback_days * SECONDS_PER_DAY)
            look_back = history.where(_at_or_after(source.timestamp, needed + 1, date_column))
            frame = _pair_columns(frame, look_back, group, spec, spec_key)
    if not rows_first:
        frame = add_row_features(frame, spec)
    # the declared column order, whatever ran first
    frame = frame.select(*_named_columns(frame.sparkSession, [*columns, *spec.window_feature_names()]))
    frame = add_derived_features(frame, spec)
    helpers = [c for c in frame.columns if c.startswith("_")]
    return frame.drop(*helpers, source.label, source.label_reported_at)


def _entity_ordered(frame: DataFrame, entity: str, id_column: str) -> DataFrame:
    """The rows of each partition in (entity, TS, id) order, the order the window operators need.

    Spark sorts on several columns with a prefix of the first one only: rows of the same entity tie on it and are
    compared in full, which took a quarter of a full build's task time (a JFR profile of the 1.75M-row fraud_v1
    build). An integral entity first goes through a radix sort on one long, the entity in the high 32 bits and
    the second in the low ones; the (entity, TS, id) sort then meets rows already in order, bar same-second ties
    (and entities or seconds outside 32 bits: the hint only saves work, the second sort decides the order). The
    nondeterministic filter between the two sorts (it keeps every row) keeps the optimizer from dropping the first.
    The window operators keep this order (their own, (entity, TS), is a prefix of it), and the ROWS frames and lag
    of ``_window_columns`` read the rows in it.
    """
    if isinstance(frame.schema[entity].dataType, IntegralType):
        hint = F.expr(f"shiftleft(CAST({sql_name(entity)} AS BIGINT), 32) | ({TS} & {0xFFFFFFFF})")
        frame = frame.sortWithinPartitions(hint).where("spark_partition_id() >= 0")
    return frame.sortWithinPartitions(*_named_columns(frame.sparkSession, [entity, TS, id_column]))


def _at_or_after(timestamp: str, seconds: int, date_column: str | None = None) -> Column:
    """Rows at or after an epoch second: on the source's timestamp itself (Delta can skip files by its statistics; on
    the features benchmark's Parquet input, a timestamp_ntz column, Spark skipped no row group), on the whole-second
    TS the frames use and, when the source has one, on its date (partition) column: the second's UTC date or
    later, which prunes whole partitions."""
    since = [f"CAST({sql_name(timestamp)} AS TIMESTAMP) >= timestamp_seconds({seconds})"]
    if date_column is not None:
        day = dt.datetime.fromtimestamp(seconds, dt.UTC).date()
        since.append(f"{sql_name(date_column)} >= DATE'{day.isoformat()}'")
    since.append(f"{TS} >= {seconds}")
    return F.expr(" AND ".join(since))  # SQL text: one call to the JVM (see _compiled)


def add_row_features(frame: DataFrame, spec: FeatureSetSpec) -> DataFrame:
    """+ the spec's row features (weekend, night, ...): the streaming engine reuses the batch expressions.

    In a UTC session (Lakestream's sessions are) the weekday and the hour come from the event's epoch second by
    integer arithmetic: Spark's calendar functions convert every value through java.time (about 4% of a full
    fraud_v1 build's task time in a profile). A session time zone that is not UTC (``utc_session``) gets the
    calendar functions.
    """
    utc = utc_session(frame.sparkSession)
    return frame.select("*", *[_row_feature_expr(f, spec, utc=utc).alias(f.name) for f in spec.row_features])


def utc_session(spark: SparkSession) -> bool:
    """True when the session time zone is UTC at every instant: a timestamp's calendar fields are then its epoch
    second's. A name of UTC_ZONES is; any other zone (``Etc/Zulu``, ``UCT``, ``Etc/GMT+0``, ...) is when Spark's
    JVM resolves it to rules of one fixed offset of 0 (a few py4j calls per plan)."""
    zone = spark.conf.get("spark.sql.session.timeZone")
    if zone in UTC_ZONES:
        return True
    jvm = spark.sparkContext._jvm
    rules = jvm.org.apache.spark.sql.catalyst.util.DateTimeUtils.getZoneId(zone).getRules()
    return bool(rules.isFixedOffset()) and rules.getOffset(jvm.java.time.Instant.EPOCH).getTotalSeconds() == 0


def add_derived_features(frame: DataFrame, spec: FeatureSetSpec) -> DataFrame:
    """+ the spec's derived features (ratios, z-scores over window features), as in batch."""
    for feature in spec.derived_features:
        frame = frame.withColumn(feature.name, _row_feature_expr(feature, spec))
    return frame


def label_known(spec: FeatureSetSpec) -> Column:
    """1 if the row is a fraud whose label was reported within the label delay, else 0."""
    source = spec.source
    delay_seconds = round(spec.label_delay_days * SECONDS_PER_DAY)
    reported = f"CAST(CAST({sql_name(source.label_reported_at)} AS TIMESTAMP) AS BIGINT)"
    known = f"{sql_name(source.label)} = 1 AND {reported} IS NOT NULL AND {reported} <= {TS} + {delay_seconds}"
    return F.expr(f"CASE WHEN {known} THEN 1 ELSE 0 END")


def _row_feature_expr(feature: RowFeature, spec: FeatureSetSpec, *, utc: bool = False) -> Column:
    ts = F.col(spec.source.timestamp)
    if feature.kind in {"is_weekend", "is_night", "hour_of_day"} and utc:
        # floor of the epoch second (as the cast does), its second of the day, its day; 1970-01-01 was a Thursday
        second = f"CAST(CAST({sql_name(spec.source.timestamp)} AS TIMESTAMP) AS BIGINT)"
        hour = F.expr(f"CAST(pmod({second}, 86400) DIV 3600 AS INT)")
        weekday = F.expr(f"pmod(({second} - pmod({second}, 86400)) DIV 86400 + 4, 7)")  # Sunday = 0
        if feature.kind == "is_weekend":
            return weekday.isin(0, 6).cast("int")
        return (hour <= feature.night_end_hour).cast("int") if feature.kind == "is_night" else hour
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


class _SharedTerms:
    """The distinct window aggregates of a group, each computed once.

    Features share terms: the running count of a frame feeds its count and its mean, and the count and the total
    of the frames ending at the current row feed every window of the group. Spark's Window operator evaluates every
    window expression it is given, equal or not (24 running sums for fraud_v1's 8 distinct customer ones), so each
    distinct expression (by its text, which names the function, its input and its whole window) becomes one helper
    column, and the features read the helpers.
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._terms: dict[str, tuple[str, Column]] = {}

    def __call__(self, expression: Column) -> Column:
        """A reference to the helper column computing `expression` (added on first use)."""
        key = str(expression)
        if key not in self._terms:
            self._terms[key] = (f"{self._prefix}{len(self._terms)}", expression)
        return F.col(self._terms[key][0])

    def columns(self) -> list[Column]:
        """Every distinct term, as an aliased column to select."""
        return [expression.alias(name) for name, expression in self._terms.values()]


def _compiled(spark: SparkSession, key: tuple[str, ...], build: Callable[[], _T]) -> _T:
    """``build()``, or what it returned for an equal key before in this JVM.

    Each Column call is a round trip to the JVM (a call, often a lookup first, and a release when Python drops the
    object): building a warm full fraud_v1 build's DataFrame made ~1,650 of them, a daily build's ~1,000-1,300.
    Columns are unresolved expressions, valid in any plan of the JVM that made them, so the ones a build derives
    from the spec alone (a group's window expressions, the pair sums and their features, lists of column names) are
    kept per (JVM, key), the key naming the spec by its full JSON (computed once per build); at most
    COMPILED_ENTRIES of them, the least recently used dropped first. With them and SQL text for the filters
    and the sort hint, the builds made ~270 and ~300 round trips, and building and planning a full build's DataFrame
    took 0.24-0.34 s instead of 0.41-0.49 s (medians of 20 builds, old and new code alternated, 2026-12-07); a daily
    build's 0.34-0.40 s instead of 0.36-0.44 s (its time goes to the JVM's analysis of the joins, not round trips).
    """
    gateway = spark.sparkContext._gateway
    full_key = (id(gateway), *key)
    with _COMPILED_LOCK:
        cached = _COMPILED.pop(full_key, None)  # the entry holds the gateway: its id names no other while cached
    if cached is None:
        cached = (gateway, build())
    with _COMPILED_LOCK:
        _COMPILED[full_key] = cached  # (re)inserted last: the most recently used
        while len(_COMPILED) > COMPILED_ENTRIES:
            _COMPILED.pop(next(iter(_COMPILED)))
    return cached[1]


def _named_columns(spark: SparkSession, names: Sequence[str]) -> list[Column]:
    """F.col of each name, kept per JVM (``_compiled``): each F.col is a lookup, a call and a release."""
    return list(_compiled(spark, ("names", *names), lambda: [F.col(name) for name in names]))


def _group_columns(
    spark: SparkSession, group: WindowGroup, spec: FeatureSetSpec, spec_key: str, number: int
) -> tuple[list[Column], list[Column]]:
    """The group's distinct window aggregates (aliased helper columns) and its features (``_compiled``)."""

    def build() -> tuple[list[Column], list[Column]]:
        share = _SharedTerms(prefix=f"_w{number}_")
        features = _window_columns(group, spec, share)
        return share.columns(), features

    terms, features = _compiled(spark, ("group", spec_key, group.model_dump_json(), str(number)), build)
    return list(terms), list(features)


def _window_columns(group: WindowGroup, spec: FeatureSetSpec, share: _SharedTerms) -> list[Column]:
    # ROWS frames and lag read an entity's rows in their physical order, (time, id) (_entity_ordered), so they take the
    # RANGE frames' specification and a group's frames are one Window operator (over orderBy(TS, id) they were two,
    # each buffering every row of the entity: 0.2 s of task time in a 1.75M-row fraud_v1 build's customer stage)
    entity_order = Window.partitionBy(group.entity).orderBy(TS)
    later_peers = Window.partitionBy(group.entity, TS).orderBy(spec.source.id).rowsBetween(1, Window.unboundedFollowing)
    delay = round(group.delay_days * SECONDS_PER_DAY)
    subtract_peers = delay == 0 and group.ties == "earlier_only"
    columns = []
    for window_days, aggregation, name in group.expanded():
        width = round(window_days * SECONDS_PER_DAY)
        value = _aggregation_input(aggregation)
        if delay > 0 and aggregation.agg in DELAYED_EDGE_KINDS:
            frame = entity_order.rangeBetween(-(delay + width) + 1, -delay)
            result = _delayed_edge(aggregation, value, frame, spec, share)
        elif aggregation.agg == "time_since_last":
            gap = F.col(TS) - share(F.lag(TS).over(entity_order))
            result = F.when(gap.isNotNull() & (gap < width), gap.cast("double"))
        elif aggregation.agg == "last":
            gap = F.col(TS) - share(F.lag(TS).over(entity_order))
            result = F.when(gap.isNotNull() & (gap < width), share(F.lag(value).over(entity_order)))
        elif aggregation.agg in {"min", "max"}:
            result = _extreme_aggregate(
                aggregation,
                value,
                entity_order=entity_order,
                width=width,
                delay=delay,
                group=group,
                same_second=Window.partitionBy(group.entity, TS).orderBy(spec.source.id),
                share=share,
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
                share=share,
            )
        columns.append(_with_default(result, aggregation).alias(name))
    return columns


def _with_default(result: Column, aggregation: Aggregation) -> Column:
    """The aggregation's default for an empty frame (0 for counts); counts as long."""
    default = aggregation.default
    if default is None and aggregation.agg == "count":
        default = 0.0
    if default is not None:
        result = F.coalesce(result, F.lit(default))
    if aggregation.agg == "count":
        result = result.cast("long")
    return result


def _delayed_edge(
    aggregation: Aggregation, value: Column, frame: Window, spec: FeatureSetSpec, share: _SharedTerms
) -> Column:
    """last / time_since_last / time_since_first over a delayed frame (t - d - w, t - d]: its latest event's value
    (latest in (time, id) order), or the seconds since its latest / earliest event (known fraud with on_label)."""
    if aggregation.agg == "last":
        return share(F.max(F.struct(F.col(TS), F.col(spec.source.id), value.alias("value"))).over(frame))["value"]
    times = F.when(F.col(LABEL_KNOWN) == 1, F.col(TS)) if aggregation.on_label else F.col(TS)
    edge = share((F.min if aggregation.agg == "time_since_first" else F.max)(times).over(frame))
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
    share: _SharedTerms,
) -> Column:
    """min / max: earlier seconds by range frame, the current second by id order (peers cannot be subtracted)."""
    agg_fn, combine = (F.min, F.least) if aggregation.agg == "min" else (F.max, F.greatest)
    if delay > 0:
        return share(agg_fn(value).over(entity_order.rangeBetween(-(delay + width) + 1, -delay)))
    parts = [
        share(agg_fn(value).over(entity_order.rangeBetween(-width + 1, -1))),  # earlier seconds
        share(agg_fn(value).over(same_second.rowsBetween(Window.unboundedPreceding, -1))),  # earlier ids, this second
    ]
    if group.include_current:
        parts.append(value)
    if group.ties == "all":
        parts.append(share(agg_fn(value).over(same_second.rowsBetween(1, Window.unboundedFollowing))))
    return combine(*parts)


def _aggregation_input(aggregation: Aggregation) -> Column:
    return F.expr(_aggregation_input_sql(aggregation))


def _aggregation_input_sql(aggregation: Aggregation) -> str:
    """SQL text of the value an aggregation reads: the known label, 1 (counts) or its column as a double."""
    if aggregation.on_label:
        return sql_name(LABEL_KNOWN)
    if aggregation.column is None:
        return "1"
    return f"CAST({sql_name(aggregation.column)} AS DOUBLE)"


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
    share: _SharedTerms,
) -> Column:
    """count / sum / mean / stddev over (t + lower, t + upper], minus excluded rows.

    Counts, and sums of integers (labels, fixed-point amounts as value * 10^decimals), are differences of running
    totals: frames from UNBOUNDED PRECEDING grow incrementally (O(1) per row) and integer differences are exact,
    whatever history was read. Sums of other doubles (and stddev's squares) come from the window's own rows: a
    difference of running float sums would depend on how much history was read, and an incremental day must equal
    a full recompute bit for bit.

    With ``later_peers`` (the rows of the row's own second with a larger id, to leave out; given for undelayed frames
    only, so the frame ends at the current second) the exact sums end at the row itself in the (time, id) order the
    rows arrive in, a ROWS frame: the same rows as the RANGE frame to the current second less its later peers,
    without the window over each (entity, second) that counts them (Spark runs that one as a window partition per
    row, about a fifth of a fraud_v1 customer stage). Sums of other doubles and stddev's squares still subtract the
    later peers' sums.
    """

    def running(bound: int, column: Column) -> Column:
        return share(F.sum(column).over(entity_order.rangeBetween(Window.unboundedPreceding, bound)))

    through_row = entity_order.rowsBetween(Window.unboundedPreceding, Window.currentRow)

    def exact_sum(column: Column) -> Column:
        end = share(F.sum(column).over(through_row)) if later_peers is not None else running(upper, column)
        return F.coalesce(end, F.lit(0)) - F.coalesce(running(lower, column), F.lit(0))

    window = entity_order.rangeBetween(lower + 1, upper)
    one = F.lit(1)
    count = exact_sum(one)
    if exclude_current:
        count = count - 1
    total = squares = None  # only the terms the aggregation reads become window aggregates
    if aggregation.agg != "count":
        if decimals is not None:  # integer units (cents for 2 decimals): exact sums
            units = F.expr(_units_sql(aggregation, decimals))
            total = exact_sum(units)
        else:
            units = value
            total = F.coalesce(share(F.sum(value).over(window)), F.lit(0.0))
            if later_peers is not None:
                total = total - F.coalesce(share(F.sum(units).over(later_peers)), F.lit(0))
        if exclude_current:
            total = total - units
    if aggregation.agg == "stddev":
        squares = F.coalesce(share(F.sum(value * value).over(window)), F.lit(0.0))
        if later_peers is not None:
            squares = squares - F.coalesce(share(F.sum(value * value).over(later_peers)), F.lit(0.0))
        if exclude_current:
            squares = squares - value * value
    return _moment_result(aggregation, count=count, total=total, squares=squares, decimals=decimals)


def _moment_result(
    aggregation: Aggregation, *, count: Column, total: Column | None, squares: Column | None, decimals: int | None
) -> Column:
    """count / sum / mean / stddev of a frame from its row count, its total (in units of 10^-decimals) and
    its sum of squares; the window and the pair paths share it, so equal sums give byte-equal values."""
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


def _pairable(group: WindowGroup, spec: FeatureSetSpec) -> bool:
    """True when every aggregation of the group is an exact integer sum (count, sum or mean of integer units)."""
    return all(
        a.agg in {"count", "sum", "mean"} and (a.agg == "count" or _exact_decimals(a, spec) is not None)
        for a in group.aggregations
    )


def _pair_columns(
    frame: DataFrame, history: DataFrame, group: WindowGroup, spec: FeatureSetSpec, spec_key: str
) -> DataFrame:
    """frame + the group's features, summed over pairs (wanted row, look-back row of its entity in a frame).

    A row's frame holds the rows of its entity with (t - d - w, t - d] in whole seconds; with no delay, the rows of
    its own second count as the window path counts them (earlier ids, itself if include_current, later ids with
    ties: all). Rows without a pair get the sums of an empty frame (0), as the window path's running totals do.

    The pairs' conditions and sums are SQL text: a daily build runs this for each group at every build, and each
    Column operation is a call to the JVM (over a thousand for fraud_v1's two groups, a sixth of a day's build).
    """
    source = spec.source
    delay = round(group.delay_days * SECONDS_PER_DAY)
    widest = round(max(group.windows_days) * SECONDS_PER_DAY)
    entity, row_id = sql_name(group.entity), sql_name(source.id)
    wanted = frame.selectExpr(f"{row_id} AS _p_id", f"{entity} AS _p_entity", f"{TS} AS _p_ts")
    units = {  # the input of every sum, in integer units as the window path's exact sums take it
        f"_h_units_{index}": _units_sql(a, _exact_decimals(a, spec))
        for index, a in enumerate(group.aggregations)
        if a.agg != "count"
    }
    rows = history.selectExpr(
        f"{entity} AS _h_entity",
        f"{TS} AS _h_ts",
        f"{row_id} AS _h_id",
        *[f"{sql} AS {name}" for name, sql in units.items()],
    )
    in_frame = f"_p_entity = _h_entity AND _h_ts > _p_ts - {delay + widest} AND _h_ts <= _p_ts - {delay}"
    pairs = F.broadcast(wanted).join(rows, F.expr(in_frame))
    in_second = ""
    if delay == 0:  # the rows of the row's own second
        same_second = "_h_id < _p_id" if group.ties == "earlier_only" else "TRUE"
        if group.include_current:
            same_second = f"({same_second}) OR _h_id = _p_id"
        else:
            same_second = f"({same_second}) AND _h_id != _p_id"
        in_second = f" AND (_h_ts < _p_ts OR {same_second})"

    def build() -> tuple[list[Column], list[Column]]:  # the pairs' sums and the features from them
        sums: dict[str, str] = {}
        results = []
        for window_days, aggregation, name in group.expanded():
            width = round(window_days * SECONDS_PER_DAY)
            inside = f"_h_ts > _p_ts - {delay + width}{in_second}"
            count_name = f"_p_n_{width}"
            sums.setdefault(count_name, f"SUM(CASE WHEN {inside} THEN 1 ELSE 0 END)")
            total = None
            if aggregation.agg != "count":
                units_name = f"_h_units_{group.aggregations.index(aggregation)}"
                total_name = f"_p_sum_{width}{units_name}"
                sums[total_name] = f"SUM(CASE WHEN {inside} THEN {units_name} ELSE 0 END)"
                total = F.expr(f"COALESCE({total_name}, 0)")
            result = _moment_result(
                aggregation,
                count=F.expr(f"COALESCE({count_name}, 0)"),
                total=total,
                squares=None,
                decimals=_exact_decimals(aggregation, spec),
            )
            results.append(_with_default(result, aggregation).alias(name))
        return [F.expr(f"{sql} AS {name}") for name, sql in sums.items()], results

    sums, results = _compiled(frame.sparkSession, ("pairs", spec_key, group.model_dump_json()), build)
    summed = pairs.groupBy("_p_id").agg(*sums)
    joined = frame.alias("_f").join(F.broadcast(summed), F.expr(f"_f.{row_id} = _p_id"), "left")  # one per wanted row
    return joined.select("_f.*", *results)


def sql_name(name: str) -> str:
    """A column name quoted for SQL text."""
    return "`" + name.replace("`", "``") + "`"


def _units_sql(aggregation: Aggregation, decimals: int) -> str:
    """SQL text of the aggregation's input in integer units (value * 10^decimals, rounded), as a long.

    Rounded half away from zero, as ROUND does, but without it: ROUND of a double goes through a BigDecimal of the
    double's decimal text (Double.toString), about 8% of the window stages' time in a profile of the 1.75M-row
    fraud_v1 build. RINT rounds to the nearest integer and halves to even, so an exact half (the difference is exact)
    takes the step away from zero instead. A double whose shortest decimal text ends in .5 is that half exactly, so
    the two give the same long for every input (unit test against ROUND on edge values).
    """
    if aggregation.on_label:  # the known label is already an integer (0 or 1)
        return f"CAST({sql_name(LABEL_KNOWN)} AS BIGINT)"
    scaled = f"({_aggregation_input_sql(aggregation)} * {10**decimals})"
    return (
        f"CAST(CASE WHEN abs({scaled} - rint({scaled})) = 0.5 THEN {scaled} + signum({scaled}) * 0.5 "
        f"ELSE rint({scaled}) END AS BIGINT)"
    )
