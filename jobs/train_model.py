"""Train a fraud model on the gold features: split, (tune,) fit, evaluate, log to MLflow, register as challenger.

    lakestream submit jobs/train_model.py --feature-set fraud_v1 --mode single-node-exact
    lakestream submit jobs/train_model.py --feature-set fraud_v2 --tune --trials 40 --prequential-estimate
    lakestream submit jobs/train_model.py --as-of 2018-09-30      # newest windows whose labels are complete
Defaults come from the training section of the configuration (the book's split: train 2018-07-25..07-31,
7 delay days, test 2018-08-08..08-14). The last stdout line is a JSON summary of the run and its metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date, timedelta

MODES = {"spark": "spark", "single-node": "single_node", "single-node-exact": "single_node_exact"}


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the job; every default comes from configuration when not given."""
    parser = argparse.ArgumentParser(prog="train_model", description=__doc__.splitlines()[0])
    parser.add_argument("--feature-set", help="conf/features/<name>.yaml (default: training.feature_set)")
    parser.add_argument(
        "--mode",
        choices=sorted(MODES),
        help="spark = xgboost.spark (hist); single-node = xgboost.train on the collected rows; "
        "single-node-exact = the book's tree_method=exact, base_score=0.5 (default: training.mode)",
    )
    parser.add_argument("--train-start", type=date.fromisoformat, help="first training day (YYYY-MM-DD)")
    parser.add_argument("--train-days", type=int, help="days in the train window")
    parser.add_argument("--train-end", type=date.fromisoformat, help="last training day (instead of --train-days)")
    parser.add_argument("--delay-days", type=int, help="unused days between train and test (label delay)")
    parser.add_argument("--test-start", type=date.fromisoformat, help="first test day (instead of --delay-days)")
    parser.add_argument("--test-days", type=int, help="days in the test window")
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="newest day of data the run may use (scheduled retraining passes its last day): the test window "
        "ends delay-days before it, where labels are complete, and the train window delay-days before the test "
        "window (instead of --train-start / --train-end / --test-start)",
    )
    parser.add_argument("--tune", action="store_true", help="Optuna search over the prequential validation folds")
    parser.add_argument(
        "--trials",
        type=int,
        help="tuning trials (default: training.tuning.n_trials); a positive number implies --tune, 0 means no tuning",
    )
    parser.add_argument(
        "--prequential-estimate",
        action="store_true",
        help="also report the final parameters' mean and std over the prequential test folds",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one booster parameter, e.g. --param max_depth=3 (repeatable; values parsed as YAML)",
    )
    parser.add_argument(
        "--raw-features",
        action="store_true",
        help="fit on the features as they are, without rounding them to max_bin quantile edges first "
        "(training.xgboost.exact_cuts false): xgboost's sketch then depends on how the rows are spread",
    )
    parser.add_argument("--no-register", action="store_true", help="log the model but do not register it")
    parser.add_argument("--run-name", help="MLflow run name")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Train one model and print its JSON summary as the last stdout line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.train_end is not None and args.train_days is not None:
        parser.error("give --train-end or --train-days, not both")
    if args.test_start is not None and args.delay_days is not None:
        parser.error("give --test-start or --delay-days, not both")
    if args.as_of is not None and any(v is not None for v in (args.train_start, args.train_end, args.test_start)):
        parser.error("--as-of places the windows itself: drop --train-start / --train-end / --test-start")

    import yaml

    from lakestream.config import load_config
    from lakestream.errors import ConfigError, LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.spark import build_spark_session
    from lakestream.training.splits import build_time_split
    from lakestream.training.trainer import TrainingRequest, train_model

    configure_logging(args.log_level)
    try:
        config = load_config(args.env, overrides={"training.xgboost.exact_cuts": False} if args.raw_features else None)
        defaults = config.training.split
        train_start = args.train_start or defaults.train_start
        train_days = (args.train_end - train_start).days + 1 if args.train_end else args.train_days
        delay_days = args.delay_days if args.delay_days is not None else defaults.delay_days
        train_days = train_days or defaults.train_days
        if args.as_of is not None:
            test_end = args.as_of - timedelta(days=delay_days)
            test_start = test_end - timedelta(days=(args.test_days or defaults.test_days) - 1)
            train_start = test_start - timedelta(days=delay_days + train_days)
        if args.test_start is not None:
            delay_days = (args.test_start - train_start).days - train_days
            if delay_days < 0:
                raise ConfigError(f"--test-start {args.test_start} falls inside the train window")
        split = build_time_split(
            train_start=train_start,
            train_days=train_days,
            delay_days=delay_days,
            test_days=args.test_days or defaults.test_days,
        )
        params = {}
        for item in args.param:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"--param {item!r} is not KEY=VALUE")
            params[key.strip()] = yaml.safe_load(value)
        request = TrainingRequest(
            feature_set=args.feature_set or config.training.feature_set,
            mode=MODES[args.mode] if args.mode else config.training.mode,
            split=split,
            tune=args.trials > 0 if args.trials is not None else args.tune,
            n_trials=args.trials or None,
            prequential_estimate=args.prequential_estimate,
            register=not args.no_register,
            params=params,
            run_name=args.run_name,
        )
        spark = build_spark_session(config, f"train-model-{request.feature_set}")
        try:
            result = train_model(spark, config, request)
        finally:
            spark.stop()
    except LakestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
