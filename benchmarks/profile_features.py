"""Profile: where a full fraud_v1 feature build spends its time, stage by stage (Spark's REST API).

Runs ``--builds`` full builds (and with ``--days`` an incremental day after each) of the features benchmark's
input in one JVM, the way ``benchmarks/features.py`` builds them, with Spark's UI on loopback; then reads each
build's stages from the UI's REST API: wall time, task time, task CPU, GC, shuffle records. The last build's
stages are the warm breakdown (the first builds carry class loading and the JIT). Writes
benchmarks/results/features_profile.json.

    flock /tmp/lakestream-spark.lock .venv/bin/python benchmarks/profile_features.py [--builds 5] [--days]

A Java Flight Recorder profile of the same runs: set
``LAKESTREAM__SPARK__JAVA_OPTIONS="-XX:StartFlightRecording=filename=/tmp/features.jfr,settings=profile"``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import time
import urllib.request
from pathlib import Path

import features as bench  # the features benchmark's input and build (this script's folder is on sys.path)

RESULTS = bench.RESULTS
logger = logging.getLogger("benchmarks.profile_features")


def _stages(spark) -> list[dict]:
    """Every stage the application ran so far (REST API of the driver's UI)."""
    context = spark.sparkContext
    url = f"{context.uiWebUrl}/api/v1/applications/{context.applicationId}/stages"
    with urllib.request.urlopen(url, timeout=30) as response:  # the driver's own UI, on loopback
        return json.load(response)


def _seconds(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%Z").replace(tzinfo=dt.UTC).timestamp()


def stage_rows(stages: list[dict]) -> list[dict]:
    """The completed stages, in order, with their times in seconds."""
    rows = []
    for stage in sorted(stages, key=lambda s: s["stageId"]):
        if stage.get("status") != "COMPLETE":
            continue
        rows.append(
            {
                "stage": stage["stageId"],
                "tasks": stage["numTasks"],
                "wall_s": round(_seconds(stage["completionTime"]) - _seconds(stage["submissionTime"]), 3),
                "task_s": round(stage["executorRunTime"] / 1000, 3),
                "task_cpu_s": round(stage["executorCpuTime"] / 1e9, 3),
                "gc_s": round(stage["jvmGcTime"] / 1000, 3),
                "input_records": stage["inputRecords"],
                "shuffle_read_records": stage["shuffleReadRecords"],
                "shuffle_write_records": stage["shuffleWriteRecords"],
                "name": stage["name"][:80],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the builds, read their stages and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=5, help="full builds in one JVM (default 5)")
    parser.add_argument("--days", action="store_true", help="an incremental day after each full build")
    parser.add_argument("--scale", type=int, default=1, help="customers and terminals x scale (default 1)")
    parser.add_argument("--output", type=Path, default=RESULTS / "features_profile.json")
    args = parser.parse_args(argv)
    if args.builds < 1:
        parser.error("--builds must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    from lakestream.config import load_config
    from lakestream.spark import build_spark_session

    input_dir = bench.generate_input(args.scale, 183)
    spark = build_spark_session(
        load_config(),
        "profile-features",
        extra_conf={**bench.SPARK_SESSION_CONF, "spark.ui.enabled": "true"},  # its REST API (loopback only)
    )
    full_out = bench.WORK / "profile_full"
    day_out = bench.WORK / "profile_day"
    for path in (full_out, day_out):
        shutil.rmtree(path, ignore_errors=True)
    last_day = dt.date(2018, 4, 1) + dt.timedelta(days=182)
    builds = []
    try:
        for number in range(1, args.builds + 1):
            seen = {stage["stageId"] for stage in _stages(spark)}
            started = time.perf_counter()
            rows = bench.spark_features(spark, input_dir, full_out, start=None, end=None)
            seconds = time.perf_counter() - started
            stages = stage_rows([s for s in _stages(spark) if s["stageId"] not in seen])
            build = {"build": number, "seconds": round(seconds, 3), "rows": rows, "stages": stages}
            in_stages = sum(stage["wall_s"] for stage in stages)
            logger.info(
                "full build %d/%d: %.2f s, %d stages (%.2f s), outside stages %.2f s",
                number,
                args.builds,
                seconds,
                len(stages),
                in_stages,
                seconds - in_stages,
            )
            if args.days:
                started = time.perf_counter()
                bench.spark_features(spark, input_dir, day_out, start=last_day, end=last_day)
                build["day_seconds"] = round(time.perf_counter() - started, 3)
                logger.info("   one day: %.2f s", build["day_seconds"])
            builds.append(build)
    finally:
        spark.stop()
    last = builds[-1]
    for stage in last["stages"]:
        logger.info(
            "last build, stage %4d: %3d tasks, wall %5.2f s, task %5.2f s, cpu %5.2f s, gc %4.2f s, "
            "shuffle read %d / write %d records",
            stage["stage"],
            stage["tasks"],
            stage["wall_s"],
            stage["task_s"],
            stage["task_cpu_s"],
            stage["gc_s"],
            stage["shuffle_read_records"],
            stage["shuffle_write_records"],
        )
    result = {
        "benchmark": "features_profile",
        "feature_set": "fraud_v1",
        "scale": args.scale,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": [build["seconds"] for build in builds],
        "day_seconds": [build["day_seconds"] for build in builds] if args.days else None,
        "builds": builds,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
