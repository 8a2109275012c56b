"""The served MLflow option: `lakestream mlflow start|status|stop` runs a real `mlflow server` over the store."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from lakestream.config import LakestreamConfig
from lakestream.registry.tracking import mlflow_server_service, start_mlflow_server, stop_mlflow_server


def _shm_huey_stores() -> set[Path]:
    shm = Path("/dev/shm")
    return set(shm.glob("tmp*/*.mlflow-huey-store")) if shm.is_dir() else set()


def test_server_starts_answers_and_stops(config: LakestreamConfig) -> None:
    before = _shm_huey_stores()
    status = start_mlflow_server(config)
    try:
        assert status.running
        assert start_mlflow_server(config).pid == status.pid  # second start is a no-op
        base = f"http://{config.mlflow.server.host}:{config.mlflow.server.port}"
        with urllib.request.urlopen(f"{base}/health", timeout=10) as response:
            assert response.status == 200
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/experiments/search",
            data=json.dumps({"max_results": 10}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert "experiments" in json.loads(response.read())
        # without the GenAI job runner, a start leaves no store folder in /dev/shm behind it
        environ = Path(f"/proc/{status.pid}/environ").read_bytes().split(b"\0")
        assert b"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in environ
    finally:
        assert stop_mlflow_server(config) is True
    assert not mlflow_server_service(config).status().running
    assert _shm_huey_stores() <= before
