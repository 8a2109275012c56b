"""The checks behind the monitoring DAG: is the stream alive, and should the model be retrained?

Both are cheap enough for an hourly task: the stream check reads one column of the stream's metrics Delta
table with the `deltalake` package (no JVM), the retraining check reads the model registry and the gold
feature table's newest day the same way. Heavy imports stay inside the functions so the DAG that imports
this module parses in milliseconds.

Stream metrics contract: `gold.stream_metrics` holds one row per micro-batch of the scoring stream with at
least a timestamp column `STREAM_METRICS_TIME_COLUMN` (when the batch was processed, UTC). No table means no
stream was ever started, which is a state, not a failure.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from lakestream.config.models import LakestreamConfig
from lakestream.errors import ServiceError

logger = logging.getLogger(__name__)

STREAM_METRICS_TABLE = ("gold", "stream_metrics")
STREAM_METRICS_TIME_COLUMN = "finished_at"  # see lakestream.streaming.pipeline.metrics_schema
# Defaults of the monitoring thresholds (to move into a `monitoring` config section with the stream's settings).
MAX_STREAM_SILENCE = timedelta(minutes=30)
MAX_MODEL_STALENESS_DAYS = 7


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
    from deltalake import DeltaTable

    table = DeltaTable(str(path)).to_pyarrow_table(columns=[column])
    if table.num_rows == 0:
        return None, 0
    return pc.max(table.column(column)).as_py(), table.num_rows


def check_stream_health(
    config: LakestreamConfig, *, now: datetime, max_silence: timedelta = MAX_STREAM_SILENCE
) -> StreamHealth:
    """Read gold.stream_metrics: no table = no stream (fine); newest batch older than max_silence = stale."""
    from lakestream.io.delta import is_delta_table

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


@dataclass(frozen=True)
class RetrainingDecision:
    """Whether to request a retraining, why, and the day the retraining should treat as its newest data."""

    needed: bool
    reason: str
    as_of: str | None = None
    champion_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the asset event's extra)."""
        return asdict(self)


def _newest_feature_day(config: LakestreamConfig) -> date | None:
    from lakestream.features.spec import feature_set_path, load_feature_set
    from lakestream.features.store import feature_table_path
    from lakestream.io.delta import is_delta_table

    spec = load_feature_set(feature_set_path(config.home / "conf" / "features", config.training.feature_set))
    path = feature_table_path(config, spec)
    if not is_delta_table(path):
        return None
    newest, _ = _newest_value(path, "tx_date")
    return newest


def decide_retraining(
    config: LakestreamConfig, *, until: date, max_staleness_days: int = MAX_MODEL_STALENESS_DAYS
) -> RetrainingDecision:
    """Request a retraining when features exist (up to `until`) and the champion is missing or too old.

    Too old: its training window ends more than max_staleness_days + the label delay before the newest
    feature day (newer labelled data exists that it has not seen). Drift checks join here later.
    """
    from mlflow import MlflowClient

    from lakestream.registry.models import CHAMPION, find_version_by_alias
    from lakestream.registry.tracking import configure_mlflow

    newest = _newest_feature_day(config)
    if newest is None:
        return RetrainingDecision(False, "no gold features yet: nothing to train on")
    as_of = min(newest, until)
    configure_mlflow(config)
    champion = find_version_by_alias(MlflowClient(), config.mlflow.registered_model, CHAMPION)
    if champion is None:
        return RetrainingDecision(True, f"no champion of {config.mlflow.registered_model!r} yet", as_of.isoformat())
    trained_until = (champion.tags or {}).get("lakestream.train_end")
    if trained_until is None:
        return RetrainingDecision(
            False, f"champion v{champion.version} has no train_end tag; not judged", None, str(champion.version)
        )
    age = (as_of - date.fromisoformat(trained_until)).days - config.training.split.delay_days
    if age > max_staleness_days:
        reason = f"champion v{champion.version} trained until {trained_until}: {age} labelled days behind {as_of}"
        return RetrainingDecision(True, reason, as_of.isoformat(), str(champion.version))
    reason = f"champion v{champion.version} trained until {trained_until} is recent enough ({age} days)"
    return RetrainingDecision(False, reason, as_of.isoformat(), str(champion.version))
