"""`lakestream airflow start|stop|status`: Airflow standalone for the local UI, managed like Kafka and MLflow.

Standalone runs the scheduler, DAG processor, triggerer and API server (UI) in one process group, on SQLite
under <state_dir>/airflow, with the project's dags/ folder, no example DAGs and the `lakestream_spark`
connection set to `local[*]` through AIRFLOW_CONN_LAKESTREAM_SPARK (point it at a cluster by exporting that
variable before starting). The metadata DB is migrated and the Spark pool created before the server starts.
Local only: every user is admin (SimpleAuthManager, no login), bound to loopback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lakestream.config.models import LakestreamConfig
from lakestream.errors import ServiceError
from lakestream.orchestration.resources import SPARK_CONN_ID, SPARK_POOL, SPARK_POOL_DESCRIPTION, SPARK_POOL_SLOTS
from lakestream.platform.process import ManagedService, ServiceStatus, port_is_open

logger = logging.getLogger(__name__)

AIRFLOW_HOST = "127.0.0.1"
DEFAULT_AIRFLOW_PORT = 8080
LOCAL_SPARK_CONNECTION = {"conn_type": "spark", "host": "local[*]"}


def airflow_home(config: LakestreamConfig) -> Path:
    """AIRFLOW_HOME of the local server: <state_dir>/airflow (SQLite DB, logs, generated airflow.cfg)."""
    return config.paths.state_dir / "airflow"


def _airflow_executable() -> str:
    return str(Path(sys.executable).parent / "airflow")


def airflow_environment(config: LakestreamConfig, *, port: int = DEFAULT_AIRFLOW_PORT) -> dict[str, str]:
    """Environment of the Airflow processes: home, dags folder, the Spark connection, loopback UI, no login."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home(config)),
            "AIRFLOW__CORE__DAGS_FOLDER": str(config.home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": AIRFLOW_HOST,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://{AIRFLOW_HOST}:{port}",
            "LAKESTREAM_ENV": config.env,
            "LAKESTREAM_HOME": str(config.home),
            # the venv first: tasks run `spark-submit` and the venv's Python
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
    )
    env.setdefault(f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}", json.dumps(LOCAL_SPARK_CONNECTION))
    return env


def airflow_service(config: LakestreamConfig, *, port: int = DEFAULT_AIRFLOW_PORT) -> ManagedService:
    """The pid-file-managed standalone process."""
    return ManagedService(
        name="airflow",
        run_dir=config.paths.state_dir / "run",
        host=AIRFLOW_HOST,
        port=port,
        hint="pass another port with `lakestream airflow start --port N`",
    )


def _airflow(config: LakestreamConfig, *args: str, port: int = DEFAULT_AIRFLOW_PORT) -> str:
    """Run one airflow CLI command against the local home; its stdout, or ServiceError with its output."""
    result = subprocess.run(
        [_airflow_executable(), *args],
        env=airflow_environment(config, port=port),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ServiceError(f"`airflow {' '.join(args)}` failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def prepare_airflow(config: LakestreamConfig, *, port: int = DEFAULT_AIRFLOW_PORT) -> None:
    """Migrate the metadata DB and create the Spark pool (both idempotent)."""
    airflow_home(config).mkdir(parents=True, exist_ok=True)
    _airflow(config, "db", "migrate", port=port)
    _airflow(config, "pools", "set", SPARK_POOL, str(SPARK_POOL_SLOTS), SPARK_POOL_DESCRIPTION, port=port)


def start_airflow(
    config: LakestreamConfig, *, port: int = DEFAULT_AIRFLOW_PORT, timeout_s: float = 240.0
) -> ServiceStatus:
    """Start Airflow standalone in the background unless it runs already; return once the UI answers."""
    service = airflow_service(config, port=port)
    if service.status().running:
        return service.status()
    prepare_airflow(config, port=port)
    return service.start(
        [_airflow_executable(), "standalone"],
        env=airflow_environment(config, port=port),
        ready=lambda: port_is_open(AIRFLOW_HOST, port),
        timeout_s=timeout_s,
    )


def _group_members(pgid: int) -> list[int]:
    """Live processes of a process group (standalone's scheduler, triggerer, API server, task runners)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def stop_airflow(config: LakestreamConfig, *, port: int = DEFAULT_AIRFLOW_PORT, timeout_s: float = 60.0) -> bool:
    """Stop the standalone process group and wait until all of it is gone; True if it was running.

    Standalone exits on SIGTERM before its components do, so the wait is on the whole group (the pid file
    holds its leader: the process was started in a session of its own), with SIGKILL after the timeout.
    """
    service = airflow_service(config, port=port)
    pgid = service.pid()
    if not service.stop(timeout_s=timeout_s):
        return False
    deadline = time.monotonic() + timeout_s
    while pgid is not None and _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if pgid is not None and _group_members(pgid):
        logger.warning("airflow components still running after %.0fs; killing process group %d", timeout_s, pgid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return True


def run_dag_now(
    config: LakestreamConfig,
    dag_id: str,
    logical_date: str,
    *,
    conf: dict | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """`airflow dags test`: one real run of a DAG, recorded in the metadata DB (the UI shows it), executed by this
    CLI process without the scheduler; raises ServiceError unless the run ends in success. Returns its output.

    progress gets one line per task start and end (with its state) while the run goes on.
    """
    args = ["dags", "test", dag_id, logical_date]
    if conf:
        args += ["--conf", json.dumps(conf)]
    log = config.paths.state_dir / "run" / f"dags-test-{dag_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    started: dict[str, float] = {}
    current = None
    with subprocess.Popen(
        [_airflow_executable(), *args],
        env=airflow_environment(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        for line in process.stdout or ():
            lines.append(line)
            if (match := _TASK_START.search(line)) is not None:
                current = match.group(1)
                started[current] = time.monotonic()
                if progress:
                    progress(f"{dag_id}.{current} running")
            elif current and (match := _TASK_STATE.search(line)) is not None and progress:
                progress(f"{dag_id}.{current} {match.group(1)} ({time.monotonic() - started[current]:.0f}s)")
    output = "".join(lines)
    log.write_text(output, encoding="utf-8")
    if process.returncode != 0 or "state=success" not in output:
        raise ServiceError(
            f"`airflow dags test {dag_id} {logical_date}` did not succeed; its output is in {log}, the task logs "
            f"under {airflow_home(config) / 'logs'}. Last lines:\n{output[-3000:]}"
        )
    return output


_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\w+)")
_TASK_STATE = re.compile(r"new_state=(\w+)")


def unpause_dag(config: LakestreamConfig, dag_id: str) -> None:
    """Unpause a DAG so the scheduler runs it (e.g. the asset-scheduled retraining)."""
    _airflow(config, "dags", "unpause", dag_id)


def dag_runs(config: LakestreamConfig, dag_id: str) -> list[dict]:
    """The runs of a DAG as the airflow CLI lists them (run_id, state, run_type, ...)."""
    output = _airflow(config, "dags", "list-runs", dag_id, "-o", "json")
    for line in reversed(output.splitlines()):  # warnings may come first; the JSON list is the last line
        if line.startswith("["):
            return json.loads(line)
    return []


def wait_for_new_run(
    config: LakestreamConfig, dag_id: str, *, known: set[str], timeout_s: float = 1200.0, poll_s: float = 5.0
) -> dict:
    """Wait for a run of dag_id not in `known` to finish (the scheduler runs it); its row, or ServiceError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run in dag_runs(config, dag_id):
            if run["run_id"] not in known and run["state"] in {"success", "failed"}:
                if run["state"] != "success":
                    raise ServiceError(
                        f"{dag_id} run {run['run_id']} failed; see the Airflow UI or {airflow_home(config) / 'logs'}"
                    )
                return run
        time.sleep(poll_s)
    raise ServiceError(
        f"no run of {dag_id} finished within {timeout_s:.0f}s; is the scheduler up (`lakestream airflow status`)?"
    )
