"""Booster parameters: the training rows are not scored every round unless a metric is asked for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakestream.errors import ConfigError
from lakestream.training.xgb import BoosterSettings, booster_params, fit_single_node, spark_estimator_params

PLAIN = BoosterSettings({"tree_method": "hist", "max_depth": 3}, 20)


def test_without_early_stopping_no_default_metric_is_computed() -> None:
    assert booster_params(PLAIN, nthread=2)["disable_default_eval_metric"] == 1
    assert spark_estimator_params(PLAIN)["disable_default_eval_metric"] == 1
    assert spark_estimator_params(PLAIN)["objective"] == "binary:logistic"  # xgboost.spark's regressor needs it


def test_early_stopping_evaluates_aucpr_and_a_chosen_metric_is_kept() -> None:
    stopping = BoosterSettings(PLAIN.params, 20, early_stopping_rounds=5)
    for params in (booster_params(stopping, nthread=2), spark_estimator_params(stopping)):
        assert params["eval_metric"] == "aucpr"
        assert "disable_default_eval_metric" not in params
    chosen = PLAIN.with_params(eval_metric="logloss")
    assert booster_params(chosen, nthread=2)["eval_metric"] == "logloss"
    assert "disable_default_eval_metric" not in booster_params(chosen, nthread=2)


def test_a_fit_without_metric_still_trains_all_rounds() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    frame["y"] = (frame["a"] + 0.3 * rng.normal(size=2000) > 1).astype(int)
    fitted = fit_single_node(frame, features=["a", "b"], label="y", settings=PLAIN, nthread=1)
    assert fitted.booster.num_boosted_rounds() == 20
    assert fitted.evals_result == {}  # no per-round training metric was computed


def test_exact_is_refused_for_xgboost_spark() -> None:
    with pytest.raises(ConfigError, match="does not support tree_method=exact"):
        spark_estimator_params(BoosterSettings({"tree_method": "exact"}, 10))
