"""Exact cuts: features rounded down to quantile edges, so every hist sketch finds the same cut points."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from lakestream.training.cuts import _summaries, apply_cuts, cut_edges
from lakestream.training.xgb import BoosterSettings, fit_distributed, fit_single_node, predict_scores


def random_rows(rows: int = 6000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 40.0, rows)
    count = rng.integers(0, 12, rows)
    fraud = (rng.random(rows) < 0.02 + 0.1 * (amount > 200) + 0.03 * (count > 9)).astype(int)
    return pd.DataFrame({"amount": amount, "count": count.astype(float), "noise": rng.normal(size=rows), "y": fraud})


def test_values_are_rounded_down_to_the_nearest_edge_and_missing_values_stay(spark: SparkSession) -> None:
    values = [-5.0, 0.0, 0.5, 1.0, 1.5, 2.0, 10.0, math.nan, None]
    frame = spark.createDataFrame([(v,) for v in values], "x DOUBLE")
    rounded = [row.x for row in apply_cuts(frame, {"x": [0.0, 1.0, 2.0]}).collect()]
    assert rounded[:7] == [0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    assert math.isnan(rounded[7])
    assert rounded[8] is None


def test_edges_bound_the_distinct_values_and_leave_few_valued_features_alone(spark: SparkSession) -> None:
    rows = random_rows()
    rows["levels_63"] = np.arange(len(rows)) % 63  # max_bin - 1 values: exact already
    rows["levels_64"] = np.arange(len(rows)) % 64
    frame = spark.createDataFrame(rows).repartition(3)
    edges = cut_edges(frame, ["amount", "count", "noise", "levels_63", "levels_64"], max_bin=64)
    assert set(edges) == {"amount", "noise", "levels_64"}, "count has 12 values: bucketed exactly already"
    assert all(len(values) <= 63 for values in edges.values())
    assert all(values == sorted(values) for values in edges.values())
    rounded = apply_cuts(frame, edges).toPandas()
    assert rounded["amount"].nunique() <= 63
    assert rounded["count"].equals(frame.toPandas()["count"])
    with pytest.raises(ValueError, match="max_bin >= 3"):
        cut_edges(frame, ["amount"], max_bin=2)


def test_a_partition_is_summarised_in_blocks_of_bounded_rows() -> None:
    import pyarrow as pa

    rng = np.random.default_rng(3)
    batches = [pa.RecordBatch.from_pydict({"x": rng.normal(size=n).astype(np.float32)}) for n in (400, 400, 400, 50)]
    blocks = list(_summaries(iter(batches), names=["x"], few=10, block_rows=700))
    assert [block.column("rows").to_pylist() for block in blocks] == [[800], [450]]  # a block ends once >= 700
    assert list(_summaries(iter([]), names=["x"], few=10)) == []


def test_a_model_fitted_on_rounded_features_scores_raw_features_the_same(spark: SparkSession) -> None:
    raw = random_rows()
    features = ["amount", "count", "noise"]
    frame = spark.createDataFrame(raw)
    edges = cut_edges(frame, features, max_bin=32)
    rounded = apply_cuts(frame, edges).toPandas()
    settings = BoosterSettings({"tree_method": "hist", "max_depth": 4, "max_bin": 32}, 20)
    booster = fit_single_node(rounded, features=features, label="y", settings=settings, nthread=2).booster
    unseen = random_rows(seed=1)  # values the edges never saw, below, between and above them
    unseen_rounded = apply_cuts(spark.createDataFrame(unseen), edges).toPandas()
    np.testing.assert_array_equal(
        predict_scores(booster, unseen, features=features), predict_scores(booster, unseen_rounded, features=features)
    )


def test_single_node_and_distributed_fits_of_rounded_rows_are_the_same_model(spark: SparkSession) -> None:
    features = ["amount", "count", "noise"]
    frame = spark.createDataFrame(random_rows(rows=20_000)).repartition(2)
    rounded = apply_cuts(frame, cut_edges(frame, features)).cache()
    settings = BoosterSettings({"tree_method": "hist", "max_depth": 5}, 30)
    single = fit_single_node(rounded.toPandas(), features=features, label="y", settings=settings, nthread=2)
    spread = rounded.orderBy("noise").repartition(2)  # another order and spread of the same rows
    distributed = fit_distributed(spread, features=features, label="y", settings=settings, num_workers=2)
    test = random_rows(seed=2)
    np.testing.assert_allclose(
        predict_scores(single.booster, test, features=features),
        predict_scores(distributed.booster, test, features=features),
        rtol=0,
        atol=1e-6,
    )
    rounded.unpersist()
