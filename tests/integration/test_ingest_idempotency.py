"""Retries and backfills are safe: bronze never duplicates, a silver day re-run replaces exactly that day."""

from __future__ import annotations

import pytest
from ingest_harness import LakeHarness, tx_line
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F  # noqa: N812
from pyspark.testing import assertDataFrameEqual

from lakestream.io.delta import write_delta

RUN_COLUMNS = ("run_id", "quarantined_at", "recorded_at")


def _content(frame: DataFrame) -> DataFrame:
    """A table's rows without what changes from run to run (run id, timestamps)."""
    return frame.drop(*[column for column in RUN_COLUMNS if column in frame.columns])


def test_bronze_rerun_only_picks_up_new_files(harness: LakeHarness) -> None:
    harness.land("transactions", "2018-04-01", [tx_line(transaction_id=1), tx_line(transaction_id=2)], name="a.json")
    first = harness.ingest()
    again = harness.ingest()
    harness.land("transactions", "2018-04-01", [], name="empty.json")
    harness.land("transactions", "2018-04-02", [tx_line(transaction_id=3)], name="b.json")
    later = harness.ingest()

    assert (first.rows, first.files, again.rows, again.batches, later.rows, later.files) == (2, 1, 0, 0, 1, 1)
    rows = sorted((r.value, str(r.landing_date), r.source_file.rsplit("/", 2)[-2]) for r in harness.bronze().collect())
    assert rows == [
        (tx_line(transaction_id=1), "2018-04-01", "date=2018-04-01"),
        (tx_line(transaction_id=2), "2018-04-01", "date=2018-04-01"),
        (tx_line(transaction_id=3), "2018-04-02", "date=2018-04-02"),
    ]
    audit = harness.audit().where(F.col("stage") == "bronze").orderBy("started_at").collect()
    assert [(r.input_rows, r.source_files) for r in audit] == [(2, 1), (0, 0), (1, 1)]


def test_rerunning_a_day_gives_identical_tables_and_leaves_other_days_alone(harness: LakeHarness) -> None:
    day1 = [
        tx_line(transaction_id=1),
        tx_line(transaction_id=1),
        tx_line(transaction_id=2, tx_amount=-1.0),
        "{oops",
    ]
    harness.land("transactions", "2018-04-01", day1)
    harness.land("transactions", "2018-04-02", [tx_line(transaction_id=9, tx_datetime="2018-04-02 08:00:00")])
    harness.ingest()
    harness.clean("transactions", "2018-04-01", "2018-04-02")
    before = [_content(frame) for frame in (harness.silver(), harness.quarantine(), harness.duplicates())]
    day2_run = harness.silver().where(F.col("tx_date") == "2018-04-02").first().run_id

    rerun = harness.clean("transactions", "2018-04-01")
    after = [_content(frame) for frame in (harness.silver(), harness.quarantine(), harness.duplicates())]

    for old, new in zip(before, after, strict=True):
        assertDataFrameEqual(new, old)
    assert harness.silver().where(F.col("tx_date") == "2018-04-02").first().run_id == day2_run
    assert (rerun.input_rows, rerun.silver_rows, rerun.quarantined_rows, rerun.duplicate_rows) == (4, 1, 2, 1)
    harness.assert_nothing_lost()


def test_a_late_file_joins_its_event_day_when_that_day_is_recleaned(harness: LakeHarness) -> None:
    harness.land("transactions", "2018-04-01", [tx_line(transaction_id=1)])
    harness.ingest()
    harness.clean("transactions", "2018-04-01")
    harness.land("transactions", "2018-04-03", [tx_line(transaction_id=2)], name="late.json")  # event 04-01
    harness.ingest()

    landing_day = harness.clean("transactions", "2018-04-03")
    assert landing_day.input_rows == 0  # the late row belongs to 04-01, not to the day it landed
    backfill = harness.clean("transactions", "2018-04-01")

    assert (backfill.input_rows, backfill.silver_rows) == (2, 2)
    silver = harness.silver().select(
        "transaction_id", F.col("tx_date").cast("string"), F.col("landing_date").cast("string")
    )
    assert sorted(tuple(r) for r in silver.collect()) == [
        (1, "2018-04-01", "2018-04-01"),
        (2, "2018-04-01", "2018-04-03"),
    ]
    harness.assert_nothing_lost()


def test_silver_constraints_reject_rows_the_rules_would_never_let_through(harness: LakeHarness) -> None:
    harness.land("transactions", "2018-04-01", [tx_line(transaction_id=1)])
    harness.ingest()
    harness.clean("transactions", "2018-04-01")
    good = harness.silver()
    path = harness.kind("transactions").silver.path(harness.config)
    with pytest.raises((Py4JJavaError, PySparkException), match="tx_amount_positive_finite"):
        write_delta(good.withColumn("tx_amount", F.lit(-1.0)), path)
    with pytest.raises((Py4JJavaError, PySparkException), match="tx_date_of_tx_datetime"):
        write_delta(good.withColumn("tx_date", F.date_add("tx_date", 1)), path)
    with pytest.raises((Py4JJavaError, PySparkException), match="customer_id"):
        write_delta(good.withColumn("customer_id", F.lit(None).cast("bigint")), path)
    assertDataFrameEqual(harness.silver(), good)
