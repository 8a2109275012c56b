"""The data profile: exact aggregates on tiny data, and a self-contained HTML report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import SparkSession

from lakestream.quality.profile import compute_profile, render_profile_report

TX_SCHEMA = (
    "transaction_id BIGINT, tx_datetime TIMESTAMP, customer_id BIGINT, terminal_id BIGINT, "
    "tx_amount DOUBLE, tx_date DATE"
)
LABEL_SCHEMA = "transaction_id BIGINT, tx_fraud INT, tx_fraud_scenario INT"


def _tx(tid: int, day: int, hour: int, customer: int, amount: float) -> tuple:
    when = dt.datetime(2018, 4, 1 + day, hour)
    return (tid, when, customer, 100 + customer, amount, when.date())


def test_profile_aggregates_and_report(spark: SparkSession, tmp_path: Path) -> None:
    transactions = spark.createDataFrame(
        [
            _tx(1, 0, 1, 1, 10.0),
            _tx(2, 0, 13, 1, 300.0),
            _tx(3, 1, 13, 2, 60.0),
            _tx(4, 1, 2, 3, 5.0),
            _tx(5, 5, 2, 3, 7.0),  # outside the profiled range
        ],
        TX_SCHEMA,
    )
    labels = spark.createDataFrame([(2, 1, 1), (4, 1, 3)], LABEL_SCHEMA)
    quarantine = spark.createDataFrame(
        [("kind", dt.date(2018, 4, 1), ["amount_out_of_range", "unknown_customer"])],
        "kind STRING, process_date DATE, rules ARRAY<STRING>",
    )
    profile = compute_profile(
        transactions, labels=labels, quarantine=quarantine, start=dt.date(2018, 4, 1), end=dt.date(2018, 4, 2)
    )
    assert profile.totals["transactions"] == 4
    assert profile.totals["frauds"] == 2
    assert profile.totals["fraud_rate"] == 0.5
    assert profile.totals["customers"] == 3
    assert profile.totals["max_amount"] == 300.0
    assert profile.volumes_per_day["transactions"].tolist() == [2, 2]
    by_hour = dict(zip(profile.fraud_by_hour["hour"], profile.fraud_by_hour["fraud_rate"], strict=True))
    assert by_hour == {1: 0.0, 2: 1.0, 13: 0.5}
    by_scenario = dict(
        zip(profile.fraud_by_scenario["scenario"], profile.fraud_by_scenario["transactions"], strict=True)
    )
    assert by_scenario == {0: 2, 1: 1, 3: 1}
    buckets = dict(
        zip(
            profile.fraud_by_amount_bucket["amount_bucket"], profile.fraud_by_amount_bucket["transactions"], strict=True
        )
    )
    assert buckets == {"0-10": 1, "10-25": 1, "50-75": 1, "220-500": 1}
    assert profile.null_rates["tx_amount"] == 0.0
    assert sorted(profile.quarantine_by_reason["rule"]) == ["amount_out_of_range", "unknown_customer"]

    path = render_profile_report(profile, title="test profile").write(tmp_path / "profile.html")
    page = path.read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "amount_out_of_range" in page
    assert "<b>4</b>" in page
