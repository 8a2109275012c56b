"""Every DAG file imports quickly and cleanly, with owners, retries and tags; no top-level work."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dags_import_without_errors(dag_bag) -> None:
    assert dag_bag.import_errors == {}
    assert {
        "lakestream_smoke",
        "lakestream_daily",
        "lakestream_training",
        "lakestream_retraining",
        "lakestream_monitoring",
    } <= set(dag_bag.dag_ids)


@pytest.mark.parametrize("path", sorted(DAGS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_do_no_heavy_imports(path: Path) -> None:
    """Parsing a DAG must not import Spark or MLflow nor build anything: that happens when tasks run."""
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "print(sorted(m for m in ('pyspark', 'mlflow', 'xgboost', 'delta') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_tasks_have_owner_retries_and_timeouts(dag_bag) -> None:
    for dag in dag_bag.dags.values():
        assert dag.tags, dag.dag_id
        assert dag.max_active_runs >= 1
        for task in dag.tasks:
            assert task.owner == "lakestream", task.task_id
            assert task.retries >= 1, task.task_id
            assert task.execution_timeout is not None, task.task_id
            assert task.on_failure_callback, task.task_id


@pytest.mark.parametrize("path", sorted(DAGS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_dag_file_parses_quickly_in_a_fresh_interpreter(path: Path) -> None:
    """Parse cost of one DAG file once Airflow itself is imported (what the DAG processor pays per file)."""
    code = (
        "import runpy, sys, time; import airflow.sdk, airflow.providers.apache.spark.operators.spark_submit; "
        "t = time.perf_counter(); runpy.run_path(sys.argv[1]); print(time.perf_counter() - t)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) < 1.0


def test_dag_files_are_clean_under_ruffs_airflow_rules() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "check", "--select", "AIR", "--preview", str(DAGS_DIR)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_no_cycles_and_every_spark_task_uses_the_pool(dag_bag) -> None:
    from lakestream.orchestration.airflow import SPARK_POOL, LakestreamSparkSubmitOperator

    for dag in dag_bag.dags.values():
        done: set[str] = set()
        for root in dag.task_ids:  # depth-first walk; a task met again on its own path is a cycle
            stack = [(root, frozenset())]
            while stack:
                task_id, path = stack.pop()
                assert task_id not in path, f"cycle through {task_id} in {dag.dag_id}"
                if task_id not in done:
                    stack.extend((child, path | {task_id}) for child in dag.get_task(task_id).downstream_task_ids)
            done.add(root)
        for task in dag.tasks:
            if isinstance(task, LakestreamSparkSubmitOperator):
                assert task.pool == SPARK_POOL, task.task_id


def test_daily_pipeline_order_and_day_arguments(dag_bag) -> None:
    dag = dag_bag.dags["lakestream_daily"]
    order = ["ingest_landed", "clean_transactions", "clean_fraud_labels", "build_features", "score_batch"]
    order.append("profile_data")
    for upstream, downstream in itertools.pairwise(order):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert "--skip-if-no-model" in dag.get_task("score_batch").application_args
    assert dag.get_task("clean_transactions").application_args == [
        "--start-date",
        "{{ lakestream_run_first_day(params, data_interval_start, True) }}",
        "--end-date",
        "{{ lakestream_run_last_day(params, data_interval_end) }}",
    ]


def test_retraining_is_scheduled_by_the_monitoring_asset(dag_bag) -> None:
    from lakestream.orchestration.airflow import RETRAIN_REQUESTS

    monitoring = dag_bag.dags["lakestream_monitoring"]
    assert RETRAIN_REQUESTS in monitoring.get_task("request_retraining").outlets
    retraining = dag_bag.dags["lakestream_retraining"]
    assert list(retraining.timetable.asset_condition.objects) == [RETRAIN_REQUESTS]


def test_day_macros_turn_an_interval_into_inclusive_days() -> None:
    import pendulum

    from lakestream.orchestration.airflow import first_day, last_day

    start, end = pendulum.datetime(2018, 5, 6, tz="UTC"), pendulum.datetime(2018, 5, 7, tz="UTC")
    assert (first_day(start), last_day(end)) == ("2018-05-06", "2018-05-06")
    assert first_day(start, 3) == "2018-05-03"


def test_monitoring_runs_the_job_for_its_day_then_requests_retraining(dag_bag) -> None:
    dag = dag_bag.dags["lakestream_monitoring"]
    assert dag.get_task("request_retraining").upstream_task_ids == {"monitor_model"}
    assert dag.get_task("monitor_model").application_args == [
        "--start",
        "{{ lakestream_monitoring_first_day(params, data_interval_start) }}",
        "--end",
        "{{ lakestream_monitoring_last_day(params, data_interval_start) }}",
        "--as-of",
        "{{ lakestream_monitoring_as_of(params, data_interval_end) }}",
        "--run-id",
        "{{ run_id }}",
    ]


def test_monitoring_day_macros_take_the_interval_or_the_day_params() -> None:
    import pendulum

    from lakestream.orchestration.airflow import monitoring_as_of, monitoring_first_day, monitoring_last_day

    start, end = pendulum.datetime(2018, 5, 6, 23, 15, tz="UTC"), pendulum.datetime(2018, 5, 7, 0, 15, tz="UTC")

    def days(params: dict) -> tuple[str, str, str]:
        return monitoring_first_day(params, start), monitoring_last_day(params, start), monitoring_as_of(params, end)

    assert days({}) == ("2018-05-06", "2018-05-06", "2018-05-07 00:15:00")
    assert days({"day": "2018-05-20"}) == ("2018-05-20", "2018-05-20", "2018-05-21")
    assert days({"start": "2018-05-01", "end": "2018-05-20"}) == ("2018-05-01", "2018-05-20", "2018-05-21")


def test_range_runs_take_their_days_from_params() -> None:
    import pendulum

    from lakestream.orchestration.airflow import run_first_day, run_last_day

    start, end = pendulum.datetime(2018, 5, 6, tz="UTC"), pendulum.datetime(2018, 5, 7, tz="UTC")
    assert (run_first_day({}, start), run_first_day({}, start, True), run_last_day({}, end)) == (
        "2018-05-06",
        "2018-05-03",
        "2018-05-06",
    )
    by_hand = {"start": "2018-04-01", "end": "2018-06-30"}
    assert (run_first_day(by_hand, start, True), run_last_day(by_hand, end)) == ("2018-04-01", "2018-06-30")


@pytest.mark.parametrize("dag_id", ["lakestream_training", "lakestream_retraining"])
def test_promotion_waits_for_an_approval_only_in_manual_mode(dag_bag, dag_id: str, monkeypatch) -> None:
    from lakestream.orchestration.airflow import promotion_path

    dag = dag_bag.dags[dag_id]
    assert dag.get_task("choose_promotion_path").upstream_task_ids == {"train_model"}
    assert dag.get_task("promote_model").upstream_task_ids == {"choose_promotion_path", "approve_promotion"}
    assert dag.get_task("promote_model").trigger_rule == "none_failed_min_one_success"
    ids = {"approve_task_id": "approve_promotion", "promote_task_id": "promote_model"}
    monkeypatch.setenv("LAKESTREAM__MONITORING__RETRAINING__MODE", "manual")
    assert promotion_path(**ids) == "approve_promotion"
    monkeypatch.setenv("LAKESTREAM__MONITORING__RETRAINING__MODE", "auto")
    assert promotion_path(**ids) == "promote_model"


@pytest.mark.parametrize(
    ("connection", "master", "local_fs"),
    [
        ({"conn_type": "spark", "host": "local[2]"}, "local[2]", True),
        ({"conn_type": "spark", "host": "spark://127.0.0.1", "port": 7077}, "spark://127.0.0.1:7077", False),
    ],
    ids=["local", "standalone"],
)
def test_spark_tasks_take_local_only_settings_from_the_connections_master(
    dag_bag, monkeypatch: pytest.MonkeyPatch, connection: dict, master: str, local_fs: bool
) -> None:
    """The Airflow connection, not spark.master of the configuration, decides what spark-submit gets."""
    import json

    from lakestream.config import load_config
    from lakestream.orchestration.resources import SPARK_CONN_ID

    monkeypatch.setenv(f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}", json.dumps(connection))
    task = dag_bag.dags["lakestream_daily"].get_task("build_features")
    task.prepare_submit()
    assert task.connection_master() == master
    assert task.application == str(load_config().home / "jobs" / "build_features.py")
    assert "delta-spark" in task.jars
    if local_fs and not load_config().spark.local_fs_jar.is_file():
        pytest.skip("the java.nio local FS jar is built by `make setup` (javac)")
    assert ("spark.hadoop.fs.file.impl" in task.conf) is local_fs
    assert ("spark.driver.extraClassPath" in task.conf) is local_fs
