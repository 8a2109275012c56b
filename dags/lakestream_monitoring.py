"""Hourly monitoring: the stream's health from its metrics table, and the retraining check.

`check_stream_health` reads gold.stream_metrics (written by the long-running scoring stream, supervised with
`lakestream stream start|stop|status`): no table means no stream was started and the task succeeds saying so; a
stream whose last micro-batch is too old fails the task (retries, then the failure callback alerts).
`request_retraining` updates the retrain-requests asset, which schedules `lakestream_retraining`, when
lakestream.orchestration.monitoring.decide_retraining says so, and is skipped otherwise.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, task

from lakestream.orchestration.airflow import LAKESTREAM_MACROS, RETRAIN_REQUESTS, default_task_args

with DAG(
    dag_id="lakestream_monitoring",
    description="Stream health from gold.stream_metrics and the retraining trigger",
    schedule=CronDataIntervalTimetable("15 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2018, 4, 1, tz="UTC"),
    catchup=False,  # a health check of the past is meaningless
    max_active_runs=1,
    user_defined_macros=LAKESTREAM_MACROS,
    default_args=default_task_args(retries=1, timeout_minutes=10),
    tags=["lakestream", "monitoring"],
    doc_md=__doc__,
):

    @task(multiple_outputs=False)
    def check_stream_health(data_interval_end: Any = None) -> dict[str, Any]:
        """Fail when the stream stopped reporting; succeed (saying so) when there is no stream."""
        from lakestream.config import load_config
        from lakestream.orchestration.monitoring import check_stream_health, require_healthy_stream

        return require_healthy_stream(check_stream_health(load_config(), now=data_interval_end)).to_dict()

    @task(outlets=[RETRAIN_REQUESTS], multiple_outputs=False)
    def request_retraining(data_interval_end: Any = None, outlet_events: Any = None) -> dict[str, Any]:
        """Emit a retrain request (asset event, extra = the decision) or skip when no retraining is needed."""
        from datetime import date

        from airflow.sdk.exceptions import AirflowSkipException

        from lakestream.config import load_config
        from lakestream.orchestration.airflow import last_day
        from lakestream.orchestration.monitoring import decide_retraining

        decision = decide_retraining(load_config(), until=date.fromisoformat(last_day(data_interval_end)))
        if not decision.needed:
            raise AirflowSkipException(decision.reason)
        outlet_events[RETRAIN_REQUESTS].extra = decision.to_dict()
        return decision.to_dict()

    check_stream_health()
    request_retraining()
