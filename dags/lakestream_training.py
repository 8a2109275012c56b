"""Scheduled training: train a challenger on the newest labelled weeks, then promote it if it beats the champion.

Weekly by default (the week ending Monday 00:00 UTC); to change it, set LAKESTREAM_TRAINING_SCHEDULE to another
cron expression in the environment of the DAG processor. The run's last day is the `--as-of` day of both jobs:
the test and promotion windows end the label delay before it, so every window has complete labels and a
backfilled week trains on exactly the data that existed then. A manual run takes conf
`{"as_of": "2018-06-30", "trials": 8}` (tune with 8 Optuna trials first).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from lakestream.orchestration.airflow import LAKESTREAM_MACROS, default_task_args, train_and_promote

with DAG(
    dag_id="lakestream_training",
    description="Train (XGBoost on Spark, tracked in MLflow) then gate-and-promote challenger -> champion",
    schedule=CronDataIntervalTimetable(os.environ.get("LAKESTREAM_TRAINING_SCHEDULE", "0 0 * * 1"), timezone="UTC"),
    start_date=pendulum.datetime(2018, 4, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # promotions must not race on the champion alias
    user_defined_macros=LAKESTREAM_MACROS,
    params={
        "as_of": Param(None, type=["null", "string"], format="date", description="newest day to train on"),
        "trials": Param(0, type="integer", minimum=0, description="Optuna trials (0: no tuning)"),
    },
    default_args=default_task_args(retries=1, timeout_minutes=60),
    tags=["lakestream", "training"],
    doc_md=__doc__,
):
    train_and_promote(
        as_of="{{ lakestream_training_as_of(params, data_interval_end) }}",
        train_args=["--trials", "{{ params.trials }}"],
    )
