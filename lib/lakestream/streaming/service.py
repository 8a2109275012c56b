"""`lakestream stream start|stop|status`: the scoring stream as a supervised background spark-submit process."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from lakestream.platform.process import ManagedService, ServiceStatus

if TYPE_CHECKING:
    from lakestream.config.models import LakestreamConfig

logger = logging.getLogger(__name__)

STREAM_JOB = "streaming/score_transactions.py"
READY_MARK = "stream started:"


def stream_service(config: LakestreamConfig) -> ManagedService:
    """The pid file and log of the background stream."""
    return ManagedService(
        name=f"stream-{config.streaming.query_name}",
        run_dir=config.paths.state_dir / "run",
        host="127.0.0.1",
        port=0,
        hint="the stream listens on no port",
    )


def start_stream_service(config: LakestreamConfig, extra_args: list[str], *, timeout_s: float = 180.0) -> ServiceStatus:
    """spark-submit the stream in the background; ready once it logs that both queries started."""
    from lakestream.spark import build_submit_command, submit_environment

    service = stream_service(config)
    command = build_submit_command(config, config.home / STREAM_JOB, extra_args)
    env = {**os.environ, **submit_environment(config)}
    start_size = service.log_file.stat().st_size if service.log_file.exists() else 0

    def ready() -> bool:
        if not service.log_file.exists():
            return False
        with service.log_file.open("rb") as log:
            log.seek(start_size)
            return READY_MARK.encode() in log.read()

    return service.start(command, env=env, ready=ready, timeout_s=timeout_s)


def stop_stream_service(config: LakestreamConfig, *, graceful_timeout_s: float = 120.0) -> bool:
    """Ask the stream to stop after its current micro-batch (stop file); kill it if it does not in time."""
    from lakestream.streaming.runner import stop_file

    service = stream_service(config)
    pid = service.pid()
    if pid is None:
        return False
    request = stop_file(config)
    request.parent.mkdir(parents=True, exist_ok=True)
    request.touch()
    deadline = time.monotonic() + graceful_timeout_s
    while time.monotonic() < deadline and service.pid() is not None:
        time.sleep(0.5)
    if service.pid() is not None:
        logger.warning("the stream did not stop within %.0f s; terminating it", graceful_timeout_s)
        service.stop()
    request.unlink(missing_ok=True)
    return True


def stream_status(config: LakestreamConfig) -> dict[str, Any]:
    """Whether the stream runs, and its latest metrics row (from gold.stream_metrics, read without Spark)."""
    status = stream_service(config).status()
    result: dict[str, Any] = {"running": status.running, "pid": status.pid, "log": str(status.log_file)}
    result["latest_batch"] = latest_metrics(config)
    return result


def latest_metrics(config: LakestreamConfig) -> dict[str, Any] | None:
    """The newest gold.stream_metrics row, read with the deltalake package (no JVM), or None."""
    from lakestream.io.delta import read_delta_arrow
    from lakestream.streaming.pipeline import metrics_path

    table = read_delta_arrow(metrics_path(config))
    if table is None or table.num_rows == 0:
        return None
    row = table.to_pandas().sort_values("batch_id").iloc[-1].to_dict()
    return json.loads(json.dumps(row, default=str))


def scored_rows(config: LakestreamConfig) -> int:
    """Rows in gold.stream_scores so far, read with the deltalake package (no JVM); 0 before the first commit."""
    from lakestream.io.delta import read_delta_arrow
    from lakestream.streaming.pipeline import scores_path

    table = read_delta_arrow(scores_path(config), columns=["transaction_id"])
    return 0 if table is None else table.num_rows
