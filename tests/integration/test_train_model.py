"""Training on a real lake and a real MLflow store: lineage, metrics, plots, registration, tuning, spark-submit."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import TYPE_CHECKING

import mlflow
import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from lakestream.errors import ConfigError
from lakestream.registry.models import CHALLENGER, TAG_FEATURE_SET, TAG_MODEL_INPUTS
from lakestream.training.splits import build_time_split
from lakestream.training.trainer import TrainingRequest, train_model

if TYPE_CHECKING:
    from conftest import TrainingLake

SPLIT = build_time_split(train_start=dt.date(2018, 5, 1))


def _artifacts(client: MlflowClient, run_id: str, path: str) -> set[str]:
    return {item.path for item in client.list_artifacts(run_id, path)}


def test_single_node_training_logs_lineage_metrics_plots_and_registers_a_challenger(
    spark: SparkSession, training_lake: TrainingLake
) -> None:
    config = training_lake.with_model_name("it-train-single")
    result = train_model(spark, config, TrainingRequest(feature_set="fraud_v1", mode="single_node", split=SPLIT))

    client = MlflowClient()
    run = client.get_run(result.run_id)
    # lineage: the Delta versions read, the feature set, the code version and the whole resolved config
    assert run.data.tags["lakestream.features_delta_version"] == "0"
    assert run.data.tags["lakestream.labels_delta_version"] == "0"
    assert run.data.tags["lakestream.feature_set"] == "fraud_v1"
    assert run.data.tags["lakestream.git_commit"] != ""
    assert run.data.params["split.test_start"] == "2018-05-15"
    resolved = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/config/resolved_config.json"))
    assert resolved["training"]["split"]["train_start"] == "2018-05-01"
    # metrics of the test window, daily CP@100 and every plot
    assert 0.5 < run.data.metrics["test_auc_roc"] <= 1.0
    assert run.data.metrics["test_average_precision"] == pytest.approx(result.metrics["average_precision"])
    assert len(result.daily_card_precision) == 7
    assert len(client.get_metric_history(result.run_id, "test_card_precision_at_100_daily")) == 7
    assert _artifacts(client, result.run_id, "plots") == {
        f"plots/test_{name}.png"
        for name in (
            "roc",
            "precision_recall",
            "card_precision_per_day",
            "feature_importance",
            "score_distributions",
            "reliability",
        )
    }
    # registered as the challenger, self-describing, loadable as a booster with its signature
    version = client.get_model_version_by_alias(config.mlflow.registered_model, CHALLENGER)
    assert str(version.version) == result.registered_version == "1"
    assert version.tags[TAG_FEATURE_SET] == "fraud_v1"
    assert json.loads(version.tags[TAG_MODEL_INPUTS])[0] == "tx_amount"
    assert version.tags["lakestream.train_end"] == "2018-05-07"
    booster = mlflow.xgboost.load_model(f"models:/{config.mlflow.registered_model}@{CHALLENGER}")
    assert booster.num_boosted_rounds() == 30
    info = mlflow.models.get_model_info(f"models:/{config.mlflow.registered_model}/1")
    assert [spec.name for spec in info.signature.inputs.inputs][:2] == ["tx_amount", "TX_DURING_WEEKEND"]


def test_spark_training_with_early_stopping_and_sample_weights(
    spark: SparkSession, training_lake: TrainingLake
) -> None:
    base = training_lake.with_model_name("it-train-spark")
    training = base.training.model_copy(
        update={
            "xgboost": base.training.xgboost.model_copy(
                # raw features (exact cuts off): the sketch of each worker's own rows
                update={"early_stopping_rounds": 3, "validation_days": 2, "num_boost_round": 200, "exact_cuts": False}
            ),
            "imbalance": base.training.imbalance.model_copy(update={"strategy": "sample_weight", "pos_weight": "sqrt"}),
        }
    )
    config = base.model_copy(update={"training": training})
    result = train_model(
        spark, config, TrainingRequest(feature_set="fraud_v1", mode="spark", split=SPLIT, register=False)
    )
    assert result.registered_version is None
    assert result.rounds < 200  # stopped early on the last 2 train days
    params = MlflowClient().get_run(result.run_id).data.params
    assert params["exact_cuts"] == "False"
    assert int(params["best_iteration"]) + 1 == result.rounds
    assert params["imbalance.strategy"] == "sample_weight"
    assert 0.5 < result.metrics["auc_roc"] <= 1.0


def test_exact_cuts_fit_the_same_model_on_one_node_and_on_spark(
    spark: SparkSession, training_lake: TrainingLake
) -> None:
    config = training_lake.with_model_name("it-train-cuts")
    assert config.training.xgboost.exact_cuts  # the default
    results = {
        mode: train_model(
            spark, config, TrainingRequest(feature_set="fraud_v1", mode=mode, split=SPLIT, register=False)
        )
        for mode in ("single_node", "spark")
    }
    for name in ("auc_roc", "average_precision", "card_precision_at_100"):
        assert results["spark"].metrics[name] == pytest.approx(results["single_node"].metrics[name], abs=1e-9), name
    assert MlflowClient().get_run(results["spark"].run_id).data.params["exact_cuts"] == "True"


def test_exact_tree_method_is_refused_by_spark_mode(spark: SparkSession, training_lake: TrainingLake) -> None:
    request = TrainingRequest(
        feature_set="fraud_v1", mode="spark", split=SPLIT, register=False, params={"tree_method": "exact"}
    )
    with pytest.raises(ConfigError, match="single-node-exact"):
        train_model(spark, training_lake.config, request)


def test_tuning_tracks_every_trial_as_a_nested_run(spark: SparkSession, training_lake: TrainingLake) -> None:
    config = training_lake.with_model_name("it-train-tuned")
    request = TrainingRequest(
        feature_set="fraud_v1", mode="single_node", split=SPLIT, tune=True, n_trials=4, prequential_estimate=True
    )
    result = train_model(spark, config, request)

    assert result.tuning is not None
    assert result.tuning["trials"] == 4
    client = MlflowClient()
    parent = client.get_run(result.run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert len(children) == 4
    for child in children:
        assert {"fold0_average_precision", "fold1_average_precision", "validation_average_precision_mean"} <= set(
            child.data.metrics
        )
        assert "max_depth" in child.data.params
    best = max(children, key=lambda child: child.data.metrics["objective"])
    assert best.data.metrics["objective"] == pytest.approx(result.tuning["best_value"], abs=1e-4)
    assert int(parent.data.params["tuned.max_depth"]) == result.tuning["best_params"]["max_depth"]
    # the prequential estimate of the final parameters: mean and std over the 2 test folds
    assert result.prequential is not None
    assert {"average_precision_mean", "average_precision_std", "card_precision_at_100_mean"} <= set(result.prequential)


def test_train_job_runs_through_spark_submit(training_lake: TrainingLake) -> None:
    env = training_lake.environ(**{"mlflow.registered_model": "it-train-submit"})
    command = [sys.executable, "-m", "lakestream.cli", "submit", "jobs/train_model.py", "--feature-set", "fraud_v1"]
    completed = subprocess.run(
        [*command, "--mode", "single-node-exact", "--param", "max_depth=3", "--raw-features"],
        cwd=training_lake.config.home,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "single_node_exact"
    assert summary["split"]["train_start"] == "2018-05-01"
    assert summary["registered_version"] == "1"
    assert set(summary["test"]) >= {"auc_roc", "average_precision", "card_precision_at_100"}
    resolved = json.loads(mlflow.artifacts.load_text(f"runs:/{summary['run_id']}/config/resolved_config.json"))
    assert resolved["training"]["xgboost"]["exact_cuts"] is False  # --raw-features

    failed = subprocess.run(
        [sys.executable, "jobs/train_model.py", "--feature-set", "no_such_set"],
        cwd=training_lake.config.home,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert failed.returncode == 2
    assert "unknown feature set 'no_such_set'" in failed.stderr
