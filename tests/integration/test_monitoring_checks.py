"""The monitoring DAG's stream check on a real Delta metrics table: no stream, healthy, stale."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakestream.config import LakestreamConfig, load_config
from lakestream.errors import ServiceError
from lakestream.orchestration.monitoring import (
    STREAM_METRICS_TABLE,
    STREAM_METRICS_TIME_COLUMN,
    check_stream_health,
    require_healthy_stream,
)

NOW = dt.datetime(2018, 5, 7, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def lake(tmp_path: Path) -> LakestreamConfig:
    """An empty lake of its own."""
    return load_config(overrides={"paths.state_dir": str(tmp_path)})


def write_metrics(config: LakestreamConfig, *batch_times: dt.datetime) -> None:
    """Micro-batch rows of the stream's metrics table (only the column the check reads, plus a batch id)."""
    table = pa.table(
        {
            "batch_id": pa.array(range(len(batch_times)), pa.int64()),
            STREAM_METRICS_TIME_COLUMN: pa.array(batch_times, pa.timestamp("us", tz="UTC")),
        }
    )
    write_deltalake(str(config.table_path(*STREAM_METRICS_TABLE)), table)


def test_no_metrics_table_means_no_stream_and_passes(lake: LakestreamConfig) -> None:
    health = require_healthy_stream(check_stream_health(lake, now=NOW))
    assert (health.state, health.batches) == ("no_stream", 0)
    assert health.message.startswith("no stream running")


def test_recent_batch_is_healthy(lake: LakestreamConfig) -> None:
    last = NOW - dt.timedelta(minutes=5)
    write_metrics(lake, NOW - dt.timedelta(minutes=20), last)
    health = require_healthy_stream(check_stream_health(lake, now=NOW))
    assert (health.state, health.last_batch_at, health.batches) == ("healthy", last.isoformat(), 2)


def test_silent_stream_is_stale_and_fails_the_check(lake: LakestreamConfig) -> None:
    last = NOW - dt.timedelta(minutes=lake.monitoring.max_stream_silence_minutes + 1)
    write_metrics(lake, last)
    health = check_stream_health(lake, now=NOW)
    assert (health.state, health.last_batch_at) == ("stale", last.isoformat())
    with pytest.raises(ServiceError, match="stream stale"):
        require_healthy_stream(health)
