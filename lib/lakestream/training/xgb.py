"""XGBoost fits: distributed (xgboost.spark) and single-node (xgboost.train) from the same parameters.

Both return a plain ``xgboost.Booster`` cut at the best iteration, so evaluation, the registry and the scorers
never care how a model was trained.

- Distributed: xgboost.spark (``SparkXGBRegressor`` with objective binary:logistic: the classifier's booster
  without its label-counting job) with the feature columns passed as a list (no VectorAssembler), one worker
  per Spark task (``num_workers``), threads per worker = ``spark.task.cpus`` (xgboost.spark pins them), early
  stopping on the rows flagged by a boolean validation column, barrier syncs served by the driver
  (lakestream.training.rendezvous). xgboost.spark has no ``exact`` tree method.
- Single-node: the Spark-built features collected to pandas (training windows are 70k-900k rows), threads
  pinned to the cores the driver really has; the only way to get the book's ``tree_method="exact"``.

Class imbalance (``training.imbalance``): ``none``; ``scale_pos_weight`` (a booster parameter: the gradient of
every fraud counts w times); or ``sample_weight`` (a per-row weight w on frauds, which also reaches the
validation metric used for early stopping). w is negatives/positives of the training rows (``auto``), its
square root (``sqrt``), or a number. Both weightings shift the scores upwards: they rank as well or better but
are no longer probabilities, which matters for the decision thresholds (see the calibration plots).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lakestream.config.models import ImbalanceConfig
from lakestream.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd
    import xgboost as xgb
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

WEIGHT = "_weight"
FEATURES_ARRAY = "_features"
# Booster parameters xgboost.spark sets itself or refuses.
_SPARK_MANAGED = {"nthread", "n_jobs"}


@dataclass(frozen=True)
class BoosterSettings:
    """Booster parameters (names both xgboost.train and the sklearn/Spark wrappers accept) and rounds."""

    params: Mapping[str, Any]
    num_boost_round: int = 100
    early_stopping_rounds: int | None = None

    def with_params(self, **updates: Any) -> BoosterSettings:
        """A copy with some parameters replaced (num_boost_round / n_estimators set the rounds)."""
        params = dict(self.params)
        rounds = self.num_boost_round
        for key, value in updates.items():
            if key in ("num_boost_round", "n_estimators"):
                rounds = int(value)
            else:
                params[key] = value
        return BoosterSettings(params, rounds, self.early_stopping_rounds)


@dataclass(frozen=True)
class FittedBooster:
    """A trained booster (already cut at its best iteration) and how it was trained."""

    booster: xgb.Booster
    mode: str
    rounds: int
    best_iteration: int | None
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    evals_result: dict[str, Any] = field(default_factory=dict)


def resolve_pos_weight(imbalance: ImbalanceConfig, *, positives: int, negatives: int) -> float:
    """The weight of a fraud relative to a genuine transaction for the configured strategy."""
    if positives == 0:
        raise DataError("the training rows hold no fraud: widen the train window or check the labels")
    if imbalance.pos_weight == "auto":
        return negatives / positives
    if imbalance.pos_weight == "sqrt":
        return math.sqrt(negatives / positives)
    return float(imbalance.pos_weight)


def apply_imbalance(
    settings: BoosterSettings, imbalance: ImbalanceConfig, *, positives: int, negatives: int
) -> tuple[BoosterSettings, float | None]:
    """Booster settings and the per-fraud sample weight (None = unweighted) for the configured strategy.

    A ``scale_pos_weight`` already in the parameters (e.g. chosen by tuning) wins over the strategy.
    """
    if imbalance.strategy == "none" or "scale_pos_weight" in settings.params:
        return settings, None
    weight = resolve_pos_weight(imbalance, positives=positives, negatives=negatives)
    if imbalance.strategy == "scale_pos_weight":
        return settings.with_params(scale_pos_weight=weight), None
    return settings, weight


def booster_params(settings: BoosterSettings, *, nthread: int) -> dict[str, Any]:
    """xgboost.train parameters: the configured ones, binary logistic, pinned threads, aucpr for early stopping."""
    params = {"objective": "binary:logistic", **settings.params, "nthread": nthread}
    return _with_metric_policy(params, settings)


def _with_metric_policy(params: dict[str, Any], settings: BoosterSettings) -> dict[str, Any]:
    """aucpr for early stopping; without it, no default metric: both trainers evaluate the training rows every round
    (xgboost.spark always does), which is 1.2 s of a 9 s distributed fit on 920k rows here and used by nothing."""
    if settings.early_stopping_rounds is not None:
        params.setdefault("eval_metric", "aucpr")
    elif "eval_metric" not in params:
        params.setdefault("disable_default_eval_metric", 1)
    return params


def _cut_at_best(booster: xgb.Booster, best_iteration: int | None) -> xgb.Booster:
    if best_iteration is None or best_iteration + 1 >= booster.num_boosted_rounds():
        return booster
    return booster[: best_iteration + 1]


def build_dmatrix(
    frame: pd.DataFrame,
    *,
    features: Sequence[str],
    label: str | None,
    nthread: int,
    pos_weight: float | None = None,
    quantile: bool = False,
    max_bin: int | None = None,
    reference: xgb.DMatrix | None = None,
) -> xgb.DMatrix:
    """A (Quantile)DMatrix of the feature columns (float32), with the label and fraud weights when given.

    A QuantileDMatrix (hist only) sketches the bins while it loads: faster and lighter than a DMatrix; a
    validation one must take the training one as reference so both use the same bins.
    """
    import xgboost as xgb

    values = frame[list(features)].to_numpy(dtype=np.float32)
    labels = frame[label].to_numpy() if label is not None else None
    weights = None
    if pos_weight is not None and labels is not None:
        weights = np.where(labels == 1, pos_weight, 1.0)
    if quantile:
        extra = {"max_bin": max_bin} if max_bin is not None else {}
        return xgb.QuantileDMatrix(
            values, label=labels, weight=weights, feature_names=list(features), nthread=nthread, ref=reference, **extra
        )
    return xgb.DMatrix(values, label=labels, weight=weights, feature_names=list(features), nthread=nthread)


def fit_single_node(
    train: pd.DataFrame,
    *,
    features: Sequence[str],
    label: str,
    settings: BoosterSettings,
    nthread: int,
    valid: pd.DataFrame | None = None,
    pos_weight: float | None = None,
) -> FittedBooster:
    """xgboost.train on pandas rows; early stopping on `valid` when settings ask for it."""
    import xgboost as xgb

    if settings.early_stopping_rounds is not None and valid is None:
        raise ConfigError("early_stopping_rounds is set but no validation rows were given")
    params = booster_params(settings, nthread=nthread)
    quantile = params.get("tree_method", "hist") == "hist"
    max_bin = int(params["max_bin"]) if "max_bin" in params else None
    started = time.perf_counter()
    dtrain = build_dmatrix(
        train,
        features=features,
        label=label,
        nthread=nthread,
        pos_weight=pos_weight,
        quantile=quantile,
        max_bin=max_bin,
    )
    evals = [(dtrain, "training")]
    if valid is not None:
        dvalid = build_dmatrix(
            valid,
            features=features,
            label=label,
            nthread=nthread,
            pos_weight=pos_weight,
            quantile=quantile,
            max_bin=max_bin,
            reference=dtrain,
        )
        evals.append((dvalid, "validation"))
    evals_result: dict[str, Any] = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=settings.num_boost_round,
        evals=evals if valid is not None else (),
        evals_result=evals_result,
        early_stopping_rounds=settings.early_stopping_rounds if valid is not None else None,
        verbose_eval=False,
    )
    best = booster.best_iteration if settings.early_stopping_rounds is not None and valid is not None else None
    booster = _cut_at_best(booster, best)
    seconds = time.perf_counter() - started
    logger.info("single-node fit: %d rows, %d rounds, %.1fs", len(train), booster.num_boosted_rounds(), seconds)
    return FittedBooster(booster, "single_node", booster.num_boosted_rounds(), best, seconds, params, evals_result)


def spark_estimator_params(settings: BoosterSettings) -> dict[str, Any]:
    """xgboost.spark keyword arguments from booster settings (threads are its own; binary:logistic by default)."""
    params = {key: value for key, value in settings.params.items() if key not in _SPARK_MANAGED}
    params.setdefault("objective", "binary:logistic")
    if params.get("tree_method") == "exact":
        raise ConfigError(
            "xgboost.spark does not support tree_method=exact; use mode single_node (or single-node-exact) for it"
        )
    params["n_estimators"] = settings.num_boost_round
    params.setdefault("verbose", False)  # no per-round evaluation lines on stdout
    if settings.early_stopping_rounds is not None:
        params["early_stopping_rounds"] = settings.early_stopping_rounds
    return _with_metric_policy(params, settings)


def fit_distributed(
    train: DataFrame,
    *,
    features: Sequence[str],
    label: str,
    settings: BoosterSettings,
    num_workers: int,
    validation_column: str | None = None,
    pos_weight: float | None = None,
    rendezvous: Literal["driver", "spark"] = "driver",
    skip_metricless_evaluation: bool = True,
) -> FittedBooster:
    """xgboost.spark over the rows of `train` (validation rows flagged by validation_column).

    The estimator is ``SparkXGBRegressor`` with the configured objective (binary:logistic): the same booster as
    ``SparkXGBClassifier``, without the Spark job the classifier runs to count the label's distinct values.
    ``rendezvous="driver"`` serves xgboost.spark's barrier syncs from the driver (see
    lakestream.training.rendezvous); ``"spark"`` leaves them to Spark's BarrierTaskContext (one second each).
    ``skip_metricless_evaluation`` drops xgboost.spark's per-round evaluation of the training rows when the fit
    has no metric (lakestream.training.xgb_callbacks); False keeps xgboost.spark's own behaviour.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from xgboost.spark import SparkXGBRegressor

    from lakestream.training.rendezvous import RendezvousCallback, driver_rendezvous
    from lakestream.training.xgb_callbacks import SkipMetriclessEvaluation, evaluates_nothing

    if settings.early_stopping_rounds is not None and validation_column is None:
        raise ConfigError("early_stopping_rounds is set but no validation column was given")
    kwargs = spark_estimator_params(settings)
    columns = [F.col(name).cast("float").alias(name) for name in features]
    features_col: str | list[str] = list(features)
    extra = [F.col(label).cast("int").alias(label)]
    if validation_column is not None:
        # xgboost.spark 3.2 fails on an Arrow batch without validation rows when features come as a column list
        # (it looks up a "values" column); one array column takes the code path that handles empty batches.
        columns = [F.array(*columns).alias(FEATURES_ARRAY)]
        features_col = FEATURES_ARRAY
        extra.append(F.col(validation_column))
        kwargs["validation_indicator_col"] = validation_column
    if pos_weight is not None:
        extra.append(F.when(F.col(label) == 1, F.lit(pos_weight)).otherwise(F.lit(1.0)).alias(WEIGHT))
        kwargs["weight_col"] = WEIGHT
    callbacks: list[Any] = [RendezvousCallback()] if rendezvous == "driver" else []
    if skip_metricless_evaluation and evaluates_nothing(kwargs, validation=validation_column is not None):
        callbacks.append(SkipMetriclessEvaluation())  # xgboost.spark evaluates the training rows every round
    estimator = SparkXGBRegressor(
        features_col=features_col,
        label_col=label,
        num_workers=num_workers,
        feature_names=list(features),
        callbacks=callbacks or None,
        **kwargs,
    )
    started = time.perf_counter()
    with driver_rendezvous(train.sparkSession) if rendezvous == "driver" else nullcontext():
        model = estimator.fit(train.select(*columns, *extra))
    sklearn_model = model._xgb_sklearn_model  # the fitted XGBRegressor: it knows best_iteration
    best = getattr(sklearn_model, "best_iteration", None) if settings.early_stopping_rounds is not None else None
    booster = _cut_at_best(model.get_booster(), best)
    seconds = time.perf_counter() - started
    summary = model.training_summary
    evals_result = {
        "training": dict(summary.train_objective_history or {}) if summary else {},
        "validation": dict(summary.validation_objective_history or {}) if summary else {},
    }
    logger.info("distributed fit: %d workers, %d rounds, %.1fs", num_workers, booster.num_boosted_rounds(), seconds)
    return FittedBooster(booster, "spark", booster.num_boosted_rounds(), best, seconds, kwargs, evals_result)


def predict_scores(booster: xgb.Booster, frame: pd.DataFrame, *, features: Sequence[str]) -> np.ndarray:
    """Fraud probabilities of the rows (float64), all trees of the (already cut) booster."""
    values = frame[list(features)].to_numpy(dtype=np.float32)
    return np.asarray(booster.inplace_predict(values, validate_features=False), dtype=np.float64)
