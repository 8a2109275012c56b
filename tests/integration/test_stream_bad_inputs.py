"""Bad records land in the dead-letter table with the right reason while the stream keeps scoring."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812
from stream_harness import stream_config, train_champion

from lakestream.io.delta import read_delta
from lakestream.io.kafka import build_producer, ensure_topics
from lakestream.streaming.pipeline import dead_letter_path, metrics_path, scores_path
from lakestream.streaming.runner import run_stream

if TYPE_CHECKING:
    from conftest import TrainingLake

    from lakestream.config import LakestreamConfig


def tx(transaction_id: int, when: str = "2018-05-10 10:00:00", **fields: object) -> bytes:
    record = {
        "transaction_id": transaction_id,
        "tx_datetime": when,
        "customer_id": 7,
        "terminal_id": 11,
        "tx_amount": 42.5,
        **fields,
    }
    return json.dumps({k: v for k, v in record.items() if v is not None}).encode()


BAD_TRANSACTIONS = {
    b"{not json": "malformed_json",
    b"\x00\xff\xfe poison \x80": "malformed_json",
    tx(900_001, tx_amount=-3.0): "amount_out_of_range",
    tx(900_002, tx_amount="lots"): "wrong_type",
    tx(900_003, customer_id=None): "missing_required_field",
    tx(900_004, when="yesterday"): "invalid_timestamp",
    tx(900_005, terminal_id=-4): "terminal_id_out_of_range",
    b'{"transaction_id": 900006, "pad": "' + b"x" * 70_000 + b'"}': "oversized_message",
}


WRITERS = ("driver", "spark")


@pytest.fixture(scope="module", params=WRITERS, ids=lambda first: f"{first}-then-other-writer")
def bad_run(
    request: pytest.FixtureRequest, spark: SparkSession, training_lake: TrainingLake, kafka_broker: LakestreamConfig
) -> LakestreamConfig:
    """Two runs of the stream over bad input; the second commits with the other output writer (same tables)."""
    base = training_lake.config.model_copy(update={"kafka": kafka_broker.kafka})
    first, second = request.param, next(w for w in WRITERS if w != request.param)
    config = stream_config(base, f"bad_{first}", allowed_lateness_seconds=3600, output_writer=first)
    train_champion(spark, config)
    topics = config.kafka.topics
    ensure_topics(config.kafka)
    producer = build_producer(config.kafka, max_request_size=1_048_576)
    good = [tx(800_000 + i, when=f"2018-05-10 1{i % 10}:00:0{i % 10}", customer_id=i % 5) for i in range(20)]
    for value in [*good[:10], *BAD_TRANSACTIONS, *good[10:], good[3]]:  # good[3] twice: a duplicate
        producer.send(topics.transactions.name, value=value, partition=0)
    label = {"transaction_id": 800_001, "tx_datetime": "2018-05-10 11:00:01", "reported_at": "2018-05-11 00:00:00"}
    producer.send(topics.fraud_labels.name, value=json.dumps({**label, "tx_fraud": 1, "tx_fraud_scenario": 1}).encode())
    producer.send(
        topics.fraud_labels.name,
        value=json.dumps({**label, "tx_fraud": 7, "tx_fraud_scenario": 1, "terminal_id": 11}).encode(),
    )
    producer.flush()
    run_stream(spark, config, available_now=True)
    # a second run: an event 2 hours older than the newest scored one is beyond the allowed lateness
    producer.send(topics.transactions.name, value=tx(800_100, when="2018-05-10 17:00:00"), partition=0)
    producer.send(topics.transactions.name, value=tx(800_101, when="2018-05-10 19:30:00"), partition=0)
    producer.flush()
    producer.close()
    config = config.model_copy(update={"streaming": config.streaming.model_copy(update={"output_writer": second})})
    run_stream(spark, config, available_now=True)
    return config


def test_every_bad_record_is_dead_lettered_with_its_reason(spark: SparkSession, bad_run: LakestreamConfig) -> None:
    dead = read_delta(spark, dead_letter_path(bad_run))
    reasons = {
        row["raw"] and bytes(row["raw"]): row["reason"] for row in dead.where(F.col("raw").isNotNull()).collect()
    }
    for value, reason in BAD_TRANSACTIONS.items():
        assert reasons.get(value) == reason, (value[:40], reasons.get(value))
    label_reasons = sorted(r["reason"] for r in dead.where(F.col("topic").startswith("fraud-labels-")).collect())
    assert label_reasons == ["invalid_fraud_flag", "missing_required_field"]
    rows = dead.collect()
    assert all(r["kafka_offset"] is not None and r["reason"] and r["dead_lettered_at"] for r in rows)
    # the batches' metrics count them: one query validates, scores and dead-letters each record once
    invalid = read_delta(spark, metrics_path(bad_run)).agg(F.sum("invalid")).first()[0]
    assert invalid == dead.where(F.col("raw").isNotNull()).count() == len(BAD_TRANSACTIONS) + 2


def test_duplicates_and_late_events_are_rejected_and_the_rest_scored(
    spark: SparkSession, bad_run: LakestreamConfig
) -> None:
    scores = read_delta(spark, scores_path(bad_run))
    ids = [r["transaction_id"] for r in scores.select("transaction_id").collect()]
    assert len(ids) == len(set(ids)) == 21  # 20 good + the on-time event of the second run
    assert 800_100 not in ids
    assert 800_101 in ids
    dead = read_delta(spark, dead_letter_path(bad_run))
    rejected = {r["transaction_id"]: r["reason"] for r in dead.where(F.col("raw").isNull()).collect()}
    assert rejected == {800_003: "duplicate_transaction_id", 800_100: "late_event"}
