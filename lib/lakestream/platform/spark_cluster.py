"""`lakestream cluster start|stop|status`: a real Spark standalone cluster on loopback, from the installed pyspark.

One master and ``cluster.workers`` workers, each a separate JVM started with ``spark-class`` (the master's and
workers' own main classes, as ``sbin/start-master.sh`` would), managed by pid files like the broker. Workers
get the project's Python (``PYSPARK_PYTHON``) so executors run the same venv; applications bring the Delta and
Kafka jars themselves (``spark.jars``), so the daemons need no extra classpath. Use it from any job with
``lakestream submit --master spark://127.0.0.1:7077 jobs/...`` or ``LAKESTREAM__SPARK__MASTER=spark://...``;
``conf/cluster.yaml`` shows the settings of a real deployment.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakestream.config.models import LakestreamConfig
from lakestream.errors import ServiceError
from lakestream.platform.process import ManagedService, ServiceStatus, port_is_open

logger = logging.getLogger(__name__)

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def spark_class() -> Path:
    """The installed pyspark's bin/spark-class."""
    import pyspark

    path = Path(pyspark.__file__).parent / "bin" / "spark-class"
    if not path.exists():
        raise ServiceError(f"{path} is missing: reinstall pyspark (make setup)")
    return path


def master_url(config: LakestreamConfig) -> str:
    """spark://host:port of the local master."""
    return f"spark://{config.cluster.host}:{config.cluster.port}"


def _cluster_dir(config: LakestreamConfig) -> Path:
    return config.paths.state_dir / "spark-cluster"


def master_service(config: LakestreamConfig) -> ManagedService:
    """The master's pid file and log."""
    return ManagedService(
        name="spark-master",
        run_dir=config.paths.state_dir / "run",
        host=config.cluster.host,
        port=config.cluster.port,
        hint="set LAKESTREAM__CLUSTER__PORT (and LAKESTREAM__CLUSTER__WEBUI_PORT) to free ports",
    )


def worker_webui_port(config: LakestreamConfig, index: int) -> int:
    """The web UI port of worker `index` (1-based); 0 lets the worker pick a free one."""
    base = config.cluster.worker_webui_port
    return base + index - 1 if base else 0


def worker_service(config: LakestreamConfig, index: int) -> ManagedService:
    """Worker `index` (1-based): its pid file and log (the master's count of alive workers says it is up)."""
    return ManagedService(
        name=f"spark-worker-{index}",
        run_dir=config.paths.state_dir / "run",
        host=config.cluster.host,
        port=worker_webui_port(config, index),
        hint="set LAKESTREAM__CLUSTER__WORKER_WEBUI_PORT to a free port range (or 0 for any free port)",
    )


def _environment(config: LakestreamConfig) -> dict[str, str]:
    import pyspark

    env = dict(os.environ)
    env.update(
        {
            "SPARK_HOME": str(Path(pyspark.__file__).parent),
            "SPARK_LOCAL_IP": config.cluster.host,
            "PYSPARK_PYTHON": env.get("PYSPARK_PYTHON") or sys.executable,
            "SPARK_LOG_DIR": str(_cluster_dir(config) / "logs"),
            "SPARK_NO_DAEMONIZE": "1",
        }
    )
    return env


@dataclass(frozen=True)
class ClusterStatus:
    """The master, its workers as the master sees them, and the processes."""

    master: ServiceStatus
    workers: list[ServiceStatus]
    alive_workers: int
    cores: int
    url: str
    ui: str

    @property
    def running(self) -> bool:
        """The master runs (workers may come and go)."""
        return self.master.running

    def describe(self) -> str:
        """Human summary."""
        if not self.master.running:
            return f"spark cluster: stopped ({self.url})"
        running = sum(w.running for w in self.workers)
        return (
            f"spark cluster: master {self.url} (pid {self.master.pid}, UI {self.ui}); "
            f"{self.alive_workers} alive worker(s), {self.cores} core(s); {running} worker process(es) here"
        )


def _master_state(config: LakestreamConfig) -> dict[str, Any] | None:
    """The master's JSON status (its web UI's /json), or None."""
    url = f"http://{config.cluster.host}:{config.cluster.webui_port}/json/"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def cluster_status(config: LakestreamConfig) -> ClusterStatus:
    """What runs: pid files, and the master's own count of alive workers and cores."""
    state = _master_state(config) or {}
    alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
    return ClusterStatus(
        master=master_service(config).status(),
        workers=[worker_service(config, i).status() for i in range(1, config.cluster.workers + 1)],
        alive_workers=len(alive),
        cores=sum(int(w.get("cores", 0)) for w in alive),
        url=master_url(config),
        ui=f"http://{config.cluster.host}:{config.cluster.webui_port}",
    )


def start_cluster(config: LakestreamConfig, *, timeout_s: float = 120.0) -> ClusterStatus:
    """Start the master, then the workers; return once the master counts every worker alive."""
    settings = config.cluster
    env = _environment(config)
    folder = _cluster_dir(config)
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    master_service(config).start(
        [
            str(spark_class()),
            MASTER_CLASS,
            "--host",
            settings.host,
            "--port",
            str(settings.port),
            "--webui-port",
            str(settings.webui_port),
        ],
        env=env,
        timeout_s=timeout_s,
        extra_ports=(settings.webui_port,),
        ready=lambda: port_is_open(settings.host, settings.port) and _master_state(config) is not None,
    )
    for index in range(1, settings.workers + 1):
        work_dir = folder / f"worker-{index}"
        work_dir.mkdir(parents=True, exist_ok=True)
        worker_service(config, index).start(
            [
                str(spark_class()),
                WORKER_CLASS,
                "--host",
                settings.host,
                "--cores",
                str(settings.worker_cores),
                "--memory",
                settings.worker_memory,
                "--webui-port",
                str(worker_webui_port(config, index)),
                "--work-dir",
                str(work_dir),
                master_url(config),
            ],
            env=env,
            timeout_s=timeout_s,
            ready=lambda: True,  # registration with the master is what counts, checked below
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = cluster_status(config)
        if status.alive_workers >= settings.workers:
            logger.info("%s", status.describe())
            return status
        time.sleep(1)
    raise ServiceError(
        f"the master at {master_url(config)} counts {cluster_status(config).alive_workers} of {settings.workers} "
        f"workers after {timeout_s:.0f}s; see the logs in {config.paths.state_dir / 'run'}"
    )


def stop_cluster(config: LakestreamConfig) -> bool:
    """Stop the workers, then the master; True if anything was running."""
    stopped = False
    for index in range(1, config.cluster.workers + 1):
        stopped = worker_service(config, index).stop() or stopped
    return master_service(config).stop() or stopped
