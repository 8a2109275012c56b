"""The real broker: kafka-python round trip, Spark batch read and a short Structured Streaming read."""

from __future__ import annotations

import json

from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.testing import assertDataFrameEqual

from lakestream.config import LakestreamConfig
from lakestream.config.models import TopicConfig
from lakestream.io.delta import read_delta
from lakestream.io.kafka import build_consumer, build_producer, ensure_topics, list_topics, spark_kafka_options
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


def test_produce_and_consume_with_kafka_python(kafka_broker: LakestreamConfig) -> None:
    topic = TopicConfig(name="it-python-roundtrip", partitions=1)
    ensure_topics(kafka_broker.kafka, [topic])
    events = [{"id": i, "amount": i * 1.5} for i in range(20)]
    _produce(kafka_broker, topic.name, events)
    consumer = build_consumer(kafka_broker.kafka, topic.name, consumer_timeout_ms=10_000)
    received = [json.loads(message.value) for message in consumer]
    consumer.close()
    assert received == events


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
