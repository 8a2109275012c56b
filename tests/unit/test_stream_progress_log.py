"""The stream's progress log line and metrics name where a micro-batch's stateful operator spent its time and how big
its state is."""

from __future__ import annotations

from lakestream.streaming.runner import _state_summary, state_bytes


def test_state_summary_names_size_rows_update_time_and_commit_time() -> None:
    operator = {
        "operatorName": "transformWithStateInPandasExec",
        "numRowsTotal": 64,
        "numRowsUpdated": 32,
        "allUpdatesTimeMs": 885,
        "allRemovalsTimeMs": 0,
        "commitTimeMs": 148,
        "memoryUsedBytes": 1_500_000,
        "customMetrics": {"rocksdbSstFileSize": 2_000_000, "rocksdbGetCount": 12},
    }
    assert _state_summary(operator) == (
        "; state transformWithStateInPandasExec: 3.5 MB, 64 rows (32 updated), updates 885 ms, removals 0 ms,"
        " commit 148 ms"
    )


def test_state_bytes_add_the_store_files_and_memory() -> None:
    assert state_bytes({"memoryUsedBytes": 10, "customMetrics": {"rocksdbSstFileSize": 32}}) == 42
    assert state_bytes({"memoryUsedBytes": 10}) == 10  # the in-memory store has no SST files
    assert state_bytes({}) == 0


def test_state_summary_without_the_stores_row_count_gives_the_rows_updated_only() -> None:
    operator = {"operatorName": "tws", "numRowsTotal": 0, "numRowsUpdated": 32, "allUpdatesTimeMs": 309}
    assert _state_summary(operator, rows_counted=False) == (
        "; state tws: 0.0 MB, 32 rows updated, updates 309 ms, removals ? ms, commit ? ms"
    )


def test_state_summary_of_a_sparse_progress_entry_still_reads() -> None:
    summary = _state_summary({})
    assert summary == "; state ?: 0.0 MB, ? rows (? updated), updates ? ms, removals ? ms, commit ? ms"
