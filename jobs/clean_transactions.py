"""Clean transactions: bronze -> silver.transactions (by tx_date), quarantine and duplicates, for given days.

Silver day D is rebuilt from the bronze landing days D-1 .. D+quality.allowed_lateness_days; re-cleaning a day
replaces exactly that day (silver partition, its quarantine and duplicate rows), so retries and backfills are safe.
Run with python or `lakestream submit jobs/clean_transactions.py --date 2018-04-01`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date

logger = logging.getLogger("lakestream.jobs.clean_transactions")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the job: one day or an inclusive range of days."""
    parser = argparse.ArgumentParser(prog="clean_transactions", description=__doc__.splitlines()[0])
    days = parser.add_mutually_exclusive_group(required=True)
    days.add_argument("--date", type=date.fromisoformat, help="the silver day to (re)build, YYYY-MM-DD")
    days.add_argument("--start-date", type=date.fromisoformat, help="first day of a range (with --end-date)")
    parser.add_argument("--end-date", type=date.fromisoformat, help="last day of the range, inclusive")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Clean the days; print one JSON summary line (counts in total and per day)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.start_date is not None and args.end_date is None:
        parser.error("--start-date needs --end-date")
    if args.date is not None and args.end_date is not None:
        parser.error("--end-date goes with --start-date, not with --date")
    start, end = (args.date, args.date) if args.date is not None else (args.start_date, args.end_date)

    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.quality.kinds import get_event_kind
    from lakestream.quality.silver import clean_landed_days
    from lakestream.spark import build_spark_session

    configure_logging(args.log_level)
    try:
        config = load_config(args.env)
        spark = build_spark_session(config, "clean-transactions")
        try:
            result = clean_landed_days(spark, config, kind=get_event_kind("transactions"), start=start, end=end)
        finally:
            spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logger.info(
        "transactions %s..%s: %d bronze rows = %d silver + %d quarantined + %d duplicates",
        start,
        end,
        result.input_rows,
        result.silver_rows,
        result.quarantined_rows,
        result.duplicate_rows,
    )
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
