"""Build a feature set into its gold Delta table for a day range (incremental by default, or a backfill).

    lakestream submit jobs/build_features.py --feature-set fraud_v1 --start 2018-08-01 --end 2018-08-01
Reads only the look-back the feature set needs (longest window + delay) and replaces exactly the days
[start, end] of gold.features_<set>, so daily runs, re-runs and backfills give the same rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, build the features, print a JSON summary."""
    parser = argparse.ArgumentParser(prog="build_features", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--feature-set", help="conf/features/<name>.yaml (default: training.feature_set, the set models train on)"
    )
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True, help="first event day (YYYY-MM-DD)")
    parser.add_argument("--end", type=dt.date.fromisoformat, help="last event day, inclusive (default: --start)")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    args = parser.parse_args(argv)

    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.features.spec import feature_set_path, load_feature_set
    from lakestream.features.store import build_feature_table
    from lakestream.logs import configure_logging
    from lakestream.spark import build_spark_session

    configure_logging()
    started = time.monotonic()
    try:
        config = load_config(args.env)
        name = args.feature_set or config.training.feature_set
        spec = load_feature_set(feature_set_path(config.home / "conf" / "features", name))
        spark = build_spark_session(config, f"build-features-{spec.name}")
        try:
            result = build_feature_table(spark, config, spec, start=args.start, end=args.end or args.start)
        finally:
            spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({**asdict(result), "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
