"""Airflow building blocks shared by the DAG files (which stay thin: no logic, cheap imports).

`LakestreamSparkSubmitOperator` is the Spark provider's SparkSubmitOperator with the project's jars,
settings and environment filled in *when the task runs* (never at DAG parse time), from the same
configuration that `lakestream submit` uses; the Spark connection decides the master (`local[*]` by
default, a cluster by configuration of the connection).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

logger = logging.getLogger(__name__)

SPARK_CONN_ID = "lakestream_spark"
DATA_INTERVAL_ARGS = ["--start", "{{ data_interval_start | ds }}", "--end", "{{ data_interval_end | ds }}"]


def notify_failure(context: dict[str, Any]) -> None:
    """on_failure_callback: one clear log line naming the DAG, task, run and try (hook for paging/email)."""
    ti = context.get("task_instance")
    logger.error(
        "lakestream task failed: dag=%s task=%s run=%s try=%s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        getattr(ti, "run_id", "?"),
        getattr(ti, "try_number", "?"),
    )


def default_task_args(*, owner: str = "lakestream", retries: int = 2, timeout_minutes: int = 60) -> dict[str, Any]:
    """Default task arguments: retries with exponential backoff, a timeout and the failure callback."""
    return {
        "owner": owner,
        "retries": retries,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(minutes=timeout_minutes),
        "on_failure_callback": notify_failure,
    }


class LakestreamSparkSubmitOperator(SparkSubmitOperator):
    """Submit a `jobs/` or `streaming/` entry point with the project's jars, conf and worker Python."""

    def __init__(self, *, job: str, conn_id: str = SPARK_CONN_ID, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"lakestream-{Path(job).stem}")
        super().__init__(application=job, conn_id=conn_id, **kwargs)
        self.job = job

    def execute(self, context: Any) -> None:
        """Resolve configuration and settings at run time, then spark-submit."""
        from lakestream.config import load_config
        from lakestream.spark import spark_settings, submit_environment

        config = load_config()
        settings = spark_settings(config)
        self.application = str(config.home / self.job)
        self.jars = settings.pop("spark.jars")
        self._driver_memory = settings.pop("spark.driver.memory")
        self.conf = {**settings, **(self.conf or {})}
        self.env_vars = {**submit_environment(config), **(self.env_vars or {})}
        logger.info("submitting %s with %d settings (env %s)", self.application, len(self.conf), config.env)
        super().execute(context)
