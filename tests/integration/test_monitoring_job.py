"""The monitoring job on real Delta tables and a real MLflow registry: batch-served scores of a small lake."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING

import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812

from lakestream.io.delta import read_delta
from lakestream.monitoring.job import MonitoringRequest, run_monitoring
from lakestream.monitoring.reference import load_reference_profile
from lakestream.monitoring.tables import alerts_path, decisions_path, metrics_path
from lakestream.registry.models import CHAMPION, load_model_version, resolve_version
from lakestream.scoring.batch import score_batch, scores_table_path
from lakestream.training.splits import build_time_split
from lakestream.training.trainer import TrainingRequest, train_model

if TYPE_CHECKING:
    from conftest import TrainingLake

    from lakestream.config import LakestreamConfig

FIRST, LAST = dt.date(2018, 5, 22), dt.date(2018, 5, 28)


@pytest.fixture(scope="module")
def monitored(spark: SparkSession, training_lake: TrainingLake) -> LakestreamConfig:
    """A champion trained on 05-01..05-07 (test 05-15..05-21) that batch-scored 05-22..05-28."""
    base = training_lake.with_model_name("it-monitoring")
    config = base.model_copy(
        update={
            "training": base.training.model_copy(
                update={"scoring": base.training.scoring.model_copy(update={"table": "scores_monitoring"})}
            ),
            "monitoring": base.monitoring.model_copy(update={"source": "batch", "database": "monitoring_batch"}),
        }
    )
    request = TrainingRequest(
        feature_set="fraud_v1", mode="single_node", split=build_time_split(train_start=dt.date(2018, 5, 1))
    )
    result = train_model(spark, config, request)
    client = MlflowClient()
    client.set_registered_model_alias(config.mlflow.registered_model, CHAMPION, result.registered_version)
    model = load_model_version(client, config, resolve_version(client, config.mlflow.registered_model, CHAMPION))
    score_batch(spark, config, model, start=FIRST, end=LAST)
    return config


def test_training_stores_a_reference_profile_with_the_model(monitored: LakestreamConfig) -> None:
    client = MlflowClient()
    version = resolve_version(client, monitored.mlflow.registered_model, CHAMPION)
    profile = load_reference_profile(version)
    assert profile is not None
    inputs = set(load_model_version(client, monitored, version).feature_names)
    assert set(profile.model_inputs) == inputs
    for name, dist in profile.model_inputs.items():
        assert math.isclose(sum(dist.shares), 1.0), name
        assert len(dist.shares) == len(dist.edges) + 1
        assert list(dist.edges) == sorted(set(dist.edges))
    assert profile.model_inputs["TX_DURING_WEEKEND"].edges in ((0.0,), (0.0, 1.0))
    assert profile.score is not None
    assert profile.alert_rate is not None
    assert profile.daily_volume > 0
    assert len(profile.hourly_volume) == 24
    assert profile.window["train_start"] == "2018-05-01"
    assert {"average_precision", "auc_roc", "card_precision_at_100"} <= set(profile.metrics)


@pytest.fixture(scope="module")
def first_run(spark: SparkSession, monitored: LakestreamConfig) -> dict:
    result = run_monitoring(spark, monitored, MonitoringRequest(start=FIRST, end=LAST, run_id="first"))
    return result.summary()


def test_every_window_gets_drift_quality_and_prediction_metrics(
    spark: SparkSession, monitored: LakestreamConfig, first_run: dict
) -> None:
    metrics = read_delta(spark, metrics_path(monitored))
    days = metrics.where((F.col("granularity") == "day") & (F.col("family") != "performance"))
    assert {r[0].date() for r in days.select("window_start").distinct().collect()} == {
        FIRST + dt.timedelta(days=i) for i in range(7)
    }
    hours = metrics.where(F.col("granularity") == "hour").select("window_start").distinct().count()
    assert 7 * 20 <= hours <= 7 * 24
    inputs = set(
        load_model_version(
            MlflowClient(), monitored, resolve_version(MlflowClient(), monitored.mlflow.registered_model, CHAMPION)
        ).feature_names
    )
    psi_features = {
        r[0]
        for r in days.where((F.col("family") == "feature_drift") & (F.col("metric") == "psi"))
        .select("dimension")
        .distinct()
        .collect()
    }
    assert psi_features == inputs
    kinds = {(r["family"], r["metric"]) for r in days.select("family", "metric").distinct().collect()}
    assert {
        ("feature_drift", "psi"),
        ("feature_drift", "js"),
        ("prediction_drift", "psi"),
        ("prediction_drift", "alert_rate"),
        ("prediction_drift", "score_bin_share"),
        ("data_quality", "null_rate"),
        ("data_quality", "volume_ratio"),
        ("data_quality", "transactions"),
    } <= kinds
    assert first_run["served_rows"] == read_delta(spark, scores_table_path(monitored)).count()


def test_daily_transactions_and_alert_rate_equal_the_scores_table(
    spark: SparkSession, monitored: LakestreamConfig, first_run: dict
) -> None:
    scores = read_delta(spark, scores_table_path(monitored)).where(F.col("tx_date") == FIRST)
    expected_rows = scores.count()
    expected_alerts = scores.where(F.col("decision") != "approve").count() / expected_rows
    metrics = read_delta(spark, metrics_path(monitored)).where(
        (F.col("granularity") == "day") & (F.col("window_start") == F.lit(dt.datetime.combine(FIRST, dt.time())))
    )
    values = {(r["family"], r["metric"]): r for r in metrics.where(F.col("dimension") == "").collect()}
    assert values[("data_quality", "transactions")]["value"] == expected_rows
    assert values[("prediction_drift", "alert_rate")]["value"] == pytest.approx(expected_alerts)
    assert values[("prediction_drift", "alert_rate")]["sample_size"] == expected_rows


def test_psi_of_a_day_equals_a_hand_computation_from_the_reference_bins(
    spark: SparkSession, monitored: LakestreamConfig, first_run: dict
) -> None:
    import pandas as pd

    from lakestream.features.spec import feature_set_path, load_feature_set
    from lakestream.features.store import feature_table_path

    version = resolve_version(MlflowClient(), monitored.mlflow.registered_model, CHAMPION)
    dist = load_reference_profile(version).model_inputs["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"]
    spec = load_feature_set(feature_set_path(monitored.home / "conf" / "features", "fraud_v1"))
    values = (
        read_delta(spark, feature_table_path(monitored, spec))
        .where(F.col("tx_date") == FIRST)
        .select("CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW")
        .toPandas()
        .iloc[:, 0]
    )
    bins = [sum(v > e for e in dist.edges) for v in values]
    observed = pd.Series(bins).value_counts(normalize=True).reindex(range(len(dist.shares)), fill_value=0.0)
    eps = 1e-4
    expected = sum(
        (max(p, eps) - max(q, eps)) * math.log(max(p, eps) / max(q, eps))
        for p, q in zip(observed, dist.shares, strict=True)
    )
    row = (
        read_delta(spark, metrics_path(monitored))
        .where(
            (F.col("granularity") == "day")
            & (F.col("window_start") == F.lit(dt.datetime.combine(FIRST, dt.time())))
            & (F.col("metric") == "psi")
            & (F.col("dimension") == "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW")
        )
        .first()
    )
    assert row["value"] == pytest.approx(expected, abs=1e-12)


def test_label_delayed_performance_only_for_days_with_complete_labels(
    spark: SparkSession, monitored: LakestreamConfig, first_run: dict
) -> None:
    # the run of 05-22..05-28 knows labels until 05-29 00:00: days 05-15..05-21 are complete, but none was served
    assert first_run["performance_days"] == [
        (dt.date(2018, 5, 15) + dt.timedelta(days=i)).isoformat() for i in range(7)
    ]
    perf = read_delta(spark, metrics_path(monitored)).where(F.col("family") == "performance")
    assert perf.count() == 0
    # the next day's run (labels until 05-30 00:00) judges 05-22, the first served day
    summary = run_monitoring(
        spark,
        monitored,
        MonitoringRequest(
            start=LAST + dt.timedelta(days=1),
            end=LAST + dt.timedelta(days=1),
            run_id="next",
            log_to_mlflow=False,
            write_report=False,
        ),
    ).summary()
    assert summary["performance_days"] == [FIRST.isoformat()]
    perf = read_delta(spark, metrics_path(monitored)).where(F.col("family") == "performance")
    assert {r[0].date() for r in perf.select("window_start").distinct().collect()} == {FIRST}
    metrics = {r["metric"]: r for r in perf.collect()}
    assert {"auc_roc", "average_precision", "card_precision", "fraud_rate", "frauds"} <= set(metrics)
    assert metrics["average_precision"]["reference"] is not None
    assert metrics["card_precision"]["labels_as_of"] == dt.datetime(2018, 5, 30)
    assert (
        metrics["card_precision"]["sample_size"]
        <= read_delta(spark, scores_table_path(monitored)).where(F.col("tx_date") == FIRST).count()
    )


def test_a_rerun_replaces_its_windows_and_raises_no_alert_twice(
    spark: SparkSession, monitored: LakestreamConfig, first_run: dict
) -> None:
    in_range = F.col("window_start") < F.lit(dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time()))
    before = read_delta(spark, metrics_path(monitored)).where(in_range).drop("run_id", "computed_at")
    alerts_before = read_delta(spark, alerts_path(monitored)).count() if first_run["alerts"] else 0
    run_monitoring(spark, monitored, MonitoringRequest(start=FIRST, end=LAST, run_id="second", log_to_mlflow=False))
    after = read_delta(spark, metrics_path(monitored)).where(in_range).drop("run_id", "computed_at")
    assert after.count() == before.count()
    assert after.exceptAll(before).count() == 0
    if first_run["alerts"]:
        assert read_delta(spark, alerts_path(monitored)).count() == alerts_before
    decisions = read_delta(spark, decisions_path(monitored))
    assert {"first", "second"} <= {r["run_id"] for r in decisions.collect()}


def test_the_report_is_written_and_logged(monitored: LakestreamConfig, first_run: dict) -> None:
    from pathlib import Path

    report = Path(first_run["report"])
    assert report.exists()
    text = report.read_text()
    assert "Feature drift" in text
    assert "data:image/png;base64," in text
    assert (report.parent / "latest.html").exists()
