"""The DAGs run for real: `airflow dags test` submits the jobs to a local Spark over a small simulated lake.

One lake for the module: 120 customers x 240 terminals x 40 days landed as files, bronze and the silver days
before the tested ones built in-process. Then, through Airflow only: the daily DAG for one day (no champion yet:
scoring skipped), the monitoring DAG (no stream, no champion: a retrain request asset event), the retraining DAG
with that event's as-of day (train + promote a champion), and a backfill of two days ending with the daily run's
day, which must rebuild the days the daily run built exactly as they were, and scores them with the new champion.

Backfill: `airflow backfill create` only records the runs; a running scheduler executes them (`make airflow`).
The test asks the CLI for the runs it would create (--dry-run) and executes those logical dates with
`airflow dags test`, the same task code without a scheduler. Every Spark task is a real spark-submit (~25 s
here), so nothing runs twice: the planned run of the daily run's day is the daily run itself and only the day
before is executed (its window overlaps the daily run's, out of order: the stronger check), marking the tasks that
add nothing to the comparison successful instead of running them (NOT_BACKFILLED).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812

from lakestream.config import LakestreamConfig, load_config
from lakestream.io.delta import is_delta_table, read_delta

START = dt.date(2018, 4, 1)
DAYS = 40
DAY = dt.date(2018, 5, 6)  # the day the daily run builds; it rebuilds DAY - lateness .. DAY
BACKFILL = (DAY - dt.timedelta(days=1), DAY)  # ends with the daily run's day: only the day before is run again
# Tasks the backfill run marks successful instead of running: the daily run ran both, and they would add nothing
# here (every landed file is in bronze already; the profile is a report, checked on the daily run).
NOT_BACKFILLED = "^(ingest_landed|profile_data)$"
RUN_COLUMNS = ("run_id", "scored_at")  # which run wrote a row, and when: the only columns a re-run may change
MODEL_ENV = {
    # tiny data: a fast single-node model, a promotion gate that a 120-customer simulation can pass
    "LAKESTREAM__TRAINING__MODE": "single_node",
    "LAKESTREAM__TRAINING__XGBOOST__NUM_BOOST_ROUND": "20",
    "LAKESTREAM__TRAINING__PROMOTION__MAX_ALERT_RATE": "0.5",
    "LAKESTREAM__TRAINING__PROMOTION__MIN_AUC": "0.5",
}


@dataclass(frozen=True)
class AirflowLake:
    """The module's lake, its configuration and the environment of the airflow CLI."""

    config: LakestreamConfig
    env: dict[str, str]

    def airflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the airflow CLI of the venv against this lake; fail the test with its output if it fails."""
        result = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"airflow {' '.join(args)}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        return result

    def run_daily(self, day: dt.date, *, mark_success_pattern: str | None = None) -> None:
        """`airflow dags test` of the daily DAG for `day`: a manual run covers the interval ending at its date.

        Tasks whose id matches mark_success_pattern are marked successful without running.
        """
        skip = ("--mark-success-pattern", mark_success_pattern) if mark_success_pattern else ()
        self.run_dag("lakestream_daily", day + dt.timedelta(days=1), *skip)

    def run_dag(self, dag_id: str, logical_date: dt.date | str, *conf: str) -> None:
        """`airflow dags test`, asserting the run ended in success (the command exits 0 even when it did not)."""
        result = self.airflow("dags", "test", dag_id, str(logical_date), *conf)
        output = result.stdout + result.stderr
        assert "state=success" in output, output[-6000:]

    def table(self, spark: SparkSession, database: str, name: str, days: tuple[dt.date, dt.date]) -> pd.DataFrame:
        """Rows of a tx_date-partitioned table for the days, without the run's own lineage, in a stable order."""
        df = read_delta(spark, self.config.table_path(database, name)).where(F.col("tx_date").between(*days))
        pdf = df.drop(*RUN_COLUMNS).toPandas()
        return pdf.sort_values(sorted(pdf.columns)).reset_index(drop=True)

    def silver_runs(self, spark: SparkSession, days: tuple[dt.date, dt.date]) -> dict[dt.date, set[str]]:
        """The run ids that wrote each day of silver.transactions: which run built the day last."""
        rows = (
            read_delta(spark, self.config.table_path("silver", "transactions"))
            .where(F.col("tx_date").between(*days))
            .select("tx_date", "run_id")
            .distinct()
            .collect()
        )
        runs: dict[dt.date, set[str]] = {}
        for row in rows:
            runs.setdefault(row["tx_date"], set()).add(row["run_id"])
        return runs


@pytest.fixture(scope="module")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowLake]:
    """Land the simulation, ingest bronze, build silver and gold up to the tested days in-process; migrate Airflow."""
    from lakestream.features.spec import feature_set_path, load_feature_set
    from lakestream.features.store import build_feature_table
    from lakestream.orchestration.airflow_server import airflow_environment, prepare_airflow
    from lakestream.quality.bronze import ingest_landed_files
    from lakestream.quality.kinds import get_event_kind
    from lakestream.quality.silver import clean_landed_days
    from lakestream.simulate.generator import SimulationParams
    from lakestream.simulate.landing import land_simulation

    state = tmp_path_factory.mktemp("airflow-lake") / "var"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"LAKESTREAM__PATHS__STATE_DIR": str(state), **MODEL_ENV}.items():
            patch.setenv(key, value)
        config = load_config()
        land_simulation(
            spark,
            config,
            SimulationParams(n_customers=120, n_terminals=240, nb_days=DAYS, start_date=START.isoformat()),
        )
        before = DAY - dt.timedelta(days=config.quality.allowed_lateness_days + 1)
        for kind in ("transactions", "fraud_labels"):
            ingest_landed_files(spark, config, kind=get_event_kind(kind))
            clean_landed_days(spark, config, kind=get_event_kind(kind), start=START, end=before)
        spec = load_feature_set(feature_set_path(config.home / "conf" / "features", "fraud_v1"))
        build_feature_table(spark, config, spec, start=START, end=before)  # the training windows
        prepare_airflow(config)
        yield AirflowLake(config, airflow_environment(config))


@pytest.fixture(scope="module")
def daily_run(spark: SparkSession, lake: AirflowLake) -> dict[str, Any]:
    """Run the daily DAG for DAY; the tables of the days it rebuilt, as it left them."""
    lake.run_daily(DAY)
    window = (DAY - dt.timedelta(days=lake.config.quality.allowed_lateness_days), DAY)
    return {
        "transactions": lake.table(spark, "silver", "transactions", window),
        "features": lake.table(spark, "gold", "features_fraud_v1", window),
        "silver_runs": lake.silver_runs(spark, window),
        "scores_written": is_delta_table(lake.config.table_path("gold", lake.config.training.scoring.table)),
        "features_commit": DeltaTable(str(lake.config.table_path("gold", "features_fraud_v1"))).history(1)[0],
    }


def test_daily_run_builds_silver_and_gold_for_its_days(
    spark: SparkSession, lake: AirflowLake, daily_run: dict[str, Any]
) -> None:
    config = lake.config
    window = (DAY - dt.timedelta(days=config.quality.allowed_lateness_days), DAY)
    truth = (
        read_delta(spark, config.table_path("sim", "transactions"))
        .where(F.col("tx_date").between(*window))
        .select("transaction_id", "tx_date")
        .toPandas()
        .sort_values("transaction_id")
        .reset_index(drop=True)
    )
    silver = daily_run["transactions"].sort_values("transaction_id").reset_index(drop=True)
    assert len(truth) > 0
    assert silver[["transaction_id", "tx_date"]].equals(truth)  # every simulated event of the days, once
    features = daily_run["features"].sort_values("transaction_id").reset_index(drop=True)
    assert features["transaction_id"].tolist() == truth["transaction_id"].tolist()
    later = read_delta(spark, config.table_path("gold", "features_fraud_v1")).where(F.col("tx_date") > DAY).count()
    assert later == 0  # a run never builds days after its interval
    # its days are committed from the driver (feature_store.driver_write_max_days covers the daily window)
    assert "delta-rs" in daily_run["features_commit"]["engineInfo"]
    assert sorted(p.name for p in config.paths.reports_dir.glob("profile_*.html")) == [
        f"profile_{window[0]}_{window[1]}.html"
    ]
    assert daily_run["scores_written"] is False  # no champion yet: the score task skipped


@pytest.fixture(scope="module")
def retraining(lake: AirflowLake, daily_run: dict[str, Any]) -> dict[str, object]:
    """Monitoring run (asset event), then the retraining DAG with the event's as-of day; the event's extra."""
    lake.run_dag("lakestream_monitoring", f"{DAY + dt.timedelta(days=1)}T00:15:00+00:00")
    database = Path(lake.env["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
            ("lakestream://monitoring/retrain-requests",),
        ).fetchall()
    assert len(rows) == 1, rows
    extra = json.loads(rows[0][0])
    lake.run_dag("lakestream_retraining", DAY, "--conf", json.dumps({"as_of": extra["as_of"]}))
    return extra


def test_monitoring_requests_retraining_and_retraining_promotes_a_champion(
    lake: AirflowLake, retraining: dict[str, object]
) -> None:
    from mlflow import MlflowClient

    from lakestream.registry.models import CHAMPION, find_version_by_alias
    from lakestream.registry.tracking import configure_mlflow

    assert retraining["needed"] is True
    assert retraining["as_of"] == DAY.isoformat()  # the newest feature day the daily run built
    assert "no champion" in str(retraining["reason"])
    configure_mlflow(lake.config)
    champion = find_version_by_alias(MlflowClient(), lake.config.mlflow.registered_model, CHAMPION)
    assert champion is not None
    split = lake.config.training.split
    test_end = DAY - dt.timedelta(days=split.delay_days)
    train_end = test_end - dt.timedelta(days=split.test_days + split.delay_days)
    assert champion.tags["lakestream.train_end"] == train_end.isoformat()  # windows placed --as-of the event's day


def test_backfill_rebuilds_the_same_days_and_scores_them(
    spark: SparkSession, lake: AirflowLake, daily_run: dict[str, Any], retraining: dict[str, object]
) -> None:
    dry_run = lake.airflow(
        "backfill", "create", "--dag-id", "lakestream_daily", "--dry-run",
        "--from-date", BACKFILL[0].isoformat(), "--to-date", BACKFILL[1].isoformat(),
    ).stdout  # fmt: skip
    rows = [line.split("|")[1].strip() for line in dry_run.splitlines() if "| 2018-" in line]
    planned = [dt.date.fromisoformat(row[:10]) for row in rows]
    assert planned == list(BACKFILL)  # one run per day, logical date = the day (its interval's start)
    for day in planned:
        if day != DAY:  # DAY's run is the daily run (same task code, same interval)
            lake.run_daily(day, mark_success_pattern=NOT_BACKFILLED)

    lateness = dt.timedelta(days=lake.config.quality.allowed_lateness_days)
    window = (DAY - lateness, DAY)
    rebuilt = lake.silver_runs(spark, window)
    assert sorted(rebuilt) == sorted(daily_run["silver_runs"])
    for day, runs in daily_run["silver_runs"].items():
        if day <= BACKFILL[0]:
            assert rebuilt[day].isdisjoint(runs), day  # rewritten by the backfill run...
        else:
            assert rebuilt[day] == runs, day  # ...which leaves the later days alone
    pd.testing.assert_frame_equal(lake.table(spark, "silver", "transactions", window), daily_run["transactions"])
    pd.testing.assert_frame_equal(lake.table(spark, "gold", "features_fraud_v1", window), daily_run["features"])
    scored = (BACKFILL[0] - lateness, BACKFILL[0])
    scores = lake.table(spark, "gold", lake.config.training.scoring.table, scored)
    features = lake.table(spark, "gold", "features_fraud_v1", scored)
    assert len(scores) > 0
    assert sorted(scores["transaction_id"]) == sorted(features["transaction_id"])
    assert set(scores["model_version"]) == {"1"}
