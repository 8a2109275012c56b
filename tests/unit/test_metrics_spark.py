"""The Spark side of evaluation: per card-day aggregation, and the weighted genuine sample of large sets."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakestream.config.models import EvaluationConfig
from lakestream.training.evaluation import aggregate_card_days, evaluate_scored, sample_for_metrics
from lakestream.training.metrics import compute_auc_roc, compute_average_precision, compute_card_precision_at_k

SCHEMA = "customer_id BIGINT, tx_date DATE, score DOUBLE, tx_fraud INT"


def random_scored(spark: SparkSession, rows: int = 6000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.03).astype(int)
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, 400, rows),
            "tx_date": [dt.date(2018, 8, 8) + dt.timedelta(days=int(d)) for d in rng.integers(0, 3, rows)],
            "score": np.clip(rng.normal(0.2 + 0.35 * labels, 0.15), 0, 1),
            "tx_fraud": labels,
        }
    )


def test_card_days_take_the_max_score_and_label_per_card_and_day(spark: SparkSession) -> None:
    rows = [
        (1, dt.date(2018, 8, 8), 0.2, 0),
        (1, dt.date(2018, 8, 8), 0.7, 0),
        (1, dt.date(2018, 8, 8), 0.1, 1),
        (1, dt.date(2018, 8, 9), 0.3, 0),
        (2, dt.date(2018, 8, 8), 0.5, 0),
    ]
    result = aggregate_card_days(spark.createDataFrame(rows, SCHEMA))
    expected = spark.createDataFrame(
        [("2018-08-08", 1, 0.7, 1), ("2018-08-09", 1, 0.3, 0), ("2018-08-08", 2, 0.5, 0)],
        "day STRING, card BIGINT, score DOUBLE, label INT",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=False)


def test_genuine_sample_keeps_every_fraud_and_weights_the_rest(spark: SparkSession) -> None:
    frame = random_scored(spark)
    sample = sample_for_metrics(spark.createDataFrame(frame, SCHEMA), genuine_fraction=0.25, seed=1).toPandas()
    assert int(sample["label"].sum()) == int(frame["tx_fraud"].sum())
    assert set(sample.loc[sample["label"] == 1, "weight"]) == {1.0}
    assert set(sample.loc[sample["label"] == 0, "weight"]) == {4.0}
    genuine = int((frame["tx_fraud"] == 0).sum())
    assert abs(len(sample[sample["label"] == 0]) - genuine / 4) < 0.1 * genuine / 4


def test_large_evaluation_sets_are_sampled_and_stay_close_to_the_exact_metrics(spark: SparkSession) -> None:
    frame = random_scored(spark, rows=20_000)
    scored = spark.createDataFrame(frame, SCHEMA)
    exact = evaluate_scored(scored, evaluation=EvaluationConfig(top_k=20), threshold=0.5)
    sampled = evaluate_scored(scored, evaluation=EvaluationConfig(top_k=20, max_collected_rows=5000), threshold=0.5)

    assert not exact.sampled
    assert sampled.sampled
    assert len(sampled.scores) < 7000
    labels, scores = frame["tx_fraud"].to_numpy(), frame["score"].to_numpy()
    assert exact.result.auc_roc == pytest.approx(compute_auc_roc(labels, scores))
    assert exact.result.average_precision == pytest.approx(compute_average_precision(labels, scores))
    assert sampled.result.auc_roc == pytest.approx(exact.result.auc_roc, abs=0.01)
    assert sampled.result.average_precision == pytest.approx(exact.result.average_precision, abs=0.03)
    # CP@k never samples: it comes from the exact per card-day aggregate
    card_days = frame.rename(columns={"customer_id": "card", "tx_fraud": "label"}).assign(
        day=frame["tx_date"].astype(str)
    )
    assert sampled.result.card_precision == compute_card_precision_at_k(card_days, k=20)
    assert sampled.result.transactions == pytest.approx(len(frame), rel=0.05)
