"""The project's own Kafka broker (KRaft, a combined broker + controller node, plus broker-only nodes) on loopback.

Runs `kafka.Kafka` from the Maven-resolved jars in .jars/kafka with data under the state folder;
formats its storage on first start, waits until it answers metadata requests, and creates the topics
from configuration. A real Kafka, not an emulation: the same clients and Spark connector as in production.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import uuid
from pathlib import Path

from lakestream.config.models import LakestreamConfig
from lakestream.errors import ServiceError, SetupError
from lakestream.io.kafka import ensure_topics, list_topics
from lakestream.platform.jars import list_jars
from lakestream.platform.process import ManagedService, ServiceStatus, port_is_open

logger = logging.getLogger(__name__)

BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def node_ports(config: LakestreamConfig) -> list[int]:
    """The client port of every node: node 1 (broker + controller), then the broker-only nodes."""
    broker = config.kafka.broker
    return [broker.port, *broker.extra_ports]


def node_data_dir(config: LakestreamConfig, node: int) -> Path:
    """Data folder of a node: the broker data folder for node 1 (as a single node always had), node-N below it."""
    return config.kafka_data_dir if node == 1 else config.kafka_data_dir / f"node-{node}"


def broker_service(config: LakestreamConfig, node: int = 1) -> ManagedService:
    """The managed-process handle of one local broker node (1 = the combined broker + controller)."""
    broker = config.kafka.broker
    return ManagedService(
        name="kafka" if node == 1 else f"kafka-{node}",
        run_dir=config.kafka_data_dir,
        host=broker.host,
        port=node_ports(config)[node - 1],
        hint="set LAKESTREAM__KAFKA__BROKER__PORT (and LAKESTREAM__KAFKA__BOOTSTRAP_SERVERS) to a free port",
    )


def render_server_properties(config: LakestreamConfig, node: int = 1) -> str:
    """server.properties of a node listening on loopback only: node 1 is broker and controller, others brokers."""
    broker = config.kafka.broker
    port = node_ports(config)[node - 1]
    replication = str(min(broker.nodes, 3))
    controller = f"CONTROLLER://{broker.host}:{broker.controller_port}"
    lines = {
        "process.roles": "broker,controller" if node == 1 else "broker",
        "node.id": str(node),
        "controller.quorum.voters": f"1@{broker.host}:{broker.controller_port}",
        "listeners": f"PLAINTEXT://{broker.host}:{port}" + (f",{controller}" if node == 1 else ""),
        "advertised.listeners": f"PLAINTEXT://{broker.host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(node_data_dir(config, node) / "logs"),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": replication,
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(4 * 1024 * 1024),
        "log.retention.check.interval.ms": "60000",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def _java_command(config: LakestreamConfig, main_class: str, *args: str, node: int = 1) -> list[str]:
    broker = config.kafka.broker
    jars = list_jars(broker.jars_dir, what="Kafka broker")
    log4j = config.home / "conf" / "kafka" / "log4j2.properties"
    return [
        "java",
        f"-Xmx{broker.heap}",
        f"-Xms{broker.heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={node_data_dir(config, node)}",
        "-cp",
        os.pathsep.join(str(jar) for jar in jars),
        main_class,
        *args,
    ]


def _cluster_id(config: LakestreamConfig) -> str:
    """The KRaft cluster id, drawn once and shared by every node (kept next to the data)."""
    path = config.kafka_data_dir / "cluster.id"
    meta = config.kafka_data_dir / "logs" / "meta.properties"
    if not path.exists() and meta.exists():  # formatted by an earlier single-node version: reuse its id
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                path.write_text(line.split("=", 1)[1].strip())
    if not path.exists():
        path.write_text(new_cluster_id())
    return path.read_text().strip()


def new_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, redrawn while it starts with "-" (as Kafka's own
    Uuid.randomUuid does; one id in 64 would otherwise read as an option on a command line)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def format_storage(config: LakestreamConfig, properties: Path, node: int = 1) -> None:
    """Format a node's KRaft log once (the cluster's id); later starts reuse it."""
    logs = node_data_dir(config, node) / "logs"
    if (logs / "meta.properties").exists():
        return
    cluster_id = _cluster_id(config)
    command = _java_command(
        config, STORAGE_TOOL, "format", f"--cluster-id={cluster_id}", "-c", str(properties), node=node
    )
    logger.info("formatting Kafka storage of node %d in %s (cluster id %s)", node, logs, cluster_id)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(
            f"formatting Kafka storage failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-2000:]}\n"
            f"remove {config.kafka_data_dir} to start from scratch"
        )


def start_broker(config: LakestreamConfig, *, create_topics: bool = True) -> ServiceStatus:
    """Start the local broker node(s) (no-op for those running), wait until each serves metadata, create topics."""
    if not config.kafka.broker.managed:
        raise SetupError(
            f"kafka.broker.managed is false in environment {config.env!r}: the brokers at "
            f"{config.kafka.bootstrap_servers} are run by the platform, not by lakestream"
        )
    statuses = [start_node(config, node) for node in range(1, config.kafka.broker.nodes + 1)]
    if create_topics:
        ensure_topics(config.kafka)
    return statuses[0]


def start_node(config: LakestreamConfig, node: int) -> ServiceStatus:
    """Start one node unless it runs; return once it answers metadata requests on its own port."""
    broker = config.kafka.broker
    service = broker_service(config, node)
    data = node_data_dir(config, node)
    data.mkdir(parents=True, exist_ok=True)
    properties = data / "server.properties"
    if not service.status().running:
        properties.write_text(render_server_properties(config, node))
        format_storage(config, properties, node)
    port = node_ports(config)[node - 1]
    node_kafka = config.kafka.model_copy(update={"bootstrap_servers": f"{broker.host}:{port}"})

    def answers_metadata() -> bool:
        if not port_is_open(broker.host, port):
            return False
        try:
            list_topics(node_kafka)
        except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
            return False
        return True

    return service.start(
        _java_command(config, BROKER_MAIN, str(properties), node=node),
        ready=answers_metadata,
        timeout_s=broker.start_timeout_s,
        extra_ports=(broker.controller_port,) if node == 1 else (),
    )


def stop_broker(config: LakestreamConfig) -> bool:
    """Stop the local broker nodes cleanly (controlled shutdown on SIGTERM), brokers before the controller;
    True if any was running."""
    stopped = False
    for node in range(config.kafka.broker.nodes, 0, -1):
        stopped = broker_service(config, node).stop(timeout_s=60.0) or stopped
    return stopped


def stop_node(config: LakestreamConfig, node: int) -> bool:
    """Stop one node (a broker lost); True if it was running."""
    return broker_service(config, node).stop(timeout_s=60.0)


def broker_status(config: LakestreamConfig) -> ServiceStatus:
    """Whether the local broker (node 1) runs, with pid and address."""
    return broker_service(config).status()
