"""The real broker: kafka-python round trip, Spark batch read and a short Structured Streaming read."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.testing import assertDataFrameEqual

from lakestream.config import LakestreamConfig
from lakestream.config.models import KafkaConfig, TopicConfig
from lakestream.errors import ServiceError
from lakestream.io.delta import read_delta
from lakestream.io.kafka import (
    RecordProducer,
    build_consumer,
    build_producer,
    delete_topics,
    ensure_topics,
    list_topics,
    spark_kafka_options,
)
from lakestream.streaming.pipeline import send_alerts, send_collected_alerts
from lakestream.streaming.raw_ingest import start_raw_ingest


def _produce(config: LakestreamConfig, topic: str, events: list[dict]) -> None:
    producer = build_producer(config.kafka)
    for event in events:
        producer.send(topic, key=str(event["id"]).encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()


def test_configured_topics_exist(kafka_broker: LakestreamConfig) -> None:
    assert {"transactions", "fraud-labels", "fraud-alerts"} <= set(list_topics(kafka_broker.kafka))


def test_created_topics_are_listed_as_soon_as_ensure_topics_returns(kafka_broker: LakestreamConfig) -> None:
    topics = [TopicConfig(name=f"it-listed-{i}", partitions=1) for i in range(6)]
    assert ensure_topics(kafka_broker.kafka, topics) == [topic.name for topic in topics]
    assert {topic.name for topic in topics} <= set(list_topics(kafka_broker.kafka))


def test_delete_topics_deletes_only_existing_named_topics(kafka_broker: LakestreamConfig) -> None:
    ensure_topics(kafka_broker.kafka, [TopicConfig(name="it-doomed", partitions=1)])
    assert delete_topics(kafka_broker.kafka, ["it-doomed", "it-never-created"]) == ["it-doomed"]
    deadline = time.monotonic() + 30
    while "it-doomed" in list_topics(kafka_broker.kafka) and time.monotonic() < deadline:
        time.sleep(0.2)
    remaining = set(list_topics(kafka_broker.kafka))
    assert "it-doomed" not in remaining
    assert {"transactions", "fraud-labels", "fraud-alerts"} <= remaining


def test_produce_and_consume_with_kafka_python(kafka_broker: LakestreamConfig) -> None:
    topic = TopicConfig(name="it-python-roundtrip", partitions=1)
    ensure_topics(kafka_broker.kafka, [topic])
    events = [{"id": i, "amount": i * 1.5} for i in range(20)]
    _produce(kafka_broker, topic.name, events)
    consumer = build_consumer(kafka_broker.kafka, topic.name, consumer_timeout_ms=10_000)
    received = [json.loads(message.value) for message in consumer]
    consumer.close()
    assert received == events


def test_record_producer_delivers_every_record_in_order_through_a_full_queue(kafka_broker: LakestreamConfig) -> None:
    topic = TopicConfig(name="it-record-producer", partitions=1)
    ensure_topics(kafka_broker.kafka, [topic])
    # a queue of 500 records makes send() wait for room many times over
    producer = RecordProducer(kafka_broker.kafka, **{"queue.buffering.max.messages": 500})
    for i in range(5_000):
        producer.send(topic.name, value=json.dumps({"id": i}).encode(), key=str(i).encode())
    producer.close()
    consumer = build_consumer(kafka_broker.kafka, topic.name, consumer_timeout_ms=10_000)
    received = [(message.key, json.loads(message.value)["id"]) for message in consumer]
    consumer.close()
    assert received == [(str(i).encode(), i) for i in range(5_000)]


def test_record_producer_refuses_an_oversized_record_at_send(kafka_broker: LakestreamConfig) -> None:
    producer = RecordProducer(kafka_broker.kafka, **{"message.max.bytes": 10_000})
    with pytest.raises(ServiceError, match=r"cannot send a record of 20,000 bytes to it-too-big"):
        producer.send("it-too-big", value=b"x" * 20_000)
    producer.close()


def test_record_producer_stops_sending_at_the_first_failed_delivery() -> None:
    # a queue of 5 records: send() waits for room, and the first records' timeouts end the sending there
    producer = RecordProducer(
        KafkaConfig(bootstrap_servers="127.0.0.1:1"),
        **{"message.timeout.ms": 1_000, "queue.buffering.max.messages": 5},
    )
    sent: list[int] = []

    def send_all() -> None:
        for i in range(1_000):
            producer.send("anything", value=str(i).encode())
            sent.append(i)

    with pytest.raises(ServiceError, match=r"records were refused by Kafka at 127.0.0.1:1, the first: .*timed out"):
        send_all()
    assert len(sent) < 20
    with contextlib.suppress(ServiceError):  # the records still queued time out too
        producer.close(timeout=30)


def test_record_producer_flush_says_how_many_records_were_not_delivered() -> None:
    # nothing listens on port 1: the records time out in librdkafka's queue and their reports say so
    producer = RecordProducer(KafkaConfig(bootstrap_servers="127.0.0.1:1"), **{"message.timeout.ms": 1_500})
    for i in range(3):
        producer.send("anything", value=str(i).encode())
    with pytest.raises(ServiceError, match=r"3 records were refused by Kafka at 127.0.0.1:1, the first: .*timed out"):
        producer.close(timeout=30)


def test_spark_batch_and_streaming_reads_of_a_topic(kafka_broker: LakestreamConfig, spark: SparkSession) -> None:
    config = kafka_broker
    topic = TopicConfig(name="it-spark-read", partitions=2)
    ensure_topics(config.kafka, [topic])
    events = [{"id": i, "amount": float(i)} for i in range(50)]
    _produce(config, topic.name, events)

    batch = (
        spark.read.format("kafka")
        .options(**spark_kafka_options(config.kafka))
        .option("subscribe", topic.name)
        .option("startingOffsets", "earliest")
        .load()
        .select(F.from_json(F.col("value").cast("string"), "id BIGINT, amount DOUBLE").alias("e"))
        .select("e.*")
    )
    expected = spark.createDataFrame([(e["id"], e["amount"]) for e in events], "id BIGINT, amount DOUBLE")
    assertDataFrameEqual(batch, expected)

    table = config.table_path("it", "kafka_landed")
    query = start_raw_ingest(
        spark, config, topic=topic.name, table=table, checkpoint=config.checkpoint_path("it-kafka"), available_now=True
    )
    query.awaitTermination(120)
    landed = read_delta(spark, table).select(
        F.from_json(F.col("value").cast("string"), "id BIGINT, amount DOUBLE").alias("e"), "topic"
    )
    assertDataFrameEqual(landed.select("e.*"), expected)
    assert {row.topic for row in landed.select("topic").distinct().collect()} == {topic.name}

    # A second run of the same query resumes from its checkpoint: nothing is landed twice.
    _produce(config, topic.name, [{"id": 50, "amount": 50.0}])
    query = start_raw_ingest(
        spark, config, topic=topic.name, table=table, checkpoint=config.checkpoint_path("it-kafka"), available_now=True
    )
    query.awaitTermination(120)
    assert read_delta(spark, table).count() == 51


def test_driver_alerts_equal_sparks_kafka_writer(kafka_broker: LakestreamConfig, spark: SparkSession) -> None:
    """The driver's alert records (collected rows, kafka-python) carry the keys and JSON values of Spark's writer."""
    spark_topic, driver_topic = (TopicConfig(name=f"it-alerts-{by}", partitions=1) for by in ("spark", "driver"))
    ensure_topics(kafka_broker.kafka, [spark_topic, driver_topic])
    topics = kafka_broker.kafka.topics.model_copy(update={"fraud_alerts": spark_topic})
    config = kafka_broker.model_copy(update={"kafka": kafka_broker.kafka.model_copy(update={"topics": topics})})
    at = dt.datetime(2018, 5, 11, 23, 59, 58, 123456, tzinfo=dt.UTC)
    rows = [
        (1, at, 7, 70, 57.16, 0.91, "block"),
        (2, at, 8, 80, 1234567.5, 1.25e-7, "review"),  # a score Spark spells 1.25E-7
        (3, at, 9, 90, 3.0, 0.01, "approve"),
        (4, at + dt.timedelta(hours=1), 7, 71, 0.01, 0.5, "review"),
    ]
    scored = spark.createDataFrame(
        rows,
        "transaction_id BIGINT, tx_datetime TIMESTAMP, customer_id BIGINT, terminal_id BIGINT, tx_amount DOUBLE,"
        " score DOUBLE, decision STRING",
    ).withColumns({"model_version": F.lit("3"), "processed_at": F.col("tx_datetime")})

    send_alerts(scored, config)
    producer = build_producer(config.kafka)
    send_collected_alerts(producer, driver_topic.name, scored.toArrow()).confirm()
    producer.close()

    def records(topic: str) -> list[tuple[bytes, dict]]:
        consumer = build_consumer(config.kafka, topic, consumer_timeout_ms=10_000)
        found = sorted((message.key, json.loads(message.value)) for message in consumer)
        consumer.close()
        return found

    expected = records(spark_topic.name)
    assert [key for key, _ in expected] == [b"1", b"2", b"4"]
    assert expected[0][1]["processed_at"] == "2018-05-11 23:59:58.123"
    assert records(driver_topic.name) == expected
