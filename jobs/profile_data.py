"""Profile silver transactions (with labels and quarantine) for a date range into an HTML report.

    lakestream submit jobs/profile_data.py --start 2018-04-01 --end 2018-09-30
Spark aggregates only; the report (plots + tables) lands in <reports_dir>/ and is logged to MLflow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Compute the profile, write the report, log it to MLflow, print a JSON summary."""
    parser = argparse.ArgumentParser(prog="profile_data", description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True, help="first event day (YYYY-MM-DD)")
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True, help="last event day, inclusive")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the report to MLflow")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    args = parser.parse_args(argv)

    from lakestream.config import load_config
    from lakestream.errors import DataError, LakestreamError
    from lakestream.io.delta import is_delta_table, read_delta
    from lakestream.logs import configure_logging
    from lakestream.quality.profile import compute_profile, render_profile_report
    from lakestream.spark import build_spark_session

    configure_logging()
    try:
        config = load_config(args.env)
        tx_path = config.table_path("silver", "transactions")
        if not is_delta_table(tx_path):
            raise DataError(f"no silver transactions at {tx_path}; run the ingest and clean jobs first")
        spark = build_spark_session(config, "profile-data")
        try:
            labels_path = config.table_path("silver", "fraud_labels")
            quarantine_path = config.table_path("quarantine", "records")
            profile = compute_profile(
                read_delta(spark, tx_path),
                labels=read_delta(spark, labels_path) if is_delta_table(labels_path) else None,
                quarantine=read_delta(spark, quarantine_path) if is_delta_table(quarantine_path) else None,
                start=args.start,
                end=args.end,
            )
        finally:
            spark.stop()
        report = render_profile_report(profile, title=f"Data profile: silver.transactions {args.start} to {args.end}")
        path = report.write(config.paths.reports_dir / f"profile_{args.start}_{args.end}.html")
        run_id = None
        if not args.no_mlflow:
            import mlflow

            from lakestream.registry.tracking import configure_mlflow

            configure_mlflow(config)
            with mlflow.start_run(run_name=f"profile {args.start}..{args.end}") as run:
                mlflow.set_tag("lakestream.pipeline", "profile")
                mlflow.log_metrics({k: float(v) for k, v in profile.totals.items()})
                mlflow.log_artifact(str(path), artifact_path="reports")
                run_id = run.info.run_id
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"report": str(path), "mlflow_run_id": run_id, **profile.totals}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
