"""A local two-broker Kafka cluster (KRaft): replicated topics, partitions led by both brokers, a broker lost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakestream.config import LakestreamConfig, load_config
from lakestream.config.models import TopicConfig
from lakestream.io.kafka import build_admin_client, build_consumer, build_producer, ensure_topics
from lakestream.platform.kafka_broker import broker_service, start_broker, start_node, stop_broker, stop_node
from lakestream.platform.process import free_ports, pid_is_alive


@pytest.fixture(scope="module")
def two_brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakestreamConfig]:
    first, controller, second = free_ports(3)
    state: Path = tmp_path_factory.mktemp("kafka-cluster") / "var"
    config = load_config(
        overrides={
            "paths.state_dir": str(state),
            "kafka.bootstrap_servers": f"127.0.0.1:{first},127.0.0.1:{second}",
            "kafka.broker.port": first,
            "kafka.broker.controller_port": controller,
            "kafka.broker.extra_ports": [second],
        }
    )
    start_broker(config, create_topics=False)
    pids = [broker_service(config, node).pid() for node in (1, 2)]
    assert all(pids)
    yield config
    stop_broker(config)
    assert not any(pid_is_alive(pid) for pid in pids if pid)


def test_both_brokers_join_and_lead_partitions_of_a_replicated_topic(two_brokers: LakestreamConfig) -> None:
    topic = TopicConfig(name=f"replicated-{uuid.uuid4().hex[:6]}", partitions=4, replication_factor=2)
    assert ensure_topics(two_brokers.kafka, [topic]) == [topic.name]
    admin = build_admin_client(two_brokers.kafka)
    try:
        assert {broker["broker_id"] for broker in admin.describe_cluster()["brokers"]} == {1, 2}
        (described,) = admin.describe_topics([topic.name])
    finally:
        admin.close()
    partitions = described["partitions"]
    assert len(partitions) == 4, described
    assert all(sorted(p["replica_nodes"]) == [1, 2] for p in partitions), partitions
    assert {p["leader_id"] for p in partitions} == {1, 2}  # the load is spread over both brokers


def test_messages_survive_the_loss_of_a_broker(two_brokers: LakestreamConfig) -> None:
    topic = TopicConfig(name=f"survive-{uuid.uuid4().hex[:6]}", partitions=2, replication_factor=2)
    ensure_topics(two_brokers.kafka, [topic])
    producer = build_producer(two_brokers.kafka)
    for i in range(50):
        producer.send(topic.name, key=str(i).encode(), value=f"before-{i}".encode())
    producer.flush()
    producer.close()
    assert stop_node(two_brokers, 2)
    try:
        producer = build_producer(two_brokers.kafka)
        for i in range(50):
            producer.send(topic.name, key=str(i).encode(), value=f"after-{i}".encode())
        producer.flush()
        producer.close()
        consumer = build_consumer(two_brokers.kafka, topic.name, consumer_timeout_ms=10_000)
        try:
            values = sorted(message.value.decode() for message in consumer)
        finally:
            consumer.close()
    finally:
        start_node(two_brokers, 2)
    assert values == sorted([f"before-{i}" for i in range(50)] + [f"after-{i}" for i in range(50)])
