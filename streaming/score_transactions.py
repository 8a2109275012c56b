"""Real-time scoring stream: Kafka transactions and chargebacks -> online features -> champion -> Delta and Kafka.

    lakestream stream start                                  # in the background, logs under var/run
    lakestream submit streaming/score_transactions.py        # in the foreground, through spark-submit
    python streaming/score_transactions.py --available-now   # drain what Kafka holds, then exit

Reads the transactions and fraud-labels topics, dead-letters bad records (quarantine.stream_dead_letter),
computes the champion's feature set per customer and terminal in stateful, checkpointed state, scores every
transaction once into gold.stream_scores, sends review/block alerts to the fraud-alerts topic and one metrics
row per micro-batch to gold.stream_metrics. The model alias is re-checked every streaming.model_refresh_seconds
and a newly promoted version is used without a restart. Stop with SIGTERM, Ctrl-C or `lakestream stream stop`
(the current micro-batch finishes first); a restart resumes from the checkpoint.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the stream."""
    parser = argparse.ArgumentParser(prog="score_transactions", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--available-now",
        action="store_true",
        help="process everything the topics hold now (in micro-batches of the rate limit), then exit",
    )
    parser.add_argument(
        "--bootstrap-until",
        type=dt.datetime.fromisoformat,
        help="warm the online state from silver with the look-back before this time (YYYY-MM-DD[ HH:MM:SS], "
        "UTC); only for a new checkpoint",
    )
    parser.add_argument("--max-seconds", type=float, help="stop gracefully after this many seconds")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stream until it is stopped (or drained) and print a JSON summary."""
    args = build_parser().parse_args(argv)

    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.spark import build_spark_session
    from lakestream.streaming.runner import run_stream

    configure_logging(args.log_level)
    try:
        config = load_config(args.env)
        spark = build_spark_session(config, "score-transactions")
        try:
            summary = run_stream(
                spark,
                config,
                available_now=args.available_now,
                bootstrap_until=args.bootstrap_until,
                max_seconds=args.max_seconds,
            )
        finally:
            spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
