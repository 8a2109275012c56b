"""Retraining on demand: train -> promote, when monitoring requests it (asset event) or an operator triggers it.

Scheduled on the `lakestream://monitoring/retrain-requests` asset that `lakestream_monitoring` updates when its
retraining check holds; the event's `as_of` day places the windows. Trigger by hand with
`airflow dags trigger lakestream_retraining --conf '{"as_of": "2018-09-30"}'`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from lakestream.orchestration.airflow import (
    LAKESTREAM_MACROS,
    RETRAIN_REQUESTS,
    default_task_args,
    train_and_promote,
)

with DAG(
    dag_id="lakestream_retraining",
    description="Retrain and promote on a monitoring request or a manual trigger",
    schedule=[RETRAIN_REQUESTS],
    start_date=pendulum.datetime(2018, 4, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # promotions must not race on the champion alias
    user_defined_macros=LAKESTREAM_MACROS,
    params={
        "as_of": Param(None, type=["null", "string"], format="date", description="newest day to train on"),
        "trials": Param(0, type="integer", minimum=0, description="Optuna trials (0: no tuning)"),
    },
    default_args=default_task_args(retries=1, timeout_minutes=60),
    tags=["lakestream", "training", "monitoring"],
    doc_md=__doc__,
):
    train_and_promote(
        as_of="{{ lakestream_retraining_as_of(params, triggering_asset_events) }}",
        train_args=["--trials", "{{ params.trials }}"],
    )
