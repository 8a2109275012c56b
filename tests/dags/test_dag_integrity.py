"""Every DAG file imports quickly and cleanly, with owners, retries and tags; no top-level work."""

from __future__ import annotations

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
    assert {"lakestream_smoke"} <= set(dag_bag.dag_ids)


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
