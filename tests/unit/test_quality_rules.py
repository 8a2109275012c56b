"""The pure transforms of the silver path on tiny in-memory bronze rows: parse, own, check, dedupe."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.testing import assertDataFrameEqual

from lakestream.config import LakestreamConfig
from lakestream.io.schemas import transaction_event_schema
from lakestream.io.table_schemas import bronze_landed_schema
from lakestream.quality.kinds import FRAUD_LABELS, TRANSACTIONS
from lakestream.quality.rules import assign_process_date, parse_landed_events
from lakestream.quality.silver import classify_bronze_rows

LANDED = dt.date(2018, 4, 1)


def _tx(transaction_id: Any = 1, **overrides: Any) -> str:
    event = {
        "transaction_id": transaction_id,
        "tx_datetime": "2018-04-01 10:00:00",
        "customer_id": 11,
        "terminal_id": 22,
        "tx_amount": 12.5,
        **overrides,
    }
    return json.dumps(event)


def _bronze(
    spark: SparkSession, *values: str, landing_date: dt.date = LANDED, source_file: str = "file:/l/a.json"
) -> DataFrame:
    """Bronze rows for the lines, record ids r0, r1, ... in line order."""
    rows = [
        (f"r{i}", value, source_file, landing_date, dt.datetime(2018, 4, 1, 12), 0) for i, value in enumerate(values)
    ]
    return spark.createDataFrame(rows, bronze_landed_schema())


def _outcomes(classified: DataFrame) -> list[tuple[str, str, list[str]]]:
    return [
        (row.record_id, row._outcome, row.rules)
        for row in classified.select("record_id", "_outcome", "rules").orderBy("record_id").collect()
    ]


def test_parse_types_each_field_independently_and_lists_unknown_keys(spark: SparkSession) -> None:
    bronze = _bronze(spark, _tx(1, customer_id="C1", channel="web"), "{broken")
    parsed = parse_landed_events(
        bronze, event_schema=transaction_event_schema(), timestamp_fields=("tx_datetime",)
    ).select("transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "unknown_fields")
    expected = spark.createDataFrame(
        [(1, dt.datetime(2018, 4, 1, 10), None, 22, 12.5, ["channel"]), (None, None, None, None, None, [])],
        "transaction_id BIGINT, tx_datetime TIMESTAMP, customer_id BIGINT, terminal_id BIGINT, tx_amount DOUBLE, "
        "unknown_fields ARRAY<STRING>",
    )
    assertDataFrameEqual(parsed, expected)


@pytest.mark.parametrize(
    ("tx_datetime", "process_date"),
    [
        ("2018-04-01 10:00:00", "2018-04-01"),  # on time
        ("2018-03-29 10:00:00", "2018-03-29"),  # 3 days late: allowed, goes to its event date
        ("2018-03-28 10:00:00", "2018-04-01"),  # 4 days late: owned (and quarantined) by the landing day
        ("2018-04-02 00:30:00", "2018-04-02"),  # clock skew into the next day
        ("2018-04-05 10:00:00", "2018-04-01"),  # far future: landing day
        ("garbage", "2018-04-01"),  # unreadable: landing day
    ],
)
def test_process_date_is_the_event_date_within_the_lateness_window(
    spark: SparkSession, tx_datetime: str, process_date: str
) -> None:
    parsed = parse_landed_events(
        _bronze(spark, _tx(1, tx_datetime=tx_datetime)),
        event_schema=transaction_event_schema(),
        timestamp_fields=("tx_datetime",),
    )
    owned = assign_process_date(parsed, event_time_field="tx_datetime", allowed_lateness_days=3)
    assert str(owned.first().process_date) == process_date


def test_every_broken_rule_is_listed_with_a_reason(spark: SparkSession, config: LakestreamConfig) -> None:
    line = _tx(-1, customer_id=-2, terminal_id=99_999_999, tx_amount=-3.0, tx_datetime="2099-01-01 00:00:00")
    row = classify_bronze_rows(_bronze(spark, line), kind=TRANSACTIONS, config=config).first()
    assert row._outcome == "quarantine"
    assert row.rules == [
        "timestamp_after_landing",
        "transaction_id_out_of_range",
        "customer_id_out_of_range",
        "terminal_id_out_of_range",
        "amount_out_of_range",
    ]
    assert row.reason == (
        "tx_datetime 2099-01-01 00:00:00 is after its landing day 2018-04-01 (+60 min tolerance); "
        "transaction_id -1 is outside [0, +inf]; customer_id -2 is outside [0, 9999999]; "
        "terminal_id 99999999 is outside [0, 9999999]; tx_amount -3.0 is outside (0, 10000]"
    )


def test_missing_and_wrong_type_fields_are_named(spark: SparkSession, config: LakestreamConfig) -> None:
    line = json.dumps({"transaction_id": 1, "tx_datetime": "2018-04-01 10:00:00", "customer_id": "C1"})
    row = classify_bronze_rows(_bronze(spark, line), kind=TRANSACTIONS, config=config).first()
    assert row.rules == ["missing_required_field", "wrong_type"]
    assert row.reason == (
        "required field terminal_id is missing or null; required field tx_amount is missing or null; "
        "customer_id 'C1' is not a bigint"
    )


def test_malformed_line_breaks_only_malformed_json(spark: SparkSession, config: LakestreamConfig) -> None:
    row = classify_bronze_rows(_bronze(spark, '{"transaction_id": 1, "tx'), kind=TRANSACTIONS, config=config).first()
    assert (row.rules, row.reason) == (["malformed_json"], 'not a JSON object: {"transaction_id": 1, "tx')


def test_unknown_fields_are_dropped_by_default_and_a_rule_when_configured(
    spark: SparkSession, config: LakestreamConfig
) -> None:
    bronze = _bronze(spark, _tx(1, channel="web"))
    assert _outcomes(classify_bronze_rows(bronze, kind=TRANSACTIONS, config=config)) == [("r0", "silver", [])]
    strict = config.model_copy(update={"quality": config.quality.model_copy(update={"unknown_fields": "quarantine"})})
    row = classify_bronze_rows(bronze, kind=TRANSACTIONS, config=strict).first()
    assert (row._outcome, row.rules, row.reason) == ("quarantine", ["unknown_fields"], "unknown fields: channel")


def test_exact_resend_is_a_duplicate_and_a_different_payload_a_conflict(
    spark: SparkSession, config: LakestreamConfig
) -> None:
    bronze = _bronze(spark, _tx(1), _tx(1), _tx(1, tx_amount=99.0), _tx(2), _tx(2, tx_amount=-1.0))
    classified = classify_bronze_rows(bronze, kind=TRANSACTIONS, config=config)
    assert _outcomes(classified) == [
        ("r0", "silver", []),
        ("r1", "duplicate", []),
        ("r2", "quarantine", ["duplicate_transaction_id"]),
        ("r3", "silver", []),  # the invalid copy r4 does not compete with the valid one
        ("r4", "quarantine", ["amount_out_of_range"]),
    ]
    kept = classified.where(F.col("record_id") == "r1").first()._kept_record_id
    assert kept == "r0"


def test_label_must_name_a_silver_transaction_of_its_date(spark: SparkSession, config: LakestreamConfig) -> None:
    label = {"tx_datetime": "2018-04-01 10:00:00", "reported_at": "2018-04-08 10:00:00", "tx_fraud": 1}
    bronze = _bronze(
        spark,
        json.dumps({"transaction_id": 1, **label, "tx_fraud_scenario": 1}),
        json.dumps({"transaction_id": 2, **label, "tx_fraud_scenario": 1}),
        json.dumps({"transaction_id": 1, **label, "tx_fraud_scenario": 7}),
        landing_date=dt.date(2018, 4, 8),
    )
    known = spark.createDataFrame(
        [(1, dt.date(2018, 4, 1)), (2, dt.date(2018, 4, 2))], "transaction_id BIGINT, tx_date DATE"
    )
    classified = classify_bronze_rows(bronze, kind=FRAUD_LABELS, config=config, known_transactions=known)
    assert _outcomes(classified) == [
        ("r0", "silver", []),
        ("r1", "quarantine", ["unknown_transaction"]),  # transaction 2 exists, but on another day
        ("r2", "quarantine", ["unknown_fraud_scenario"]),
    ]
    assert classified.where(F.col("record_id") == "r1").first().reason == "no silver transaction 2 on 2018-04-01"
