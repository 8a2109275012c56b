"""The champion/challenger gate: a challenger becomes champion only if it beats the champion on the same window.

Both versions are scored on the same, most recent evaluation window (the protocol's test set: the last
``promotion.eval_days`` days whose labels are complete, known compromised cards removed), each from the gold
table of its own feature set. The challenger is promoted when every check passes:

- sanity: AUC >= ``min_auc``; scores are not constant; alert rate (share at or above the review threshold) within
  [``min_alert_rate``, ``max_alert_rate``];
- against a champion (skipped for the first model): AP >= champion AP + ``ap_margin``, CP@k >= champion CP@k +
  ``card_precision_margin``, AUC >= champion AUC - ``auc_tolerance``, and strictly better on AP or CP@k (a copy
  of the champion is not a promotion).

``force`` promotes whatever the checks say (operators), and says so. Every decision is recorded on the
challenger version (tags ``lakestream.promotion.*`` and a line in its description); aliases, never stages.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lakestream.config.models import LakestreamConfig, PromotionConfig
from lakestream.errors import ConfigError, DataError
from lakestream.registry.models import CHALLENGER, CHAMPION, find_version_by_alias, load_model_version, resolve_version

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pyspark.sql import SparkSession

    from lakestream.registry.models import LoadedModel
    from lakestream.training.splits import TimeSplit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of one gate run, as recorded on the challenger version."""

    promoted: bool
    forced: bool
    reason: str
    checks: dict[str, bool]
    challenger_version: str
    champion_version: str | None
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    window: dict[str, Any]

    @property
    def outcome(self) -> str:
        """promoted, forced or rejected."""
        if self.forced and not all(self.checks.values()):
            return "forced"
        return "promoted" if self.promoted else "rejected"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**asdict(self), "outcome": self.outcome}


def decide_promotion(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    *,
    policy: PromotionConfig,
    k: int,
    force: bool = False,
) -> tuple[bool, str, dict[str, bool]]:
    """(promote?, reason, checks) from the two models' metrics on the same window; pure."""
    cp = f"card_precision_at_{k}"
    checks = {
        "auc_above_floor": challenger["auc_roc"] >= policy.min_auc,
        "scores_vary": challenger.get("score_std", 1.0) > 0.0,
        "alert_rate_in_bounds": policy.min_alert_rate <= challenger["alert_rate"] <= policy.max_alert_rate,
    }
    if champion is not None:
        ap_delta = challenger["average_precision"] - champion["average_precision"]
        cp_delta = challenger[cp] - champion[cp]
        checks.update(
            {
                "ap_margin": ap_delta >= policy.ap_margin,
                "card_precision_margin": cp_delta >= policy.card_precision_margin,
                "auc_within_tolerance": challenger["auc_roc"] >= champion["auc_roc"] - policy.auc_tolerance,
                "improves_on_champion": ap_delta > 0 or cp_delta > 0,
            }
        )
    failed = [name for name, ok in checks.items() if not ok]
    if champion is None:
        summary = "no champion yet"
    else:
        summary = (
            f"AP {challenger['average_precision']:.4f} vs {champion['average_precision']:.4f}, "
            f"CP@{k} {challenger[cp]:.4f} vs {champion[cp]:.4f}, AUC {challenger['auc_roc']:.4f} vs "
            f"{champion['auc_roc']:.4f}"
        )
    if not failed:
        return True, f"all checks passed ({summary})", checks
    if force:
        return True, f"forced by operator despite failed checks {failed} ({summary})", checks
    return False, f"failed checks {failed} ({summary})", checks


def evaluation_window(config: LakestreamConfig, *, end: dt.date) -> TimeSplit:
    """The split whose test window is the eval_days ending on `end` (its train part only feeds card removal)."""
    from lakestream.training.splits import build_time_split

    split = config.training.split
    days = config.training.promotion.eval_days
    test_start = end - dt.timedelta(days=days - 1)
    return build_time_split(
        train_start=test_start - dt.timedelta(days=split.delay_days + split.train_days),
        train_days=split.train_days,
        delay_days=split.delay_days,
        test_days=days,
        name="promotion_window",
    )


def latest_complete_day(spark: SparkSession, config: LakestreamConfig, model: LoadedModel) -> dt.date:
    """The last feature day whose labels are complete: the newest gold day minus the label delay."""
    from pyspark.sql import functions as F  # noqa: N812

    from lakestream.features.store import feature_table_path
    from lakestream.io.delta import is_delta_table, read_delta

    path = feature_table_path(config, model.feature_spec)
    if not is_delta_table(path):
        raise DataError(f"no feature table at {path} for {model.name} v{model.version}")
    newest = read_delta(spark, path).agg(F.max("tx_date")).first()[0]
    if newest is None:
        raise DataError(f"{path} is empty: build features before evaluating models")
    return newest - dt.timedelta(days=config.training.split.delay_days)


def evaluate_model_on_window(
    spark: SparkSession, config: LakestreamConfig, model: LoadedModel, *, window: TimeSplit
) -> dict[str, float]:
    """The model's metrics (and score spread) on the window's test rows, from its own feature table."""
    from lakestream.scoring.batch import score_with_booster
    from lakestream.training.dataset import read_labelled_features
    from lakestream.training.evaluation import evaluate_scored
    from lakestream.training.splits import select_test

    labelled, _ = read_labelled_features(
        spark, config, model.feature_spec, start=window.train_start, end=window.test_end
    )
    scored = score_with_booster(
        select_test(labelled, split=window), model_bytes=model.raw_bytes, features=model.feature_names
    )
    evaluation = evaluate_scored(
        scored, evaluation=config.training.evaluation, threshold=config.training.scoring.review_threshold
    )
    metrics = evaluation.result.metrics()
    metrics["score_std"] = float(evaluation.scores["score"].std(ddof=0))
    return metrics


def record_decision(client: MlflowClient, name: str, decision: PromotionDecision) -> None:
    """Tag the challenger version with the decision, append it to its description, move the champion alias."""
    version = decision.challenger_version
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    tags = {
        "lakestream.promotion.outcome": decision.outcome,
        "lakestream.promotion.reason": decision.reason[:4900],
        "lakestream.promotion.decided_at": now,
        "lakestream.promotion.window": json.dumps(decision.window),
        "lakestream.promotion.champion_version": decision.champion_version or "none",
        "lakestream.promotion.checks": json.dumps(decision.checks),
        "lakestream.promotion.challenger_metrics": json.dumps(_rounded(decision.challenger_metrics)),
        "lakestream.promotion.champion_metrics": json.dumps(_rounded(decision.champion_metrics or {})),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    current = client.get_model_version(name, version).description or ""
    line = f"[{now}] promotion {decision.outcome}: {decision.reason}"
    client.update_model_version(name, version, description=f"{current}\n{line}".strip())
    if decision.promoted:
        if decision.champion_version is not None:
            client.set_model_version_tag(name, decision.champion_version, "lakestream.promotion.replaced_by", version)
        client.set_registered_model_alias(name, CHAMPION, version)
    logger.info("%s v%s: %s (%s)", name, version, decision.outcome, decision.reason)


def promote_challenger(
    spark: SparkSession,
    config: LakestreamConfig,
    *,
    challenger: str = CHALLENGER,
    window_end: dt.date | None = None,
    force: bool = False,
) -> PromotionDecision:
    """Evaluate challenger and champion on the same most recent window, decide, record, move the alias."""
    from mlflow import MlflowClient

    from lakestream.registry.tracking import configure_mlflow

    configure_mlflow(config)
    client = MlflowClient()
    name = config.mlflow.registered_model
    challenger_version = resolve_version(client, name, challenger)
    champion_version = find_version_by_alias(client, name, CHAMPION)
    if champion_version is not None and str(champion_version.version) == str(challenger_version.version):
        raise ConfigError(f"{name} v{challenger_version.version} is already the champion; nothing to promote")
    challenger_model = load_model_version(client, config, challenger_version)
    champion_model = load_model_version(client, config, champion_version) if champion_version is not None else None
    end = window_end or latest_complete_day(spark, config, challenger_model)
    window = evaluation_window(config, end=end)
    trained_until = challenger_model.tags.get("lakestream.train_end")
    if trained_until is not None and dt.date.fromisoformat(trained_until) >= window.test_start:
        raise ConfigError(
            f"the evaluation window {window.test_start}..{window.test_end} overlaps the training data of "
            f"{name} v{challenger_model.version} (trained until {trained_until}); pass a later --window-end"
        )
    challenger_metrics = evaluate_model_on_window(spark, config, challenger_model, window=window)
    champion_metrics = (
        evaluate_model_on_window(spark, config, champion_model, window=window) if champion_model is not None else None
    )
    promote, reason, checks = decide_promotion(
        challenger_metrics,
        champion_metrics,
        policy=config.training.promotion,
        k=config.training.evaluation.top_k,
        force=force,
    )
    decision = PromotionDecision(
        promoted=promote,
        forced=force,
        reason=reason,
        checks=checks,
        challenger_version=challenger_model.version,
        champion_version=champion_model.version if champion_model is not None else None,
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
        window={"start": window.test_start.isoformat(), "end": window.test_end.isoformat()},
    )
    record_decision(client, name, decision)
    return decision


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 5) for key, value in metrics.items()}
