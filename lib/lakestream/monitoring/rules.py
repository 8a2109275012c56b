"""Rules over the monitoring metrics: thresholds, minimum samples and consecutive breaches -> alerts (pure).

A rule (``monitoring.rules.<name>`` in configuration) selects a series of metric rows: one family, metric and
granularity, per dimension (feature, reason) and model version. Walking a series in time:

- a window with fewer than ``min_samples`` samples (or no value) is not judged and breaks a run of breaches;
- a judged window breaches when its value (or value - reference, for ``relative_to_reference`` rules) is
  above ``above`` / below ``below``;
- consecutive means adjacent windows (the next hour, the next day): a gap breaks the run too;
- each breaching window whose run has reached ``consecutive`` windows raises an alert, which says which
  metric, by how much, and since when (the run's first window).

An alert is *active* when it is on the newest judged window of its series: the condition still holds.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from lakestream.config.models import MonitoringRule
from lakestream.monitoring.tables import Alert, MetricRow, build_alert_id


@dataclass(frozen=True)
class RuleOutcome:
    """What the rules found: every alert of the judged range, and which of them are still active."""

    alerts: list[Alert]
    active: list[Alert]


def _judged_value(row: MetricRow, rule: MonitoringRule) -> float | None:
    if row.value is None or row.sample_size < rule.min_samples:
        return None
    if rule.relative_to_reference:
        if row.reference is None:
            return None
        return row.value - row.reference
    return row.value


def _breach(compared: float, rule: MonitoringRule) -> tuple[bool, float, float, str]:
    """(breached?, threshold, excess, direction)."""
    if rule.above is not None:
        return compared > rule.above, rule.above, compared - rule.above, "above"
    below = cast(float, rule.below)  # MonitoringRule's validator guarantees exactly one threshold
    return compared < below, below, below - compared, "below"


def _describe(name: str, rule: MonitoringRule, row: MetricRow, *, compared: float, since: dt.datetime, run: int) -> str:
    what = f"{rule.family}.{rule.metric}" + (f"[{row.dimension}]" if row.dimension else "")
    judged = f"{compared:+.4g} vs reference {row.reference:.4g}" if rule.relative_to_reference else f"{compared:.4g}"
    threshold = rule.above if rule.above is not None else rule.below
    sign = ">" if rule.above is not None else "<"
    model = f", model v{row.model_version}" if row.model_version else ""
    return (
        f"{name}: {what} = {judged} {sign} {threshold:g} in the {row.granularity} from "
        f"{row.window_start:%Y-%m-%d %H:%M} (n={row.sample_size}{model}); "
        f"{run} consecutive {row.granularity}(s) since {since:%Y-%m-%d %H:%M}"
    )


def evaluate_rules(
    rows: Iterable[MetricRow], rules: Mapping[str, MonitoringRule], *, judge_from: dt.datetime
) -> RuleOutcome:
    """Alerts of the windows starting at or after judge_from (earlier rows only extend runs of breaches)."""
    rows = list(rows)
    alerts: list[Alert] = []
    active: list[Alert] = []
    for name, rule in rules.items():
        series: dict[tuple[str, str | None], list[MetricRow]] = defaultdict(list)
        for row in rows:
            if (row.family, row.metric, row.granularity) != (rule.family, rule.metric, rule.granularity):
                continue
            if rule.dimensions is not None and row.dimension not in rule.dimensions:
                continue
            if row.dimension in rule.exclude_dimensions:
                continue
            series[(row.dimension, row.model_version)].append(row)
        for (dimension, version), members in series.items():
            members.sort(key=lambda r: r.window_start)
            run, since = 0, members[0].window_start
            previous_end: dt.datetime | None = None
            last_judged: MetricRow | None = None
            series_alerts: list[Alert] = []
            for row in members:
                compared = _judged_value(row, rule)
                if compared is None:
                    run, previous_end = 0, row.window_end
                    continue
                last_judged = row
                breached, threshold, excess, direction = _breach(compared, rule)
                if not breached:
                    run, previous_end = 0, row.window_end
                    continue
                adjacent = previous_end is not None and row.window_start == previous_end
                run = run + 1 if adjacent and run > 0 else 1
                if run == 1:
                    since = row.window_start
                previous_end = row.window_end
                if run < rule.consecutive or row.window_start < judge_from:
                    continue
                series_alerts.append(
                    Alert(
                        alert_id=build_alert_id(name, dimension, version, rule.granularity, row.window_start),
                        rule=name,
                        family=rule.family,
                        metric=rule.metric,
                        dimension=dimension,
                        model_version=version,
                        granularity=rule.granularity,
                        window_start=row.window_start,
                        window_end=row.window_end,
                        since=since,
                        breaches=run,
                        value=float(cast(float, row.value)),
                        compared=float(compared),
                        reference=row.reference,
                        threshold=float(threshold),
                        direction=direction,
                        excess=float(excess),
                        sample_size=int(row.sample_size),
                        severity=rule.severity,
                        retrain=rule.retrain,
                        message=_describe(name, rule, row, compared=compared, since=since, run=run),
                    )
                )
            alerts += series_alerts
            if series_alerts and last_judged is not None and series_alerts[-1].window_start == last_judged.window_start:
                active.append(series_alerts[-1])
    alerts.sort(key=lambda a: (a.window_start, a.rule, a.dimension))
    return RuleOutcome(alerts, active)
