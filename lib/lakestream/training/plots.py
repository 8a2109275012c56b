"""Evaluation figures (matplotlib, Agg backend): ROC, precision-recall, CP@k per day, feature importance,
score distributions of frauds vs genuine transactions, reliability. Each function returns a Figure; the
caller logs it (mlflow.log_figure) and closes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lakestream.io.reports import new_figure
from lakestream.training.metrics import Calibration, CardPrecisionResult

if TYPE_CHECKING:
    import pandas as pd
    import xgboost as xgb
    from matplotlib.figure import Figure


def _weights(scores: pd.DataFrame) -> np.ndarray | None:
    return scores["weight"].to_numpy() if "weight" in scores.columns else None


def plot_roc(scores: pd.DataFrame, *, auc: float) -> Figure:
    """ROC curve of score vs label (weighted when the genuine rows were sampled)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(scores["label"], scores["score"], sample_weight=_weights(scores))
    fig, (ax,) = new_figure(1, width=5, height=4.5)
    ax.plot(fpr, tpr, label=f"AUC ROC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    return fig


def plot_precision_recall(scores: pd.DataFrame, *, average_precision: float) -> Figure:
    """Precision-recall curve, with the fraud rate as the no-skill line."""
    from sklearn.metrics import precision_recall_curve

    weights = _weights(scores)
    precision, recall, _ = precision_recall_curve(scores["label"], scores["score"], sample_weight=weights)
    base = float(np.average(scores["label"], weights=weights))
    fig, (ax,) = new_figure(1, width=5, height=4.5)
    ax.step(recall, precision, where="post", label=f"AP = {average_precision:.3f}")
    ax.axhline(base, linestyle="--", color="grey", linewidth=0.8, label=f"fraud rate {base:.4f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return fig


def plot_card_precision(card_precision: CardPrecisionResult) -> Figure:
    """Daily CP@k bars with the daily ceiling (compromised cards / k) and the mean."""
    days = [day.day for day in card_precision.daily]
    values = [day.precision for day in card_precision.daily]
    ceiling = [min(day.compromised_cards, card_precision.k) / card_precision.k for day in card_precision.daily]
    fig, (ax,) = new_figure(1, width=7, height=3.6)
    positions = np.arange(len(days))
    ax.bar(positions, values, color="#335", label=f"CP@{card_precision.k} (mean {card_precision.mean:.3f})")
    ax.plot(positions, ceiling, "o--", color="#c33", label="ceiling (compromised cards / k)")
    ax.set_xticks(positions, days, rotation=45, ha="right")
    ax.set(ylabel=f"card precision @ {card_precision.k}", title="Card precision per day", ylim=(0, 1))
    ax.legend(loc="upper right")
    return fig


def plot_feature_importance(booster: xgb.Booster, *, importance_type: str = "gain", top: int = 30) -> Figure:
    """Horizontal bars of the booster's feature importance (total gain by default)."""
    importance = booster.get_score(importance_type=importance_type)
    ranked = sorted(importance.items(), key=lambda item: item[1])[-top:]
    fig, (ax,) = new_figure(1, width=7, height=max(2.5, 0.28 * len(ranked) + 1))
    ax.barh([name for name, _ in ranked], [value for _, value in ranked], color="#335")
    ax.set(xlabel=importance_type, title=f"Feature importance ({importance_type})")
    return fig


def plot_score_distributions(scores: pd.DataFrame, *, bins: int = 50) -> Figure:
    """Histograms (density, log scale) of the scores of frauds and of genuine transactions."""
    fig, (ax,) = new_figure(1, width=7, height=3.6)
    edges = np.linspace(0, 1, bins + 1)
    weights = _weights(scores)
    for label, name, color in ((0, "genuine", "#335"), (1, "fraud", "#c33")):
        member = scores["label"].to_numpy() == label
        ax.hist(
            scores["score"].to_numpy()[member],
            bins=edges,
            density=True,
            alpha=0.55,
            color=color,
            label=name,
            weights=None if weights is None else weights[member],
        )
    ax.set_yscale("log")
    ax.set(xlabel="score", ylabel="density", title="Score distribution: frauds vs genuine")
    ax.legend(loc="upper center")
    return fig


def plot_reliability(calibration: Calibration) -> Figure:
    """Reliability diagram: observed fraud rate vs mean predicted score per bin."""
    fig, (ax,) = new_figure(1, width=5, height=4.5)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.plot(
        [b.mean_score for b in calibration.bins],
        [b.fraud_rate for b in calibration.bins],
        "o-",
        color="#335",
        label=f"Brier {calibration.brier_score:.4f}, ECE {calibration.expected_calibration_error:.4f}",
    )
    ax.set(xlabel="mean predicted score", ylabel="observed fraud rate", title="Reliability", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    return fig
