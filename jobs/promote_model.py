"""Promote the challenger to champion if it beats the champion on the same, most recent evaluation window.

    lakestream submit jobs/promote_model.py                       # challenger alias, latest complete window
    lakestream submit jobs/promote_model.py --challenger 7 --window-end 2018-09-23 --force
    lakestream submit jobs/promote_model.py --as-of 2018-09-30    # window ends delay_days before that day
Both models are scored on the same window (training.promotion.eval_days ending --window-end, default the newest
feature day minus the label delay); the decision and its reasons are recorded on the challenger version and the
champion alias moves only on success (or with --force). The last stdout line is the decision as JSON; the exit
code is 0 whether or not the challenger was promoted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date, timedelta


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the job."""
    parser = argparse.ArgumentParser(prog="promote_model", description=__doc__.splitlines()[0])
    parser.add_argument("--challenger", default="challenger", help="alias or version number (default: challenger)")
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--window-end", type=date.fromisoformat, help="last day of the evaluation window")
    window.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="newest day of data the run may use (scheduled runs pass their last day): the window ends "
        "training.split.delay_days before it, where labels are complete",
    )
    parser.add_argument("--force", action="store_true", help="promote even if checks fail (recorded as forced)")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gate and print the decision."""
    args = build_parser().parse_args(argv)

    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.registry.promotion import promote_challenger
    from lakestream.spark import build_spark_session

    configure_logging(args.log_level)
    try:
        config = load_config(args.env)
        window_end = args.window_end
        if args.as_of is not None:
            window_end = args.as_of - timedelta(days=config.training.split.delay_days)
        spark = build_spark_session(config, "promote-model")
        try:
            decision = promote_challenger(
                spark, config, challenger=args.challenger, window_end=window_end, force=args.force
            )
        finally:
            spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(decision.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
