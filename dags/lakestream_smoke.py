"""Smoke DAG: runs the smoke pipeline (Delta -> Kafka -> stream -> Delta -> MLflow) through spark-submit.

Triggered manually (or by `lakestream demo`); it proves the scheduler, the Spark connection and the local
stack work together. The data-pipeline DAGs follow the same pattern with a daily timetable.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from lakestream.orchestration.airflow import LakestreamSparkSubmitOperator, default_task_args

with DAG(
    dag_id="lakestream_smoke",
    description="Smoke pipeline through the real local stack",
    schedule=None,
    start_date=pendulum.datetime(2018, 4, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(retries=1, timeout_minutes=20),
    tags=["lakestream", "smoke"],
):
    LakestreamSparkSubmitOperator(
        task_id="smoke_pipeline",
        job="jobs/smoke_pipeline.py",
        application_args=["--events", "500"],
    )
