"""Benchmark: how cost grows with data, on local mode and on the local standalone cluster.

For 1x, 4x and 16x the book's default dataset (customers *and* terminals multiplied, same 183 days: the per-terminal
traffic stays the same and the transactions grow with the customers), each stage is a real `lakestream submit` of
its job, timed from outside, with the peak resident memory of the driver JVM and of every executor JVM sampled
from /proc every half second:

- generation: jobs/generate_transactions.py (the distributed simulator, ground truth only);
- feature build: jobs/build_features.py, fraud_v1 over the full history (silver is derived from the ground truth
  first, in this process, untimed);
- training: jobs/train_model.py --mode spark (xgboost.spark, 2 workers) on the book's split (7 training days,
  which grow with the data like everything else).

Modes: `local` (local[2]) and `cluster` (`lakestream cluster start`: a master and two 1-core workers on loopback).
The same 2 cores serve both, so compare ratios. Writes benchmarks/results/scale.json: seconds, rows, rows/s, peak
driver and executor RSS per stage, and the growth ratios (time of 4x the data over time of 1x: the goal is at most
4.4, i.e. linear).

Usage: ``python benchmarks/scale.py [--sizes 1,4,16] [--modes local,cluster] [--keep]``. Takes about an hour for
the defaults on 2 cores; needs ~15 GB of disk under var/bench-scale (removed unless --keep).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from lakestream.config import load_config
from lakestream.logs import configure_logging

logger = logging.getLogger("benchmarks.scale")

HERE = Path(__file__).resolve().parent
HOME = HERE.parent
DEFAULT_OUTPUT = HERE / "results" / "scale.json"
BASE_CUSTOMERS, BASE_TERMINALS, DAYS = 5000, 10000, 183
GROWTH_GOAL = 4.4  # 4x the data in at most 4.4x the time


class MemorySampler:
    """Peak RSS of the JVMs that appear while a stage runs: the driver (SparkSubmit) and executors."""

    def __init__(self) -> None:
        self.before = {p.pid for p in psutil.process_iter()}
        self.peaks: dict[int, tuple[str, int]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for process in psutil.process_iter(["pid", "name", "cmdline"]):
                if process.pid in self.before or process.info["name"] != "java":
                    continue
                cmdline = " ".join(process.info["cmdline"] or [])
                role = (
                    "executor"
                    if "CoarseGrainedExecutorBackend" in cmdline
                    else "driver"
                    if "SparkSubmit" in cmdline
                    else None
                )
                if role is None:
                    continue
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue
                previous = self.peaks.get(process.pid, (role, 0))[1]
                self.peaks[process.pid] = (role, max(previous, rss))
            time.sleep(0.5)

    def __enter__(self) -> MemorySampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    def peak_mb(self, role: str) -> float | None:
        values = [rss for kind, rss in self.peaks.values() if kind == role]
        return round(max(values) / 2**20, 1) if values else None

    def count(self, role: str) -> int:
        return sum(1 for kind, _ in self.peaks.values() if kind == role)


def run_stage(env: dict[str, str], master: str, script: str, *args: str) -> dict[str, Any]:
    """One timed `lakestream submit`; its JSON summary plus seconds and peak memory."""
    command = [sys.executable, "-m", "lakestream.cli", "submit", "--master", master, script, *args]
    started = time.perf_counter()
    with MemorySampler() as memory:
        result = subprocess.run(command, cwd=HOME, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{result.stderr[-4000:]}")
    summary = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    return {
        "seconds": round(seconds, 1),
        "peak_driver_rss_mb": memory.peak_mb("driver"),
        "peak_executor_rss_mb": memory.peak_mb("executor"),
        "executors": memory.count("executor"),
        "summary": summary,
    }


def write_silver(state: Path) -> int:
    """Silver-shaped tables from the ground truth (what the clean jobs keep), in this process; the row count."""
    from lakestream.simulate.landing import write_silver_from_truth
    from lakestream.spark import build_spark_session

    config = load_config(overrides={"paths.state_dir": str(state)})
    spark = build_spark_session(config, "bench-scale-silver")
    try:
        return write_silver_from_truth(spark, config)
    finally:
        spark.stop()


def run_size(mode: str, size: int, master: str, root: Path) -> dict[str, Any]:
    """Every stage at one size and mode."""
    state = root / f"{mode}-{size}x"
    shutil.rmtree(state, ignore_errors=True)
    env = dict(os.environ)
    env.update(
        {
            "LAKESTREAM__PATHS__STATE_DIR": str(state),
            "LAKESTREAM__MLFLOW__REGISTERED_MODEL": f"bench-scale-{mode}-{size}",
            "LAKESTREAM__TRAINING__XGBOOST__NUM_WORKERS": "2",
        }
    )
    customers, terminals = BASE_CUSTOMERS * size, BASE_TERMINALS * size
    logger.info("%s %dx: %d customers, %d terminals, %d days", mode, size, customers, terminals, DAYS)
    stages: dict[str, Any] = {}
    stages["generation"] = run_stage(
        env, master, "jobs/generate_transactions.py",
        "--customers", str(customers), "--terminals", str(terminals), "--days", str(DAYS), "--output", "truth",
    )  # fmt: skip
    rows = int(stages["generation"]["summary"]["transactions"])
    silver_started = time.perf_counter()
    silver_rows = write_silver(state)
    prepare_seconds = round(time.perf_counter() - silver_started, 1)
    stages["feature_build"] = run_stage(
        env,
        master,
        "jobs/build_features.py",
        "--feature-set",
        "fraud_v1",
        "--start",
        "2018-04-01",
        "--end",
        "2018-09-30",
    )
    stages["training"] = run_stage(
        env, master, "jobs/train_model.py", "--feature-set", "fraud_v1", "--mode", "spark", "--no-register"
    )
    for name, stage in stages.items():
        stage["rows"] = rows if name != "training" else None
        if stage["rows"]:
            stage["rows_per_second"] = round(stage["rows"] / stage["seconds"])
        summary = stage.pop("summary")
        if name == "training":
            stage["test"] = summary.get("test")
            stage["fit_seconds"] = summary.get("fit_seconds")
            stage["train_rows"] = (summary.get("test") or {}).get("transactions")
        logger.info("%s %dx %s: %.1f s, driver %s MB, executors %s MB", mode, size, name, stage["seconds"],
                    stage["peak_driver_rss_mb"], stage["peak_executor_rss_mb"])  # fmt: skip
    return {
        "customers": customers,
        "terminals": terminals,
        "transactions": rows,
        "silver_rows": silver_rows,
        "silver_prepare_seconds": prepare_seconds,
        "stages": stages,
    }


def growth(results: dict[str, dict[str, Any]], sizes: Sequence[int]) -> dict[str, Any]:
    """Time ratio of each 4x step per stage, and whether it stays within the goal."""
    ratios: dict[str, Any] = {}
    for small, large in itertools.pairwise(sizes):
        a, b = results.get(f"{small}x"), results.get(f"{large}x")
        if not a or not b:
            continue
        step = {}
        for stage in b["stages"]:
            data_ratio = b["transactions"] / a["transactions"]
            time_ratio = b["stages"][stage]["seconds"] / a["stages"][stage]["seconds"]
            step[stage] = {
                "data_ratio": round(data_ratio, 2),
                "time_ratio": round(time_ratio, 2),
                "within_goal": time_ratio <= GROWTH_GOAL * data_ratio / 4,
            }
        ratios[f"{large}x_vs_{small}x"] = step
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16", help="dataset multiples (default 1,4,16)")
    parser.add_argument("--modes", default="local,cluster", help="local and/or cluster (default both)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--keep", action="store_true", help="keep the generated lakes under var/bench-scale")
    args = parser.parse_args(argv)
    configure_logging("INFO")
    sizes = [int(s) for s in args.sizes.split(",")]
    root = HOME / "var" / "bench-scale"
    config = load_config(overrides={"paths.state_dir": str(root / "cluster-services")})
    results: dict[str, Any] = json.loads(args.output.read_text()) if args.output.exists() else {}
    results.update(
        {
            "benchmark": "scale",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "growth_goal": f"4x the data in at most {GROWTH_GOAL}x the time, per stage",
        }
    )
    for mode in args.modes.split(","):
        if mode == "cluster":
            from lakestream.platform.spark_cluster import master_url, start_cluster, stop_cluster

            start_cluster(config)
            master = master_url(config)
        else:
            master = "local[2]"
        try:
            per_size = results.setdefault(mode, {}).setdefault("sizes", {})
            for size in sizes:
                per_size[f"{size}x"] = run_size(mode, size, master, root)
                results[mode]["growth"] = growth(per_size, sorted(int(k[:-1]) for k in per_size))
                args.output.parent.mkdir(parents=True, exist_ok=True)
                args.output.write_text(json.dumps(results, indent=2) + "\n")
        finally:
            if mode == "cluster":
                stop_cluster(config)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({mode: results[mode].get("growth") for mode in args.modes.split(",")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
