"""Score a day range of gold features with a registered model into Delta gold.scores (idempotent per day).

    lakestream submit jobs/score_batch.py --start 2018-09-01 --end 2018-09-07
    lakestream submit jobs/score_batch.py --date 2018-09-01 --model 3
    lakestream submit jobs/score_batch.py --date 2018-09-01 --skip-if-no-model   # scheduled runs before any champion
The model is the champion unless --model names an alias or a version; it reads the gold table of the feature set
it was trained on. Each day of the range is replaced in gold.scores (replaceWhere), so re-runs are safe. The last
stdout line is a JSON summary (rows and decisions).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the job: one day or an inclusive range of days."""
    from lakestream.entrypoint import add_day_range_arguments

    parser = argparse.ArgumentParser(prog="score_batch", description=__doc__.splitlines()[0])
    add_day_range_arguments(parser, verb="score")
    parser.add_argument("--model", default="champion", help="alias or version number (default: champion)")
    parser.add_argument(
        "--skip-if-no-model",
        action="store_true",
        help="exit 0 with a 'skipped' summary when --model names no registered version yet (the daily DAG "
        "before the first promotion); without it a missing model is an error",
    )
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Score the days and print the summary."""
    from lakestream.entrypoint import resolve_day_range

    parser = build_parser()
    args = parser.parse_args(argv)
    start, end = resolve_day_range(parser, args)

    from mlflow import MlflowClient

    from lakestream.config import load_config
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.registry.models import find_version_by_alias, load_model_version, resolve_version
    from lakestream.registry.tracking import configure_mlflow
    from lakestream.scoring.batch import score_batch
    from lakestream.spark import build_spark_session

    configure_logging(args.log_level)
    try:
        config = load_config(args.env)
        configure_mlflow(config)
        client = MlflowClient()
        name = config.mlflow.registered_model
        skippable = args.skip_if_no_model and not args.model.isdigit()
        if skippable and find_version_by_alias(client, name, args.model) is None:
            reason = f"model {name!r} has no {args.model!r} alias yet; nothing scored (train and promote a model)"
            print(reason, file=sys.stderr)
            print(json.dumps({"skipped": True, "reason": reason, "start": str(start), "end": str(end)}))
            return 0
        version = resolve_version(client, name, args.model)
        model = load_model_version(client, config, version)
        spark = build_spark_session(config, "score-batch")
        try:
            result = score_batch(spark, config, model, start=start, end=end)
        finally:
            spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
