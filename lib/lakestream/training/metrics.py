"""Fraud-detection metrics of fraud-protocol.md section 3, on the driver (NumPy / pandas / scikit-learn).

- AUC ROC and Average Precision (scikit-learn, optionally weighted: see lakestream.training.evaluation for how
  evaluation sets larger than ``evaluation.max_collected_rows`` are reduced to all frauds plus a weighted
  genuine sample, which keeps both metrics unbiased);
- Card Precision@k exactly as the protocol defines it: per test day in order, cards detected on earlier days
  are dropped, each card gets its max score and max label, the top k cards are taken, CP = frauds / k, and the
  frauds found join the detected set; CP@k is the mean of the daily values. The book ranks with pandas'
  unstable quicksort, so its order among cards of equal score is unspecified; here ties are broken by card
  id (ascending), which is what a stable sort of the book's (card-ordered) table would give;
- precision, recall and alert rate at an alert threshold (an alert is score >= threshold);
- calibration: Brier score, reliability bins and the expected calibration error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from lakestream.errors import DataError

CARD_DAY_COLUMNS = ("day", "card", "score", "label")


@dataclass(frozen=True)
class DailyCardPrecision:
    """CP@k of one day: how many cards were ranked, how many were compromised, how many frauds in the top k."""

    day: str
    cards: int
    compromised_cards: int
    detected_cards: int
    precision: float


@dataclass(frozen=True)
class CardPrecisionResult:
    """Card Precision@k: the mean of the daily values, and the daily values in day order."""

    k: int
    mean: float
    daily: tuple[DailyCardPrecision, ...]

    @property
    def ceiling(self) -> float:
        """The best CP@k any model could reach on these days (compromised cards / k, capped at 1)."""
        if not self.daily:
            return float("nan")
        return float(np.mean([min(day.compromised_cards, self.k) / self.k for day in self.daily]))


@dataclass(frozen=True)
class ThresholdMetrics:
    """Confusion counts (weighted) and rates at one alert threshold; an alert is score >= threshold."""

    threshold: float
    alerts: float
    true_positives: float
    false_positives: float
    false_negatives: float
    precision: float  # 0 when there is no alert
    recall: float
    alert_rate: float


@dataclass(frozen=True)
class CalibrationBin:
    """One reliability bin [lower, upper): weighted count, mean predicted score, observed fraud rate."""

    lower: float
    upper: float
    count: float
    mean_score: float
    fraud_rate: float


@dataclass(frozen=True)
class Calibration:
    """Brier score, expected calibration error and the reliability bins (empty bins left out)."""

    brier_score: float
    expected_calibration_error: float
    bins: tuple[CalibrationBin, ...]


@dataclass(frozen=True)
class EvaluationResult:
    """Every metric of one scored evaluation set."""

    transactions: int
    frauds: int
    auc_roc: float
    average_precision: float
    card_precision: CardPrecisionResult
    at_threshold: ThresholdMetrics
    calibration: Calibration

    def metrics(self) -> dict[str, float]:
        """Flat metric names and values, as logged to MLflow and compared by the promotion gate."""
        k = self.card_precision.k
        return {
            "auc_roc": self.auc_roc,
            "average_precision": self.average_precision,
            f"card_precision_at_{k}": self.card_precision.mean,
            f"card_precision_at_{k}_ceiling": self.card_precision.ceiling,
            "precision_at_threshold": self.at_threshold.precision,
            "recall_at_threshold": self.at_threshold.recall,
            "alert_rate": self.at_threshold.alert_rate,
            "brier_score": self.calibration.brier_score,
            "expected_calibration_error": self.calibration.expected_calibration_error,
            "transactions": float(self.transactions),
            "frauds": float(self.frauds),
        }

    def to_dict(self) -> dict[str, object]:
        """Everything, JSON-ready (daily CP@k values and calibration bins included)."""
        return asdict(self)


def _checked(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if len(labels) != len(scores) or (weights is not None and len(weights) != len(labels)):
        raise DataError(f"scores ({len(scores)}), labels ({len(labels)}) and weights differ in length")
    if np.isnan(scores).any():
        raise DataError(f"{int(np.isnan(scores).sum())} scores are NaN; the model or its inputs are broken")
    return np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=float)


def _both_classes(labels: np.ndarray, metric: str) -> None:
    positives = int(np.sum(labels == 1))
    if positives == 0 or positives == len(labels):
        raise DataError(
            f"{metric} needs frauds and genuine transactions; the evaluation set has {positives} frauds out of "
            f"{len(labels)} rows: widen the evaluation window"
        )


def compute_auc_roc(labels: np.ndarray, scores: np.ndarray, *, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve (labels 0/1, higher score = more likely fraud)."""
    from sklearn.metrics import roc_auc_score

    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    _checked(labels, scores, weights)
    _both_classes(labels, "AUC ROC")
    return float(roc_auc_score(labels, scores, sample_weight=weights))


def compute_average_precision(labels: np.ndarray, scores: np.ndarray, *, weights: np.ndarray | None = None) -> float:
    """Average Precision: sum over thresholds of (recall step) x precision, as scikit-learn defines it."""
    from sklearn.metrics import average_precision_score

    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    _checked(labels, scores, weights)
    _both_classes(labels, "Average Precision")
    return float(average_precision_score(labels, scores, sample_weight=weights))


def compute_card_precision_at_k(card_days: pd.DataFrame, *, k: int = 100) -> CardPrecisionResult:
    """Card Precision@k over days; card_days has day, card, score, label at transaction or card-day grain."""
    if k < 1:
        raise DataError(f"card precision needs k >= 1, got {k}")
    missing = [column for column in CARD_DAY_COLUMNS if column not in card_days.columns]
    if missing:
        raise DataError(f"card precision input lacks columns {missing}; it needs {list(CARD_DAY_COLUMNS)}")
    per_card_day = card_days.groupby(["day", "card"], as_index=False).agg(
        score=("score", "max"), label=("label", "max")
    )
    detected: set[object] = set()
    daily = []
    for day, cards in per_card_day.groupby("day", sort=True):
        candidates = cards[~cards["card"].isin(detected)]
        ranked = candidates.sort_values(["score", "card"], ascending=[False, True], kind="mergesort")
        top = ranked.head(k)
        found = top.loc[top["label"] == 1, "card"].tolist()
        daily.append(
            DailyCardPrecision(
                day=str(day),
                cards=len(candidates),
                compromised_cards=int((candidates["label"] == 1).sum()),
                detected_cards=len(found),
                precision=len(found) / k,
            )
        )
        detected.update(found)
    mean = float(np.mean([day.precision for day in daily])) if daily else float("nan")
    return CardPrecisionResult(k=k, mean=mean, daily=tuple(daily))


def compute_threshold_metrics(
    labels: np.ndarray, scores: np.ndarray, *, threshold: float, weights: np.ndarray | None = None
) -> ThresholdMetrics:
    """Weighted confusion counts, precision, recall and alert rate of the alerts score >= threshold."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    weights = _checked(labels, scores, weights)
    alert = scores >= threshold
    fraud = labels == 1
    tp = float(weights[alert & fraud].sum())
    fp = float(weights[alert & ~fraud].sum())
    fn = float(weights[~alert & fraud].sum())
    total = float(weights.sum())
    return ThresholdMetrics(
        threshold=threshold,
        alerts=tp + fp,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=tp / (tp + fp) if tp + fp > 0 else 0.0,
        recall=tp / (tp + fn) if tp + fn > 0 else 0.0,
        alert_rate=(tp + fp) / total if total > 0 else 0.0,
    )


def compute_calibration(
    labels: np.ndarray, scores: np.ndarray, *, n_bins: int = 10, weights: np.ndarray | None = None
) -> Calibration:
    """Brier score and reliability over n_bins equal-width score bins on [0, 1] (the last bin includes 1)."""
    labels, scores = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    weights = _checked(labels, scores, weights)
    total = float(weights.sum())
    if total <= 0:
        raise DataError("calibration of an empty evaluation set")
    brier = float(np.sum(weights * (scores - labels) ** 2) / total)
    index = np.clip(np.floor(scores * n_bins).astype(int), 0, n_bins - 1)
    bins = []
    ece = 0.0
    for b in range(n_bins):
        member = index == b
        count = float(weights[member].sum())
        if count == 0:
            continue
        mean_score = float(np.sum(weights[member] * scores[member]) / count)
        fraud_rate = float(np.sum(weights[member] * labels[member]) / count)
        ece += count / total * abs(mean_score - fraud_rate)
        bins.append(CalibrationBin(b / n_bins, (b + 1) / n_bins, count, mean_score, fraud_rate))
    return Calibration(brier_score=brier, expected_calibration_error=float(ece), bins=tuple(bins))


def evaluate_scores(
    scores: pd.DataFrame,
    card_days: pd.DataFrame,
    *,
    k: int = 100,
    threshold: float = 0.5,
    calibration_bins: int = 10,
) -> EvaluationResult:
    """Every metric: scores has score, label (and optionally weight) per transaction; card_days feeds CP@k."""
    weights = scores["weight"].to_numpy(dtype=float) if "weight" in scores.columns else None
    labels = scores["label"].to_numpy()
    values = scores["score"].to_numpy(dtype=float)
    transactions = float(weights.sum()) if weights is not None else float(len(scores))
    frauds = float(weights[labels == 1].sum()) if weights is not None else float((labels == 1).sum())
    return EvaluationResult(
        transactions=round(transactions),
        frauds=round(frauds),
        auc_roc=compute_auc_roc(labels, values, weights=weights),
        average_precision=compute_average_precision(labels, values, weights=weights),
        card_precision=compute_card_precision_at_k(card_days, k=k),
        at_threshold=compute_threshold_metrics(labels, values, threshold=threshold, weights=weights),
        calibration=compute_calibration(labels, values, n_bins=calibration_bins, weights=weights),
    )


def summarize_folds(values: list[dict[str, float]]) -> dict[str, float]:
    """Mean and (population) standard deviation of each metric over folds: <name>_mean, <name>_std."""
    summary: dict[str, float] = {}
    for name in values[0] if values else []:
        column = [fold[name] for fold in values if not math.isnan(fold[name])]
        summary[f"{name}_mean"] = float(np.mean(column)) if column else float("nan")
        summary[f"{name}_std"] = float(np.std(column)) if column else float("nan")
    return summary
