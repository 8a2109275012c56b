"""The project's own single-node Kafka broker (KRaft, combined broker + controller) on loopback.

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


def broker_service(config: LakestreamConfig) -> ManagedService:
    """The managed-process handle of the local broker."""
    broker = config.kafka.broker
    return ManagedService(
        name="kafka",
        run_dir=config.kafka_data_dir,
        host=broker.host,
        port=broker.port,
        hint="set LAKESTREAM__KAFKA__BROKER__PORT (and LAKESTREAM__KAFKA__BOOTSTRAP_SERVERS) to a free port",
    )


def render_server_properties(config: LakestreamConfig) -> str:
    """server.properties of a combined broker/controller node listening on loopback only."""
    broker = config.kafka.broker
    data = config.kafka_data_dir
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{broker.host}:{broker.controller_port}",
        "listeners": f"PLAINTEXT://{broker.host}:{broker.port},CONTROLLER://{broker.host}:{broker.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{broker.host}:{broker.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data / "logs"),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(4 * 1024 * 1024),
        "log.retention.check.interval.ms": "60000",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def _java_command(config: LakestreamConfig, main_class: str, *args: str) -> list[str]:
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
        f"-Dkafka.logs.dir={config.kafka_data_dir}",
        "-cp",
        os.pathsep.join(str(jar) for jar in jars),
        main_class,
        *args,
    ]


def format_storage(config: LakestreamConfig, properties: Path) -> None:
    """Format the KRaft metadata log once (a new cluster id); later starts reuse it."""
    meta = config.kafka_data_dir / "logs" / "meta.properties"
    if meta.exists():
        return
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    command = _java_command(config, STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(properties))
    logger.info("formatting Kafka storage in %s (cluster id %s)", config.kafka_data_dir / "logs", cluster_id)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(
            f"formatting Kafka storage failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-2000:]}\n"
            f"remove {config.kafka_data_dir} to start from scratch"
        )


def start_broker(config: LakestreamConfig, *, create_topics: bool = True) -> ServiceStatus:
    """Start the local broker (no-op if it runs), wait until it serves metadata, create the topics."""
    if not config.kafka.broker.managed:
        raise SetupError(
            f"kafka.broker.managed is false in environment {config.env!r}: the brokers at "
            f"{config.kafka.bootstrap_servers} are run by the platform, not by lakestream"
        )
    service = broker_service(config)
    data = config.kafka_data_dir
    data.mkdir(parents=True, exist_ok=True)
    properties = data / "server.properties"
    if not service.status().running:
        properties.write_text(render_server_properties(config))
        format_storage(config, properties)

    def answers_metadata() -> bool:
        if not port_is_open(config.kafka.broker.host, config.kafka.broker.port):
            return False
        try:
            list_topics(config.kafka)
        except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
            return False
        return True

    status = service.start(
        _java_command(config, BROKER_MAIN, str(properties)),
        ready=answers_metadata,
        timeout_s=config.kafka.broker.start_timeout_s,
        extra_ports=(config.kafka.broker.controller_port,),
    )
    if create_topics:
        ensure_topics(config.kafka)
    return status


def stop_broker(config: LakestreamConfig) -> bool:
    """Stop the local broker cleanly (controlled shutdown on SIGTERM); True if it was running."""
    return broker_service(config).stop(timeout_s=60.0)


def broker_status(config: LakestreamConfig) -> ServiceStatus:
    """Whether the local broker runs, with pid and address."""
    return broker_service(config).status()
