"""Integration fixtures of the ingestion path: an isolated lake per test, or one per module.

See ingest_harness.py for the harness (land files, run bronze/silver, read tables) and the line builders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ingest_harness import LakeHarness
from pyspark.sql import SparkSession


@pytest.fixture
def harness(spark: SparkSession, tmp_path: Path) -> LakeHarness:
    """A fresh isolated lake for one test."""
    return LakeHarness(spark, tmp_path)


@pytest.fixture(scope="module")
def module_harness_factory(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., LakeHarness]:
    """Build isolated lakes shared by the tests of one module (for read-only assertions on one setup)."""

    def build(**quality: Any) -> LakeHarness:
        return LakeHarness(spark, tmp_path_factory.mktemp("lake"), **quality)

    return build


# ------------------------------------------------------------------------------------ training, registry, scoring
# (appended section: its imports live here so the shared head of this file stays untouched)
import json  # noqa: E402
import os  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from lakestream.config import LakestreamConfig  # noqa: E402

TRAINING_OVERRIDES: dict[str, Any] = {
    # 60 simulated days from 2018-04-01: train 05-01..05-07, test 05-15..05-21; 2 prequential folds a side
    "training.split.train_start": "2018-05-01",
    "training.prequential.n_folds": 2,
    "training.tuning.n_trials": 4,
    "training.xgboost.num_boost_round": 30,
    "training.promotion.max_alert_rate": 0.5,  # the tiny simulation has a far higher fraud rate than the book's
}


@dataclass(frozen=True)
class TrainingLake:
    """An isolated lake with silver transactions / labels and gold.features_fraud_v1 of a small simulation."""

    config: LakestreamConfig
    overrides: dict[str, Any]

    def with_model_name(self, name: str) -> LakestreamConfig:
        """The lake's configuration with its own registered model name (tests do not share registry state)."""
        return self.config.model_copy(
            update={"mlflow": self.config.mlflow.model_copy(update={"registered_model": name})}
        )

    def environ(self, **extra: Any) -> dict[str, str]:
        """Environment for a child process (spark-submit) that must see this lake and these settings."""
        env = dict(os.environ)
        env["LAKESTREAM__PATHS__STATE_DIR"] = str(self.config.paths.state_dir)
        for key, value in {**self.overrides, **extra}.items():
            env["LAKESTREAM__" + key.replace(".", "__").upper()] = json.dumps(value)
        return env


@pytest.fixture(scope="session")
def training_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> TrainingLake:
    """Simulate 300 customers x 60 days, write silver-shaped tables, build gold fraud_v1 for every day."""
    import datetime as dt

    from lakestream.config import load_config
    from lakestream.features.spec import feature_set_path, load_feature_set
    from lakestream.features.store import build_feature_table
    from lakestream.simulate.generator import SimulationParams

    state = tmp_path_factory.mktemp("training-lake")
    config = load_config(overrides={"paths.state_dir": str(state), **TRAINING_OVERRIDES})
    write_simulated_silver(spark, config, SimulationParams(n_customers=300, n_terminals=600, nb_days=60))
    spec = load_feature_set(feature_set_path(Path(config.home) / "conf" / "features", "fraud_v1"))
    build_feature_table(spark, config, spec, start=dt.date(2018, 4, 1), end=dt.date(2018, 5, 30))
    return TrainingLake(config, dict(TRAINING_OVERRIDES))


def write_simulated_silver(spark: SparkSession, config: LakestreamConfig, params: Any) -> None:
    """Simulate (lakestream.simulate) and write silver-shaped transactions and chargebacks (reported 7 days on)."""
    import pandas as pd

    from lakestream.io.delta import write_delta
    from lakestream.simulate.generator import simulate_transactions

    data = simulate_transactions(params)
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
    valid = (tx["tx_amount"] > 0).to_numpy()  # as silver: the rules reject amounts that round to 0.00
    fraud = (data["tx_fraud"] == 1) & valid
    frauds = tx.loc[fraud, ["transaction_id", "tx_datetime", "tx_date"]].copy()
    frauds["tx_fraud"] = 1
    frauds["tx_fraud_scenario"] = data["tx_fraud_scenario"][fraud]
    tx = tx[valid]
    frauds["reported_at"] = frauds["tx_datetime"] + pd.Timedelta(days=7)
    frauds["reported_date"] = frauds["reported_at"].dt.date
    write_delta(
        spark.createDataFrame(
            tx,
            "transaction_id BIGINT, tx_datetime TIMESTAMP, customer_id BIGINT, terminal_id BIGINT, "
            "tx_amount DOUBLE, tx_date DATE",
        ),
        config.table_path("silver", "transactions"),
        partition_by=["tx_date"],
    )
    write_delta(
        spark.createDataFrame(
            frauds[
                [
                    "transaction_id",
                    "tx_datetime",
                    "reported_at",
                    "tx_fraud",
                    "tx_fraud_scenario",
                    "tx_date",
                    "reported_date",
                ]
            ],
            "transaction_id BIGINT, tx_datetime TIMESTAMP, reported_at TIMESTAMP, tx_fraud INT, "
            "tx_fraud_scenario INT, tx_date DATE, reported_date DATE",
        ),
        config.table_path("silver", "fraud_labels"),
    )
