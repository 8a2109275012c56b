"""Data-quality and stream-health metrics in Spark against hand-computed values on tiny frames."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.testing import assertDataFrameEqual

from lakestream.monitoring import quality
from lakestream.monitoring.reference import outside_range

T0 = dt.datetime(2018, 5, 1, 10, 0)


def scored_rows(spark: SparkSession):
    """Three scored transactions on partition 0 (offsets 10, 12, 14) and one on partition 1 (offset 5)."""
    rows = [
        ("transactions", 0, 10, T0, T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=3), 1),
        (
            "transactions",
            0,
            12,
            T0 + dt.timedelta(minutes=10),
            T0 + dt.timedelta(seconds=2),
            T0 + dt.timedelta(seconds=4),
            1,
        ),
        (
            "transactions",
            0,
            14,
            T0 + dt.timedelta(hours=1, minutes=5),
            T0 + dt.timedelta(seconds=3),
            T0 + dt.timedelta(seconds=13),
            2,
        ),
        (
            "transactions",
            1,
            5,
            T0 + dt.timedelta(minutes=20),
            T0 + dt.timedelta(seconds=4),
            T0 + dt.timedelta(seconds=5),
            2,
        ),
    ]
    return spark.createDataFrame(
        rows,
        "kafka_topic STRING, kafka_partition INT, kafka_offset BIGINT, tx_datetime TIMESTAMP, "
        "kafka_timestamp TIMESTAMP, processed_at TIMESTAMP, batch_id BIGINT",
    )


def test_dead_letters_take_their_own_time_else_their_kafka_neighbours(spark: SparkSession) -> None:
    letters = spark.createDataFrame(
        [
            ("transactions", 0, 11, None, "malformed_json"),  # between offsets 10 and 12: the time of offset 10
            ("transactions", 0, 9, None, "malformed_json"),  # before anything scored: the next one's time
            ("transactions", 1, 6, T0 + dt.timedelta(hours=2), "amount_out_of_range"),  # its own event time wins
            ("fraud-labels", 0, 3, None, "malformed_json"),  # nothing scored on that topic: unplaced
        ],
        "topic STRING, kafka_partition INT, kafka_offset BIGINT, event_time TIMESTAMP, reason STRING",
    )
    placed = quality.attribute_dead_letters(letters, scored_rows(spark)).select("kafka_offset", "tx_datetime")
    expected = [(11, T0), (9, T0), (6, T0 + dt.timedelta(hours=2)), (3, None)]
    assertDataFrameEqual(placed, spark.createDataFrame(expected, "kafka_offset BIGINT, tx_datetime TIMESTAMP"))


def test_dead_letter_rates_per_reason_and_in_total(spark: SparkSession) -> None:
    windowed_scored = quality.explode_windows(scored_rows(spark), granularities=["day"])
    letters = spark.createDataFrame(
        [(T0, "malformed_json"), (T0, "malformed_json"), (T0, "late_event")], "tx_datetime TIMESTAMP, reason STRING"
    )
    rates = quality.compute_dead_letter_rates(quality.explode_windows(letters, granularities=["day"]), windowed_scored)
    got = {r["dimension"]: (r["dead_letters"], r["records"], r["dead_letter_rate"]) for r in rates.collect()}
    # 4 scored + 3 dead letters = 7 records in the day
    assert got == {"": (3, 7, 3 / 7), "malformed_json": (2, 7, 2 / 7), "late_event": (1, 7, 1 / 7)}


def test_windows_are_event_time_hours_and_days(spark: SparkSession) -> None:
    windows = quality.explode_windows(scored_rows(spark), granularities=["hour", "day"])
    hours = sorted(r["window_start"] for r in windows.where(F.col("granularity") == "hour").collect())
    assert hours == [T0, T0, T0, T0 + dt.timedelta(hours=1)]
    days = {(r["window_start"], r["window_end"]) for r in windows.where(F.col("granularity") == "day").collect()}
    assert days == {(dt.datetime(2018, 5, 1), dt.datetime(2018, 5, 2))}


def test_freshness_is_seconds_from_kafka_append_to_commit(spark: SparkSession) -> None:
    windowed = quality.explode_windows(scored_rows(spark), granularities=["day"])
    (row,) = quality.compute_freshness(windowed).collect()
    # lags: 2, 2, 10, 1 s -> median 2, p95 10 (percentile_approx returns observed values)
    assert (row["freshness_p50_seconds"], row["freshness_p95_seconds"], row["rows"]) == (2.0, 10.0, 4)


def test_stream_health_takes_the_batches_that_scored_a_window(spark: SparkSession) -> None:
    windowed = quality.explode_windows(scored_rows(spark), granularities=["hour"])
    metrics = spark.createDataFrame(
        [(1, 900, 2500, True), (2, 1500, 9000, False), (3, 100, 100, True)],
        "batch_id BIGINT, duration_ms BIGINT, latency_p99_ms BIGINT, registry_ok BOOLEAN",
    )
    health = {r["window_start"]: r for r in quality.compute_stream_health(windowed, metrics).collect()}
    first, second = health[T0], health[T0 + dt.timedelta(hours=1)]
    assert (first["batches"], first["max_batch_ms"], first["latency_p99_ms"], first["registry_failures"]) == (
        2,
        1500.0,
        9000.0,
        1,
    )
    assert (second["batches"], second["registry_failures"]) == (1, 1)


def test_quarantine_rates_use_the_latest_run_of_each_day(spark: SparkSession) -> None:
    day = dt.date(2018, 5, 1)
    audit = spark.createDataFrame(
        [
            ("old", "silver", "transactions", day, dt.datetime(2018, 5, 2, 1), 100, 10),
            ("new", "silver", "transactions", day, dt.datetime(2018, 5, 3, 1), 200, 4),
            ("b", "bronze", "transactions", None, dt.datetime(2018, 5, 3, 1), 999, 0),
        ],
        "run_id STRING, stage STRING, kind STRING, process_date DATE, finished_at TIMESTAMP, input_rows BIGINT, "
        "quarantined_rows BIGINT",
    )
    records = spark.createDataFrame(
        [
            ("new", "transactions", day, ["amount_out_of_range"]),
            ("new", "transactions", day, ["amount_out_of_range", "wrong_type"]),
            ("new", "transactions", day, ["wrong_type"]),
            ("new", "transactions", day, ["malformed_json"]),
            ("old", "transactions", day, ["malformed_json"]),  # replaced by the newer run: not counted
        ],
        "run_id STRING, kind STRING, process_date DATE, rules ARRAY<STRING>",
    )
    rates = {
        r["dimension"]: (r["quarantined"], r["records"])
        for r in quality.compute_quarantine_rates(audit, records).collect()
    }
    assert rates == {
        "transactions": (4, 200),
        "transactions:amount_out_of_range": (2, 200),
        "transactions:wrong_type": (2, 200),
        "transactions:malformed_json": (1, 200),
    }


def test_volume_takes_the_version_that_scored_most_of_a_window(spark: SparkSession) -> None:
    rows = [(T0, "1"), (T0, "2"), (T0, "2")]
    frame = spark.createDataFrame(rows, "tx_datetime TIMESTAMP, model_version STRING")
    (row,) = quality.compute_volume(quality.explode_windows(frame, granularities=["day"])).collect()
    assert (row["rows"], row["main_model_version"]) == (3, "2")


@pytest.mark.parametrize(("value", "expected"), [(0.5, 0.0), (-0.1, 1.0), (2.0, 0.0), (2.01, 1.0), (None, None)])
def test_outside_the_training_range(spark: SparkSession, value: float | None, expected: float | None) -> None:
    row = (
        spark.range(1)
        .select(outside_range(F.lit(value).cast("double"), F.lit(0.0), F.lit(2.0)).alias("outside"))
        .first()
    )
    assert row["outside"] == expected
