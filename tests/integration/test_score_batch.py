"""Batch scoring with the champion into gold.scores: exact scores, decisions, idempotent days, spark-submit."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812

from lakestream.config import LakestreamConfig
from lakestream.errors import DataError
from lakestream.features.store import feature_table_path
from lakestream.io.delta import read_delta
from lakestream.registry.models import CHAMPION, LoadedModel, load_model_version, resolve_version
from lakestream.scoring.batch import SCORES_COLUMNS, score_batch, scores_table_path
from lakestream.training.splits import build_time_split
from lakestream.training.trainer import TrainingRequest, train_model

if TYPE_CHECKING:
    from conftest import TrainingLake

MODEL_NAME = "it-score"


@pytest.fixture(scope="module")
def scoring(spark: SparkSession, training_lake: TrainingLake) -> tuple[LakestreamConfig, LoadedModel]:
    """A trained model behind the champion alias, with the scores table in a lake of its own."""
    config = training_lake.with_model_name(MODEL_NAME)
    split = build_time_split(train_start=dt.date(2018, 5, 1))
    result = train_model(spark, config, TrainingRequest(feature_set="fraud_v1", mode="single_node", split=split))
    client = MlflowClient()
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, result.registered_version)
    model = load_model_version(client, config, resolve_version(client, MODEL_NAME, CHAMPION))
    return config, model


def test_scores_equal_the_booster_and_decisions_follow_the_thresholds(
    spark: SparkSession, scoring: tuple[LakestreamConfig, LoadedModel]
) -> None:
    config, model = scoring
    result = score_batch(spark, config, model, start=dt.date(2018, 5, 20), end=dt.date(2018, 5, 21))

    scores = read_delta(spark, scores_table_path(config)).toPandas().sort_values("transaction_id")
    assert list(scores.columns) == list(SCORES_COLUMNS)
    features = (
        read_delta(spark, feature_table_path(config, model.feature_spec))
        .where(F.col("tx_date").between(dt.date(2018, 5, 20), dt.date(2018, 5, 21)))
        .toPandas()
        .sort_values("transaction_id")
    )
    assert result.rows == len(scores) == len(features) > 0
    assert scores["transaction_id"].tolist() == features["transaction_id"].tolist()
    expected = model.booster.inplace_predict(features[list(model.feature_names)].to_numpy(dtype=np.float32))
    np.testing.assert_allclose(scores["score"].to_numpy(), expected, rtol=0, atol=1e-7)
    thresholds = config.training.scoring
    expected_decision = np.where(
        expected >= thresholds.block_threshold,
        "block",
        np.where(expected >= thresholds.review_threshold, "review", "approve"),
    )
    assert scores["decision"].tolist() == expected_decision.tolist()
    assert result.decisions == scores["decision"].value_counts().to_dict()
    assert set(scores["model_name"]) == {MODEL_NAME}
    assert set(scores["model_version"]) == {model.version}
    assert set(scores["feature_set"]) == {"fraud_v1"}
    assert scores["scored_at"].nunique() == 1


def test_rescoring_a_day_replaces_exactly_that_day(
    spark: SparkSession, scoring: tuple[LakestreamConfig, LoadedModel]
) -> None:
    config, model = scoring
    score_batch(spark, config, model, start=dt.date(2018, 5, 22), end=dt.date(2018, 5, 23))
    path = scores_table_path(config)
    before = read_delta(spark, path).where("tx_date = '2018-05-22'").localCheckpoint()
    rows_23 = read_delta(spark, path).where("tx_date = '2018-05-23'").count()

    score_batch(spark, config, model, start=dt.date(2018, 5, 23), end=dt.date(2018, 5, 23))
    score_batch(spark, config, model, start=dt.date(2018, 5, 23), end=dt.date(2018, 5, 23))
    after = read_delta(spark, path)
    assert after.where("tx_date = '2018-05-23'").count() == rows_23
    assert after.where("tx_date = '2018-05-23'").select("transaction_id").distinct().count() == rows_23
    untouched = after.where("tx_date = '2018-05-22'")
    assert sorted(untouched.collect()) == sorted(before.collect())  # same rows, same scored_at


def test_a_version_without_lakestream_tags_is_refused(
    spark: SparkSession, scoring: tuple[LakestreamConfig, LoadedModel]
) -> None:
    config, _ = scoring
    client = MlflowClient()
    source = client.get_model_version(MODEL_NAME, "1")
    bare = client.create_model_version(MODEL_NAME, source.source, run_id=source.run_id)
    with pytest.raises(DataError, match=r"was not registered by lakestream\.training"):
        load_model_version(client, config, bare)


def test_score_job_runs_through_spark_submit(
    training_lake: TrainingLake, scoring: tuple[LakestreamConfig, LoadedModel]
) -> None:
    config, model = scoring
    completed = subprocess.run(
        [sys.executable, "-m", "lakestream.cli", "submit", "jobs/score_batch.py", "--date", "2018-05-24"],
        cwd=config.home,
        env=training_lake.environ(**{"mlflow.registered_model": MODEL_NAME}),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["model_version"] == model.version
    assert summary["start"] == summary["end"] == "2018-05-24"
    assert summary["rows"] == sum(summary["decisions"].values()) > 0


@pytest.mark.parametrize("job", ["train_model", "promote_model", "score_batch"])
def test_job_help(job: str) -> None:
    completed = subprocess.run(
        [sys.executable, f"jobs/{job}.py", "--help"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0
    assert "usage:" in completed.stdout
