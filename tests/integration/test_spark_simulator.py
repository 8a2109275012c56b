"""The Spark simulator against the NumPy core, its landed outputs, and every anomaly option."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from lakestream.config import LakestreamConfig
from lakestream.io.delta import read_delta
from lakestream.io.schemas import fraud_label_event_schema, transaction_event_schema
from lakestream.simulate import anomalies, generator
from lakestream.simulate.landing import (
    LANDED_FILE_NAME,
    AnomalyOptions,
    build_fraud_label_lines,
    build_transaction_event_lines,
    land_simulation,
    simulated_dates,
    write_transaction_events,
)
from lakestream.simulate.spark_simulator import TRANSACTION_COLUMNS, simulate_transactions_spark

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pyspark.sql import DataFrame, SparkSession

SMALL = generator.SimulationParams(n_customers=100, n_terminals=200, nb_days=40)
LABEL_DELAY_DAYS = 7


def with_state_under(config: LakestreamConfig, root: Path) -> LakestreamConfig:
    """The test configuration with its lake and landing folders moved under `root`."""
    paths = config.paths.model_copy(update={"lake_root": root / "lake", "landing_root": root / "landing"})
    return config.model_copy(update={"paths": paths})


def numpy_reference(params: generator.SimulationParams) -> pd.DataFrame:
    """generator.simulate_transactions as a pandas frame with the Spark result's names and dtypes."""
    core = generator.simulate_transactions(params)
    return pd.DataFrame(
        {
            "transaction_id": core["transaction_id"],
            "tx_datetime": core["tx_datetime"].astype("datetime64[us]"),
            "customer_id": core["customer_id"],
            "terminal_id": core["terminal_id"],
            "tx_amount": core["amount"],
            "tx_time_seconds": core["tx_time_seconds"],
            "tx_time_days": core["tx_time_days"],
            "tx_fraud": core["tx_fraud"].astype("int32"),
            "tx_fraud_scenario": core["tx_fraud_scenario"].astype("int32"),
        }
    )


def to_sorted_pandas(frame: DataFrame) -> pd.DataFrame:
    """A Spark table as pandas, in transaction_id order, timestamps at microsecond precision."""
    result = frame.toPandas().sort_values("transaction_id", kind="stable").reset_index(drop=True)
    if "tx_datetime" in result:
        result["tx_datetime"] = result["tx_datetime"].astype("datetime64[us]")
    return result


def read_landed_lines(folder: Path) -> dict[str, list[str]]:
    """{date folder name: raw lines} of one landed kind."""
    return {
        day.name: (day / LANDED_FILE_NAME).read_text(encoding="utf-8").splitlines()
        for day in sorted(folder.glob("date=*"))
    }


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def simulated(spark: SparkSession) -> Iterator[DataFrame]:
    """The small dataset simulated on Spark (persisted), unpersisted after the module."""
    frame = simulate_transactions_spark(spark, SMALL, customers_per_task=17)
    yield frame
    frame.unpersist()


@pytest.fixture(scope="module")
def truth(simulated: DataFrame) -> pd.DataFrame:
    """The small dataset as pandas, in transaction_id order."""
    return to_sorted_pandas(simulated)


# ------------------------------------------------------------------------------------------ generation


def test_spark_result_equals_numpy_core_row_for_row(truth: pd.DataFrame) -> None:
    expected = numpy_reference(SMALL)
    # Every scenario must occur, or the comparison would not cover it.
    assert set(expected["tx_fraud_scenario"]) == {0, 1, 2, 3}
    assert list(truth.columns) == list(TRANSACTION_COLUMNS)
    pd.testing.assert_frame_equal(truth, expected, check_exact=True)


def test_result_does_not_depend_on_task_size_and_is_deterministic(spark: SparkSession, truth: pd.DataFrame) -> None:
    again = simulate_transactions_spark(spark, SMALL, customers_per_task=1000)
    try:
        pd.testing.assert_frame_equal(to_sorted_pandas(again), truth, check_exact=True)
    finally:
        again.unpersist()


def test_seed_offset_and_radius_reach_the_core(spark: SparkSession) -> None:
    params = generator.SimulationParams(n_customers=30, n_terminals=80, nb_days=15, radius=12.5, seed_offset=3)
    result = simulate_transactions_spark(spark, params, customers_per_task=8)
    try:
        pd.testing.assert_frame_equal(to_sorted_pandas(result), numpy_reference(params), check_exact=True)
    finally:
        result.unpersist()


# --------------------------------------------------------------------------------------------- landing


@pytest.fixture(scope="module")
def landed(spark: SparkSession, config: LakestreamConfig, tmp_path_factory: pytest.TempPathFactory) -> LakestreamConfig:
    """The small dataset landed once (all outputs, no anomaly) under a private root."""
    landed_config = with_state_under(config, tmp_path_factory.mktemp("landed"))
    land_simulation(spark, landed_config, SMALL, label_delay_days=LABEL_DELAY_DAYS)
    return landed_config


def test_landed_transactions_follow_the_schema_and_match_the_truth(
    spark: SparkSession,
    landed: LakestreamConfig,
    truth: pd.DataFrame,
) -> None:
    folder = landed.paths.landing_root / "transactions"
    events = (
        spark.read.schema(transaction_event_schema())
        .option("mode", "FAILFAST")
        .json(str(folder))
        .drop("date")
        .toPandas()
        .sort_values("transaction_id")
        .reset_index(drop=True)
    )
    expected = pd.DataFrame(
        {
            "transaction_id": truth["transaction_id"],
            "tx_datetime": truth["tx_datetime"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "customer_id": truth["customer_id"],
            "terminal_id": truth["terminal_id"],
            "tx_amount": truth["tx_amount"],
        }
    )
    pd.testing.assert_frame_equal(events, expected, check_exact=True)

    lines = read_landed_lines(folder)
    assert sorted(lines) == [f"date={day.isoformat()}" for day in simulated_dates(SMALL)]
    for folder_name, day_lines in lines.items():
        parsed = [json.loads(line) for line in day_lines]
        assert list(parsed[0]) == [field.name for field in transaction_event_schema().fields]
        assert {event["tx_datetime"][:10] for event in parsed} == {folder_name.removeprefix("date=")}
        ids = [event["transaction_id"] for event in parsed]
        assert ids == sorted(ids), f"{folder_name} is not in event-time order"


def test_fraud_labels_land_for_frauds_only_under_their_reported_date(
    spark: SparkSession,
    landed: LakestreamConfig,
    truth: pd.DataFrame,
) -> None:
    from pyspark.sql import functions as F  # noqa: N812

    labels = (
        spark.read.schema(fraud_label_event_schema())
        .option("mode", "FAILFAST")
        .json(str(landed.paths.landing_root / "fraud_labels"))
        .withColumn("folder_date", F.col("date").cast("string"))  # discovered from date=YYYY-MM-DD
        .drop("date")
        .toPandas()
        .sort_values("transaction_id")
        .reset_index(drop=True)
    )
    frauds = truth[truth["tx_fraud"] == 1].reset_index(drop=True)
    reported = frauds["tx_datetime"] + pd.Timedelta(days=LABEL_DELAY_DAYS)
    expected = pd.DataFrame(
        {
            "transaction_id": frauds["transaction_id"],
            "tx_datetime": frauds["tx_datetime"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "reported_at": reported.dt.strftime("%Y-%m-%d %H:%M:%S"),
            "tx_fraud": frauds["tx_fraud"],
            "tx_fraud_scenario": frauds["tx_fraud_scenario"],
            "folder_date": reported.dt.strftime("%Y-%m-%d"),
        }
    )
    pd.testing.assert_frame_equal(labels, expected, check_exact=True)
    for folder_name, day_lines in read_landed_lines(landed.paths.landing_root / "fraud_labels").items():
        reported_at = [json.loads(line)["reported_at"] for line in day_lines]
        assert reported_at == sorted(reported_at), f"{folder_name} is not in reported_at order"


def test_ground_truth_table_holds_every_row_partitioned_by_day(
    spark: SparkSession,
    landed: LakestreamConfig,
    truth: pd.DataFrame,
) -> None:
    table = read_delta(spark, landed.table_path("sim", "transactions"))
    stored = to_sorted_pandas(table)
    assert (stored["tx_date"] == stored["tx_datetime"].dt.date).all()
    pd.testing.assert_frame_equal(stored.drop(columns="tx_date"), truth, check_exact=True)
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{landed.table_path('sim', 'transactions')}`").first()
    assert detail["partitionColumns"] == ["tx_date"]


def test_rerun_rewrites_identical_files_and_rows(
    spark: SparkSession, landed: LakestreamConfig, truth: pd.DataFrame
) -> None:
    before = tree_digest(landed.paths.landing_root)
    stale = landed.paths.landing_root / "transactions" / "date=2018-04-02" / "part-leftover.json"
    stale.write_text('{"stale": true}\n', encoding="utf-8")
    land_simulation(spark, landed, SMALL, label_delay_days=LABEL_DELAY_DAYS)
    assert tree_digest(landed.paths.landing_root) == before
    stored = to_sorted_pandas(read_delta(spark, landed.table_path("sim", "transactions")))
    pd.testing.assert_frame_equal(stored.drop(columns="tx_date"), truth, check_exact=True)


# ------------------------------------------------------------------------------------------- anomalies


@pytest.fixture(scope="module")
def clean_lines(simulated: DataFrame) -> DataFrame:
    """Clean transaction event lines of the small dataset."""
    return build_transaction_event_lines(simulated)


def test_duplicates_are_exact_resends(clean_lines: DataFrame) -> None:
    lines = anomalies.inject_duplicates(clean_lines, share=0.1, seed=7).toPandas()
    originals = lines[lines["copy"] == 0].set_index("transaction_id")
    copies = lines[lines["copy"] == 1].set_index("transaction_id")
    assert len(originals) == clean_lines.count()
    assert 0.07 * len(originals) < len(copies) < 0.13 * len(originals)
    assert (copies["value"] == originals.loc[copies.index, "value"]).all()
    delay = (copies["landed_at"] - originals.loc[copies.index, "landed_at"]).dt.total_seconds()
    assert delay.between(1, 600).all()
    assert (copies["anomaly"] == "duplicate").all()


def test_late_events_land_in_a_later_day_folder(clean_lines: DataFrame) -> None:
    lines = anomalies.inject_late_arrivals(clean_lines, share=0.1, max_days=3, seed=7).toPandas()
    late = lines[lines["anomaly"] == "late"]
    on_time = lines[lines["anomaly"].isna()]
    assert 0.07 * len(lines) < len(late) < 0.13 * len(lines)
    days_late = (late["landed_at"].dt.normalize() - late["event_at"].dt.normalize()).dt.days
    assert days_late.between(1, 3).all()
    assert set(days_late) == {1, 2, 3}
    assert (on_time["landed_at"] == on_time["event_at"]).all()


def test_out_of_order_shuffles_within_the_day_only(clean_lines: DataFrame) -> None:
    lines = anomalies.shuffle_within_day(clean_lines, seed=7).toPandas()
    assert len(lines) == clean_lines.count()
    assert (lines["landed_at"].dt.date == lines["event_at"].dt.date).all()
    for day, day_lines in lines.sort_values(["landed_at", "transaction_id"]).groupby(lines["landed_at"].dt.date):
        if len(day_lines) > 10:
            assert not day_lines["transaction_id"].is_monotonic_increasing, f"{day} was not shuffled"


def test_malformed_lines_are_written_as_broken_text(clean_lines: DataFrame, tmp_path: Path) -> None:
    lines = anomalies.inject_malformed(clean_lines, share=0.3, seed=7)
    rows = lines.toPandas()
    bad = rows[rows["anomaly"].notna()]
    assert 0.25 * len(rows) < len(bad) < 0.35 * len(rows)
    kinds = bad["anomaly"].str.removeprefix("malformed:")
    assert set(kinds) == set(anomalies.MALFORMED_KINDS)
    for kind, value in zip(kinds, bad["value"], strict=True):
        if kind == "broken_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(value)
            continue
        event = json.loads(value)
        if kind == "wrong_type":
            assert isinstance(event["customer_id"], str)
        elif kind == "missing_field":
            assert "terminal_id" not in event
        elif kind == "negative_amount":
            assert event["tx_amount"] < 0
        elif kind == "absurd_amount":
            assert event["tx_amount"] == anomalies.ABSURD_AMOUNT
        elif kind == "future_timestamp":
            assert event["tx_datetime"].startswith(anomalies.FUTURE_YEAR)
    clean = rows[rows["anomaly"].isna()]
    assert all(json.loads(value)["tx_amount"] > 0 for value in clean["value"])

    write_transaction_events(lines, tmp_path, dates=simulated_dates(SMALL))
    landed = [line for day in read_landed_lines(tmp_path / "transactions").values() for line in day]
    assert sorted(landed) == sorted(rows["value"])
    unparsable = 0
    for line in landed:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            unparsable += 1
    assert unparsable == (kinds == "broken_json").sum()


def test_new_fraud_pattern_adds_night_frauds_and_keeps_ids_in_time_order(
    simulated: DataFrame, truth: pd.DataFrame
) -> None:
    drifted = to_sorted_pandas(anomalies.apply_drift(simulated, kind="new_fraud_pattern", from_day=30, seed=7))
    new = drifted[drifted["tx_fraud_scenario"] == anomalies.NEW_PATTERN_SCENARIO]
    last_day = int(truth["tx_time_days"].max())
    assert len(new) == (last_day - 30 + 1) * 2 * 30
    assert (new["tx_time_days"] >= 30).all()
    assert new["tx_datetime"].dt.hour.between(1, 4).all()
    assert new["tx_amount"].between(1.0, 10.0).all()
    assert (new["tx_fraud"] == 1).all()
    assert (new["customer_id"] > truth["customer_id"].max()).all()  # stolen cards, not the simulated customers'
    assert new["customer_id"].is_unique  # each tested once
    assert (drifted["transaction_id"] == np.arange(len(drifted))).all()
    assert drifted["tx_time_seconds"].is_monotonic_increasing
    kept = drifted[drifted["tx_fraud_scenario"] != anomalies.NEW_PATTERN_SCENARIO].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        kept.drop(columns="transaction_id"), truth.drop(columns="transaction_id"), check_exact=True
    )


def test_spending_shift_scales_a_share_of_customers_from_the_drift_day(
    simulated: DataFrame, truth: pd.DataFrame
) -> None:
    drifted = to_sorted_pandas(anomalies.apply_drift(simulated, kind="spending_shift", from_day=20, seed=7))
    changed = drifted["tx_amount"] != truth["tx_amount"]
    assert (truth.loc[changed, "tx_time_days"] >= 20).all()
    np.testing.assert_array_equal(drifted.loc[changed, "tx_amount"], np.round(truth.loc[changed, "tx_amount"] * 2.0, 2))
    shifted_customers = set(truth.loc[changed, "customer_id"])
    assert 0.1 < len(shifted_customers) / truth["customer_id"].nunique() < 0.35
    late_rows = truth["tx_time_days"] >= 20
    assert changed[late_rows & truth["customer_id"].isin(shifted_customers)].all()
    pd.testing.assert_frame_equal(drifted.drop(columns="tx_amount"), truth.drop(columns="tx_amount"), check_exact=True)


def test_drift_reaches_the_landed_labels(spark: SparkSession, config: LakestreamConfig, tmp_path: Path) -> None:
    params = generator.SimulationParams(n_customers=40, n_terminals=100, nb_days=12)
    drifted_config = with_state_under(config, tmp_path)
    options = AnomalyOptions(seed=1, drift_from_day=10, drift_kind="new_fraud_pattern", duplicate_share=0.05)
    summary = land_simulation(spark, drifted_config, params, anomalies=options, label_delay_days=LABEL_DELAY_DAYS)
    assert summary["scenarios"][anomalies.NEW_PATTERN_SCENARIO] == 2 * 2 * 30
    labels = [
        json.loads(line) for day in read_landed_lines(tmp_path / "landing" / "fraud_labels").values() for line in day
    ]
    assert sum(label["tx_fraud_scenario"] == anomalies.NEW_PATTERN_SCENARIO for label in labels) == 2 * 2 * 30
    assert len(labels) == summary["frauds"]
    events = [line for day in read_landed_lines(tmp_path / "landing" / "transactions").values() for line in day]
    assert summary["transactions"] < len(events) < summary["transactions"] * 1.1


def test_fraud_label_lines_are_landed_at_report_time(simulated: DataFrame) -> None:
    lines = build_fraud_label_lines(simulated, label_delay_days=3).toPandas()
    delay = lines["landed_at"] - pd.to_datetime([json.loads(v)["tx_datetime"] for v in lines["value"]])
    assert (delay == timedelta(days=3)).all()
    assert (lines["event_at"] == lines["landed_at"]).all()


def test_job_help_documents_every_option() -> None:
    import subprocess
    import sys

    job = Path(__file__).resolve().parents[2] / "jobs" / "generate_transactions.py"
    result = subprocess.run([sys.executable, str(job), "--help"], capture_output=True, text=True, check=True)
    for option in (
        "--customers",
        "--terminals",
        "--days",
        "--start-date",
        "--radius",
        "--seed-offset",
        "--label-delay-days",
        "--malformed-share",
        "--duplicate-share",
        "--late-share",
        "--late-max-days",
        "--out-of-order",
        "--drift-from-day",
        "--drift-kind",
        "--output",
    ):
        assert option in result.stdout
