"""Replay quarantined rows after a rule, threshold or producer fix: rows that pass now move to silver.

Rows that pass are inserted into silver (never twice) and leave quarantine; exact re-sends of silver rows are
recorded as duplicates; the others stay quarantined with the rules they break now. Replaying twice changes nothing.
Run with python, `lakestream replay-quarantine …` or `lakestream submit jobs/replay_quarantine.py …`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date

logger = logging.getLogger("lakestream.jobs.replay_quarantine")

KINDS = ("transactions", "fraud_labels")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the job: which quarantined rows to replay."""
    parser = argparse.ArgumentParser(prog="replay_quarantine", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kind",
        action="append",
        choices=KINDS,
        help="kind to replay; repeat for several (default: transactions then fraud_labels)",
    )
    parser.add_argument(
        "--rule", action="append", default=[], help="only rows breaking this rule; repeat for several (default: all)"
    )
    parser.add_argument("--start-date", type=date.fromisoformat, help="first process day, YYYY-MM-DD")
    parser.add_argument("--end-date", type=date.fromisoformat, help="last process day, inclusive")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Replay each kind; print one JSON summary line (selected, promoted, duplicates, still quarantined)."""
    args = build_parser().parse_args(argv)

    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.quality.kinds import get_event_kind
    from lakestream.quality.replay import replay_quarantine
    from lakestream.spark import build_spark_session

    configure_logging(args.log_level)
    try:
        config = load_config(args.env)
        spark = build_spark_session(config, "replay-quarantine")
        try:
            results = [
                replay_quarantine(
                    spark,
                    config,
                    kind=get_event_kind(name),
                    rules=args.rule,
                    start=args.start_date,
                    end=args.end_date,
                )
                for name in args.kind or KINDS
            ]
        finally:
            spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logger.info("replay done: %s", ", ".join(f"{r.kind} {r.promoted_rows}/{r.selected_rows} promoted" for r in results))
    print(json.dumps({result.kind: result.to_dict() for result in results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
