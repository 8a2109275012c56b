"""Driving the scoring stream: progress logs, graceful stop (SIGTERM or a stop file), drain-and-exit mode."""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakestream.config.models import LakestreamConfig
    from lakestream.streaming.pipeline import StreamHandles

logger = logging.getLogger(__name__)

# Spark's setting that makes a RocksDB state store count its rows (off in Lakestream's sessions: lakestream.spark)
ROWS_COUNTED = "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows"


def stop_file(config: LakestreamConfig) -> Path:
    """Touching this file asks a running stream to stop after its current micro-batch."""
    return config.paths.state_dir / "run" / f"{config.streaming.query_name}.stop"


def run_stream(
    spark: SparkSession,
    config: LakestreamConfig,
    *,
    available_now: bool = False,
    bootstrap_until: dt.datetime | None = None,
    max_seconds: float | None = None,
    progress_seconds: float = 10.0,
) -> dict[str, Any]:
    """Start the queries and block until they finish (available_now), a stop is requested, or max_seconds."""
    from lakestream.streaming.pipeline import start_stream

    request = stop_file(config)
    request.parent.mkdir(parents=True, exist_ok=True)
    request.unlink(missing_ok=True)
    stopping = {"reason": None}
    copies_removed = 0

    def on_signal(signum: int, _frame: Any) -> None:
        stopping["reason"] = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    handles = start_stream(spark, config, available_now=available_now, bootstrap_until=bootstrap_until)
    rows_counted = spark.conf.get(ROWS_COUNTED, "true").strip().lower() == "true"
    started, last_log = time.monotonic(), time.monotonic()
    try:
        while any(q.isActive for q in handles.queries):
            for query in handles.queries:
                if query.exception() is not None:
                    raise query.exception()  # type: ignore[misc]
            if request.exists():
                stopping["reason"] = "stop file"
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                stopping["reason"] = f"max {max_seconds:g} s"
            _note_state_size(handles, rows_counted=rows_counted)
            if stopping["reason"]:
                _graceful_stop(handles, stopping["reason"])
                break
            if time.monotonic() - last_log >= progress_seconds:
                _log_progress(handles, rows_counted=rows_counted)
                last_log = time.monotonic()
            time.sleep(min(config.streaming.stop_poll_seconds, 0.5))
        for query in handles.queries:
            query.awaitTermination()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        request.unlink(missing_ok=True)
        handles.writer.close()
        copies_removed = handles.clear_copies()
    summary = {
        "query": config.streaming.query_name,
        "batches": handles.writer.batches,
        "model_swaps": handles.writer.models.swaps,
        "stopped_by": stopping["reason"] or ("drained" if available_now else "ended"),
        "state_copies_removed": copies_removed,
    }
    logger.info("stream stopped: %s", json.dumps(summary))
    return summary


def _graceful_stop(handles: StreamHandles, reason: str) -> None:
    """Wait for the running micro-batches to finish, then stop both queries."""
    logger.info("stopping the stream (%s) after the current micro-batch", reason)
    deadline = time.monotonic() + 120
    for query in handles.queries:
        while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
            time.sleep(0.2)
        query.stop()


def _note_state_size(handles: StreamHandles, *, rows_counted: bool) -> None:
    """The latest progress's state size for the next metrics row: its bytes, and its rows if the store counts them
    (a RocksDB store that does not reports 0)."""
    progress = handles.scoring.lastProgress
    if progress and progress.get("stateOperators"):
        operators = progress["stateOperators"]
        handles.writer.state_bytes = sum(state_bytes(op) for op in operators)
        handles.writer.state_rows = int(sum(op.get("numRowsTotal", 0) for op in operators)) if rows_counted else None


def state_bytes(operator: dict) -> int:
    """A state operator's size in a progress entry: its stores' files on local disk (RocksDB's SST files) and the
    memory they use (memtables, block cache)."""
    custom = operator.get("customMetrics") or {}
    return int(operator.get("memoryUsedBytes") or 0) + int(custom.get("rocksdbSstFileSize") or 0)


def _log_progress(handles: StreamHandles, *, rows_counted: bool) -> None:
    for query in handles.queries:
        progress = query.lastProgress
        if not progress:
            continue
        durations = dict(progress.get("durationMs") or {})
        total = durations.pop("triggerExecution", None)
        logger.info(
            "%s: batch %s, %s rows in, %.0f rows/s processed, batch %s ms (%s)%s",
            query.name,
            progress.get("batchId"),
            progress.get("numInputRows"),
            progress.get("processedRowsPerSecond") or 0.0,
            total,
            ", ".join(f"{step} {ms}" for step, ms in durations.items()),
            "".join(_state_summary(op, rows_counted=rows_counted) for op in progress.get("stateOperators") or ()),
        )


def _state_summary(operator: dict, *, rows_counted: bool = True) -> str:
    """'; state <name>: size, rows, time in the operator's updates and its state store commit' of a progress entry
    (the rows updated only, when the store does not count its rows: it reports 0 then); '?' for what it lacks."""

    def value(name: str) -> Any:
        found = operator.get(name)
        return "?" if found is None else found

    rows = (
        f"{value('numRowsTotal')} rows ({value('numRowsUpdated')} updated)"
        if rows_counted
        else f"{value('numRowsUpdated')} rows updated"
    )
    return (
        f"; state {value('operatorName')}: {state_bytes(operator) / 1e6:.1f} MB, {rows},"
        f" updates {value('allUpdatesTimeMs')} ms, removals {value('allRemovalsTimeMs')} ms,"
        f" commit {value('commitTimeMs')} ms"
    )
