"""Training orchestration: read the labelled features, (tune,) fit, evaluate on the test window, log, register.

One MLflow run per training, with:
- lineage: Delta versions of the feature and label tables read, feature set and version, git commit, the full
  resolved configuration (``config.model_dump``) and the split;
- tuning (optional): one nested run per Optuna trial with its parameters and per-fold metrics;
- test metrics (``test_*``), the daily CP@k as a stepped metric, the whole evaluation as JSON, and the plots;
- optionally the prequential test-fold estimate of the final parameters (``prequential_*_mean/_std``);
- the booster (mlflow.xgboost flavour, signature, input example), registered as the ``challenger``.

Modes: ``spark`` (xgboost.spark, hist), ``single_node`` (xgboost.train on the collected rows) and
``single_node_exact`` (the book-equivalent ``tree_method="exact", base_score=0.5``).
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pyspark.sql import functions as F  # noqa: N812

from lakestream.config.models import LakestreamConfig
from lakestream.errors import ConfigError
from lakestream.features.spec import FeatureSetSpec, feature_set_path, load_feature_set
from lakestream.monitoring.reference import ReferenceProfile, log_reference_profile
from lakestream.training.cuts import DEFAULT_MAX_BIN, apply_cuts, cut_edges
from lakestream.training.dataset import LABEL, TableLineage, read_labelled_features
from lakestream.training.evaluation import Evaluation, evaluate_scored
from lakestream.training.splits import (
    VALIDATION,
    TimeSplit,
    mark_validation_days,
    prequential_folds,
    select_test,
    select_train,
)
from lakestream.training.xgb import BoosterSettings, FittedBooster, apply_imbalance, fit_distributed, fit_single_node

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakestream.training.tuning import TrialOutcome, TuningResult

logger = logging.getLogger(__name__)

Mode = Literal["spark", "single_node", "single_node_exact"]
EXACT_PARAMS: dict[str, Any] = {"tree_method": "exact", "base_score": 0.5}


@dataclass(frozen=True)
class TrainingRequest:
    """What to train: feature set, mode, split, and the optional tuning / estimate / registration steps."""

    feature_set: str
    mode: Mode
    split: TimeSplit
    tune: bool = False
    n_trials: int | None = None
    prequential_estimate: bool = False
    register: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)  # overrides of training.xgboost.params
    run_name: str | None = None


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced."""

    run_id: str
    feature_set: str
    mode: str
    split: dict[str, Any]
    params: dict[str, Any]
    rounds: int
    fit_seconds: float
    metrics: dict[str, float]
    daily_card_precision: list[float]
    lineage: dict[str, Any]
    model_uri: str
    registered_version: str | None
    tuning: dict[str, Any] | None
    prequential: dict[str, float] | None

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (what the job prints)."""
        rounded = {key: round(value, 4) for key, value in self.metrics.items()}
        return {
            "run_id": self.run_id,
            "feature_set": self.feature_set,
            "mode": self.mode,
            "split": self.split,
            "rounds": self.rounds,
            "fit_seconds": round(self.fit_seconds, 2),
            "test": rounded,
            "daily_card_precision": self.daily_card_precision,
            "registered_version": self.registered_version,
            "tuning": self.tuning,
            "prequential_test": None
            if self.prequential is None
            else {key: round(value, 4) for key, value in self.prequential.items()},
            "lineage": self.lineage,
        }


def load_training_feature_set(config: LakestreamConfig, name: str) -> FeatureSetSpec:
    """conf/features/<name>.yaml of the project home."""
    return load_feature_set(feature_set_path(Path(config.home) / "conf" / "features", name))


def resolve_settings(config: LakestreamConfig, request: TrainingRequest) -> BoosterSettings:
    """Booster settings from configuration, the request's overrides and the mode."""
    xgb_config = config.training.xgboost
    settings = BoosterSettings(
        dict(xgb_config.params), xgb_config.num_boost_round, xgb_config.early_stopping_rounds
    ).with_params(**request.params)
    if request.mode == "single_node_exact":
        settings = settings.with_params(**EXACT_PARAMS)
    elif request.mode == "spark" and settings.params.get("tree_method") == "exact":
        raise ConfigError("tree_method=exact is not available with xgboost.spark; use --mode single-node-exact")
    return settings


def read_code_version(home: Path) -> dict[str, str]:
    """The git commit of the project checkout and whether it has uncommitted changes ("unknown" without git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=home, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=home, capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(bool(status.strip())).lower()}


def count_labels(frame: DataFrame) -> tuple[int, int]:
    """(frauds, genuine) rows of a labelled frame."""
    counts = {row[0]: row[1] for row in frame.groupBy(LABEL).count().collect()}
    return int(counts.get(1, 0)), int(counts.get(0, 0))


def fit_final_model(
    labelled: DataFrame,
    *,
    config: LakestreamConfig,
    split: TimeSplit,
    mode: Mode,
    settings: BoosterSettings,
    features: list[str],
) -> FittedBooster:
    """Fit on the split's train window; with early stopping its last validation_days are the validation fold."""
    xgb_config = config.training.xgboost
    train = select_train(labelled, split=split)
    early = settings.early_stopping_rounds is not None
    if early:
        train = mark_validation_days(train, split=split, validation_days=xgb_config.validation_days)
    if mode == "spark":  # counted before the cuts: they change no label, and counting cut rows would round them
        positives, negatives = count_labels(train.where(~F.col(VALIDATION)) if early else train)
    if uses_exact_cuts(config, settings):
        train = with_exact_cuts(train, settings, features, validation_column=VALIDATION if early else None)
    if mode == "spark":
        settings, pos_weight = apply_imbalance(
            settings, config.training.imbalance, positives=positives, negatives=negatives
        )
        return fit_distributed(
            train,
            features=features,
            label=LABEL,
            settings=settings,
            num_workers=xgb_config.num_workers,
            validation_column=VALIDATION if early else None,
            pos_weight=pos_weight,
            rendezvous=xgb_config.barrier_rendezvous,
        )
    rows = train.toPandas()
    valid = None
    if early:
        valid = rows[rows[VALIDATION]].drop(columns=VALIDATION)
        rows = rows[~rows[VALIDATION]].drop(columns=VALIDATION)
    positives = int(rows[LABEL].sum())
    settings, pos_weight = apply_imbalance(
        settings, config.training.imbalance, positives=positives, negatives=len(rows) - positives
    )
    return fit_single_node(
        rows,
        features=features,
        label=LABEL,
        settings=settings,
        nthread=xgb_config.nthread,
        valid=valid,
        pos_weight=pos_weight,
    )


def uses_exact_cuts(config: LakestreamConfig, settings: BoosterSettings) -> bool:
    """Whether the final fit rounds its features first: training.xgboost.exact_cuts, for the hist tree method."""
    return config.training.xgboost.exact_cuts and settings.params.get("tree_method", "hist") != "exact"


def with_exact_cuts(
    train: DataFrame, settings: BoosterSettings, features: list[str], *, validation_column: str | None
) -> DataFrame:
    """train with its features rounded to at most max_bin quantile edges (lakestream.training.cuts) of its fit rows:
    those not flagged by validation_column, when there is one."""
    max_bin = int(settings.params.get("max_bin", DEFAULT_MAX_BIN))
    fit_rows = train.where(~F.col(validation_column)) if validation_column else train
    edges = cut_edges(fit_rows, features, max_bin=max_bin)
    logger.info(
        "exact cuts: %d of %d features rounded to at most %d edges (%s)",
        len(edges),
        len(features),
        max_bin - 1,
        ", ".join(f"{name} {len(values)}" for name, values in edges.items()) or "none needed",
    )
    return apply_cuts(train, edges)


def evaluate_booster(
    labelled: DataFrame, fitted: FittedBooster, *, config: LakestreamConfig, split: TimeSplit, features: list[str]
) -> Evaluation:
    """Score the split's test rows (known compromised cards removed) and compute every metric."""
    from lakestream.scoring.batch import score_with_booster

    test = select_test(labelled, split=split)
    scored = score_with_booster(test, model_bytes=bytes(fitted.booster.save_raw("ubj")), features=features)
    return evaluate_scored(
        scored, evaluation=config.training.evaluation, threshold=config.training.scoring.review_threshold
    )


def build_model_reference(
    labelled: DataFrame,
    fitted: FittedBooster,
    *,
    config: LakestreamConfig,
    split: TimeSplit,
    features: list[str],
    metrics: dict[str, float],
) -> ReferenceProfile:
    """The monitoring reference of the model: its train window's inputs and volume, its test window's scores."""
    from lakestream.monitoring.reference import build_reference_profile
    from lakestream.scoring.batch import score_with_booster

    test = select_test(labelled, split=split)
    scored = score_with_booster(test, model_bytes=bytes(fitted.booster.save_raw("ubj")), features=features)
    return build_reference_profile(
        select_train(labelled, split=split),
        scored,
        features=features,
        bins=config.monitoring.bins,
        review_threshold=config.training.scoring.review_threshold,
        metrics=metrics,
        window={key: str(value) for key, value in split.to_dict().items()},
    )


def log_evaluation_artifacts(evaluation: Evaluation, fitted: FittedBooster, *, prefix: str = "test") -> None:
    """Metrics, daily CP@k, the evaluation JSON and the plots, into the active MLflow run."""
    import matplotlib.pyplot as plt
    import mlflow

    from lakestream.training import plots

    result = evaluation.result
    mlflow.log_metrics({f"{prefix}_{key}": value for key, value in result.metrics().items()})
    for step, day in enumerate(result.card_precision.daily):
        mlflow.log_metric(f"{prefix}_card_precision_at_{result.card_precision.k}_daily", day.precision, step=step)
    mlflow.log_dict(result.to_dict(), f"evaluation/{prefix}_evaluation.json")
    figures = {
        "roc": plots.plot_roc(evaluation.scores, auc=result.auc_roc),
        "precision_recall": plots.plot_precision_recall(evaluation.scores, average_precision=result.average_precision),
        "card_precision_per_day": plots.plot_card_precision(result.card_precision),
        "feature_importance": plots.plot_feature_importance(fitted.booster),
        "score_distributions": plots.plot_score_distributions(evaluation.scores),
        "reliability": plots.plot_reliability(result.calibration),
    }
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{prefix}_{name}.png")
        plt.close(figure)


def _log_trial(outcome: TrialOutcome) -> None:
    import mlflow

    with mlflow.start_run(run_name=f"trial-{outcome.number:03d}", nested=True):
        mlflow.set_tag("lakestream.pipeline", "tuning-trial")
        mlflow.log_params(outcome.params)
        metrics = {f"validation_{key}": value for key, value in outcome.summary.items()}
        for index, fold in enumerate(outcome.folds):
            metrics.update({f"fold{index}_{key}": value for key, value in fold.items()})
        metrics["objective"] = outcome.value
        metrics["seconds_per_trial"] = outcome.seconds
        mlflow.log_metrics(metrics)


def run_tuning(
    spark: SparkSession,
    labelled: DataFrame,
    *,
    config: LakestreamConfig,
    split: TimeSplit,
    settings: BoosterSettings,
    features: list[str],
    n_trials: int | None,
) -> TuningResult:
    """Optuna over the prequential validation folds of the split; every trial is a nested MLflow run."""
    from lakestream.training.tuning import collect_fold_data, tune_hyperparameters

    folds = prequential_folds(split, config.training.prequential, kind="validation")
    fold_data = collect_fold_data(labelled, folds, features=features)
    tuning_settings = BoosterSettings(settings.params, settings.num_boost_round, None)  # rounds are tuned
    return tune_hyperparameters(
        spark,
        fold_data,
        base=tuning_settings,
        imbalance=config.training.imbalance,
        tuning=config.training.tuning,
        k=config.training.evaluation.top_k,
        n_trials=n_trials,
        feature_names=features,
        on_trial=_log_trial,
    )


def estimate_on_test_folds(
    spark: SparkSession,
    labelled: DataFrame,
    *,
    config: LakestreamConfig,
    split: TimeSplit,
    settings: BoosterSettings,
    features: list[str],
) -> dict[str, float]:
    """Mean and std over the prequential test folds of the final settings (single-node fits, parallel tasks)."""
    from lakestream.training.metrics import summarize_folds
    from lakestream.training.tuning import collect_fold_data, evaluate_on_folds_in_spark

    folds = prequential_folds(split, config.training.prequential, kind="test")
    fold_data = collect_fold_data(labelled, folds, features=features)
    fold_settings = BoosterSettings(settings.params, settings.num_boost_round, None)
    (per_fold,) = evaluate_on_folds_in_spark(
        spark,
        fold_data,
        [fold_settings],
        imbalance=config.training.imbalance,
        k=config.training.evaluation.top_k,
        feature_names=features,
    )
    summary = summarize_folds(per_fold)
    for index, fold in enumerate(per_fold):
        summary.update({f"fold{index}_{key}": value for key, value in fold.items()})
    return summary


def _date_range(request: TrainingRequest, config: LakestreamConfig) -> tuple[Any, Any]:
    splits = [request.split]
    if request.tune:
        splits += prequential_folds(request.split, config.training.prequential, kind="validation")
    if request.prequential_estimate:
        splits += prequential_folds(request.split, config.training.prequential, kind="test")
    return min(s.train_start for s in splits), max(s.test_end for s in splits)


def train_model(spark: SparkSession, config: LakestreamConfig, request: TrainingRequest) -> TrainingResult:
    """Train, evaluate, log and (optionally) register one model as the run of the configured experiment."""
    import mlflow
    from mlflow import MlflowClient

    from lakestream.registry.models import (
        TAG_FEATURE_SET,
        TAG_FEATURE_SET_VERSION,
        TAG_MODEL_INPUTS,
        log_booster,
        register_challenger,
    )
    from lakestream.registry.tracking import configure_mlflow

    spec = load_training_feature_set(config, request.feature_set)
    features = list(spec.model_inputs)
    settings = resolve_settings(config, request)
    start, end = _date_range(request, config)
    labelled, lineage = read_labelled_features(spark, config, spec, start=start, end=end)
    labelled = labelled.persist()
    code = read_code_version(Path(config.home))
    configure_mlflow(config)
    run_name = request.run_name or f"{spec.name}-{request.mode}-{request.split.train_start}"
    try:
        with mlflow.start_run(run_name=run_name) as run:
            _log_lineage(config, request, lineage, code, settings)
            tuning_summary = None
            if request.tune:
                tuned = run_tuning(
                    spark,
                    labelled,
                    config=config,
                    split=request.split,
                    settings=settings,
                    features=features,
                    n_trials=request.n_trials,
                )
                settings = settings.with_params(**tuned.best_params)
                mlflow.log_params({f"tuned.{key}": value for key, value in tuned.best_params.items()})
                mlflow.log_metric(f"tuning_best_validation_{tuned.metric}", tuned.best_value)
                tuning_summary = {
                    "trials": len(tuned.trials),
                    "metric": tuned.metric,
                    "best_value": round(tuned.best_value, 4),
                    "best_params": tuned.best_params,
                }
            fitted = fit_final_model(
                labelled, config=config, split=request.split, mode=request.mode, settings=settings, features=features
            )
            mlflow.log_params({"rounds": fitted.rounds, "best_iteration": fitted.best_iteration})
            mlflow.log_metric("fit_seconds", fitted.seconds)
            mlflow.log_dict({"params": fitted.params, "evals_result": fitted.evals_result}, "training/booster.json")
            evaluation = evaluate_booster(labelled, fitted, config=config, split=request.split, features=features)
            log_evaluation_artifacts(evaluation, fitted)
            log_reference_profile(
                build_model_reference(
                    labelled,
                    fitted,
                    config=config,
                    split=request.split,
                    features=features,
                    metrics=evaluation.result.metrics(),
                )
            )
            prequential = None
            if request.prequential_estimate:
                prequential = estimate_on_test_folds(
                    spark, labelled, config=config, split=request.split, settings=settings, features=features
                )
                mlflow.log_metrics({f"prequential_{key}": value for key, value in prequential.items()})
            example = select_test(labelled, split=request.split).select(*features).limit(5).toPandas()
            info = log_booster(fitted.booster, input_example=example, feature_names=features)
            metrics = evaluation.result.metrics()
            version = None
            if request.register:
                k = config.training.evaluation.top_k
                registered = register_challenger(
                    MlflowClient(),
                    name=config.mlflow.registered_model,
                    model_uri=info.model_uri,
                    run_id=run.info.run_id,
                    tags={
                        TAG_FEATURE_SET: spec.name,
                        TAG_FEATURE_SET_VERSION: spec.version,
                        TAG_MODEL_INPUTS: features,
                        "lakestream.mode": request.mode,
                        "lakestream.train_start": request.split.train_start.isoformat(),
                        "lakestream.train_end": request.split.train_end.isoformat(),
                        "lakestream.test_start": request.split.test_start.isoformat(),
                        "lakestream.test_end": request.split.test_end.isoformat(),
                        "lakestream.test_average_precision": round(metrics["average_precision"], 4),
                        f"lakestream.test_card_precision_at_{k}": round(metrics[f"card_precision_at_{k}"], 4),
                        "lakestream.test_auc_roc": round(metrics["auc_roc"], 4),
                        "lakestream.git_commit": code["git_commit"],
                    },
                    description=(
                        f"{spec.name} v{spec.version}, {request.mode}, trained on {request.split.train_start}.."
                        f"{request.split.train_end}; test {request.split.test_start}..{request.split.test_end}: "
                        f"AUC {metrics['auc_roc']:.3f}, AP {metrics['average_precision']:.3f}, "
                        f"CP@{k} {metrics[f'card_precision_at_{k}']:.3f}. Run {run.info.run_id}."
                    ),
                )
                version = str(registered.version)
                mlflow.set_tag("lakestream.registered_version", version)
            return TrainingResult(
                run_id=run.info.run_id,
                feature_set=spec.name,
                mode=request.mode,
                split=request.split.to_dict(),
                params={**settings.params, "num_boost_round": settings.num_boost_round},
                rounds=fitted.rounds,
                fit_seconds=fitted.seconds,
                metrics=metrics,
                daily_card_precision=[day.precision for day in evaluation.result.card_precision.daily],
                lineage={**lineage.to_dict(), **code},
                model_uri=info.model_uri,
                registered_version=version,
                tuning=tuning_summary,
                prequential=prequential,
            )
    finally:
        labelled.unpersist()


def _log_lineage(
    config: LakestreamConfig,
    request: TrainingRequest,
    lineage: TableLineage,
    code: dict[str, str],
    settings: BoosterSettings,
) -> None:
    import mlflow

    mlflow.set_tags(
        {
            "lakestream.pipeline": "train",
            "lakestream.mode": request.mode,
            **{f"lakestream.{key}": str(value) for key, value in lineage.to_dict().items()},
            **{f"lakestream.{key}": value for key, value in code.items()},
        }
    )
    mlflow.log_params(
        {
            **{f"split.{key}": value for key, value in request.split.to_dict().items()},
            "feature_set": lineage.feature_set,
            "feature_set_version": lineage.feature_set_version,
            "mode": request.mode,
            "imbalance.strategy": config.training.imbalance.strategy,
            "imbalance.pos_weight": config.training.imbalance.pos_weight,
            "num_boost_round": settings.num_boost_round,
            "early_stopping_rounds": settings.early_stopping_rounds,
            "exact_cuts": uses_exact_cuts(config, settings),
            **{f"xgb.{key}": value for key, value in settings.params.items()},
        }
    )
    mlflow.log_dict(json.loads(config.model_dump_json()), "config/resolved_config.json")
    mlflow.log_dict({**lineage.to_dict(), **code, "split": request.split.to_dict()}, "config/lineage.json")
