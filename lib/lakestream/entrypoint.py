"""What every `jobs/` entry point does around its work: logging, configuration, errors, the JSON summary.

    def main(argv=None) -> int:
        args = build_parser().parse_args(argv)
        return run_job(args, lambda config: with_spark(config, "my-job", lambda spark: do_work(spark, config)))

A LakestreamError (a bad input or setup, with a message saying what to do) becomes one line on stderr and
exit code 2; anything else is a bug and keeps its traceback. The summary dict is printed as the last stdout
line, which `lakestream demo`, Airflow logs and tests read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakestream.config.models import LakestreamConfig

T = TypeVar("T")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--env and --log-level, as every entry point has them."""
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS)
    return parser


def add_day_range_arguments(parser: argparse.ArgumentParser, *, verb: str) -> argparse.ArgumentParser:
    """--date DAY, or --start DAY --end DAY (inclusive): the days a job works on."""
    days = parser.add_mutually_exclusive_group(required=True)
    days.add_argument("--date", type=dt.date.fromisoformat, help=f"the day to {verb}, YYYY-MM-DD")
    days.add_argument("--start", type=dt.date.fromisoformat, help="first day of a range (with --end)")
    parser.add_argument("--end", type=dt.date.fromisoformat, help="last day of the range, inclusive")
    return parser


def resolve_day_range(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[dt.date, dt.date]:
    """(first, last) day from --date or --start/--end; a usage error when --start comes without --end."""
    if args.date is not None:
        return args.date, args.date
    if args.end is None:
        parser.error("--start needs --end")
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    return args.start, args.end


def run_job(args: argparse.Namespace, work: Callable[[LakestreamConfig], dict[str, Any]]) -> int:
    """Configure logging, load the configuration, run the work, print its summary; the exit code."""
    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging

    configure_logging(args.log_level)
    try:
        summary = work(load_config(args.env))
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, default=str))
    return 0


def with_spark(config: LakestreamConfig, app_name: str, work: Callable[[SparkSession], T]) -> T:
    """Run work with a session from the factory, stopped afterwards whatever happens."""
    from lakestream.spark import build_spark_session

    spark = build_spark_session(config, app_name)
    try:
        return work(spark)
    finally:
        spark.stop()
