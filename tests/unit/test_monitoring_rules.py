"""Monitoring rules (fire / do not fire, minimum samples, consecutive breaches) and the retraining plan."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from lakestream.config.models import MonitoringRule, RetrainingConfig, SplitConfig
from lakestream.monitoring.retraining import Champion, last_training_day, plan_retraining
from lakestream.monitoring.rules import evaluate_rules
from lakestream.monitoring.tables import MetricRow

DAY0 = dt.datetime(2018, 5, 1)


def day_row(day: int, value: float | None, *, samples: int = 1000, **overrides: Any) -> MetricRow:
    fields: dict[str, Any] = {
        "window_start": DAY0 + dt.timedelta(days=day),
        "window_end": DAY0 + dt.timedelta(days=day + 1),
        "granularity": "day",
        "family": "feature_drift",
        "metric": "psi",
        "dimension": "tx_amount",
        "value": value,
        "sample_size": samples,
        "model_version": "3",
    }
    fields.update(overrides)
    return MetricRow(**fields)


def rule(**overrides: Any) -> MonitoringRule:
    return MonitoringRule.model_validate({"family": "feature_drift", "metric": "psi", "above": 0.25, **overrides})


def test_a_value_above_the_threshold_fires_and_says_how_far_and_since_when() -> None:
    outcome = evaluate_rules([day_row(0, 0.1), day_row(1, 0.4)], {"drift": rule()}, judge_from=DAY0)
    (alert,) = outcome.alerts
    assert (alert.rule, alert.dimension, alert.model_version) == ("drift", "tx_amount", "3")
    assert alert.value == 0.4
    assert alert.excess == pytest.approx(0.15)
    assert alert.since == DAY0 + dt.timedelta(days=1)
    assert alert.breaches == 1
    assert "feature_drift.psi[tx_amount] = 0.4 > 0.25" in alert.message
    assert "since 2018-05-02 00:00" in alert.message
    assert outcome.active == [alert]


def test_values_at_or_below_the_threshold_do_not_fire() -> None:
    outcome = evaluate_rules([day_row(0, 0.25), day_row(1, 0.1)], {"drift": rule()}, judge_from=DAY0)
    assert outcome.alerts == []


def test_windows_below_the_minimum_sample_are_not_judged() -> None:
    rows = [day_row(0, 0.9, samples=499), day_row(1, 0.9, samples=500)]
    outcome = evaluate_rules(rows, {"drift": rule(min_samples=500)}, judge_from=DAY0)
    assert [a.window_start.day for a in outcome.alerts] == [2]


def test_consecutive_breaches_are_needed_and_the_run_remembers_its_start() -> None:
    rows = [day_row(0, 0.5), day_row(1, 0.1), day_row(2, 0.5), day_row(3, 0.6), day_row(4, 0.7)]
    outcome = evaluate_rules(rows, {"drift": rule(consecutive=2)}, judge_from=DAY0)
    assert [(a.window_start.day, a.breaches, a.since.day) for a in outcome.alerts] == [(4, 2, 3), (5, 3, 3)]
    assert outcome.active[0].window_start.day == 5


def test_a_gap_between_windows_breaks_a_run() -> None:
    rows = [day_row(0, 0.5), day_row(2, 0.5)]  # day 1 missing: not consecutive
    assert evaluate_rules(rows, {"drift": rule(consecutive=2)}, judge_from=DAY0).alerts == []


def test_a_small_window_in_the_middle_breaks_a_run() -> None:
    rows = [day_row(0, 0.5), day_row(1, 0.5, samples=10), day_row(2, 0.5)]
    assert evaluate_rules(rows, {"drift": rule(consecutive=2, min_samples=100)}, judge_from=DAY0).alerts == []


def test_relative_rules_compare_with_the_reference() -> None:
    rows = [
        day_row(0, 0.30, family="performance", metric="average_precision", dimension="", reference=0.5),
        day_row(1, 0.45, family="performance", metric="average_precision", dimension="", reference=0.5),
    ]
    drop = rule(family="performance", metric="average_precision", above=None, below=-0.1, relative_to_reference=True)
    (alert,) = evaluate_rules(rows, {"ap_drop": drop}, judge_from=DAY0).alerts
    assert alert.window_start == DAY0
    assert alert.compared == pytest.approx(-0.2)
    assert alert.excess == pytest.approx(0.1)
    assert "-0.2 vs reference 0.5 < -0.1" in alert.message


def test_series_are_per_dimension_and_model_version_and_filtered_by_rule() -> None:
    rows = [
        day_row(0, 0.5),
        day_row(0, 0.5, dimension="tx_during_night"),
        day_row(0, 0.5, model_version="4"),
        day_row(0, 0.5, granularity="hour"),  # another granularity: not this rule's series
        day_row(0, 0.5, metric="js"),
    ]
    outcome = evaluate_rules(rows, {"drift": rule(dimensions=["tx_amount"])}, judge_from=DAY0)
    assert sorted((a.dimension, a.model_version) for a in outcome.alerts) == [("tx_amount", "3"), ("tx_amount", "4")]


def test_only_windows_from_judge_from_raise_but_earlier_ones_extend_the_run() -> None:
    rows = [day_row(0, 0.5), day_row(1, 0.5), day_row(2, 0.5)]
    outcome = evaluate_rules(rows, {"drift": rule(consecutive=3)}, judge_from=DAY0 + dt.timedelta(days=2))
    (alert,) = outcome.alerts
    assert (alert.window_start.day, alert.since.day, alert.breaches) == (3, 1, 3)


def test_an_alert_is_no_longer_active_once_its_series_recovers() -> None:
    outcome = evaluate_rules([day_row(0, 0.5), day_row(1, 0.1)], {"drift": rule()}, judge_from=DAY0)
    assert len(outcome.alerts) == 1
    assert outcome.active == []


def test_alert_ids_are_stable_across_reruns() -> None:
    rows = [day_row(0, 0.5)]
    first = evaluate_rules(rows, {"drift": rule()}, judge_from=DAY0).alerts[0].alert_id
    assert evaluate_rules(rows, {"drift": rule()}, judge_from=DAY0).alerts[0].alert_id == first


def test_a_rule_needs_exactly_one_threshold() -> None:
    with pytest.raises(ValueError, match="exactly one of 'above' or 'below'"):
        MonitoringRule.model_validate({"family": "feature_drift", "metric": "psi"})
    with pytest.raises(ValueError, match="exactly one"):
        MonitoringRule.model_validate({"family": "feature_drift", "metric": "psi", "above": 1, "below": 0})


# ------------------------------------------------------------------------------------------------ retraining

SPLIT = SplitConfig(train_days=7, delay_days=7, test_days=7)
POLICY = RetrainingConfig(min_drift_days_in_training=3, cooldown_days=7)


def drift_alert(since: dt.date, *, version: str | None = "3", retrain: bool = True) -> Any:
    start = dt.datetime.combine(since, dt.time())
    (alert,) = evaluate_rules(
        [day_row(0, 0.9, model_version=version, window_start=start, window_end=start + dt.timedelta(days=1))],
        {"drift": rule(retrain=retrain)},
        judge_from=start,
    ).alerts
    return alert


def test_the_last_training_day_of_a_retraining_is_two_delays_and_a_test_window_back() -> None:
    # as of 08-21: test 08-08..08-14, train ends 08-14 - 7 - 7 + ... = 07-31 (the book's split)
    assert last_training_day(dt.date(2018, 8, 21), SPLIT) == dt.date(2018, 7, 31)


def test_a_drift_alert_waits_until_the_train_window_holds_enough_drifted_days() -> None:
    since = dt.date(2018, 7, 1)
    early = plan_retraining(
        [drift_alert(since)],
        as_of=dt.date(2018, 7, 2),
        champion=Champion("3", None),
        split=SPLIT,
        policy=POLICY,
        last_request=None,
    )
    assert not early.needed
    assert "waiting for labels" in early.reason
    assert "requested as of 2018-07-24" in early.reason
    ready = plan_retraining(
        [drift_alert(since)],
        as_of=dt.date(2018, 7, 24),
        champion=Champion("3", None),
        split=SPLIT,
        policy=POLICY,
        last_request=None,
    )
    assert ready.needed
    assert ready.as_of == dt.date(2018, 7, 24)
    assert last_training_day(dt.date(2018, 7, 24), SPLIT) == dt.date(2018, 7, 3)  # 07-01..07-03: 3 drifted days


def test_alerts_of_an_older_model_or_rules_without_retrain_do_not_ask() -> None:
    alerts = [drift_alert(dt.date(2018, 7, 1), version="2"), drift_alert(dt.date(2018, 7, 1), retrain=False)]
    decision = plan_retraining(
        alerts, as_of=dt.date(2018, 8, 1), champion=Champion("3", None), split=SPLIT, policy=POLICY, last_request=None
    )
    assert not decision.needed


def test_a_request_inside_the_cooldown_is_not_repeated() -> None:
    decision = plan_retraining(
        [drift_alert(dt.date(2018, 7, 1))],
        as_of=dt.date(2018, 8, 1),
        champion=Champion("3", None),
        split=SPLIT,
        policy=POLICY,
        last_request=dt.date(2018, 7, 28),
    )
    assert not decision.needed
    assert decision.reason.startswith("cooldown")


def test_no_champion_asks_and_off_never_asks() -> None:
    kwargs = {"as_of": dt.date(2018, 8, 1), "split": SPLIT, "last_request": None}
    assert plan_retraining([], champion=None, policy=POLICY, **kwargs).needed
    off = RetrainingConfig(mode="off")
    assert not plan_retraining([drift_alert(dt.date(2018, 7, 1))], champion=None, policy=off, **kwargs).needed


def test_a_stale_champion_asks_when_configured() -> None:
    stale = RetrainingConfig(max_model_staleness_days=7)
    kwargs = {"as_of": dt.date(2018, 8, 21), "split": SPLIT, "last_request": None}
    assert plan_retraining([], champion=Champion("3", dt.date(2018, 7, 20)), policy=stale, **kwargs).needed
    assert not plan_retraining([], champion=Champion("3", dt.date(2018, 7, 28)), policy=stale, **kwargs).needed
    assert not plan_retraining([], champion=Champion("3", dt.date(2018, 7, 20)), policy=POLICY, **kwargs).needed


def test_excluded_dimensions_are_never_judged() -> None:
    rows = [day_row(0, 3.0, dimension="TX_DURING_WEEKEND"), day_row(0, 0.5)]
    outcome = evaluate_rules(rows, {"drift": rule(exclude_dimensions=["TX_DURING_WEEKEND"])}, judge_from=DAY0)
    assert [a.dimension for a in outcome.alerts] == ["tx_amount"]


def test_no_champion_and_nothing_to_train_on_does_not_ask() -> None:
    decision = plan_retraining(
        [], as_of=dt.date(2018, 8, 1), champion=None, split=SPLIT, policy=POLICY, last_request=None, trainable=False
    )
    assert not decision.needed
    assert "no gold features" in decision.reason
