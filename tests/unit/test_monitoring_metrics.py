"""Monitoring metrics in Spark against hand-computed values and scikit-learn on small data."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.testing import assertDataFrameEqual
from sklearn.metrics import average_precision_score, roc_auc_score

from lakestream.monitoring.drift import (
    assign_bins,
    bin_index,
    compute_divergences,
    count_bins,
    edge_key,
    melt_columns,
    reference_shares_frame,
)
from lakestream.monitoring.performance import (
    compute_auc_and_ap,
    compute_card_precision,
    known_compromised_cards,
    label_served_scores,
    remove_known_compromised_cards,
)
from lakestream.monitoring.reference import compute_distributions, compute_quantile_edges, compute_volumes

# --------------------------------------------------------------------------------------------------- bins


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-5.0, 0), (1.0, 0), (1.5, 1), (2.0, 1), (2.0001, 2), (3.0, 2), (99.0, 3)],
)
def test_a_value_falls_in_the_bin_counted_by_the_edges_strictly_below_it(
    spark: SparkSession, value: float, expected: int
) -> None:
    """Edges 1, 2, 3 make the bins (-inf, 1], (1, 2], (2, 3], (3, inf)."""
    edges = F.array(F.lit(1.0), F.lit(2.0), F.lit(3.0))
    got = spark.range(1).select(bin_index(F.lit(value), edges).alias("bin")).first()["bin"]
    assert got == expected


def test_a_flag_gets_two_bins_from_its_deduplicated_quantiles(spark: SparkSession) -> None:
    frame = spark.createDataFrame([(float(i % 4 == 0), float(i)) for i in range(100)], "flag DOUBLE, amount DOUBLE")
    edges = compute_quantile_edges(frame, columns=["flag", "amount"], bins=4)
    assert edges["flag"] == (0.0,)  # quartiles 0, 0, 0 -> one edge: bins (-inf, 0] and (0, inf)
    assert edges["amount"] == (24.0, 49.0, 74.0)
    distributions = compute_distributions(frame, edges=edges)
    assert distributions["flag"].shares == (0.75, 0.25)
    assert distributions["amount"].shares == (0.25, 0.25, 0.25, 0.25)
    assert distributions["amount"].mean == pytest.approx(49.5)
    assert distributions["flag"].null_rate == 0.0


def test_reference_distribution_counts_nulls_apart(spark: SparkSession) -> None:
    frame = spark.createDataFrame([(1.0,), (None,), (3.0,), (None,)], "x DOUBLE")
    (dist,) = compute_distributions(frame, edges={"x": (2.0,)}).values()
    assert dist.shares == (0.5, 0.5)
    assert dist.null_rate == 0.5
    assert dist.rows == 4


def test_volumes_are_means_per_day_and_per_hour_of_day(spark: SparkSession) -> None:
    times = ["2018-05-01 10:00:00", "2018-05-01 10:30:00", "2018-05-01 23:00:00", "2018-05-02 10:05:00"]
    frame = spark.createDataFrame([(t,) for t in times], "t STRING").select(F.to_timestamp("t").alias("tx_datetime"))
    daily, hourly = compute_volumes(frame)
    assert daily == 2.0
    assert hourly[10] == 1.5
    assert hourly[23] == 0.5
    assert sum(hourly) == 2.0


# --------------------------------------------------------------------------------------------------- drift


def hand_psi(p: list[float], q: list[float], eps: float = 1e-4) -> float:
    return sum((max(a, eps) - max(b, eps)) * math.log(max(a, eps) / max(b, eps)) for a, b in zip(p, q, strict=True))


def hand_js(p: list[float], q: list[float]) -> float:
    total = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        total += (a * math.log2(a / m) if a else 0.0) / 2 + (b * math.log2(b / m) if b else 0.0) / 2
    return total


def test_psi_and_js_per_window_equal_the_hand_computed_values(spark: SparkSession) -> None:
    # reference of v1: x in bins (-inf,10], (10,20], (20,inf) with shares 0.5 / 0.3 / 0.2
    reference = reference_shares_frame(spark, {("1", "x"): [0.5, 0.3, 0.2]})
    # window A: 4 values -> shares 0.25 / 0.25 / 0.5 ; window B: all in bin 0 -> 1 / 0 / 0 (empty bins)
    rows = [("A", "1", v) for v in (5.0, 15.0, 25.0, 30.0)] + [("B", "1", v) for v in (1.0, 2.0, None)]
    frame = spark.createDataFrame(rows, "window STRING, model_version STRING, x DOUBLE")
    long = melt_columns(frame, columns=["x"], keys=["window", "model_version"])
    binned = assign_bins(
        long, edges={edge_key("1", "x"): (10.0, 20.0)}, key=F.concat_ws("|", "model_version", "feature")
    )
    counts = count_bins(binned, groups=["window", "model_version"])
    result = {
        r["window"]: r
        for r in compute_divergences(counts, reference, groups=["window", "model_version"], epsilon=1e-4).collect()
    }
    for window, shares in {"A": [0.25, 0.25, 0.5], "B": [1.0, 0.0, 0.0]}.items():
        assert result[window]["psi"] == pytest.approx(hand_psi(shares, [0.5, 0.3, 0.2]), rel=1e-12)
        assert result[window]["js"] == pytest.approx(hand_js(shares, [0.5, 0.3, 0.2]), rel=1e-12)
    assert result["A"]["sample_size"] == 4
    assert result["B"]["sample_size"] == 2  # the null is not binned
    # by hand: (0.25-0.5)ln(0.5) + (0.25-0.3)ln(0.25/0.3) + (0.5-0.2)ln(2.5) = 0.1733 + 0.0091 + 0.2749
    assert result["A"]["psi"] == pytest.approx(0.4573, abs=1e-4)


def test_identical_distributions_have_zero_psi_and_js(spark: SparkSession) -> None:
    reference = reference_shares_frame(spark, {("7", "x"): [0.5, 0.5]})
    frame = spark.createDataFrame([("7", 0.0), ("7", 1.0)], "model_version STRING, x DOUBLE")
    long = melt_columns(frame, columns=["x"], keys=["model_version"])
    counts = count_bins(
        assign_bins(long, edges={"7|x": (0.5,)}, key=F.concat_ws("|", "model_version", "feature")),
        groups=["model_version"],
    )
    (row,) = compute_divergences(counts, reference, groups=["model_version"], epsilon=1e-4).collect()
    assert row["psi"] == 0.0
    assert row["js"] == 0.0


def test_rows_of_a_version_without_bins_for_a_feature_are_not_judged(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("1", 3.0, 4.0)], "model_version STRING, x DOUBLE, y DOUBLE")
    long = melt_columns(frame, columns=["x", "y"], keys=["model_version"])
    binned = assign_bins(long, edges={"1|x": (1.0,)}, key=F.concat_ws("|", "model_version", "feature"))
    assert [r["feature"] for r in binned.collect()] == ["x"]


# ----------------------------------------------------------------------------------------------- performance


def random_day(seed: int, rows: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.05).astype(int)
    scores = np.round(np.clip(rng.normal(0.2 + 0.3 * labels, 0.15), 0, 1), 2)  # rounded: many ties
    return pd.DataFrame(
        {"customer_id": rng.integers(0, 500, rows), "score": scores, "label": labels, "day": f"d{seed}"}
    )


def test_auc_and_ap_equal_scikit_learn_with_ties(spark: SparkSession) -> None:
    days = pd.concat([random_day(1), random_day(2)])
    frame = spark.createDataFrame(days, "customer_id BIGINT, score DOUBLE, label INT, day STRING")
    result = {r["day"]: r for r in compute_auc_and_ap(frame, groups=["day"]).collect()}
    for day, rows in days.groupby("day"):
        assert result[day]["auc_roc"] == pytest.approx(roc_auc_score(rows["label"], rows["score"]), abs=1e-12)
        assert result[day]["average_precision"] == pytest.approx(
            average_precision_score(rows["label"], rows["score"]), abs=1e-12
        )
        assert result[day]["transactions"] == len(rows)
        assert result[day]["frauds"] == rows["label"].sum()


def test_auc_and_ap_by_hand_on_five_transactions(spark: SparkSession) -> None:
    # scores desc: 0.9 (1), 0.8 (0), 0.8 (1), 0.3 (0), 0.1 (0)
    rows = [(1, 0.9, 1), (2, 0.8, 0), (3, 0.8, 1), (4, 0.3, 0), (5, 0.1, 0)]
    frame = spark.createDataFrame(rows, "customer_id BIGINT, score DOUBLE, label INT").withColumn("g", F.lit(1))
    (row,) = compute_auc_and_ap(frame, groups=["g"]).collect()
    # pairs (pos, neg): 0.9 beats all 3; 0.8 beats 0.3 and 0.1 and ties 0.8 (half): (3 + 2.5) / 6
    assert row["auc_roc"] == pytest.approx(5.5 / 6)
    # thresholds: 0.9 -> recall 1/2 at precision 1; 0.8 -> recall 2/2 at precision 2/3: AP = 0.5 + 0.5 * 2/3
    assert row["average_precision"] == pytest.approx(0.5 + 1 / 3)


def test_auc_is_null_when_a_day_has_no_fraud(spark: SparkSession) -> None:
    frame = spark.createDataFrame([(1, 0.2, 0), (2, 0.4, 0)], "customer_id BIGINT, score DOUBLE, label INT")
    (row,) = compute_auc_and_ap(frame.withColumn("g", F.lit(1)), groups=["g"]).collect()
    assert row["auc_roc"] is None
    assert row["average_precision"] is None


def test_card_precision_takes_each_cards_max_and_breaks_ties_by_card_id(spark: SparkSession) -> None:
    rows = [
        (10, 0.9, 0),
        (10, 0.1, 1),  # card 10: max score 0.9, max label 1 -> a fraud card at the top
        (11, 0.5, 0),
        (12, 0.5, 1),  # ties with card 11 at 0.5: card 11 ranks first (smaller id)
        (13, 0.2, 1),
    ]
    frame = spark.createDataFrame(rows, "customer_id BIGINT, score DOUBLE, label INT").withColumn("g", F.lit(1))
    (top2,) = compute_card_precision(frame, groups=["g"], k=2).collect()
    assert top2["card_precision"] == 0.5  # cards 10 (fraud) and 11 (genuine)
    assert top2["cards"] == 4
    assert top2["compromised_cards"] == 3
    (top3,) = compute_card_precision(frame, groups=["g"], k=3).collect()
    assert top3["card_precision"] == pytest.approx(2 / 3)


def test_labels_reported_after_the_evaluation_instant_are_not_known(spark: SparkSession) -> None:
    served = spark.createDataFrame(
        [(1, 7, 0.4), (2, 8, 0.6), (3, 9, 0.1)], "transaction_id BIGINT, customer_id BIGINT, score DOUBLE"
    )
    labels = spark.createDataFrame(
        [
            (1, 1, dt.datetime(2018, 5, 8, 10)),  # reported before as_of: known
            (2, 1, dt.datetime(2018, 5, 9, 1)),  # reported after as_of: a future label, not known
            (3, 0, dt.datetime(2018, 5, 8, 9)),  # a genuine label row
        ],
        "transaction_id BIGINT, tx_fraud INT, reported_at TIMESTAMP",
    )
    labelled = label_served_scores(served, labels, as_of=dt.datetime(2018, 5, 9))
    assertDataFrameEqual(
        labelled.select("transaction_id", "label"),
        spark.createDataFrame([(1, 1), (2, 0), (3, 0)], "transaction_id BIGINT, label INT"),
    )


def test_cards_known_compromised_before_a_day_are_left_out_of_it(spark: SparkSession) -> None:
    labels = spark.createDataFrame(
        [
            (100, 1, dt.datetime(2018, 5, 9, 15)),
            (200, 1, dt.datetime(2018, 5, 11, 2)),
            (300, 1, dt.datetime(2018, 4, 1)),
        ],
        "transaction_id BIGINT, tx_fraud INT, reported_at TIMESTAMP",
    )
    cards = spark.createDataFrame([(100, 7), (200, 8), (300, 9)], "transaction_id BIGINT, customer_id BIGINT")
    compromised = known_compromised_cards(labels, cards, as_of=dt.datetime(2018, 5, 20))
    day_rows = spark.createDataFrame(
        [(7, dt.date(2018, 5, 9)), (7, dt.date(2018, 5, 10)), (8, dt.date(2018, 5, 10)), (9, dt.date(2018, 5, 10))],
        "customer_id BIGINT, day DATE",
    )
    kept = remove_known_compromised_cards(day_rows, compromised, day_column="day", memory_days=21)
    # card 7 reported 05-09 15:00: kept that day, dropped on 05-10; card 8 only reported on 05-11; card 9 was
    # reported 39 days before 05-10, beyond the 21-day memory (reissued long ago), so it counts again
    expected = [(7, dt.date(2018, 5, 9)), (8, dt.date(2018, 5, 10)), (9, dt.date(2018, 5, 10))]
    assertDataFrameEqual(kept, spark.createDataFrame(expected, "customer_id BIGINT, day DATE"))
