"""Bootstrap lists for the Python clients: servers refusing connections are left out while another answers."""

from __future__ import annotations

import socket

from lakestream.io.kafka import reachable_first
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
