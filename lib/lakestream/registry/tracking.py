"""Point MLflow at the configured tracking store and registry (SQLite under the state folder by default)."""

from __future__ import annotations

import logging
import os
import sys

from lakestream.config.models import LakestreamConfig
from lakestream.platform.process import ManagedService, ServiceStatus, port_is_open

logger = logging.getLogger(__name__)

JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"  # mlflow server's GenAI job runner, on by default in MLflow 3


def configure_mlflow(config: LakestreamConfig, experiment: str | None = None) -> str:
    """Set the tracking and registry URIs and make sure the experiment exists; return its id."""
    import mlflow

    if config.tracking_uri.startswith("sqlite:///"):
        config.mlflow_db_path.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.registry_uri)
    name = experiment or config.mlflow.experiment
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        artifacts = config.mlflow_artifact_root / name
        artifacts.mkdir(parents=True, exist_ok=True)
        experiment_id = mlflow.create_experiment(name, artifact_location=artifacts.as_uri())
        logger.info("created MLflow experiment %s (artifacts in %s)", name, artifacts)
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def mlflow_server_service(config: LakestreamConfig) -> ManagedService:
    """The managed-process handle of the local MLflow UI server."""
    server = config.mlflow.server
    return ManagedService(
        name="mlflow",
        run_dir=config.paths.state_dir / "run",
        host=server.host,
        port=server.port,
        hint="set LAKESTREAM__MLFLOW__SERVER__PORT to a free port",
    )


def start_mlflow_server(config: LakestreamConfig) -> ServiceStatus:
    """Serve the MLflow UI and REST API over the configured stores (no-op if it runs)."""
    config.mlflow_db_path.parent.mkdir(parents=True, exist_ok=True)
    config.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    server = config.mlflow.server
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        config.tracking_uri,
        "--registry-store-uri",
        config.registry_uri,
        "--default-artifact-root",
        config.mlflow_artifact_root.as_uri(),
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--workers",
        "1",
    ]
    # MLflow 3's GenAI job runner (huey) is of no use to Lakestream and leaves a store folder in /dev/shm at every
    # start that nothing removes; a user who wants it sets the variable to true
    env = {**os.environ}
    env.setdefault(JOB_EXECUTION, "false")
    service = mlflow_server_service(config)
    return service.start(command, timeout_s=120.0, ready=lambda: port_is_open(server.host, server.port), env=env)


def stop_mlflow_server(config: LakestreamConfig) -> bool:
    """Stop the local MLflow server; True if it was running."""
    return mlflow_server_service(config).stop()
