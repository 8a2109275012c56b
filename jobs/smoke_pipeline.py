"""Smoke pipeline: Delta -> Kafka -> Structured Streaming -> Delta -> MLflow, through the real local stack.

spark-submit (via)  lakestream submit jobs/smoke_pipeline.py --events 1000
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict


def main(argv: Sequence[str] | None = None) -> int:
    """Run the smoke pipeline once and print its result as JSON."""
    parser = argparse.ArgumentParser(prog="smoke_pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="number of events to push through (default 1000)")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    args = parser.parse_args(argv)

    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.smoke import run_smoke_pipeline
    from lakestream.spark import build_spark_session

    configure_logging()
    try:
        config = load_config(args.env)
        spark = build_spark_session(config, "smoke-pipeline")
        try:
            result = run_smoke_pipeline(spark, config, n_events=args.events)
        finally:
            spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
