"""Daily batch pipeline: landed files -> bronze -> silver (+ quarantine) -> gold features -> scores -> profile.

One run per UTC day (data interval [day, day + 1)). Each Spark task rebuilds the run's day and the
`quality.allowed_lateness_days` days before it (late events can still change those), replacing exactly those
partitions, so retries, re-runs and `airflow backfill create` give the same tables. Scoring is skipped (task
succeeds, summary says "skipped") until a champion model exists. A manual run with conf
`{"start": "2018-04-01", "end": "2018-06-30"}` builds that range of days in one run (an initial load).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from lakestream.orchestration.airflow import (
    LAKESTREAM_MACROS,
    RANGE_PARAMS_DOC,
    LakestreamSparkSubmitOperator,
    day_range_args,
    default_task_args,
)

with DAG(
    dag_id="lakestream_daily",
    description="Daily ingest, clean, features, batch scoring and data profile of one UTC day",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),  # interval = one UTC calendar day
    start_date=pendulum.datetime(2018, 4, 1, tz="UTC"),
    catchup=False,  # history is rebuilt on purpose with `airflow backfill create`, never on unpause
    max_active_runs=1,  # days build on the previous days' silver (feature look-back, label checks)
    user_defined_macros=LAKESTREAM_MACROS,
    params={
        "start": Param(None, type=["null", "string"], format="date", description=RANGE_PARAMS_DOC),
        "end": Param(None, type=["null", "string"], format="date", description=RANGE_PARAMS_DOC),
    },
    default_args=default_task_args(retries=2, timeout_minutes=60),
    tags=["lakestream", "batch", "daily"],
    doc_md=__doc__,
):
    ingest = LakestreamSparkSubmitOperator(task_id="ingest_landed", job="jobs/ingest_landed.py")
    clean_transactions = LakestreamSparkSubmitOperator(
        task_id="clean_transactions",
        job="jobs/clean_transactions.py",
        application_args=day_range_args("--start-date", "--end-date", reprocess_late=True),
    )
    clean_fraud_labels = LakestreamSparkSubmitOperator(
        task_id="clean_fraud_labels",
        job="jobs/clean_fraud_labels.py",
        application_args=day_range_args("--start-date", "--end-date", reprocess_late=True),
    )
    build_features = LakestreamSparkSubmitOperator(
        task_id="build_features",
        job="jobs/build_features.py",
        application_args=day_range_args(reprocess_late=True),
    )
    score_batch = LakestreamSparkSubmitOperator(
        task_id="score_batch",
        job="jobs/score_batch.py",
        application_args=[*day_range_args(reprocess_late=True), "--skip-if-no-model"],
    )
    profile_data = LakestreamSparkSubmitOperator(
        task_id="profile_data",
        job="jobs/profile_data.py",
        application_args=day_range_args(reprocess_late=True),
    )

    ingest >> clean_transactions >> clean_fraud_labels >> build_features >> score_batch >> profile_data
