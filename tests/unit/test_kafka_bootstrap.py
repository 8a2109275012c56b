"""Bootstrap lists for the Python clients: servers refusing connections are left out while another answers; the
security settings under each client's names."""

from __future__ import annotations

import socket

import pytest

from lakestream.config.models import KafkaConfig, KafkaSecurityConfig
from lakestream.errors import ServiceError
from lakestream.io.kafka import RecordProducer, librdkafka_options, python_client_options, reachable_first
from lakestream.platform.process import free_port, free_ports


def test_a_server_refusing_connections_is_left_out_while_another_answers() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        up = f"127.0.0.1:{listening.getsockname()[1]}"
        down = f"127.0.0.1:{free_port()}"
        assert reachable_first([down, up]) == [up]


def test_all_servers_are_kept_when_none_answers_or_only_one_is_given() -> None:
    down = [f"127.0.0.1:{port}" for port in free_ports(2)]
    assert reachable_first(down) == down
    assert reachable_first(down[:1]) == down[:1]


def test_both_python_clients_get_the_same_security_settings_under_their_own_names(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    kafka = KafkaConfig(
        bootstrap_servers="127.0.0.1:1",
        security=KafkaSecurityConfig(
            protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="u", sasl_password="p", ssl_cafile=ca
        ),
    )
    assert python_client_options(kafka) == {
        "bootstrap_servers": ["127.0.0.1:1"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
        "ssl_cafile": str(ca),
    }
    assert librdkafka_options(kafka) == {
        "bootstrap.servers": "127.0.0.1:1",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "p",
        "ssl.ca.location": str(ca),
    }
    assert librdkafka_options(KafkaConfig()) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }


class _Report:
    """What librdkafka hands a delivery callback: the record's topic (the rest is not read)."""

    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


def test_each_failure_report_of_a_producer_names_its_own_first_failure() -> None:
    """RecordProducer counts failed deliveries and raises once per batch of them, naming the first; after it raised,
    the next failures are reported with their own first one, not the earlier one's."""
    producer = RecordProducer(KafkaConfig(bootstrap_servers=f"127.0.0.1:{free_port()}"))
    try:
        producer._on_delivery("Broker: Topic authorization failed", _Report("a"))
        producer._on_delivery("Broker: Topic authorization failed", _Report("a"))
        with pytest.raises(
            ServiceError, match=r"^2 records .* the first: Broker: Topic authorization failed \(topic a\)"
        ):
            producer._raise_failed()
        producer._raise_failed()  # nothing new failed: no error
        producer._on_delivery(None, _Report("a"))  # a delivered record is not counted
        producer._on_delivery("Local: Message timed out", _Report("b"))
        with pytest.raises(ServiceError, match=r"^1 records .* the first: Local: Message timed out \(topic b\)"):
            producer._raise_failed()
    finally:
        producer.close(timeout=1)
