"""The stream's progress log line names where a micro-batch's stateful operator spent its time."""

from __future__ import annotations

from lakestream.streaming.runner import _state_summary


def test_state_summary_names_rows_update_time_and_commit_time() -> None:
    operator = {
        "operatorName": "transformWithStateInPandasExec",
        "numRowsTotal": 64,
        "numRowsUpdated": 32,
        "allUpdatesTimeMs": 885,
        "allRemovalsTimeMs": 0,
        "commitTimeMs": 148,
    }
    assert _state_summary(operator) == (
        "; state transformWithStateInPandasExec: 64 rows (32 updated), updates 885 ms, removals 0 ms, commit 148 ms"
    )


def test_state_summary_of_a_sparse_progress_entry_still_reads() -> None:
    summary = _state_summary({})
    assert summary == "; state ?: None rows (None updated), updates None ms, removals None ms, commit None ms"
