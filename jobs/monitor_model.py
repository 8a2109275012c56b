"""Monitor the served scores of event-time days: drift, data quality, label-delayed performance, alerts, retraining.

    lakestream submit jobs/monitor_model.py --date 2018-05-20                 # one day (its hours and the day)
    lakestream submit jobs/monitor_model.py --start 2018-05-01 --end 2018-05-31
    lakestream submit jobs/monitor_model.py --date 2018-05-20 --as-of "2018-05-21 06:00"   # labels known then
Reads gold.stream_scores (or gold.scores with monitoring.source=batch), writes monitoring.metrics (replacing the
windows of those days), monitoring.alerts and monitoring.retraining, an HTML report under the reports folder,
and an MLflow run in the monitoring experiment. Days whose labels are complete by --as-of (default: the end of
the last day) also get AUC / AP / CP@k of the scores that were served. The last stdout line is a JSON summary;
its "retraining" field is the decision the Airflow monitoring DAG turns into a retraining request.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime


def build_parser() -> argparse.ArgumentParser:
    """Arguments: one day or an inclusive range of days, the labels' as-of instant, the run id."""
    from lakestream.entrypoint import add_common_arguments, add_day_range_arguments

    parser = argparse.ArgumentParser(prog="monitor_model", description=__doc__.splitlines()[0])
    add_day_range_arguments(parser, verb="monitor")
    parser.add_argument(
        "--as-of",
        type=datetime.fromisoformat,
        help="labels reported before this instant are known (default: the end of the last day)",
    )
    parser.add_argument("--run-id", help="id of this run in the monitoring tables (default: generated)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    return add_common_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Monitor the days and print the summary."""
    from lakestream.entrypoint import resolve_day_range, run_job, with_spark

    parser = build_parser()
    args = parser.parse_args(argv)
    start, end = resolve_day_range(parser, args)
    from lakestream.monitoring.job import MonitoringRequest, run_monitoring

    request = MonitoringRequest(
        start=start,
        end=end,
        as_of=args.as_of,
        run_id=args.run_id,
        write_report=not args.no_report,
        log_to_mlflow=not args.no_mlflow,
    )
    return run_job(
        args,
        lambda config: with_spark(
            config, "monitor-model", lambda spark: run_monitoring(spark, config, request).summary()
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
