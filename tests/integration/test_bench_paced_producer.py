"""The streaming benchmark's parts against the real broker: the paced producer sends in order and stops where it is
told; the CPU meter counts the processes that share the cores."""

from __future__ import annotations

import multiprocessing

import pytest
from benchmark_scripts import load_benchmark

from lakestream.config import LakestreamConfig
from lakestream.config.models import TopicConfig
from lakestream.io.kafka import build_consumer, ensure_topics


def test_paced_sender_sends_the_events_before_its_stop_in_order_and_reports_them(
    kafka_broker: LakestreamConfig,
) -> None:
    topic = TopicConfig(name="it-paced-sender", partitions=1)
    ensure_topics(kafka_broker.kafka, [topic])
    payloads = [(str(i).encode(), f'{{"transaction_id": {i}}}'.encode()) for i in range(300)]
    ours, its = multiprocessing.Pipe()
    ours.send(("stop_at", 150))  # read before the first burst: 150 of the 300 leave

    load_benchmark("streaming").paced_sender(kafka_broker.kafka, topic.name, payloads, 3000, its)

    assert ours.recv()[0] == "begin"
    kind, sent, seconds, cpu_seconds = ours.recv()
    assert (kind, sent) == ("done", 150)
    assert isinstance(seconds, float)
    assert isinstance(cpu_seconds, float)
    consumer = build_consumer(kafka_broker.kafka, topic.name, consumer_timeout_ms=10_000)
    received = [(message.key, message.value) for message in consumer]
    consumer.close()
    assert received == payloads[:150]


def test_cpu_meter_counts_the_processes_that_share_the_cores(spark, kafka_broker: LakestreamConfig) -> None:
    meter = load_benchmark("streaming").CpuMeter(spark, kafka_broker)
    first = meter.sample()
    spark.range(200_000).selectExpr("id % 7 AS k").groupBy("k").count().collect()  # the JVM and a shuffle work
    spark.createDataFrame([(1,)], "x int").rdd.map(lambda row: sum(range(200_000))).collect()  # a Python worker
    cores = type(meter).cores(first, meter.sample())

    assert set(cores) == {"benchmark_python", "spark_jvm", "kafka_broker", "python_workers", "total"}
    assert cores["spark_jvm"] > 0
    assert all(value >= 0 for value in cores.values())
    assert cores["total"] == pytest.approx(sum(v for k, v in cores.items() if k != "total"), abs=0.05)
