"""The scoring stream's plan: each Kafka record is read and parsed once, whatever reads the parsed fields.

Plain aliases get inlined by the optimizer into every expression that reads them (and into the filters on
`reason`, pushed down), which once made the stream parse each record about 90 times, and the union of one
select per entity read the Kafka batch once per entity. These tests pin the cheaper plan on a static frame of
Kafka-shaped rows (same operators as the stream, no broker needed).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from lakestream.config.models import LakestreamConfig
from lakestream.features.spec import feature_set_path, load_feature_set
from lakestream.streaming.online_features import OnlinePlan
from lakestream.streaming.pipeline import dead_letter_rows, operator_input, validate


def kafka_rows(spark: SparkSession, config: LakestreamConfig) -> DataFrame:
    topics = config.kafka.topics
    at = dt.datetime(2018, 5, 8, 10, 0, 0)
    values = [
        (
            topics.transactions.name,
            {
                "transaction_id": 1,
                "tx_datetime": "2018-05-08 09:00:00",
                "customer_id": 3,
                "terminal_id": 7,
                "tx_amount": 12.5,
            },
        ),
        (
            topics.transactions.name,
            {
                "transaction_id": 2,
                "tx_datetime": "2018-05-08 09:01:00",
                "customer_id": 3,
                "terminal_id": 8,
                "tx_amount": -1.0,
            },
        ),
        (
            topics.fraud_labels.name,
            {
                "transaction_id": 1,
                "tx_datetime": "2018-05-08 09:00:00",
                "reported_at": "2018-05-09 09:00:00",
                "tx_fraud": 1,
                "tx_fraud_scenario": 1,
                "terminal_id": 7,
            },
        ),
    ]
    rows = [(topic, 0, offset, at, json.dumps(value).encode()) for offset, (topic, value) in enumerate(values)]
    rows.append((topics.transactions.name, 0, len(rows), at, b"\xff not json"))
    return spark.createDataFrame(rows, "topic STRING, partition INT, offset BIGINT, timestamp TIMESTAMP, value BINARY")


def optimized(frame: DataFrame) -> str:
    return frame._jdf.queryExecution().optimizedPlan().toString()


@pytest.fixture(scope="module")
def plan_and_spec(config: LakestreamConfig):
    spec = load_feature_set(feature_set_path(config.home / "conf" / "features", "fraud_v1"))
    return OnlinePlan.from_spec(spec, allowed_lateness_seconds=3600), spec


def test_valid_and_dead_letter_paths_parse_each_record_once(spark: SparkSession, config: LakestreamConfig) -> None:
    parsed = validate(kafka_rows(spark, config), config)
    valid = parsed.where(F.col("reason").isNull())
    dead = dead_letter_rows(parsed.where(F.col("reason").isNotNull()), query="q")
    for frame in (valid, dead):
        # one map parse (field presence) and one typed parse per message kind
        assert optimized(frame).count("from_json(") == 3
    assert sorted(r.transaction_id for r in valid.select("transaction_id").collect()) == [1, 1]
    reasons = {r.kafka_offset: r.reason for r in dead.collect()}
    assert reasons == {1: "amount_out_of_range", 3: "malformed_json"}


def test_operator_input_reads_the_source_once(spark: SparkSession, config: LakestreamConfig, plan_and_spec) -> None:
    plan, spec = plan_and_spec
    valid = validate(kafka_rows(spark, config), config).where(F.col("reason").isNull())
    rows = operator_input(valid, plan, spec)
    assert optimized(rows).count("LogicalRDD") == 1  # the source once, not once per entity
    got = sorted((r.transaction_id, r.entity, r.entity_id, r.kind, r.known) for r in rows.collect())
    assert got == [(1, "customer_id", 3, "tx", 0), (1, "terminal_id", 7, "label", 1), (1, "terminal_id", 7, "tx", 0)]
