"""XGBoost callbacks that run inside xgboost.spark's workers.

xgboost.spark trains with ``evals=[(dtrain, "training")]`` whatever the parameters say, so after every boosting
round XGBoost evaluates the training rows: it copies the worker's predictions for all its rows, applies the
objective's transform (a sigmoid for binary:logistic) and then computes the configured metrics. A fit without
metrics (``disable_default_eval_metric`` and no ``eval_metric``, no custom metric, no validation rows: what
lakestream.training.xgb asks for when nothing stops early) throws that work away every round: about 0.3 s of a
fit of the book's 920k prequential rows on 2 workers, and it grows with the rows. ``SkipMetriclessEvaluation``
answers those evaluations with the line XGBoost itself returns when there is no metric (``"[<round>]"``), without
touching the rows. The single-node fit passes no evals at all, so both fits do the same work.
"""

from __future__ import annotations

from typing import Any

import xgboost as xgb


def _no_metric_line(evals: Any, iteration: int = 0, feval: Any = None, output_margin: bool = True) -> str:
    """What ``Booster.eval_set`` returns when the booster has no metric and no custom metric is given."""
    return f"[{iteration}]"


class SkipMetriclessEvaluation(xgb.callback.TrainingCallback):
    """Skips the per-round evaluation of a booster that has no metric to compute (see the module docstring).

    The caller adds it only to fits without any metric; the booster's own ``eval_set`` is restored after training.
    """

    def before_training(self, model: Any) -> Any:
        """Replace this booster's per-round evaluation (the instance's, not the class's)."""
        if isinstance(model, xgb.Booster):
            model.eval_set = _no_metric_line  # type: ignore[method-assign]
        return model

    def after_training(self, model: Any) -> Any:
        """Give the booster its own evaluation back."""
        if isinstance(model, xgb.Booster) and "eval_set" in vars(model):
            del model.eval_set
        return model


def evaluates_nothing(params: dict[str, Any], *, validation: bool) -> bool:
    """True when a fit with these xgboost.spark parameters computes no metric in any round."""
    return (
        bool(params.get("disable_default_eval_metric"))
        and "eval_metric" not in params
        and "custom_metric" not in params
        and not validation
    )
