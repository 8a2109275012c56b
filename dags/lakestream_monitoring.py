"""Hourly monitoring: stream health, the monitoring job over the day so far, and the retraining request.

- `check_stream_health` reads gold.stream_metrics (written by the long-running scoring stream, supervised with
  `lakestream stream start|stop|status`): no table means no stream was started and the task succeeds saying so; a
  stream whose last micro-batch is older than `monitoring.max_stream_silence_minutes` fails the task (retries,
  then the failure callback alerts).
- `monitor_model` submits jobs/monitor_model.py for the event-time day of the run's interval (its hours and the
  day so far; at the day's last hour the day's label-delayed performance too), labels as of the interval's end.
  It writes monitoring.metrics / alerts / retraining, the HTML report and an MLflow run.
- `request_retraining` reads the job's decision for this run and updates the retrain-requests asset (which
  schedules `lakestream_retraining`) when it asks for one; it is skipped otherwise.

Monitor another day by hand: `airflow dags trigger lakestream_monitoring --conf '{"day": "2018-05-20"}'`, or a
range with `{"start": ..., "end": ...}` (labels known until the end of the range).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task

from lakestream.orchestration.airflow import (
    LAKESTREAM_MACROS,
    RANGE_PARAMS_DOC,
    RETRAIN_REQUESTS,
    LakestreamSparkSubmitOperator,
    default_task_args,
)

with DAG(
    dag_id="lakestream_monitoring",
    description="Stream health, drift / quality / performance monitoring and the retraining trigger",
    schedule=CronDataIntervalTimetable("15 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2018, 4, 1, tz="UTC"),
    catchup=False,  # a health check of the past is meaningless; past days are monitored with the `day` param
    max_active_runs=1,
    user_defined_macros=LAKESTREAM_MACROS,
    params={
        "day": Param(None, type=["null", "string"], format="date", description="event-time day to monitor"),
        "start": Param(None, type=["null", "string"], format="date", description=RANGE_PARAMS_DOC),
        "end": Param(None, type=["null", "string"], format="date", description=RANGE_PARAMS_DOC),
    },
    default_args=default_task_args(retries=1, timeout_minutes=30),
    tags=["lakestream", "monitoring"],
    doc_md=__doc__,
):

    @task(multiple_outputs=False)
    def check_stream_health(data_interval_end: Any = None) -> dict[str, Any]:
        """Fail when the stream stopped reporting; succeed (saying so) when there is no stream."""
        from lakestream.config import load_config
        from lakestream.orchestration.monitoring import check_stream_health, require_healthy_stream

        return require_healthy_stream(check_stream_health(load_config(), now=data_interval_end)).to_dict()

    monitor_model = LakestreamSparkSubmitOperator(
        task_id="monitor_model",
        job="jobs/monitor_model.py",
        application_args=[
            "--start",
            "{{ lakestream_monitoring_first_day(params, data_interval_start) }}",
            "--end",
            "{{ lakestream_monitoring_last_day(params, data_interval_start) }}",
            "--as-of",
            "{{ lakestream_monitoring_as_of(params, data_interval_end) }}",
            "--run-id",
            "{{ run_id }}",
        ],
    )

    @task(outlets=[RETRAIN_REQUESTS], multiple_outputs=False)
    def request_retraining(run_id: Any = None, outlet_events: Any = None) -> dict[str, Any]:
        """Emit a retrain request (asset event, extra = the decision) or skip when the job asked for none."""
        from airflow.sdk.exceptions import AirflowSkipException

        from lakestream.config import load_config
        from lakestream.orchestration.monitoring import read_retraining_decision

        decision = read_retraining_decision(load_config(), run_id=str(run_id))
        if not decision["needed"]:
            raise AirflowSkipException(decision["reason"])
        outlet_events[RETRAIN_REQUESTS].extra = decision
        return decision

    check_stream_health()
    monitor_model >> request_retraining()
