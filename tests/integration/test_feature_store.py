"""The gold feature table: a backfill, day-by-day incremental builds and re-runs all give the same rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakestream.config import LakestreamConfig, load_config
from lakestream.errors import DataError
from lakestream.features.spec import feature_set_path, load_feature_set
from lakestream.features.store import build_feature_table, feature_table_path, plain_encoded_columns
from lakestream.io.delta import read_delta, write_delta
from lakestream.simulate.generator import SimulationParams, simulate_transactions

FEATURES_DIR = Path(__file__).resolve().parents[2] / "conf" / "features"
START = dt.date(2018, 4, 1)


@pytest.fixture(scope="module")
def silver_config(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> LakestreamConfig:
    """A lake of its own holding silver-shaped transactions and labels from a small simulation."""
    config = load_config(overrides={"paths.state_dir": str(tmp_path_factory.mktemp("feature-store"))})
    data = simulate_transactions(SimulationParams(n_customers=60, n_terminals=120, nb_days=50))
    tx = pd.DataFrame(
        {
            "transaction_id": data["transaction_id"],
            "tx_datetime": pd.to_datetime(data["tx_datetime"]),
            "customer_id": data["customer_id"],
            "terminal_id": data["terminal_id"],
            "tx_amount": data["amount"],
        }
    )
    tx["tx_date"] = tx["tx_datetime"].dt.date
    frauds = tx[data["tx_fraud"] == 1][["transaction_id", "tx_datetime"]].copy()
    frauds["tx_fraud"] = 1
    frauds["reported_at"] = frauds["tx_datetime"] + pd.Timedelta(days=7)
    schema_tx = (
        "transaction_id BIGINT, tx_datetime TIMESTAMP, customer_id BIGINT, terminal_id BIGINT, "
        "tx_amount DOUBLE, tx_date DATE"
    )
    write_delta(
        spark.createDataFrame(tx, schema_tx), config.table_path("silver", "transactions"), partition_by=["tx_date"]
    )
    schema_labels = "transaction_id BIGINT, tx_datetime TIMESTAMP, tx_fraud INT, reported_at TIMESTAMP"
    write_delta(spark.createDataFrame(frauds, schema_labels), config.table_path("silver", "fraud_labels"))
    return config


@pytest.mark.parametrize("feature_set", ["fraud_v1", "fraud_v2"])
def test_incremental_days_equal_a_full_backfill(
    spark: SparkSession, silver_config: LakestreamConfig, feature_set: str
) -> None:
    spec = load_feature_set(feature_set_path(FEATURES_DIR, feature_set))
    end = START + dt.timedelta(days=49)
    full = build_feature_table(spark, silver_config, spec, start=START, end=end)
    path = feature_table_path(silver_config, spec)
    snapshot = read_delta(spark, path).localCheckpoint()
    assert full.rows == snapshot.count() > 0
    # file statistics (data skipping) on the keys only, not on every feature value
    properties = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["properties"]
    assert properties["delta.dataSkippingStatsColumns"] == "transaction_id,tx_datetime,customer_id,terminal_id"
    # continuous columns are written without Parquet dictionaries, counts keep theirs
    first_file = sorted(path.glob("tx_date=*/*.parquet"))[0]
    chunks = pq.ParquetFile(first_file).metadata.row_group(0)
    encodings = {chunks.column(i).path_in_schema: chunks.column(i).encodings for i in range(chunks.num_columns)}
    plain = plain_encoded_columns(spec)
    assert plain
    for column in plain:
        assert "PLAIN_DICTIONARY" not in encodings[column], column
    assert "PLAIN_DICTIONARY" in encodings["CUSTOMER_ID_NB_TX_30DAY_WINDOW"]

    # rebuild the last days one by one (what the daily DAG does), then re-run one: same rows as the backfill
    for offset in (47, 48, 49, 49):
        day = START + dt.timedelta(days=offset)
        result = build_feature_table(spark, silver_config, spec, start=day, end=day)
        assert result.rows == snapshot.where(f"tx_date = '{day}'").count()
    assertDataFrameEqual(read_delta(spark, path), snapshot, checkRowOrder=False, rtol=0, atol=0)  # bit for bit
    # a daily build into the table is committed from the driver (feature_store.driver_write_max_days), same lineage
    last = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").first()
    assert "delta-rs" in last["engineInfo"]
    assert f'"start": "{START + dt.timedelta(days=49)}"' in last["userMetadata"]
    assert {r.feature_set for r in snapshot.select("feature_set").distinct().collect()} == {feature_set}


def test_build_records_silver_versions_as_lineage(spark: SparkSession, silver_config: LakestreamConfig) -> None:
    spec = load_feature_set(feature_set_path(FEATURES_DIR, "fraud_v1"))
    day = START + dt.timedelta(days=40)
    result = build_feature_table(spark, silver_config, spec, start=day, end=day)
    assert result.silver_transactions_version == 0
    assert result.silver_labels_version == 0
    history = spark.sql(f"DESCRIBE HISTORY delta.`{feature_table_path(silver_config, spec)}`").first()
    assert '"silver_transactions_version": 0' in history["userMetadata"]


def test_missing_silver_table_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    config = load_config(overrides={"paths.state_dir": str(tmp_path)})
    spec = load_feature_set(feature_set_path(FEATURES_DIR, "fraud_v1"))
    with pytest.raises(DataError, match="run the ingest and clean jobs first"):
        build_feature_table(spark, config, spec, start=START, end=START)
