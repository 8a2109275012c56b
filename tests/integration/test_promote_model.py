"""The champion/challenger gate: pure decisions, then the real registry (first champion, worse, better, force)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from lakestream.config import LakestreamConfig
from lakestream.config.models import PromotionConfig
from lakestream.errors import ConfigError
from lakestream.registry.models import CHALLENGER, CHAMPION, register_challenger
from lakestream.registry.promotion import decide_promotion, promote_challenger
from lakestream.registry.tracking import configure_mlflow
from lakestream.training.splits import build_time_split
from lakestream.training.trainer import TrainingRequest, train_model

if TYPE_CHECKING:
    from conftest import TrainingLake

POLICY = PromotionConfig(ap_margin=0.01, card_precision_margin=0.0, auc_tolerance=0.01, max_alert_rate=0.05)


def metrics(ap: float, cp: float, auc: float = 0.9, alert_rate: float = 0.01, score_std: float = 0.1) -> dict:
    return {
        "average_precision": ap,
        "card_precision_at_100": cp,
        "auc_roc": auc,
        "alert_rate": alert_rate,
        "score_std": score_std,
    }


# ----------------------------------------------------------------------------------------------- pure gate
def test_gate_first_model_needs_only_the_sanity_checks() -> None:
    promote, reason, checks = decide_promotion(metrics(0.5, 0.2), None, policy=POLICY, k=100)
    assert promote
    assert "no champion yet" in reason
    assert set(checks) == {"auc_above_floor", "scores_vary", "alert_rate_in_bounds"}


def test_gate_margins_tolerance_and_sanity() -> None:
    champion = metrics(0.60, 0.25, auc=0.88)
    assert decide_promotion(metrics(0.62, 0.26, auc=0.875), champion, policy=POLICY, k=100)[0]
    # AP better but not by the 0.01 margin
    promote, reason, checks = decide_promotion(metrics(0.605, 0.30), champion, policy=POLICY, k=100)
    assert not promote
    assert not checks["ap_margin"]
    assert "failed checks ['ap_margin']" in reason
    # CP@100 regresses
    assert not decide_promotion(metrics(0.7, 0.24), champion, policy=POLICY, k=100)[2]["card_precision_margin"]
    # AUC drops beyond the tolerance
    assert not decide_promotion(metrics(0.7, 0.3, auc=0.86), champion, policy=POLICY, k=100)[2]["auc_within_tolerance"]
    # alert rate out of bounds, constant scores, AUC under the floor
    assert not decide_promotion(metrics(0.7, 0.3, alert_rate=0.2), champion, policy=POLICY, k=100)[0]
    assert not decide_promotion(metrics(0.7, 0.3, score_std=0.0), champion, policy=POLICY, k=100)[0]
    assert not decide_promotion(metrics(0.7, 0.3, auc=0.55), None, policy=POLICY, k=100)[0]


def test_gate_a_copy_of_the_champion_is_not_an_improvement() -> None:
    policy = PromotionConfig(ap_margin=0.0, card_precision_margin=0.0)
    promote, _, checks = decide_promotion(metrics(0.6, 0.25), metrics(0.6, 0.25), policy=policy, k=100)
    assert not promote
    assert checks == {**{name: True for name in checks}, "improves_on_champion": False}


def test_gate_force_promotes_and_says_why() -> None:
    promote, reason, checks = decide_promotion(metrics(0.3, 0.1), metrics(0.6, 0.25), policy=POLICY, k=100, force=True)
    assert promote
    assert reason.startswith("forced by operator despite failed checks")
    assert not checks["ap_margin"]


# ------------------------------------------------------------------------------------------- real registry
SPLIT = build_time_split(train_start=dt.date(2018, 5, 1))


@pytest.fixture(scope="module")
def trained(spark: SparkSession, training_lake: TrainingLake) -> dict[str, dict[str, Any]]:
    """A strong and a weak model, logged and registered once; tests re-register them under their own names."""
    config = training_lake.with_model_name("it-promote-source")
    models = {}
    for name, params in (("strong", {}), ("weak", {"max_depth": 1, "num_boost_round": 2, "colsample_bytree": 0.3})):
        request = TrainingRequest(feature_set="fraud_v1", mode="single_node", split=SPLIT, params=params)
        result = train_model(spark, config, request)
        version = MlflowClient().get_model_version("it-promote-source", result.registered_version)
        models[name] = {"uri": result.model_uri, "run_id": result.run_id, "tags": dict(version.tags)}
    return models


def register(config: LakestreamConfig, model: dict[str, Any]) -> str:
    configure_mlflow(config)
    version = register_challenger(
        MlflowClient(),
        name=config.mlflow.registered_model,
        model_uri=model["uri"],
        run_id=model["run_id"],
        tags=model["tags"],
        description="registered by the promotion tests",
    )
    return str(version.version)


def champion_of(config: LakestreamConfig) -> str:
    return str(MlflowClient().get_model_version_by_alias(config.mlflow.registered_model, CHAMPION).version)


def test_first_model_becomes_champion_and_the_decision_is_recorded(
    spark: SparkSession, training_lake: TrainingLake, trained: dict
) -> None:
    config = training_lake.with_model_name("it-promote-first")
    register(config, trained["strong"])
    decision = promote_challenger(spark, config)

    assert decision.outcome == "promoted"
    assert decision.champion_version is None
    assert decision.window == {"start": "2018-05-17", "end": "2018-05-23"}  # newest gold day 05-30 minus 7
    assert champion_of(config) == "1"
    version = MlflowClient().get_model_version(config.mlflow.registered_model, "1")
    assert version.tags["lakestream.promotion.outcome"] == "promoted"
    assert json.loads(version.tags["lakestream.promotion.checks"]) == decision.checks
    assert "promotion promoted: all checks passed (no champion yet)" in version.description

    listed = subprocess.run(
        [sys.executable, "-m", "lakestream.cli", "models", "--format", "json"],
        cwd=config.home,
        env=training_lake.environ(**{"mlflow.registered_model": config.mlflow.registered_model}),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    (row,) = json.loads(listed.stdout.strip().splitlines()[-1])
    assert (row["version"], row["aliases"], row["promotion"]) == ("1", "challenger,champion", "promoted")


def test_worse_challenger_is_not_promoted(spark: SparkSession, training_lake: TrainingLake, trained: dict) -> None:
    config = training_lake.with_model_name("it-promote-worse")
    register(config, trained["strong"])
    promote_challenger(spark, config)
    register(config, trained["weak"])
    decision = promote_challenger(spark, config)

    assert decision.outcome == "rejected"
    assert not decision.checks["ap_margin"]
    assert decision.challenger_metrics["average_precision"] < decision.champion_metrics["average_precision"]
    assert champion_of(config) == "1"
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(config.mlflow.registered_model, CHALLENGER).version) == "2"
    rejected = client.get_model_version(config.mlflow.registered_model, "2")
    assert rejected.tags["lakestream.promotion.outcome"] == "rejected"
    assert rejected.tags["lakestream.promotion.champion_version"] == "1"
    assert "promotion rejected: failed checks" in rejected.description


def test_better_challenger_is_promoted(spark: SparkSession, training_lake: TrainingLake, trained: dict) -> None:
    config = training_lake.with_model_name("it-promote-better")
    register(config, trained["weak"])
    promote_challenger(spark, config, force=True)  # the weak model may fail the AUC floor on its own
    register(config, trained["strong"])
    decision = promote_challenger(spark, config, window_end=dt.date(2018, 5, 23))

    assert decision.outcome == "promoted", decision.reason
    assert decision.champion_version == "1"
    assert champion_of(config) == "2"
    previous = MlflowClient().get_model_version(config.mlflow.registered_model, "1")
    assert previous.tags["lakestream.promotion.replaced_by"] == "2"


def test_force_promotes_a_worse_model_and_records_it(
    spark: SparkSession, training_lake: TrainingLake, trained: dict
) -> None:
    config = training_lake.with_model_name("it-promote-force")
    register(config, trained["strong"])
    promote_challenger(spark, config)
    register(config, trained["weak"])
    decision = promote_challenger(spark, config, force=True)

    assert decision.outcome == "forced"
    assert champion_of(config) == "2"
    forced = MlflowClient().get_model_version(config.mlflow.registered_model, "2")
    assert forced.tags["lakestream.promotion.outcome"] == "forced"
    assert "forced by operator" in forced.description


def test_window_overlapping_the_training_data_is_refused(
    spark: SparkSession, training_lake: TrainingLake, trained: dict
) -> None:
    config = training_lake.with_model_name("it-promote-overlap")
    register(config, trained["strong"])
    with pytest.raises(ConfigError, match="overlaps the training data"):
        promote_challenger(spark, config, window_end=dt.date(2018, 5, 10))
    with pytest.raises(ConfigError, match="has no version or alias '7'"):
        promote_challenger(spark, config, challenger="7")


def test_promote_job_without_a_registered_model_exits_2(training_lake: TrainingLake) -> None:
    completed = subprocess.run(
        [sys.executable, "jobs/promote_model.py"],
        cwd=training_lake.config.home,
        env=training_lake.environ(**{"mlflow.registered_model": "it-promote-none"}),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "has no version or alias 'challenger'" in completed.stderr
