"""Reading Delta tables without a JVM (the CLI, the dashboard and Airflow's monitoring tasks do)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from lakestream.io.delta import read_delta_arrow


def _table(path: Path) -> Path:
    write_deltalake(str(path), pa.table({"batch_id": [1, 2], "rate": [0.5, 0.25]}))
    write_deltalake(str(path), pa.table({"batch_id": [3], "rate": [0.125]}), mode="append")
    return path


def test_a_missing_table_reads_as_none(tmp_path: Path) -> None:
    assert read_delta_arrow(tmp_path / "nothing") is None
    (tmp_path / "empty" / "_delta_log").mkdir(parents=True)  # a writer made the folder, its first commit not yet
    assert read_delta_arrow(tmp_path / "empty") is None


def test_every_committed_row_and_only_the_known_columns(tmp_path: Path) -> None:
    path = _table(tmp_path / "metrics")
    assert sorted(read_delta_arrow(path).column("batch_id").to_pylist()) == [1, 2, 3]
    table = read_delta_arrow(path, columns=["rate", "not_there"])
    assert table.column_names == ["rate"]
    assert table.num_rows == 3


def test_the_reading_process_exits_cleanly(tmp_path: Path) -> None:
    """deltalake's default filesystem made short processes abort at exit now and then (rc -6); ours must not."""
    path = _table(tmp_path / "metrics")
    code = (
        "from pathlib import Path; from lakestream.io.delta import read_delta_arrow; "
        f"print(read_delta_arrow(Path({str(path)!r})).num_rows)"
    )
    for _ in range(5):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
        assert (result.returncode, result.stdout.strip()) == (0, "3"), result.stderr[-2000:]


def test_append_rows_once_commits_each_version_once(tmp_path: Path) -> None:
    from lakestream.io.delta import append_rows_once
    from lakestream.streaming.pipeline import metrics_rows

    path = tmp_path / "stream_metrics"
    (path / "_delta_log").mkdir(parents=True)  # a folder left without its first commit becomes a new table
    row = {"batch_id": 0, "scored": 10, "model_name": "m", "registry_ok": True}
    assert append_rows_once(path, metrics_rows([row]), "q-metrics", 0) is True
    assert append_rows_once(path, metrics_rows([row]), "q-metrics", 0) is False  # a replayed batch
    assert append_rows_once(path, metrics_rows([{**row, "batch_id": 1}]), "q-metrics", 1) is True
    assert append_rows_once(path, metrics_rows([{**row, "batch_id": 1}]), "other-app", 1) is True
    assert sorted(read_delta_arrow(path).column("batch_id").to_pylist()) == [0, 1, 1]


def test_a_kept_appender_sees_other_writers_commits_and_a_table_made_again(tmp_path: Path) -> None:
    """The stream's driver writer keeps its tables open between micro-batches; what others commit still counts."""
    import shutil

    from lakestream.io.delta import OnceAppender, append_rows_once
    from lakestream.streaming.pipeline import metrics_rows

    path = tmp_path / "stream_metrics"
    kept = OnceAppender(path)
    rows = [metrics_rows([{"batch_id": n, "scored": n}]) for n in range(4)]
    assert kept.append(rows[0], "q", 0) is True  # a new table
    assert kept.append(rows[1], "q", 1) is True
    assert kept.append(rows[1], "q", 1) is False  # a replayed batch
    assert append_rows_once(path, rows[2], "q", 2) is True  # another process committed version 2 meanwhile
    assert kept.append(rows[2], "q", 2) is False
    assert kept.append(rows[3], "q", 3) is True
    assert sorted(read_delta_arrow(path).column("batch_id").to_pylist()) == [0, 1, 2, 3]

    shutil.rmtree(path)  # dropped, and made again by another writer with fewer commits than the kept version
    append_rows_once(path, rows[0], "other", 0)
    assert kept.append(rows[3], "q", 3) is True  # the new table has no version of "q": not judged by the old one
    assert read_delta_arrow(path).column("batch_id").to_pylist().count(3) == 1


def test_append_rows_once_honours_versions_spark_committed(tmp_path: Path, spark) -> None:
    """Tables made idempotent by Spark's txnAppId/txnVersion stay so: the same Delta txn action is read and written."""
    import datetime as dt

    from lakestream.io.delta import append_rows_once
    from lakestream.streaming.pipeline import metrics_rows, metrics_schema

    path = tmp_path / "stream_metrics"
    first = {"batch_id": 3, "started_at": dt.datetime(2018, 7, 1, 12), "scored": 5, "feature_set": "fraud_v2"}
    (
        spark.createDataFrame([first], schema=metrics_schema())
        .write.format("delta")
        .mode("append")
        .option("txnAppId", "q-metrics")
        .option("txnVersion", "3")
        .save(str(path))
    )
    assert append_rows_once(path, metrics_rows([first]), "q-metrics", 3) is False
    assert append_rows_once(path, metrics_rows([{**first, "batch_id": 4}]), "q-metrics", 4) is True
    rows = spark.read.format("delta").load(str(path)).orderBy("batch_id").collect()
    assert [(r.batch_id, r.started_at, r.scored, r.feature_set) for r in rows] == [
        (3, dt.datetime(2018, 7, 1, 12), 5, "fraud_v2"),
        (4, dt.datetime(2018, 7, 1, 12), 5, "fraud_v2"),
    ]


def _days(days: list[str], value: float) -> pa.Table:
    dates = pa.array([dt.date.fromisoformat(d) for d in days], pa.date32())
    return pa.table({"tx_date": dates, "id": list(range(len(days))), "value": [value] * len(days)})


def test_replace_rows_replaces_only_the_predicates_days_with_lineage(tmp_path: Path) -> None:
    from deltalake import DeltaTable

    from lakestream.io.delta import replace_rows

    path = tmp_path / "features"
    write_deltalake(str(path), _days(["2018-04-01", "2018-04-02", "2018-04-02"], 1.0), partition_by=["tx_date"])
    new = _days(["2018-04-02"], 2.0).select(["value", "id", "tx_date"])  # columns in another order
    assert replace_rows(path, new, "tx_date >= '2018-04-02' AND tx_date <= '2018-04-02'", user_metadata='{"v": 1}')
    rows = sorted((str(r["tx_date"]), r["value"]) for r in read_delta_arrow(path).to_pylist())
    assert rows == [("2018-04-01", 1.0), ("2018-04-02", 2.0)]
    assert DeltaTable(str(path)).history(1)[0]["userMetadata"] == '{"v": 1}'


def test_replace_rows_leaves_new_tables_and_changed_columns_to_spark(tmp_path: Path) -> None:
    from lakestream.io.delta import replace_rows

    assert not replace_rows(tmp_path / "none", _days(["2018-04-01"], 1.0), "tx_date = '2018-04-01'")
    path = tmp_path / "features"
    write_deltalake(str(path), _days(["2018-04-01"], 1.0), partition_by=["tx_date"])
    wider = _days(["2018-04-01"], 2.0).append_column("extra", pa.array([1]))
    assert not replace_rows(path, wider, "tx_date = '2018-04-01'")
    assert read_delta_arrow(path).column("value").to_pylist() == [1.0]
