"""Replay a span of silver transactions and chargebacks into Kafka, in event order, for the scoring stream.

    lakestream submit jobs/replay_stream_events.py --start "2018-05-08" --end "2018-05-22"

Sends the chargebacks reported in [start, end) (with their terminal) to the fraud-labels topic, then the
transactions of [start, end) to the transactions topic. Pair it with a stream bootstrapped up to --start
(`lakestream stream start --bootstrap-until <start>`) to reproduce the batch features exactly. The last stdout
line is a JSON summary of what was sent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the job."""
    parser = argparse.ArgumentParser(prog="replay_stream_events", description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.datetime.fromisoformat, required=True, help="first event time (UTC)")
    parser.add_argument("--end", type=dt.datetime.fromisoformat, required=True, help="end of the span, exclusive")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Replay and print the summary."""
    args = build_parser().parse_args(argv)

    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.spark import build_spark_session
    from lakestream.streaming.replay import replay_span

    configure_logging(args.log_level)
    if args.end <= args.start:
        print(f"error: --end {args.end} must be after --start {args.start}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.env)
        spark = build_spark_session(config, "replay-stream-events")
        try:
            sent = replay_span(spark, config, start=args.start, end=args.end)
        finally:
            spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"start": str(args.start), "end": str(args.end), **sent}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
