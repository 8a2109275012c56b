"""The served MLflow option: `lakestream mlflow start|status|stop` runs a real `mlflow server` over the store."""

from __future__ import annotations

import json
import urllib.request

from lakestream.config import LakestreamConfig
from lakestream.registry.tracking import mlflow_server_service, start_mlflow_server, stop_mlflow_server


def test_server_starts_answers_and_stops(config: LakestreamConfig) -> None:
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
    finally:
        assert stop_mlflow_server(config) is True
    assert not mlflow_server_service(config).status().running
