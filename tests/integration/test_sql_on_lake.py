"""SQL on the lake: tables by name from a second JVM while a stream runs, and the documented queries."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ingest_harness import LakeHarness, label_line, tx_line
from pyspark.sql import SparkSession

from lakestream.io.delta import is_delta_table
from lakestream.spark import lake_tables

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"


def documented_queries() -> list[str]:
    """Every ```sql block of docs/sql.md."""
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.fixture(scope="module")
def lake(module_harness_factory: Callable[..., LakeHarness]) -> LakeHarness:
    """Two days of transactions (one late, one re-sent, one quarantined) and their labels, cleaned."""
    harness = module_harness_factory()
    harness.land(
        "transactions",
        "2018-04-01",
        [
            tx_line(transaction_id=1, terminal_id=7),
            tx_line(transaction_id=2, terminal_id=7),
            tx_line(transaction_id=3, terminal_id=8),
            tx_line(transaction_id=3, terminal_id=8),
            tx_line(transaction_id=4, tx_amount=-2.0),
        ],
    )
    harness.land(
        "transactions",
        "2018-04-03",
        [tx_line(transaction_id=5, terminal_id=8, tx_datetime="2018-04-02 09:00:00")],
    )
    harness.land("fraud_labels", "2018-04-08", [label_line(transaction_id=1, tx_fraud_scenario=2)])
    harness.ingest("transactions")
    harness.ingest("fraud_labels")
    harness.clean("transactions", "2018-04-01", "2018-04-02")
    harness.clean("fraud_labels", "2018-04-08")
    return harness


def _by_path(query: str, harness: LakeHarness) -> str:
    """The query with each database.table name replaced by its Delta path (the session catalog is shared)."""
    for database, table, path in lake_tables(harness.config):
        query = re.sub(rf"\b{database}\.{table}\b", f"delta.`{path}`", query)
    return query


def _lakestream(harness: LakeHarness, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakestream.cli", *args],
        cwd=harness.config.home,
        env=harness.environ(),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_a_second_jvm_queries_tables_by_name_while_a_stream_writes(spark: SparkSession, lake: LakeHarness) -> None:
    ticks = lake.config.table_path("streaming", "rate_ticks")
    query = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", 5)
        .load()
        .writeStream.format("delta")
        .option("checkpointLocation", str(lake.config.checkpoint_path("it-rate-ticks")))
        .trigger(processingTime="1 second")
        .queryName("it-rate-ticks")
        .start(str(ticks))
    )
    try:
        deadline = time.monotonic() + 120
        while not is_delta_table(ticks) and time.monotonic() < deadline:  # wait for the first commit
            time.sleep(0.5)
        assert is_delta_table(ticks)

        result = _lakestream(
            lake,
            "sql",
            "--format",
            "json",
            "SELECT (SELECT count(*) FROM silver.transactions) AS transactions, "
            "(SELECT count(*) FROM quarantine.records) AS quarantined, "
            "(SELECT count(*) > 0 FROM streaming.rate_ticks) AS stream_has_rows",
        )

        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads(result.stdout) == [{"transactions": 4, "quarantined": 1, "stream_has_rows": True}]
        assert query.isActive
        assert query.exception() is None
    finally:
        query.stop()


def test_documented_queries_are_there() -> None:
    assert len(documented_queries()) >= 5


@pytest.mark.parametrize("index", range(len(documented_queries())))
def test_each_documented_query_runs_on_the_lake(spark: SparkSession, lake: LakeHarness, index: int) -> None:
    query = documented_queries()[index]
    rows = spark.sql(_by_path(query, lake)).collect()
    assert rows, f"documented query {index} returned nothing on the test lake:\n{query}"


def test_fraud_rate_per_day_query_gives_the_expected_rates(spark: SparkSession, lake: LakeHarness) -> None:
    query = next(q for q in documented_queries() if "AS fraud_rate" in q and "GROUP BY t.tx_date" in q)
    rows = [
        (str(r.tx_date), r.transactions, r.frauds, r.fraud_rate) for r in spark.sql(_by_path(query, lake)).collect()
    ]
    assert rows == [("2018-04-01", 3, 1, pytest.approx(0.3333)), ("2018-04-02", 1, 0, 0.0)]
