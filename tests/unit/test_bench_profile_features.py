"""benchmarks/profile_features.py: the stage rows it reads from Spark's REST API."""

from __future__ import annotations

import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark


def test_stage_rows_keep_completed_stages_in_order_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports the features benchmark from its folder
    profile = load_benchmark("profile_features")

    def stage(stage_id: int, status: str = "COMPLETE") -> dict:
        return {
            "stageId": stage_id,
            "status": status,
            "numTasks": 4,
            "submissionTime": "2026-12-07T10:19:50.100GMT",
            "completionTime": "2026-12-07T10:19:52.820GMT",
            "executorRunTime": 5230,
            "executorCpuTime": 4_156_000_000,
            "jvmGcTime": 80,
            "inputRecords": 0,
            "shuffleReadRecords": 1754155,
            "shuffleWriteRecords": 0,
            "name": "save at NativeMethodAccessorImpl.java:0",
        }

    rows = profile.stage_rows([stage(117), stage(110), stage(111, status="SKIPPED")])
    assert [row["stage"] for row in rows] == [110, 117]
    assert rows[0] | {"stage": 0} == {
        "stage": 0,
        "tasks": 4,
        "wall_s": 2.72,
        "task_s": 5.23,
        "task_cpu_s": 4.156,
        "gc_s": 0.08,
        "input_records": 0,
        "shuffle_read_records": 1754155,
        "shuffle_write_records": 0,
        "name": "save at NativeMethodAccessorImpl.java:0",
    }
