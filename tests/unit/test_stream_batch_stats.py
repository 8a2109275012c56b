"""A micro-batch's counts and latency quantiles: from small Spark jobs, or from its scores collected as Arrow."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from lakestream.streaming.online_features import DUPLICATE, OK, REJECTED, REJECTED_ENTITY
from lakestream.streaming.pipeline import (
    DUPLICATE_TRANSACTION,
    LATE_EVENT,
    _arrow_scored_stats,
    _batch_stats,
    _collected_stats,
    _late,
    _latencies,
)

T0 = dt.datetime(2018, 5, 8, 10, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("collected", [False, True], ids=["spark-jobs", "collected-rows"])
def test_counts_newest_event_per_partition_and_latency_quantiles(spark: SparkSession, collected: bool) -> None:
    appended = [T0 + dt.timedelta(milliseconds=10 * i) for i in range(100)]  # Kafka append times, 10 ms apart
    scored = spark.createDataFrame(
        [
            (i, "block" if i % 10 == 0 else "approve", at, i % 2, dt.datetime.fromtimestamp(1000 + i, dt.UTC))
            for i, at in enumerate(appended)
        ],
        "transaction_id long, decision string, kafka_timestamp timestamp, kafka_partition int, tx_datetime timestamp",
    )
    transactions = spark.createDataFrame(
        [(i, i % 2, 1000 + i, False) for i in range(100)] + [(100, 0, 10, True), (101, 1, 11, True)],
        "transaction_id long, kafka_partition int, ts long, _late boolean",
    )
    out = spark.createDataFrame(
        [(i, "customer_id", OK) for i in range(102)]
        + [(i, "terminal_id", OK) for i in range(102)]
        + [(7, "customer_id", DUPLICATE), (7, "terminal_id", DUPLICATE), (8, "terminal_id", DUPLICATE)]
        + [(None, REJECTED_ENTITY, REJECTED)] * 4,
        "transaction_id long, entity string, status string",
    )
    if collected:
        # the driver writer's rows: the scores it committed and the batch's dead letters (2 late, 1 duplicate and 4
        # invalid records, one of the labels topic); the counts then need no Spark job
        letters = [(LATE_EVENT, 0, 10), (LATE_EVENT, 1, 11), (DUPLICATE_TRANSACTION, 1, 1007)]
        letters += [("unparseable", p, None) for p in (0, 0, 1, 0)]
        dead_letters = pa.table(
            {
                "reason": [r for r, _, _ in letters],
                "kafka_partition": pa.array([p for _, p, _ in letters], pa.int32()),
                "event_time": pa.array(
                    [None if s is None else dt.datetime.fromtimestamp(s, dt.UTC) for _, _, s in letters],
                    pa.timestamp("us", "UTC"),
                ),
            }
        )
        stats = _collected_stats(scored.toArrow(), dead_letters)
    else:
        stats = _batch_stats(scored, transactions, out, "customer_id")
    assert stats["scored"] == 100
    assert stats["alerts"] == 10
    assert stats["late"] == 2
    assert stats["duplicates"] == 1  # counted on the primary entity's rows only
    assert stats["input"] == 103  # transactions: scored, late and duplicated
    assert stats["invalid"] == 4  # records that failed validation, on either topic
    assert stats["max_ts"] == {0: 1098, 1: 1099}
    finished = appended[-1] + dt.timedelta(milliseconds=10)
    latency = _latencies(stats["appended"], finished)
    assert latency["p50"] in (500, 510)  # the middle append time, 50 steps of 10 ms before the end
    assert latency["p95"] in (950, 960)
    assert latency["p99"] in (990, 1000)
    assert latency["p50"] <= latency["p95"] <= latency["p99"]


def test_late_rows_raise_the_newest_event_of_a_partition_without_scores() -> None:
    scored = pa.table(
        {
            "decision": ["approve"],
            "kafka_timestamp": pa.array([T0], pa.timestamp("us", "UTC")),
            "kafka_partition": pa.array([0], pa.int32()),
            "tx_datetime": pa.array([dt.datetime.fromtimestamp(500, dt.UTC)], pa.timestamp("us", "UTC")),
        }
    )
    late = pa.table(
        {
            "reason": [LATE_EVENT],
            "kafka_partition": pa.array([1], pa.int32()),
            "event_time": pa.array([dt.datetime.fromtimestamp(40, dt.UTC)], pa.timestamp("us", "UTC")),
        }
    )
    stats = _collected_stats(scored, late)
    assert stats["max_ts"] == {0: 500, 1: 40}
    assert (stats["input"], stats["late"], stats["invalid"]) == (2, 1, 0)


def test_collected_scores_of_an_empty_batch_count_nothing(spark: SparkSession) -> None:
    empty = spark.createDataFrame([], "transaction_id long, decision string, kafka_timestamp timestamp").toArrow()
    assert _arrow_scored_stats(empty) == {"scored": 0, "alerts": 0, "t": None}


def test_a_batch_without_scored_rows_has_no_latency() -> None:
    assert _latencies({"p50": None, "p95": None, "p99": None}, dt.datetime.now(dt.UTC)) == {
        "p50": None,
        "p95": None,
        "p99": None,
    }


@pytest.mark.parametrize("skew", [None, 1500])
def test_late_per_partition_and_past_the_partition_skew(spark: SparkSession, skew: int | None) -> None:
    """Late: older than its partition's newest scored event - lateness; with a skew, also older than the newest
    of any partition - lateness - skew (a partition lagging that far would read state compaction has dropped)."""
    high_water = {0: 100_000, 1: 97_000}
    rows = spark.createDataFrame(
        [
            (1, 0, 99_950),  # on time in partition 0
            (2, 0, 99_850),  # older than partition 0's newest - lateness
            (3, 1, 96_950),  # on time in partition 1, but more than lateness + skew behind partition 0
            (4, 1, 96_850),  # older than partition 1's newest - lateness
            (5, 2, 98_450),  # a partition without scored events yet: only the skew judges it
            (6, 2, 98_350),
        ],
        "transaction_id long, kafka_partition int, ts long",
    )
    late = rows.where(_late(high_water, 100, skew=skew)).select("transaction_id").toPandas()
    expected = {2, 4} if skew is None else {2, 3, 4, 6}
    assert set(late["transaction_id"]) == expected
