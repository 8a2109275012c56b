"""Should monitoring ask for a retraining now, and as of which day? (pure; the job records the answer)

The closed loop: an active alert of a rule with ``retrain: true`` (on the champion's own windows, or on
data that is not about a model) asks for a new model. A new model learns only from labelled data, and
labels arrive ``delay_days`` late, so the request waits until the train window of a retraining *as of*
the monitored day holds ``min_drift_days_in_training`` days since the alert's condition began. With the
book's windows (train 7, delay 7, test 7) that is 21 + min days after the drift began; detection itself is
immediate (the alert), learning the new pattern is not. ``cooldown_days`` spaces requests, so a rejected
challenger is not retrained every day. A missing champion, or (when configured) a champion whose training
data is too far behind, also asks for a retraining. ``mode: off`` never asks; ``manual`` asks, and the
retraining run then waits for an operator to approve the promotion.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lakestream.config.models import RetrainingConfig, SplitConfig
from lakestream.monitoring.tables import Alert


@dataclass(frozen=True)
class RetrainingDecision:
    """Whether to request a retraining, why, and the newest day the retraining may use."""

    needed: bool
    reason: str
    as_of: dt.date | None
    mode: str
    champion_version: str | None = None
    since: dt.datetime | None = None
    alert_ids: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the asset event's extra, the job's summary)."""
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat() if self.as_of else None
        data["since"] = self.since.isoformat() if self.since else None
        data["alert_ids"] = list(self.alert_ids)
        return data


@dataclass(frozen=True)
class Champion:
    """The model in service: its version and the last day of its training window."""

    version: str
    train_end: dt.date | None


def last_training_day(as_of: dt.date, split: SplitConfig) -> dt.date:
    """The last train day of a training run --as-of the day (test window ends delay_days before it)."""
    test_end = as_of - dt.timedelta(days=split.delay_days)
    test_start = test_end - dt.timedelta(days=split.test_days - 1)
    return test_start - dt.timedelta(days=split.delay_days + 1)


def plan_retraining(
    active_alerts: Sequence[Alert],
    *,
    as_of: dt.date,
    champion: Champion | None,
    split: SplitConfig,
    policy: RetrainingConfig,
    last_request: dt.date | None,
    trainable: bool = True,
) -> RetrainingDecision:
    """The decision for one monitoring run whose newest monitored day is as_of (trainable: gold features exist)."""
    mode = policy.mode
    if mode == "off":
        return RetrainingDecision(False, "retraining is off (monitoring.retraining.mode)", None, mode)
    if champion is None:
        if not trainable:
            return RetrainingDecision(False, "no champion model yet, and no gold features to train on", None, mode)
        return RetrainingDecision(True, "no champion model yet", as_of, mode)
    version = champion.version
    if last_request is not None and (as_of - last_request).days < policy.cooldown_days:
        return RetrainingDecision(
            False,
            f"cooldown: a retraining was requested as of {last_request} (less than {policy.cooldown_days} days ago)",
            None,
            mode,
            version,
        )
    relevant = [a for a in active_alerts if a.retrain and a.model_version in (None, version)]
    if relevant:
        since = min(a.since for a in relevant)
        rules = sorted({a.rule for a in relevant})
        train_end = last_training_day(as_of, split)
        drifted = (train_end - since.date()).days + 1
        needed_days = policy.min_drift_days_in_training
        if drifted >= needed_days:
            return RetrainingDecision(
                True,
                f"rules {rules} in breach since {since:%Y-%m-%d %H:%M} on champion v{version}; a retraining as of "
                f"{as_of} trains until {train_end}, {drifted} day(s) into the change",
                as_of,
                mode,
                version,
                since,
                tuple(a.alert_id for a in relevant),
            )
        ready = as_of + dt.timedelta(days=needed_days - drifted)
        return RetrainingDecision(
            False,
            f"rules {rules} in breach since {since:%Y-%m-%d %H:%M} on champion v{version}; waiting for labels: a "
            f"retraining as of {as_of} would train until {train_end} ({max(drifted, 0)} of {needed_days} day(s) "
            f"into the change); it will be requested as of {ready}",
            None,
            mode,
            version,
            since,
            tuple(a.alert_id for a in relevant),
        )
    if policy.max_model_staleness_days is not None and champion.train_end is not None:
        behind = (last_training_day(as_of, split) - champion.train_end).days
        if behind > policy.max_model_staleness_days:
            return RetrainingDecision(
                True,
                f"champion v{version} trained until {champion.train_end}: {behind} labelled days behind",
                as_of,
                mode,
                version,
            )
    return RetrainingDecision(False, f"no retraining rule in breach on champion v{version}", None, mode, version)
