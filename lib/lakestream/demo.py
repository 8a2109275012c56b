"""`make demo`: start the local stack and run the pipeline through it, with progress and a summary.

For now the demo runs the smoke pipeline (Delta -> Kafka -> Structured Streaming -> Delta -> MLflow) as a
real spark-submit job and queries the result by name with Spark SQL; later stages join as they land.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable
from typing import Any

from lakestream.config.models import LakestreamConfig
from lakestream.errors import LakestreamError
from lakestream.platform.kafka_broker import start_broker
from lakestream.spark import build_spark_session, build_submit_command, submit_environment

logger = logging.getLogger(__name__)


def _run_job(config: LakestreamConfig, script: str, *args: str) -> dict[str, Any]:
    command = build_submit_command(config, config.home / script, args)
    result = subprocess.run(command, env=submit_environment(config), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LakestreamError(
            f"{script} failed with exit code {result.returncode}:\n{result.stderr[-3000:]}\n"
            f"re-run it alone with `lakestream submit {script} {' '.join(args)}` to investigate"
        )
    last = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(last[-1]) if last else {}


def run_demo(config: LakestreamConfig, *, say: Callable[[str], None] = print) -> int:
    """Run every demo stage in order; print progress and a closing summary."""
    started = time.monotonic()
    summary: list[tuple[str, str]] = []

    def stage(title: str) -> float:
        say(f"\n==> {title}")
        return time.monotonic()

    t = stage("1. local stack: Kafka broker (KRaft, 127.0.0.1)")
    status = start_broker(config)
    summary.append(("kafka broker", f"{status.address} pid {status.pid} ({time.monotonic() - t:.0f}s)"))
    say(status.describe())

    t = stage("2. smoke pipeline (spark-submit jobs/smoke_pipeline.py): Delta -> Kafka -> stream -> Delta -> MLflow")
    smoke = _run_job(config, "jobs/smoke_pipeline.py", "--events", "1000")
    summary.append(
        (
            "smoke pipeline",
            f"{smoke['events_landed']}/{smoke['events_written']} events round-tripped ({time.monotonic() - t:.0f}s)",
        )
    )
    summary.append(("mlflow run", f"{smoke['mlflow_run_id']} in {config.tracking_uri}"))

    t = stage("3. SQL over the lake by table name")
    spark = build_spark_session(config, "demo-sql", register_tables=True)
    try:
        query = (
            "SELECT topic, count(*) AS events, min(offset) AS first_offset, max(offset) AS last_offset "
            "FROM smoke.events_from_kafka GROUP BY topic"
        )
        say(f'lakestream sql "{query}"')
        spark.sql(query).show(truncate=False)
    finally:
        spark.stop()
    summary.append(("sql", f"smoke.events, smoke.events_from_kafka readable by name ({time.monotonic() - t:.0f}s)"))

    say(f"\n==> demo finished in {time.monotonic() - started:.0f}s")
    width = max(len(name) for name, _ in summary)
    for name, value in summary:
        say(f"  {name:<{width}}  {value}")
    say(
        "\nwhere to look:\n"
        '  lakestream sql "SHOW TABLES IN smoke"          query the lake by name\n'
        "  lakestream mlflow start                          MLflow UI on "
        f"http://{config.mlflow.server.host}:{config.mlflow.server.port}\n"
        "  lakestream kafka status                          the broker and its topics\n"
        "  make stop                                        stop everything; make clean removes all state"
    )
    return 0
