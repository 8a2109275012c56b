"""Booster parameters: the training rows are not scored every round unless a metric is asked for (by either trainer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakestream.errors import ConfigError
from lakestream.training.xgb import BoosterSettings, booster_params, fit_single_node, spark_estimator_params
from lakestream.training.xgb_callbacks import SkipMetriclessEvaluation, evaluates_nothing

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


def _toy_rows(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(3000, 3)).astype(np.float32)
    return values, (values[:, 0] + 0.5 * rng.normal(size=3000) > 1).astype(int)


def test_skipping_metricless_evaluation_leaves_the_model_unchanged() -> None:
    """xgboost.spark always passes the training rows as evals: without metrics the skip changes nothing."""
    import xgboost as xgb

    values, labels = _toy_rows()
    params = booster_params(PLAIN, nthread=1)
    seen: list = []

    class Probe(xgb.callback.TrainingCallback):
        def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
            seen.append("eval_set" in vars(model))  # the instance's replacement, not Booster.eval_set
            return False

    models = []
    for callbacks in ([Probe()], [SkipMetriclessEvaluation(), Probe()]):
        dtrain = xgb.QuantileDMatrix(values, label=labels, nthread=1)
        history: dict = {}
        booster = xgb.train(params, dtrain, 20, evals=[(dtrain, "training")], evals_result=history, callbacks=callbacks)
        assert history in ({}, {"training": {}})  # nothing was ever measured
        assert "eval_set" not in vars(booster)  # the booster's own evaluation is back after training
        models.append(booster.save_raw("json"))
    assert models[0] == models[1]
    assert seen == [False] * 20 + [True] * 20


def test_the_skip_applies_only_to_fits_without_any_metric() -> None:
    plain = spark_estimator_params(PLAIN)
    assert evaluates_nothing(plain, validation=False)
    assert not evaluates_nothing(plain, validation=True)
    assert not evaluates_nothing(spark_estimator_params(PLAIN.with_params(eval_metric="logloss")), validation=False)
    stopping = BoosterSettings(PLAIN.params, 20, early_stopping_rounds=5)
    assert not evaluates_nothing(spark_estimator_params(stopping), validation=True)
