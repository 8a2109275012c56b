"""Bootstrap lists for the Python clients: servers refusing connections are left out while another answers; the
security settings under each client's names."""

from __future__ import annotations

import socket

from lakestream.config.models import KafkaConfig, KafkaSecurityConfig
from lakestream.io.kafka import librdkafka_options, python_client_options, reachable_first
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
