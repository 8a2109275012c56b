"""Kafka clients built from configuration: admin (topics), producer and consumer, and Spark source options."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lakestream.config.models import KafkaConfig, KafkaSecurityConfig, TopicConfig
from lakestream.errors import ServiceError

if TYPE_CHECKING:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

logger = logging.getLogger(__name__)


def python_client_options(kafka: KafkaConfig) -> dict[str, Any]:
    """kafka-python keyword arguments (bootstrap servers and security) from configuration."""
    return {
        "bootstrap_servers": reachable_first(kafka.bootstrap_servers.split(",")),
        **security_options(kafka.security, KAFKA_PYTHON_NAMES),
    }


# the names each Python client gives the settings of kafka.security (security_options)
KAFKA_PYTHON_NAMES = {
    "protocol": "security_protocol",
    "mechanism": "sasl_mechanism",
    "username": "sasl_plain_username",
    "password": "sasl_plain_password",
    "cafile": "ssl_cafile",
}
LIBRDKAFKA_NAMES = {
    "protocol": "security.protocol",
    "mechanism": "sasl.mechanism",
    "username": "sasl.username",
    "password": "sasl.password",
    "cafile": "ssl.ca.location",
}


def security_options(sec: KafkaSecurityConfig, names: dict[str, str]) -> dict[str, Any]:
    """The kafka.security settings under one client's names (KAFKA_PYTHON_NAMES, LIBRDKAFKA_NAMES)."""
    options: dict[str, Any] = {names["protocol"]: sec.protocol}
    if sec.sasl_mechanism:
        options[names["mechanism"]] = sec.sasl_mechanism
        options[names["username"]] = sec.sasl_username
        options[names["password"]] = sec.sasl_password.get_secret_value() if sec.sasl_password else None
    if sec.ssl_cafile is not None:
        options[names["cafile"]] = str(sec.ssl_cafile)
    return options


def reachable_first(servers: list[str], *, timeout: float = 1.0) -> list[str]:
    """The bootstrap servers that accept a connection now (all of them when none does or only one is given).

    Bootstrap only fetches the cluster's metadata, after which clients talk to the live brokers it lists; but
    kafka-python keeps retrying a dead bootstrap server with growing back-off, so with a broker of several down a
    new client could time out although the others are up. Leaving out the ones refusing connections avoids it.
    """
    if len(servers) < 2:
        return servers
    reachable = []
    for server in servers:
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
                reachable.append(server)
        except (OSError, ValueError):
            logger.info("bootstrap server %s is not reachable; left out of this client's bootstrap list", server)
    return reachable or servers


def spark_kafka_options(kafka: KafkaConfig) -> dict[str, str]:
    """Options for Spark's Kafka source and sink: every client setting prefixed with `kafka.`."""
    return {f"kafka.{key}": value for key, value in kafka.client_options().items()}


def build_admin_client(kafka: KafkaConfig, *, timeout_ms: int = 10_000) -> KafkaAdminClient:
    """An admin client for the configured cluster, or a ServiceError saying it is unreachable."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        return KafkaAdminClient(
            **python_client_options(kafka), request_timeout_ms=timeout_ms, client_id="lakestream-admin"
        )
    except KafkaError as exc:
        raise ServiceError(
            f"cannot reach Kafka at {kafka.bootstrap_servers} ({exc}); start the local broker with "
            "`lakestream kafka start` or fix kafka.bootstrap_servers"
        ) from None


def build_producer(kafka: KafkaConfig, **overrides: Any) -> KafkaProducer:
    """A producer for the configured cluster (acks=all, idempotent where supported)."""
    from kafka import KafkaProducer

    options = {"acks": "all", "linger_ms": 5, **python_client_options(kafka), **overrides}
    return KafkaProducer(**options)


REPORTS_EVERY = 1000  # RecordProducer serves its delivery reports every this many records


class RecordProducer:
    """A producer for many records from one thread, through librdkafka (confluent-kafka): about a tenth of
    kafka-python's CPU per record (5,000 records/s of ~200 B here: 0.05 of a core against 0.43-0.48), for the
    replay of landed events and the benchmarks' paced load. Delivery is checked, not assumed: `flush` waits for
    every record and raises a ServiceError naming the first failure (and how many failed) when any did.

    `send` blocks while librdkafka's local queue is full instead of failing, serving delivery reports meanwhile, and
    raises that ServiceError as soon as a report says a record failed (a replay stops at the first failure instead
    of queueing the rest behind a dead broker). Keys go to partitions as Java clients send them (murmur2), so a
    key lands where Spark's Kafka writer or another Java producer would put it.
    """

    def __init__(self, kafka: KafkaConfig, *, linger_ms: int = 5, acks: str = "all", **overrides: Any) -> None:
        from confluent_kafka import KafkaException, Producer

        self._refused_at_send = KafkaException  # imported once, not on send's path
        self.servers = kafka.bootstrap_servers
        self.queued = 0
        self.failed = 0
        self.first_error: str | None = None
        options = {
            **librdkafka_options(kafka),
            "acks": acks,
            "linger.ms": linger_ms,
            "enable.idempotence": acks == "all",
            "partitioner": "murmur2_random",  # the Java client's partitioner for keyed records (random without a key)
            "delivery.report.only.error": True,  # no Python call per delivered record
            "on_delivery": self._on_delivery,
            "logger": logging.getLogger("lakestream.librdkafka"),  # its connection errors, not raw lines on stderr
            **overrides,
        }
        self._producer = Producer(options)

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = f"{error} (topic {message.topic()})"

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Queue one record (serving delivery reports when the queue is full, until it has room)."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key)
            except BufferError:
                self._producer.poll(0.05)
                self._raise_failed()
            except self._refused_at_send as exc:  # refused before queueing, e.g. larger than message.max.bytes
                raise ServiceError(
                    f"cannot send a record of {len(value):,} bytes to {topic} at {self.servers}: {exc.args[0].str()}"
                ) from None
            else:
                break
        self.queued += 1
        if self.queued % REPORTS_EVERY == 0:
            self._producer.poll(0)
            self._raise_failed()

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every queued record is acknowledged; a ServiceError if any was not."""
        pending = self._producer.flush(timeout)
        if pending:
            raise ServiceError(
                f"{pending} records to Kafka at {self.servers} were not acknowledged within {timeout:g} s; "
                "check that the broker is up (`lakestream kafka status`) and re-run (a replay sends its range again)"
            )
        self._raise_failed()

    def _raise_failed(self) -> None:
        """The ServiceError of the records whose delivery failed since the last one raised, if any did."""
        if self.failed:
            failed, self.failed = self.failed, 0
            first, self.first_error = self.first_error, None  # the next report names its own first failure
            raise ServiceError(
                f"{failed} records were refused by Kafka at {self.servers}, the first: {first}; "
                "fix the cause and re-run"
            )

    def close(self, timeout: float = 60.0) -> None:
        """Flush what is queued (a ServiceError as `flush` says), then drop anything left and disconnect."""
        try:
            self.flush(timeout)
        finally:
            self._producer.purge()
            self._producer.close()


def librdkafka_options(kafka: KafkaConfig) -> dict[str, Any]:
    """confluent-kafka (librdkafka) settings for the configured cluster: servers and security."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,  # librdkafka, unlike kafka-python, skips a dead one
        **security_options(kafka.security, LIBRDKAFKA_NAMES),
    }


def build_consumer(kafka: KafkaConfig, *topics: str, **overrides: Any) -> KafkaConsumer:
    """A consumer of the given topics from the earliest offset (unless overridden)."""
    from kafka import KafkaConsumer

    options = {"auto_offset_reset": "earliest", "enable_auto_commit": False, **python_client_options(kafka)}
    return KafkaConsumer(*topics, **{**options, **overrides})


def ensure_topics(kafka: KafkaConfig, topics: Iterable[TopicConfig] | None = None) -> list[str]:
    """Create the configured topics that do not exist yet; return the names created."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = list(topics if topics is not None else kafka.topics.all())
    admin = build_admin_client(kafka)
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in wanted if topic.name not in existing]
        created = []
        for topic in missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name=topic.name,
                            num_partitions=topic.partitions,
                            replication_factor=topic.replication_factor,
                            topic_configs={"retention.ms": str(topic.retention_ms)},
                        )
                    ]
                )
                created.append(topic.name)
            except TopicAlreadyExistsError:
                logger.info("topic %s appeared concurrently; keeping it", topic.name)
        for name in created:
            logger.info("created topic %s", name)
        _wait_until_listed(admin, [topic.name for topic in wanted], kafka.bootstrap_servers)
        return created
    finally:
        admin.close()


def _wait_until_listed(admin: KafkaAdminClient, names: list[str], servers: str, *, timeout_s: float = 30.0) -> None:
    """Return once the metadata lists every topic named. A create is acknowledged when the controller commits it;
    the broker answering metadata applies the record a moment later, so an immediate listing can miss a topic."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = sorted(set(names) - set(admin.list_topics()))
        if not missing:
            return
        if time.monotonic() > deadline:
            raise ServiceError(
                f"Kafka at {servers} acknowledged topics {missing} but did not list them within {timeout_s:.0f} s; "
                "check the broker's log (`lakestream kafka status` shows where it is)"
            )
        time.sleep(0.1)


def delete_topics(kafka: KafkaConfig, names: Iterable[str]) -> list[str]:
    """Delete the named topics that exist (their partitions' logs go with them); return the names deleted."""
    admin = build_admin_client(kafka)
    try:
        doomed = sorted(set(names) & set(admin.list_topics()))
        if doomed:
            admin.delete_topics(doomed)
            logger.info("deleted topics %s", ", ".join(doomed))
        return doomed
    finally:
        admin.close()


def list_topics(kafka: KafkaConfig) -> list[str]:
    """The topic names of the configured cluster (internal topics excluded)."""
    admin = build_admin_client(kafka)
    try:
        return sorted(name for name in admin.list_topics() if not name.startswith("__"))
    finally:
        admin.close()
