"""The cheap checks behind the monitoring DAG: is the stream alive, and what did the monitoring job decide?

Both read Delta tables with the `deltalake` package (no JVM), cheap enough for an hourly task: the stream check
reads one column of the stream's metrics table, the retraining check the monitoring job's decision row for the
DAG run (lakestream.monitoring.retraining decides; Airflow only turns the answer into an asset event). Heavy
imports stay inside the functions so the DAG that imports this module parses in milliseconds.

Stream metrics contract: `gold.stream_metrics` holds one row per micro-batch of the scoring stream with at
least a timestamp column `STREAM_METRICS_TIME_COLUMN` (when the batch was processed, UTC). No table means no
stream was ever started, which is a state, not a failure.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from lakestream.config.models import LakestreamConfig
from lakestream.errors import ServiceError

logger = logging.getLogger(__name__)

STREAM_METRICS_TABLE = ("gold", "stream_metrics")
STREAM_METRICS_TIME_COLUMN = "finished_at"  # see lakestream.streaming.pipeline.metrics_schema


@dataclass(frozen=True)
class StreamHealth:
    """What the stream check found: no stream, a live one, or one that stopped reporting."""

    state: Literal["no_stream", "healthy", "stale"]
    message: str
    last_batch_at: str | None = None
    batches: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for the task's XCom and log)."""
        return asdict(self)


def _newest_value(path: Path, column: str) -> tuple[Any, int]:
    """The max of one column of a Delta table and its row count, read with deltalake (no Spark)."""
    import pyarrow.compute as pc

    from lakestream.io.delta import read_delta_arrow

    table = read_delta_arrow(path, columns=[column])
    if table is None or table.num_rows == 0:
        return None, 0
    return pc.max(table.column(column)).as_py(), table.num_rows


def check_stream_health(config: LakestreamConfig, *, now: datetime) -> StreamHealth:
    """Read gold.stream_metrics: no table = no stream (fine); newest batch older than the allowed silence = stale."""
    from lakestream.io.delta import is_delta_table

    max_silence = timedelta(minutes=config.monitoring.max_stream_silence_minutes)
    path = config.table_path(*STREAM_METRICS_TABLE)
    if not is_delta_table(path):
        return StreamHealth("no_stream", f"no stream running: no metrics table at {path} yet")
    newest, batches = _newest_value(path, STREAM_METRICS_TIME_COLUMN)
    if newest is None:
        return StreamHealth("no_stream", f"no stream running: {path} has no micro-batch yet")
    if newest.tzinfo is None:  # Spark writes timestamps as UTC instants; deltalake may hand them back naive
        newest = newest.replace(tzinfo=UTC)
    silence = now - newest
    if silence > max_silence:
        return StreamHealth(
            "stale",
            f"stream stale: last micro-batch at {newest.isoformat()}, {silence} before {now.isoformat()} "
            f"(limit {max_silence}); check `lakestream stream status` and its log",
            newest.isoformat(),
            batches,
        )
    message = f"stream healthy: last micro-batch at {newest.isoformat()}"
    return StreamHealth("healthy", message, newest.isoformat(), batches)


def require_healthy_stream(health: StreamHealth) -> StreamHealth:
    """The health itself, or ServiceError when the stream stopped reporting (fails the monitoring task)."""
    if health.state == "stale":
        raise ServiceError(health.message)
    return health


def read_retraining_decision(config: LakestreamConfig, *, run_id: str) -> dict[str, Any]:
    """The retraining decision the monitoring job recorded for a run (monitoring.retraining), read without Spark.

    Raises ServiceError when the run recorded none (the job did not run or failed before deciding).
    """
    import pyarrow.compute as pc

    from lakestream.io.delta import read_delta_arrow
    from lakestream.monitoring.tables import decisions_path

    path = decisions_path(config)
    table = read_delta_arrow(path)
    if table is None:
        raise ServiceError(f"no retraining decisions at {path}: did jobs/monitor_model.py run for {run_id}?")
    rows = table.filter(pc.equal(table.column("run_id"), run_id)).to_pylist()
    if not rows:
        raise ServiceError(f"jobs/monitor_model.py recorded no retraining decision for run {run_id} in {path}")
    row = rows[-1]
    return {
        "needed": bool(row["needed"]),
        "reason": row["reason"],
        "as_of": row["as_of"].isoformat() if row["as_of"] else None,
        "mode": row["mode"],
        "champion_version": row["champion_version"],
        "since": row["since"].isoformat() if row["since"] else None,
        "alert_ids": list(row["alert_ids"] or []),
        "monitored_until": row["monitored_until"].isoformat(),
    }
