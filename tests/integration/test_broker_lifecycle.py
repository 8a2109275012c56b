"""Lifecycle of the project's broker: start twice, status, stop, and a clear refusal when the port is taken."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lakestream.config import LakestreamConfig, load_config
from lakestream.errors import PortInUseError
from lakestream.platform.kafka_broker import (
    broker_status,
    format_storage,
    new_cluster_id,
    node_data_dir,
    render_server_properties,
    start_broker,
    stop_broker,
)
from lakestream.platform.process import free_ports


@pytest.fixture
def own_broker_config(tmp_path: Path) -> LakestreamConfig:
    """A second, independent broker configuration (own data folder and ports)."""
    port, controller = free_ports(2)
    return load_config(
        "test",
        overrides={
            "paths.state_dir": str(tmp_path / "var"),
            "kafka.broker.port": port,
            "kafka.broker.controller_port": controller,
            "kafka.bootstrap_servers": f"127.0.0.1:{port}",
        },
    )


def test_start_is_idempotent_then_status_then_stop(own_broker_config: LakestreamConfig) -> None:
    config = own_broker_config
    first = start_broker(config)
    try:
        assert first.running
        second = start_broker(config)
        assert second.pid == first.pid  # second start is a no-op
        assert broker_status(config).running
    finally:
        assert stop_broker(config) is True
    assert not broker_status(config).running
    assert stop_broker(config) is False  # stopping a stopped broker is harmless
    # Data survives a restart: the storage is formatted once.
    again = start_broker(config)
    try:
        assert again.running
    finally:
        stop_broker(config)


def test_port_in_use_is_refused_clearly(own_broker_config: LakestreamConfig) -> None:
    config = own_broker_config
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", config.kafka.broker.port))
        blocker.listen(1)
        with pytest.raises(PortInUseError, match=rf"port 127.0.0.1:{config.kafka.broker.port} is already in use"):
            start_broker(config)
    assert not broker_status(config).running


def test_cli_reports_port_in_use_with_exit_code_2(own_broker_config: LakestreamConfig) -> None:
    port = own_broker_config.kafka.broker.port
    env_overrides = {
        "LAKESTREAM__PATHS__STATE_DIR": str(own_broker_config.paths.state_dir),
        "LAKESTREAM__KAFKA__BROKER__PORT": str(port),
        "LAKESTREAM__KAFKA__BROKER__CONTROLLER_PORT": str(own_broker_config.kafka.broker.controller_port),
    }
    import os

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        result = subprocess.run(
            [sys.executable, "-m", "lakestream.cli", "kafka", "start"],
            env={**os.environ, **env_overrides},
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 2
    assert f"port 127.0.0.1:{port} is already in use" in result.stderr
    assert "LAKESTREAM__KAFKA__BROKER__PORT" in result.stderr


def test_a_cluster_id_that_starts_with_a_dash_formats(own_broker_config: LakestreamConfig) -> None:
    """Ids kept from before (or drawn by other tools) may start with "-"; the storage tool must not read an option."""
    config = own_broker_config
    data = node_data_dir(config, 1)
    data.mkdir(parents=True)
    (config.kafka_data_dir / "cluster.id").write_text("-BMoNbFtT-OIWfJuN1znIQ")
    properties = data / "server.properties"
    properties.write_text(render_server_properties(config, 1))
    format_storage(config, properties, 1)
    assert "cluster.id=-BMoNbFtT-OIWfJuN1znIQ" in (data / "logs" / "meta.properties").read_text()
    assert not any(new_cluster_id().startswith("-") for _ in range(2000))
