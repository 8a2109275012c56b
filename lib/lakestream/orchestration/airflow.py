"""Airflow building blocks shared by the DAG files (which stay thin: no logic, cheap imports).

`LakestreamSparkSubmitOperator` is the Spark provider's SparkSubmitOperator with the project's jars,
settings and environment filled in *when the task runs* (never at DAG parse time), from the same
configuration that `lakestream submit` uses; the Spark connection decides the master (`local[*]` by
default, a cluster by configuration of the connection).

Days. The data DAGs use a daily `CronDataIntervalTimetable`, so a run's data interval is exactly one UTC
day [data_interval_start, data_interval_end). The jobs take inclusive day ranges, so the DAGs pass
`day_range_args(...)`: templates over the macros in `LAKESTREAM_MACROS` (registered on each DAG as
`user_defined_macros`), evaluated when the task runs:

- `lakestream_run_first_day(params, data_interval_start, reprocess_late)`: the first day of the interval
  (YYYY-MM-DD); with reprocess_late, minus `quality.allowed_lateness_days`, because events land up to that many
  days late and silver day D is final only once D+lateness has landed (see lakestream.quality.silver): a daily
  run rebuilds its day and the days late events of its day can still change;
- `lakestream_run_last_day(params, data_interval_end)`: the last day *inside* the interval (end minus one day).

A manual run may pass `{"start": ..., "end": ...}` as its conf to work on a range of days instead (an initial
load, `lakestream demo`). Every job replaces exactly its days, so overlapping windows are safe.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset

from lakestream.orchestration.resources import RETRAIN_REQUESTS_URI, SPARK_CONN_ID, SPARK_POOL

logger = logging.getLogger(__name__)

# Updated by lakestream_monitoring when its retraining check holds; schedules lakestream_retraining.
RETRAIN_REQUESTS = Asset(name="lakestream_retrain_requests", uri=RETRAIN_REQUESTS_URI)


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.fromisoformat(str(value)).date()


def first_day(data_interval_start: date | datetime | str, lookback_days: int = 0) -> str:
    """The first day of a data interval (minus lookback_days), as YYYY-MM-DD."""
    return (_as_date(data_interval_start) - timedelta(days=lookback_days)).isoformat()


def last_day(data_interval_end: date | datetime | str) -> str:
    """The last day inside a data interval: its exclusive end minus one day, as YYYY-MM-DD."""
    return (_as_date(data_interval_end) - timedelta(days=1)).isoformat()


def reprocess_first_day(data_interval_start: date | datetime | str) -> str:
    """The first day a daily run rebuilds: its day minus the allowed lateness of landed events (configured)."""
    from lakestream.config import load_config

    return first_day(data_interval_start, load_config().quality.allowed_lateness_days)


def retraining_as_of(params: Any, triggering_asset_events: Any) -> str:
    """The as-of day of a retraining run: the `as_of` param, else the newest triggering asset event's `as_of`."""
    from lakestream.errors import ConfigError

    if params and params.get("as_of"):
        return str(params["as_of"])
    events = [event for per_asset in (triggering_asset_events or {}).values() for event in per_asset]
    for event in reversed(events):
        as_of = (getattr(event, "extra", None) or {}).get("as_of")
        if as_of:
            return str(as_of)
    raise ConfigError(
        'retraining needs an as-of day: trigger it with conf {"as_of": "YYYY-MM-DD"} or through the '
        "monitoring DAG's retrain-request asset"
    )


def _param(params: Any, name: str) -> str | None:
    value = params.get(name) if params else None
    return str(value) if value else None


def run_first_day(params: Any, data_interval_start: date | datetime | str, reprocess_late: bool = False) -> str:
    """The first day a run works on: the `start` param (a range run), else its interval's first day (minus the
    allowed lateness with reprocess_late)."""
    if _param(params, "start"):
        return str(_param(params, "start"))
    return reprocess_first_day(data_interval_start) if reprocess_late else first_day(data_interval_start)


def run_last_day(params: Any, data_interval_end: date | datetime | str) -> str:
    """The last day a run works on: the `end` param (a range run), else its interval's last day."""
    return _param(params, "end") or last_day(data_interval_end)


def monitoring_first_day(params: Any, data_interval_start: date | datetime | str) -> str:
    """First event-time day a monitoring run judges: `day` or `start` param, else the day its interval starts in."""
    return _param(params, "day") or _param(params, "start") or first_day(data_interval_start)


def monitoring_last_day(params: Any, data_interval_start: date | datetime | str) -> str:
    """Last event-time day a monitoring run judges: `day` or `end` param, else the day its interval starts in."""
    return _param(params, "day") or _param(params, "end") or first_day(data_interval_start)


def monitoring_as_of(params: Any, data_interval_end: date | datetime | str) -> str:
    """Labels known to a monitoring run: before its interval's end, or the end of the days given as params."""
    last = _param(params, "day") or _param(params, "end")
    if last:
        return (date.fromisoformat(last) + timedelta(days=1)).isoformat()
    if isinstance(data_interval_end, datetime):
        utc = data_interval_end.astimezone(UTC) if data_interval_end.tzinfo else data_interval_end
        return utc.replace(tzinfo=None).isoformat(sep=" ")
    return str(data_interval_end)


def training_as_of(params: Any, data_interval_end: date | datetime | str) -> str:
    """The as-of day of a scheduled training: the `as_of` param, else the run's last day."""
    return _param(params, "as_of") or last_day(data_interval_end)


LAKESTREAM_MACROS: dict[str, Any] = {
    "lakestream_first_day": first_day,
    "lakestream_last_day": last_day,
    "lakestream_run_first_day": run_first_day,
    "lakestream_run_last_day": run_last_day,
    "lakestream_retraining_as_of": retraining_as_of,
    "lakestream_training_as_of": training_as_of,
    "lakestream_monitoring_first_day": monitoring_first_day,
    "lakestream_monitoring_last_day": monitoring_last_day,
    "lakestream_monitoring_as_of": monitoring_as_of,
}

# Params of the data DAGs: a manual run may name its days instead of taking its interval's (an initial load).
RANGE_PARAMS_DOC = "first / last day (YYYY-MM-DD) of a range run instead of the run's interval"


def day_range_args(start_flag: str = "--start", end_flag: str = "--end", *, reprocess_late: bool = False) -> list[str]:
    """Job arguments naming the run's days: [start_flag, first day, end_flag, last day] (templates).

    The days are the `start` / `end` params of a range run, else the run's interval; with reprocess_late the
    interval's range starts `quality.allowed_lateness_days` before it (see module doc).
    """
    late = "True" if reprocess_late else "False"
    return [
        start_flag,
        "{{ lakestream_run_first_day(params, data_interval_start, %s) }}" % late,  # noqa: UP031 - Jinja braces
        end_flag,
        "{{ lakestream_run_last_day(params, data_interval_end) }}",
    ]


DATA_INTERVAL_ARGS = day_range_args()


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

    template_fields = (*SparkSubmitOperator.template_fields, "task_conf", "task_env_vars")

    def __init__(self, *, job: str, conn_id: str = SPARK_CONN_ID, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"lakestream-{Path(job).stem}")
        kwargs.setdefault("pool", SPARK_POOL)
        super().__init__(application=job, conn_id=conn_id, **kwargs)
        self.job = job
        # what the DAG author gave: it wins over the resolved settings, which are recomputed at every run
        self.task_conf = dict(self.conf or {})
        self.task_env_vars = dict(self.env_vars or {})

    def execute(self, context: Any) -> None:
        """Resolve configuration and settings at run time, then spark-submit."""
        self.prepare_submit()
        super().execute(context)

    def prepare_submit(self) -> None:
        """Application path, jars, driver memory, conf and environment from configuration and the connection."""
        from lakestream.config import load_config
        from lakestream.spark import spark_settings, spark_submit_executable, submit_environment

        config = load_config()
        master = self.connection_master()
        settings = spark_settings(config, master=master)
        self.application = str(config.home / self.job)
        self.jars = settings.pop("spark.jars")
        self._driver_memory = settings.pop("spark.driver.memory")
        self.conf = {**settings, **self.task_conf}
        env = {**submit_environment(config), **self.task_env_vars}
        # The provider runs `spark-submit` from PATH: put the installed pyspark's first, whatever PATH Airflow has.
        env["PATH"] = os.pathsep.join([str(spark_submit_executable().parent), env.get("PATH", "")])
        self.env_vars = env
        logger.info(
            "submitting %s to %s with %d settings (env %s)", self.application, master, len(self.conf), config.env
        )

    def connection_master(self) -> str:
        """The master spark-submit gets: the Airflow Spark connection's, resolved as the provider's hook does.

        It, not `spark.master` of the configuration, decides the local-only settings (a `spark://` connection
        must not get the driver-only java.nio file system of local mode).
        """
        from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

        return str(SparkSubmitHook(conn_id=self._conn_id)._connection["master"])


def promotion_path(*, approve_task_id: str, promote_task_id: str) -> str:
    """The task after training: promote directly, or wait for an operator's approval (monitoring.retraining.mode)."""
    from lakestream.config import load_config

    mode = load_config().monitoring.retraining.mode
    if mode == "manual":
        logger.info("monitoring.retraining.mode is manual: the promotion waits for an operator's approval")
        return approve_task_id
    return promote_task_id


def train_and_promote(*, as_of: str, train_args: list[str] | None = None) -> tuple[Any, ...]:
    """train -> (approval when configured) -> promote, inside a DAG context; windows placed `--as-of` the day.

    With `monitoring.retraining.mode: manual` the run stops at `approve_promotion`, a human-in-the-loop task the
    Airflow UI shows as awaiting input: Approve runs the gate (`promote_model`), Reject skips it and leaves the
    new version as challenger. Otherwise the gate runs right after training. The gate itself promotes only a
    challenger that beats the champion on the same recent window.
    """
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from airflow.sdk import task

    train_model = LakestreamSparkSubmitOperator(
        task_id="train_model",
        job="jobs/train_model.py",
        application_args=["--as-of", as_of, *(train_args or [])],
        execution_timeout=timedelta(hours=2),
    )

    @task.branch(task_id="choose_promotion_path")
    def choose_promotion_path() -> str:
        """approve_promotion in manual mode, promote_model otherwise."""
        return promotion_path(approve_task_id="approve_promotion", promote_task_id="promote_model")

    approve_promotion = ApprovalOperator(
        task_id="approve_promotion",
        subject="Promote the retrained fraud model?",
        body=(
            "Run {{ run_id }} trained a new model version and registered it as `challenger` (its metrics are in the "
            "train_model log and in MLflow). Approve to run the promotion gate, which still promotes only a model "
            "that beats the champion on the most recent window; Reject to keep the champion."
        ),
        response_timeout=timedelta(days=3),
    )
    promote_model = LakestreamSparkSubmitOperator(
        task_id="promote_model",
        job="jobs/promote_model.py",
        application_args=["--as-of", as_of],
        retries=1,
        trigger_rule="none_failed_min_one_success",
    )
    branch = choose_promotion_path()
    train_model >> branch >> [approve_promotion, promote_model]
    approve_promotion >> promote_model
    return train_model, branch, approve_promotion, promote_model
