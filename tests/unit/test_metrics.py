"""Metrics of the fraud protocol on tiny hand-built data: every expected value is computed by hand.

The CP@k fixture looks like the output of a depth-2 decision tree (four leaf scores, so many ties) over three
test days, and exercises the detected-card carry-over, per-card max score / max label, card-id tie-breaking
and a day with fewer cards than k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from lakestream.errors import DataError
from lakestream.training.metrics import (
    compute_auc_roc,
    compute_average_precision,
    compute_calibration,
    compute_card_precision_at_k,
    compute_threshold_metrics,
    evaluate_scores,
    summarize_folds,
)

# leaves of a depth-2 tree
HIGH, MID, LOW, NONE = 0.9, 0.6, 0.2, 0.01


def tree_like_transactions() -> pd.DataFrame:
    """(day, card, score, label) per transaction; cards are ints, deliberately not in id order."""
    rows = [
        # day 1: per card max -> 2:(0.9,0) 3:(0.6,0) 1:(0.6,1) 4:(0.2,1) 5:(0.01,0)
        ("2018-08-08", 3, MID, 0),
        ("2018-08-08", 1, MID, 1),
        ("2018-08-08", 1, LOW, 0),
        ("2018-08-08", 2, HIGH, 0),
        ("2018-08-08", 4, LOW, 1),
        ("2018-08-08", 5, NONE, 0),
        # day 2: card 1 was detected on day 1 and is dropped although it has the top score
        ("2018-08-09", 1, HIGH, 1),
        ("2018-08-09", 6, MID, 0),
        ("2018-08-09", 4, MID, 1),
        ("2018-08-09", 3, MID, 1),
        ("2018-08-09", 2, LOW, 0),
        ("2018-08-09", 5, NONE, 0),
        # day 3: cards 3 and 4 detected on day 2 are dropped; card 2 gets max score 0.6 and max label 1
        ("2018-08-10", 3, HIGH, 1),
        ("2018-08-10", 4, HIGH, 1),
        ("2018-08-10", 2, LOW, 0),
        ("2018-08-10", 2, MID, 1),
        ("2018-08-10", 7, LOW, 0),
    ]
    return pd.DataFrame(rows, columns=["day", "card", "score", "label"])


def test_card_precision_by_hand_with_carry_over_and_ties() -> None:
    result = compute_card_precision_at_k(tree_like_transactions(), k=3)
    # day 1: ranking 2 (0.9), then the 0.6 tie 1 before 3 by card id -> top 3 = {2, 1, 3}: one fraud (card 1)
    # day 2: card 1 dropped; 0.6 tie 3, 4, 6 -> top 3 = {3, 4, 6}: two frauds (3, 4)
    # day 3: cards 3, 4 dropped; 2 (0.6, fraud), 7 (0.2) -> one fraud, still divided by k = 3
    assert [(d.day, d.cards, d.compromised_cards, d.detected_cards) for d in result.daily] == [
        ("2018-08-08", 5, 2, 1),
        ("2018-08-09", 5, 2, 2),
        ("2018-08-10", 2, 1, 1),
    ]
    assert [d.precision for d in result.daily] == pytest.approx([1 / 3, 2 / 3, 1 / 3])
    assert result.mean == pytest.approx(4 / 9)
    assert result.ceiling == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)


def test_card_precision_breaks_ties_by_card_id_not_by_row_order() -> None:
    frame = tree_like_transactions()
    # k = 2 on day 1: 2 (0.9) then the first of the 0.6 tie {1, 3}: card 1 (a fraud), whatever the row order
    for shuffled in (frame, frame.iloc[::-1], frame.sample(frac=1.0, random_state=3)):
        result = compute_card_precision_at_k(shuffled, k=2)
        assert result.daily[0].precision == pytest.approx(1 / 2)
    # day 2 with k = 2: card 1 dropped, the 0.6 tie {3, 4, 6} -> 3 and 4, both frauds
    assert compute_card_precision_at_k(frame, k=2).daily[1].precision == pytest.approx(1.0)


def test_card_precision_accepts_card_day_grain_and_gives_the_same_answer() -> None:
    frame = tree_like_transactions()
    card_days = frame.groupby(["day", "card"], as_index=False).agg(score=("score", "max"), label=("label", "max"))
    assert compute_card_precision_at_k(card_days, k=3) == compute_card_precision_at_k(frame, k=3)


def test_card_precision_refuses_missing_columns_and_bad_k() -> None:
    with pytest.raises(DataError, match="lacks columns"):
        compute_card_precision_at_k(pd.DataFrame({"day": [], "card": []}), k=3)
    with pytest.raises(DataError, match="k >= 1"):
        compute_card_precision_at_k(tree_like_transactions(), k=0)


def test_auc_and_average_precision_by_hand_and_against_sklearn() -> None:
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    # AUC: of the 4 (fraud, genuine) pairs, 3 are ordered right -> 0.75
    assert compute_auc_roc(labels, scores) == pytest.approx(0.75)
    # AP: frauds at ranks 1 and 3 -> (1/1 + 2/3) / 2
    assert compute_average_precision(labels, scores) == pytest.approx((1 + 2 / 3) / 2)

    rng = np.random.default_rng(0)
    labels = (rng.random(5000) < 0.02).astype(int)
    scores = np.clip(rng.normal(0.2 + 0.3 * labels, 0.2), 0, 1)
    assert compute_auc_roc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert compute_average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores))


def test_weights_equal_repeated_rows() -> None:
    """The genuine sample of a large evaluation set is weighted: weight w must equal w copies of the row."""
    labels = np.array([0, 1, 0, 1, 0, 0])
    scores = np.array([0.3, 0.7, 0.8, 0.5, 0.1, 0.6])
    weights = np.array([3, 1, 2, 1, 4, 1])
    repeated_labels, repeated_scores = np.repeat(labels, weights), np.repeat(scores, weights)
    assert compute_auc_roc(labels, scores, weights=weights) == pytest.approx(
        compute_auc_roc(repeated_labels, repeated_scores)
    )
    assert compute_average_precision(labels, scores, weights=weights) == pytest.approx(
        compute_average_precision(repeated_labels, repeated_scores)
    )


def test_single_class_and_nan_scores_are_refused() -> None:
    with pytest.raises(DataError, match="0 frauds out of 3"):
        compute_auc_roc(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(DataError, match="NaN"):
        compute_average_precision(np.array([0, 1]), np.array([0.1, np.nan]))


def test_threshold_metrics_by_hand() -> None:
    labels = np.array([1, 0, 1, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.4, 0.5, 0.1, 0.5])
    result = compute_threshold_metrics(labels, scores, threshold=0.5)  # alerts: 0.9, 0.8, 0.5, 0.5
    assert (result.true_positives, result.false_positives, result.false_negatives) == (2, 2, 1)
    assert result.precision == pytest.approx(0.5)
    assert result.recall == pytest.approx(2 / 3)
    assert result.alert_rate == pytest.approx(4 / 6)
    assert compute_threshold_metrics(labels, scores, threshold=0.95).precision == 0.0  # no alert


def test_calibration_by_hand() -> None:
    labels = np.array([0, 0, 1, 1, 0])
    scores = np.array([0.05, 0.15, 0.95, 0.85, 1.0])
    result = compute_calibration(labels, scores, n_bins=2)
    # bin [0, .5): scores .05 .15, no fraud; bin [.5, 1]: .95 .85 1.0 (1.0 lands in the last bin), 2 frauds
    assert [(b.lower, b.count) for b in result.bins] == [(0.0, 2), (0.5, 3)]
    assert result.bins[0].mean_score == pytest.approx(0.1)
    assert result.bins[1].fraud_rate == pytest.approx(2 / 3)
    assert result.brier_score == pytest.approx((0.05**2 + 0.15**2 + 0.05**2 + 0.15**2 + 1.0) / 5)
    assert result.expected_calibration_error == pytest.approx(2 / 5 * 0.1 + 3 / 5 * abs(2.8 / 3 - 2 / 3))


def test_evaluate_scores_flattens_every_metric() -> None:
    frame = tree_like_transactions()
    result = evaluate_scores(frame[["score", "label"]], frame, k=3, threshold=0.5, calibration_bins=4)
    metrics = result.metrics()
    assert metrics["card_precision_at_3"] == pytest.approx(4 / 9)
    assert metrics["auc_roc"] == pytest.approx(roc_auc_score(frame["label"], frame["score"]))
    assert metrics["transactions"] == 17
    assert metrics["frauds"] == 8
    assert set(result.to_dict()) >= {"card_precision", "calibration", "at_threshold"}


def test_summarize_folds_mean_and_population_std() -> None:
    summary = summarize_folds([{"ap": 0.6, "cp": 0.2}, {"ap": 0.8, "cp": 0.4}])
    assert summary == pytest.approx({"ap_mean": 0.7, "ap_std": 0.1, "cp_mean": 0.3, "cp_std": 0.1})
