"""Benchmark: the Spark simulator against the single-process pandas reference, and its scaling in size.

In one run, on the same machine and cores: the pandas reference (benchmarks/simulator_pandas_reference.py)
at the default size, then the Spark job (local[2] by default) at the default size and at `--scale` times the
customers. Checks that the Spark dataset has the reference counts and is row-for-row the pandas one, then
writes benchmarks/results/simulator.json (seconds, rows/s, the pandas/Spark speed ratio, the scaling ratio).

Scaling choice: the protocol's area is a fixed 100x100 square, so multiplying the terminals would multiply the
terminals in range of every customer (more work per transaction, not more transactions). The larger run keeps
the 10,000 terminals and the 183 days and multiplies the customers, which multiplies the transactions by
about the same factor at unchanged density.

Usage: ``python benchmarks/simulator.py [--quick] [--scale 10] [--output PATH]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from lakestream.config import load_config
from lakestream.logs import configure_logging
from lakestream.simulate.generator import SimulationParams
from lakestream.simulate.landing import (
    build_fraud_label_lines,
    build_transaction_event_lines,
    simulated_dates,
    write_fraud_label_events,
    write_ground_truth,
    write_transaction_events,
)
from lakestream.simulate.spark_simulator import simulate_transactions_spark, summarize_transactions
from lakestream.spark import build_spark_session

logger = logging.getLogger("benchmarks.simulator")

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "simulator.json"
# fraud-protocol.md section 1: the book's dataset at the default size.
REFERENCE_COUNTS = {"transactions": 1_754_155, "frauds": 14_681, "scenarios": {1: 973, 2: 9_077, 3: 4_631}}
QUICK = SimulationParams(n_customers=500, n_terminals=1000, nb_days=60)
# Run once before timing (a tenth of the default customers, everything else the same), so the timed runs
# measure the job in a steady state rather than the JVM's JIT warming up and the Python workers' first imports,
# both paid once per session. Its time is reported separately, with the ratio including it.
WARMUP = SimulationParams(n_customers=500)
QUICK_WARMUP = SimulationParams(n_customers=50, n_terminals=100, nb_days=30)
SPEEDUP_GOAL = 5.0
LINEARITY_SLACK = 1.1  # "10x data <= 11x time"


def load_pandas_reference() -> ModuleType:
    """Import benchmarks/simulator_pandas_reference.py (a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location("simulator_pandas_reference", HERE / "simulator_pandas_reference.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / 'simulator_pandas_reference.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summarize_pandas(dataset: pd.DataFrame) -> dict[str, Any]:
    """The same summary as spark_simulator.summarize_transactions, from the reference's columns."""
    scenarios = dataset["TX_FRAUD_SCENARIO"].value_counts().to_dict()
    return {
        "transactions": len(dataset),
        "frauds": int(dataset["TX_FRAUD"].sum()),
        "scenarios": {int(k): int(v) for k, v in sorted(scenarios.items()) if k > 0},
    }


def compare_rows(spark_rows: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """Names of the columns that differ between the Spark result and the pandas reference (empty: identical)."""
    spark_rows = spark_rows.sort_values("transaction_id").reset_index(drop=True)
    if len(spark_rows) != len(reference):
        return ["row count"]
    differing = []
    for column in reference.columns:
        ours = spark_rows[column.lower()].to_numpy()
        theirs = reference[column].to_numpy()
        if column == "TX_DATETIME":
            ours, theirs = ours.astype("datetime64[s]"), theirs.astype("datetime64[s]")
        if not np.array_equal(ours, theirs):
            differing.append(column)
    return differing


def time_spark_run(spark: Any, params: SimulationParams, customers_per_task: int) -> tuple[float, Any, dict[str, Any]]:
    """Seconds to simulate and summarise on Spark, the persisted result and its summary."""
    started = time.perf_counter()
    result = simulate_transactions_spark(spark, params, customers_per_task=customers_per_task)
    summary = summarize_transactions(result)
    return time.perf_counter() - started, result, summary


def time_outputs(result: Any, params: SimulationParams, label_delay_days: int) -> float:
    """Seconds to write the ground truth and the landed events of a persisted result to a scratch folder."""
    with tempfile.TemporaryDirectory(prefix="lakestream-bench-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        write_ground_truth(result, root / "lake" / "sim" / "transactions", dates=simulated_dates(params))
        write_transaction_events(build_transaction_event_lines(result), root, dates=simulated_dates(params))
        write_fraud_label_events(
            build_fraud_label_lines(result, label_delay_days=label_delay_days),
            root,
            dates=simulated_dates(params, shift_days=label_delay_days),
        )
        return time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every measurement and return the JSON document."""
    config = load_config(args.env)
    base = QUICK if args.quick else SimulationParams()
    scaled = replace(base, n_customers=base.n_customers * args.scale)
    per_task = config.simulation.customers_per_task

    logger.info("pandas reference at %s", base)
    reference_module = load_pandas_reference()
    started = time.perf_counter()
    reference = reference_module.generate_dataset_pandas(
        n_customers=base.n_customers,
        n_terminals=base.n_terminals,
        nb_days=base.nb_days,
        start_date=base.start_date,
        radius=base.radius,
    )
    pandas_seconds = time.perf_counter() - started
    pandas_summary = summarize_pandas(reference)
    logger.info("pandas: %.1f s, %s", pandas_seconds, pandas_summary)

    started = time.perf_counter()
    spark = build_spark_session(config, "benchmark-simulator")
    session_seconds = time.perf_counter() - started
    try:
        warmup = QUICK_WARMUP if args.quick else WARMUP
        warmup_seconds, warmup_result, _ = time_spark_run(spark, warmup, per_task)
        warmup_result.unpersist()
        logger.info("spark warm-up run (%s): %.1f s", warmup, warmup_seconds)
        logger.info("spark at %s", base)
        spark_seconds, result, spark_summary = time_spark_run(spark, base, per_task)
        logger.info("spark: %.1f s, %s", spark_seconds, spark_summary)
        differing = compare_rows(result.toPandas(), reference)
        del reference
        outputs_seconds = time_outputs(result, base, config.simulation.label_delay_days)
        result.unpersist()

        logger.info("spark at %dx customers: %s", args.scale, scaled)
        scaled_seconds, scaled_result, scaled_summary = time_spark_run(spark, scaled, per_task)
        scaled_result.unpersist()
        logger.info("spark x%d: %.1f s, %s", args.scale, scaled_seconds, scaled_summary)
    finally:
        spark.stop()

    rows, scaled_rows = spark_summary["transactions"], scaled_summary["transactions"]
    counts_match = {key: spark_summary[key] for key in REFERENCE_COUNTS} == {
        key: pandas_summary[key] for key in REFERENCE_COUNTS
    }
    rows_ratio = scaled_rows / rows
    time_ratio = scaled_seconds / spark_seconds
    speedup = pandas_seconds / spark_seconds
    return {
        "benchmark": "simulator",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "spark_master": config.spark.master},
        "params": asdict(base),
        "customers_per_task": per_task,
        "pandas": {
            "seconds": round(pandas_seconds, 2),
            "rows": pandas_summary["transactions"],
            "rows_per_second": round(pandas_summary["transactions"] / pandas_seconds),
        },
        "spark": {
            "session_start_seconds": round(session_seconds, 2),
            "warmup_seconds": round(warmup_seconds, 2),
            "warmup_params": asdict(warmup),
            "seconds": round(spark_seconds, 2),
            "rows": rows,
            "rows_per_second": round(rows / spark_seconds),
            "outputs_seconds": round(outputs_seconds, 2),
            "summary": spark_summary,
        },
        "speed_ratio_pandas_over_spark": round(speedup, 2),
        "speed_ratio_including_warmup": round(pandas_seconds / (spark_seconds + warmup_seconds), 2),
        "checks": {
            "reference_counts": REFERENCE_COUNTS if not args.quick else None,
            "spark_counts_equal_reference": (
                {key: spark_summary[key] for key in REFERENCE_COUNTS} == REFERENCE_COUNTS if not args.quick else None
            ),
            "spark_counts_equal_pandas": counts_match,
            "columns_differing_from_pandas": differing,
        },
        "scaling": {
            "description": f"{args.scale}x customers, same terminals (fixed 100x100 area, unchanged density) and days",
            "params": asdict(scaled),
            "seconds": round(scaled_seconds, 2),
            "rows": scaled_rows,
            "rows_per_second": round(scaled_rows / scaled_seconds),
            "rows_ratio": round(rows_ratio, 3),
            "time_ratio": round(time_ratio, 3),
        },
        "goals": {
            f"spark_at_least_{SPEEDUP_GOAL:g}x_faster": speedup >= SPEEDUP_GOAL,
            "linear_in_size": time_ratio <= LINEARITY_SLACK * rows_ratio,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write the JSON and return 0 if every count check passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"small smoke run ({QUICK}) instead of the default size")
    parser.add_argument("--scale", type=int, default=10, help="customer multiplier of the scaling run (default 10)")
    parser.add_argument(
        "--output", type=Path, help=f"JSON result (default {DEFAULT_OUTPUT}, or simulator-quick.json with --quick)"
    )
    parser.add_argument("--env", help="configuration environment (default $LAKESTREAM_ENV or local)")
    args = parser.parse_args(argv)
    configure_logging("INFO")

    document = run(args)
    output = args.output or (DEFAULT_OUTPUT.with_name("simulator-quick.json") if args.quick else DEFAULT_OUTPUT)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(document, indent=2))
    checks = document["checks"]
    ok = checks["spark_counts_equal_pandas"] and not checks["columns_differing_from_pandas"]
    if checks["spark_counts_equal_reference"] is False:
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
