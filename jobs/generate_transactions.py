"""Simulate card transactions on Spark and land them: ground truth, transaction events and fraud labels.

Defaults come from the `simulation:` configuration section (the book's dataset: 5,000 customers, 10,000
terminals, 183 days from 2018-04-01). Run with python or `lakestream submit jobs/generate_transactions.py -- …`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import date

logger = logging.getLogger("lakestream.jobs.generate_transactions")

OUTPUT_CHOICES = ("truth", "transactions", "fraud_labels")


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the job; unset sizes fall back to the configuration."""
    parser = argparse.ArgumentParser(
        prog="generate_transactions",
        description=__doc__.splitlines()[0],
        epilog="Outputs: truth = Delta table <lake_root>/sim/transactions (labels; tests and benchmarks only); "
        "transactions = <landing_root>/transactions/date=YYYY-MM-DD/part-00000.json (events, no labels); "
        "fraud_labels = <landing_root>/fraud_labels/date=<reported date>/part-00000.json. "
        "Re-running with the same arguments rewrites the same days with identical files.",
    )
    size = parser.add_argument_group("size (default: the simulation section of the configuration)")
    size.add_argument("--customers", type=int, help="number of customers (book: 5000)")
    size.add_argument("--terminals", type=int, help="number of terminals (book: 10000)")
    size.add_argument("--days", type=int, help="number of simulated days (book: 183)")
    size.add_argument("--start-date", type=date.fromisoformat, help="first day, YYYY-MM-DD (book: 2018-04-01)")
    size.add_argument("--radius", type=float, help="distance under which a terminal serves a customer (book: 5)")
    size.add_argument("--seed-offset", type=int, help="added to every seed; 0 reproduces the book's dataset")
    size.add_argument("--label-delay-days", type=int, help="days until a fraud is reported as a chargeback (7)")
    size.add_argument("--customers-per-task", type=int, help="customers generated per Spark task")
    parser.add_argument(
        "--output",
        action="append",
        choices=OUTPUT_CHOICES,
        help="what to write; repeat for several (default: all three)",
    )

    anomalies = parser.add_argument_group(
        "anomalies", "injected into the landed transaction events only, deterministically for --anomaly-seed"
    )
    anomalies.add_argument("--anomaly-seed", type=int, default=0, help="seed of every anomaly choice (default 0)")
    anomalies.add_argument(
        "--malformed-share",
        type=_share,
        default=0.0,
        help="share of lines replaced by a broken record: truncated JSON, a string customer_id, no terminal_id, "
        "a negative amount, an absurd amount (1e12) or a tx_datetime in 2099",
    )
    anomalies.add_argument(
        "--duplicate-share", type=_share, default=0.0, help="share of events re-sent as an exact copy 1-600 s later"
    )
    anomalies.add_argument(
        "--late-share",
        type=_share,
        default=0.0,
        help="share of events landed 1..--late-max-days days after their event day (in a later date folder)",
    )
    anomalies.add_argument("--late-max-days", type=int, default=3, help="maximum lateness in days (default 3)")
    anomalies.add_argument(
        "--out-of-order", action="store_true", help="shuffle the lines of every day file (event time no longer sorted)"
    )
    anomalies.add_argument(
        "--drift-from-day",
        type=int,
        help="day index (0 = start date) from which --drift-kind applies; it changes the ground truth and labels",
    )
    anomalies.add_argument(
        "--drift-kind",
        choices=["new_fraud_pattern", "spending_shift"],
        default="new_fraud_pattern",
        help="new_fraud_pattern: each day 2 terminals drained at night (01-05h) by 30 small payments from "
        "stolen card numbers (one payment each), labelled fraud scenario 4; spending_shift: 20%% of the "
        "customers spend twice as much (labels unchanged); the --drift-* options below set how strong",
    )
    anomalies.add_argument(
        "--drift-terminals-per-day", type=int, default=2, help="new_fraud_pattern: terminals drained per day (2)"
    )
    anomalies.add_argument(
        "--drift-transactions-per-terminal",
        type=int,
        default=30,
        help="new_fraud_pattern: night payments per drained terminal (30)",
    )
    anomalies.add_argument(
        "--drift-customer-share", type=_share, default=0.2, help="spending_shift: share of the customers (0.2)"
    )
    anomalies.add_argument("--drift-factor", type=float, default=2.0, help="spending_shift: spending factor (2.0)")
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load config, build the session, simulate and land; 0 on success."""
    args = build_parser().parse_args(argv)

    from pydantic import ValidationError

    from lakestream.config import load_config
    from lakestream.config.models import SimulationConfig
    from lakestream.errors import LakestreamError
    from lakestream.logs import configure_logging
    from lakestream.simulate.anomalies import DriftIntensity
    from lakestream.simulate.landing import AnomalyOptions, land_simulation
    from lakestream.simulate.spark_simulator import build_simulation_params
    from lakestream.spark import build_spark_session

    configure_logging(args.log_level)
    try:
        config = load_config(args.env)
        overrides = {
            "n_customers": args.customers,
            "n_terminals": args.terminals,
            "nb_days": args.days,
            "start_date": args.start_date,
            "radius": args.radius,
            "seed_offset": args.seed_offset,
            "label_delay_days": args.label_delay_days,
            "customers_per_task": args.customers_per_task,
        }
        simulation = SimulationConfig.model_validate(
            {**config.simulation.model_dump(), **{key: value for key, value in overrides.items() if value is not None}}
        )
        anomalies = AnomalyOptions(
            seed=args.anomaly_seed,
            malformed_share=args.malformed_share,
            duplicate_share=args.duplicate_share,
            late_share=args.late_share,
            late_max_days=args.late_max_days,
            out_of_order=args.out_of_order,
            drift_from_day=args.drift_from_day,
            drift_kind=args.drift_kind,
            drift_intensity=DriftIntensity(
                terminals_per_day=args.drift_terminals_per_day,
                transactions_per_terminal=args.drift_transactions_per_terminal,
                customer_share=args.drift_customer_share,
                factor=args.drift_factor,
            ),
        )
        params = build_simulation_params(simulation)
        logger.info("simulating %s with %s", params, anomalies)
        started = time.perf_counter()
        spark = build_spark_session(config, "generate-transactions")
        try:
            summary = land_simulation(
                spark,
                config,
                params,
                outputs=args.output or OUTPUT_CHOICES,
                anomalies=anomalies,
                customers_per_task=simulation.customers_per_task,
                label_delay_days=simulation.label_delay_days,
            )
        finally:
            spark.stop()
    except (LakestreamError, ValidationError) as exc:
        logger.error("%s", exc)
        return 2
    logger.info(
        "done in %.1f s: %d transactions, %d frauds, scenarios %s, %s .. %s; outputs %s",
        time.perf_counter() - started,
        summary["transactions"],
        summary["frauds"],
        summary["scenarios"],
        summary["first_tx_datetime"],
        summary["last_tx_datetime"],
        ", ".join(args.output or OUTPUT_CHOICES),
    )
    print(json.dumps({**summary, "seconds": round(time.perf_counter() - started, 1)}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
