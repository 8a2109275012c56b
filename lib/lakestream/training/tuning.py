"""Hyperparameter tuning with Optuna over the prequential validation folds; trials run as parallel Spark tasks.

Why trials in parallel rather than each trial distributed: a prequential fold trains on one week (~70k rows at
the default size). At that size xgboost.spark's fixed cost (barrier stage, tracker, Arrow conversion) exceeds
the fit itself, and splitting 70k rows over workers does not make a fit faster. Trials, on the other hand, are
independent. So the fold matrices are collected once, broadcast, and every (trial, fold) pair is one Spark task
fitting single-node XGBoost with ``nthread = spark.task.cpus``: n executor cores run n fits at a time, with no
oversubscription. Optuna drives the search with ask/tell in batches of ``tuning.parallelism`` trials (default:
the session's default parallelism); its TPE sampler uses the constant-liar strategy so a batch explores
different points. The objective is the mean over the validation folds of Average Precision (or CP@k).
The driver logs every trial (parameters, per-fold and mean metrics) as a nested MLflow run via ``on_trial``.
For training sets too large for one executor, tune on a sample or run trials with the distributed trainer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lakestream.config.models import ImbalanceConfig, SearchDimension, TuningConfig
from lakestream.errors import DataError
from lakestream.training.metrics import (
    compute_auc_roc,
    compute_average_precision,
    compute_card_precision_at_k,
    summarize_folds,
)
from lakestream.training.splits import TimeSplit, select_test, select_train
from lakestream.training.xgb import BoosterSettings, apply_imbalance, booster_params

if TYPE_CHECKING:
    import optuna
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldData:
    """One prequential fold as NumPy arrays: train matrix and labels; test matrix, labels, cards and days."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    test_card: np.ndarray
    test_day: np.ndarray

    @property
    def train_rows(self) -> int:
        """Rows of the training matrix."""
        return len(self.train_y)


@dataclass(frozen=True)
class TrialOutcome:
    """One evaluated parameter set: per-fold metrics, their mean and std, the objective value."""

    number: int
    params: dict[str, Any]
    folds: list[dict[str, float]]
    summary: dict[str, float]
    value: float
    seconds: float


@dataclass(frozen=True)
class TuningResult:
    """The best parameters found and every trial."""

    best_params: dict[str, Any]
    best_value: float
    metric: str
    trials: list[TrialOutcome] = field(default_factory=list)


def collect_fold_data(labelled: DataFrame, folds: Sequence[TimeSplit], *, features: Sequence[str]) -> list[FoldData]:
    """Collect the train and (compromised-cards-removed) test rows of each fold to NumPy arrays."""
    names = list(features)
    result = []
    for fold in folds:
        train = select_train(labelled, split=fold).select(*names, "tx_fraud").toPandas()
        test = select_test(labelled, split=fold).select(*names, "tx_fraud", "customer_id", "tx_date").toPandas()
        if train.empty or test.empty:
            raise DataError(
                f"prequential {fold.name} ({fold.train_start}..{fold.test_end}) has {len(train)} train and "
                f"{len(test)} test rows: build the features of those days or move the folds"
            )
        result.append(
            FoldData(
                name=fold.name,
                train_x=train[names].to_numpy(dtype=np.float32),
                train_y=train["tx_fraud"].to_numpy(dtype=np.int8),
                test_x=test[names].to_numpy(dtype=np.float32),
                test_y=test["tx_fraud"].to_numpy(dtype=np.int8),
                test_card=test["customer_id"].to_numpy(dtype=np.int64),
                test_day=test["tx_date"].astype(str).to_numpy(),
            )
        )
        logger.info("%s: %d train rows, %d test rows", fold.name, len(train), len(test))
    return result


def evaluate_on_fold(
    fold: FoldData,
    settings: BoosterSettings,
    *,
    imbalance: ImbalanceConfig,
    nthread: int,
    k: int,
    feature_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Fit single-node XGBoost on the fold's train rows, score its test rows: auc_roc, average_precision, CP@k."""
    import pandas as pd
    import xgboost as xgb

    positives = int(fold.train_y.sum())
    settings, pos_weight = apply_imbalance(
        settings, imbalance, positives=positives, negatives=fold.train_rows - positives
    )
    weights = None if pos_weight is None else np.where(fold.train_y == 1, pos_weight, 1.0)
    names = list(feature_names) if feature_names is not None else None
    params = booster_params(settings, nthread=nthread)
    if params.get("tree_method", "hist") == "hist":  # sketched while loading: several times faster with many bins
        extra = {"max_bin": int(params["max_bin"])} if "max_bin" in params else {}
        dtrain = xgb.QuantileDMatrix(
            fold.train_x, label=fold.train_y, weight=weights, feature_names=names, nthread=nthread, **extra
        )
    else:
        dtrain = xgb.DMatrix(fold.train_x, label=fold.train_y, weight=weights, feature_names=names, nthread=nthread)
    booster = xgb.train(params, dtrain, num_boost_round=settings.num_boost_round)
    scores = np.asarray(booster.inplace_predict(fold.test_x, validate_features=False), dtype=np.float64)
    card_days = pd.DataFrame({"day": fold.test_day, "card": fold.test_card, "score": scores, "label": fold.test_y})
    return {
        "auc_roc": compute_auc_roc(fold.test_y, scores),
        "average_precision": compute_average_precision(fold.test_y, scores),
        f"card_precision_at_{k}": compute_card_precision_at_k(card_days, k=k).mean,
    }


def evaluate_on_folds_in_spark(
    spark: SparkSession,
    folds: Sequence[FoldData],
    candidates: Sequence[BoosterSettings],
    *,
    imbalance: ImbalanceConfig,
    k: int,
    feature_names: Sequence[str] | None = None,
) -> list[list[dict[str, float]]]:
    """Metrics of every candidate on every fold; each (candidate, fold) pair is one Spark task."""
    context = spark.sparkContext
    shared = context.broadcast(list(folds))
    jobs = [(c, f) for c in range(len(candidates)) for f in range(len(folds))]
    settings = list(candidates)
    names = list(feature_names) if feature_names is not None else None

    def run(job: tuple[int, int]) -> tuple[int, int, dict[str, float]]:
        from pyspark import TaskContext

        task = TaskContext.get()
        nthread = max(1, task.cpus()) if task is not None else 1
        candidate, fold = job
        metrics = evaluate_on_fold(
            shared.value[fold], settings[candidate], imbalance=imbalance, nthread=nthread, k=k, feature_names=names
        )
        return candidate, fold, metrics

    try:
        results = context.parallelize(jobs, numSlices=len(jobs)).map(run).collect()
    finally:
        shared.unpersist()
    table: list[list[dict[str, float]]] = [[{} for _ in folds] for _ in candidates]
    for candidate, fold, metrics in results:
        table[candidate][fold] = metrics
    return table


def suggest_params(trial: optuna.Trial, search_space: Mapping[str, SearchDimension]) -> dict[str, Any]:
    """Draw one value per search dimension (int, float with optional log scale / step, categorical)."""
    params: dict[str, Any] = {}
    for name, dim in search_space.items():
        if dim.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(dim.choices))
        elif dim.type == "int":
            params[name] = trial.suggest_int(
                name, int(dim.low or 0), int(dim.high or 0), step=int(dim.step or 1), log=dim.log
            )
        else:
            params[name] = trial.suggest_float(
                name, float(dim.low or 0), float(dim.high or 0), step=dim.step, log=dim.log
            )
    return params


def objective_name(tuning: TuningConfig, k: int) -> str:
    """The per-fold metric the search maximises."""
    return "average_precision" if tuning.metric == "average_precision" else f"card_precision_at_{k}"


def tune_hyperparameters(
    spark: SparkSession,
    folds: Sequence[FoldData],
    *,
    base: BoosterSettings,
    imbalance: ImbalanceConfig,
    tuning: TuningConfig,
    k: int,
    n_trials: int | None = None,
    feature_names: Sequence[str] | None = None,
    on_trial: Callable[[TrialOutcome], None] | None = None,
) -> TuningResult:
    """Optuna TPE search maximising the mean fold metric; batches of trials run as parallel Spark tasks."""
    import optuna

    if not tuning.search_space:
        raise DataError("training.tuning.search_space is empty: configure at least one dimension to tune")
    metric = objective_name(tuning, k)
    total = n_trials or tuning.n_trials
    batch = tuning.parallelism or spark.sparkContext.defaultParallelism
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=tuning.seed, multivariate=True, constant_liar=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    outcomes: list[TrialOutcome] = []
    while len(outcomes) < total:
        started = time.perf_counter()
        trials = [study.ask() for _ in range(min(batch, total - len(outcomes)))]
        params = [suggest_params(trial, tuning.search_space) for trial in trials]
        table = evaluate_on_folds_in_spark(
            spark,
            folds,
            [base.with_params(**p) for p in params],
            imbalance=imbalance,
            k=k,
            feature_names=feature_names,
        )
        seconds = (time.perf_counter() - started) / len(trials)
        for trial, trial_params, fold_metrics in zip(trials, params, table, strict=True):
            summary = summarize_folds(fold_metrics)
            value = summary[f"{metric}_mean"]
            study.tell(trial, value)
            outcome = TrialOutcome(trial.number, trial_params, fold_metrics, summary, value, seconds)
            outcomes.append(outcome)
            logger.info("trial %d: %s = %.4f with %s", trial.number, metric, value, trial_params)
            if on_trial is not None:
                on_trial(outcome)
    best = max(outcomes, key=lambda outcome: outcome.value)
    return TuningResult(best_params=best.params, best_value=best.value, metric=metric, trials=outcomes)
