"""A brute-force reference of the feature spec semantics in plain Python: O(n^2), obviously right.

Used by the golden tests to check the Spark engine (and later the streaming engine) row by row.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from lakestream.features.spec import DELAYED_EDGE_KINDS, SECONDS_PER_DAY, FeatureSetSpec, RowFeature

Row = dict[str, Any]


def _epoch(value: dt.datetime) -> int:
    return int(value.replace(tzinfo=dt.UTC).timestamp())


def reference_features(rows: list[Row], spec: FeatureSetSpec) -> dict[int, Row]:
    """transaction id -> {feature name: value} for every row."""
    src = spec.source
    label_delay = round(spec.label_delay_days * SECONDS_PER_DAY)
    ts = {r[src.id]: _epoch(r[src.timestamp]) for r in rows}

    def known(r: Row) -> int:
        reported = r.get(src.label_reported_at)
        if r.get(src.label) != 1 or reported is None:
            return 0
        return int(_epoch(reported) <= ts[r[src.id]] + label_delay)

    row_values: dict[int, Row] = {}  # every row's row features: window aggregations may read them
    for row in rows:
        own: Row = {}
        for feature in spec.row_features:
            own[feature.name] = _row_value(feature, row, own, spec)
        row_values[row[src.id]] = own

    out: dict[int, Row] = {}
    for row in rows:
        rid, t = row[src.id], ts[row[src.id]]
        values: Row = dict(row_values[rid])
        for group in spec.windows:
            delay = round(group.delay_days * SECONDS_PER_DAY)
            peers = [r for r in rows if r[group.entity] == row[group.entity]]
            for window_days, agg, name in group.expanded():
                width = round(window_days * SECONDS_PER_DAY)
                if delay > 0 and agg.agg in DELAYED_EDGE_KINDS:
                    inside = [r for r in peers if t - delay - width < ts[r[src.id]] <= t - delay]
                    values[name] = _delayed_edge(agg, t, inside, ts=ts, known=known, id_column=src.id)
                    continue
                if agg.agg in {"time_since_last", "last"}:
                    earlier = [r for r in peers if (ts[r[src.id]], r[src.id]) < (t, rid)]
                    previous = max(earlier, key=lambda r: (ts[r[src.id]], r[src.id]), default=None)
                    gap = None if previous is None else t - ts[previous[src.id]]
                    value: Any = None
                    if gap is not None and gap < width:
                        value = float(gap) if agg.agg == "time_since_last" else previous[agg.column]
                    values[name] = agg.default if value is None else value
                    continue
                selected = []
                for r in peers:
                    s, sid = ts[r[src.id]], r[src.id]
                    if delay > 0:
                        inside = t - delay - width < s <= t - delay
                    else:
                        inside = t - width < s <= t
                        if inside and s == t and group.ties == "earlier_only":
                            inside = sid <= rid
                        if inside and sid == rid and not group.include_current:
                            inside = False
                    if inside:
                        selected.append(r)
                if agg.on_label:
                    data = [float(known(r)) for r in selected]
                elif agg.column is not None:
                    data = [
                        float(
                            r[agg.column]
                            if agg.column in r
                            else row_values[r[src.id]].get(agg.column, values.get(agg.column))
                        )
                        for r in selected
                    ]
                else:
                    data = [1.0] * len(selected)
                values[name] = _aggregate(agg.agg, data, agg.default)
        for feature in spec.derived_features:
            values[feature.name] = _row_value(feature, row, values, spec)
        out[rid] = values
    return out


def _delayed_edge(agg: Any, t: int, inside: list[Row], *, ts: dict, known: Any, id_column: str) -> Any:
    """last / time_since_last / time_since_first over the rows of a delayed window (known frauds with on_label)."""
    if agg.on_label and agg.agg != "last":
        inside = [r for r in inside if known(r)]
    if not inside:
        return agg.default
    order = sorted(inside, key=lambda r: (ts[r[id_column]], r[id_column]))
    pick = order[0] if agg.agg == "time_since_first" else order[-1]
    if agg.agg == "last":
        return float(known(pick)) if agg.on_label else float(pick[agg.column])
    return float(t - ts[pick[id_column]])


def _aggregate(kind: str, data: list[float], default: float | None) -> Any:
    if kind == "count":
        return len(data)
    if not data:
        return default
    if kind == "sum":
        return sum(data)
    if kind == "mean":
        return sum(data) / len(data)
    if kind == "min":
        return min(data)
    if kind == "max":
        return max(data)
    if kind == "stddev":
        if len(data) < 2:
            return default
        mean = sum(data) / len(data)
        return math.sqrt(sum((x - mean) ** 2 for x in data) / (len(data) - 1))
    raise ValueError(kind)


def _row_value(feature: RowFeature, row: Row, values: Row, spec: FeatureSetSpec) -> Any:
    ts: dt.datetime = row[spec.source.timestamp]

    def get(name: str | None) -> Any:
        return values[name] if name in values else row[name]

    if feature.kind == "is_weekend":
        return int(ts.weekday() >= 5)
    if feature.kind == "is_night":
        return int(ts.hour <= feature.night_end_hour)
    if feature.kind == "hour_of_day":
        return ts.hour
    if feature.kind == "copy":
        return get(feature.column)
    if feature.kind == "ratio":
        denominator = get(feature.denominator)
        return get(feature.column) / denominator if denominator else feature.default
    std = get(feature.std)
    mean = get(feature.mean)
    return (get(feature.column) - mean) / std if std and std > 0 and mean is not None else feature.default
