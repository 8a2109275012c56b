"""replay-quarantine: after a fix, quarantined rows that pass move to silver once; the rest stay."""

from __future__ import annotations

from datetime import date

from ingest_harness import LakeHarness, label_line, tx_line
from pyspark.sql import functions as F  # noqa: N812
from pyspark.testing import assertDataFrameEqual

from lakestream.quality.kinds import get_event_kind
from lakestream.quality.replay import ReplayResult, replay_quarantine


def _replay(harness: LakeHarness, kind: str = "transactions", rules: tuple[str, ...] = ()) -> ReplayResult:
    return replay_quarantine(harness.spark, harness.config, kind=get_event_kind(kind), rules=rules)


def _counts(result: ReplayResult) -> tuple[int, int, int, int]:
    return (result.selected_rows, result.promoted_rows, result.duplicate_rows, result.still_quarantined_rows)


def test_raising_max_amount_then_replaying_promotes_the_rows_once(harness: LakeHarness) -> None:
    lines = [
        tx_line(transaction_id=1),
        tx_line(transaction_id=2, tx_amount=50_000.0),
        tx_line(transaction_id=3, tx_amount=-1.0),
        tx_line(transaction_id=4, customer_id="C4"),
    ]
    harness.land("transactions", "2018-04-01", lines)
    harness.ingest()
    harness.clean("transactions", "2018-04-01")
    assert sorted(r.transaction_id for r in harness.quarantine().collect()) == [2, 3, 4]

    harness.reconfigure(transactions__max_amount=100_000.0)
    first = _replay(harness, rules=("amount_out_of_range",))
    silver_after_first = harness.silver()
    quarantine_after_first = harness.quarantine().collect()
    second = _replay(harness, rules=("amount_out_of_range",))

    assert _counts(first) == (2, 1, 0, 1)
    assert _counts(second) == (1, 0, 0, 1)
    assert sorted(r.transaction_id for r in harness.silver().collect()) == [1, 2]
    assert harness.silver().where(F.col("transaction_id") == 2).first().run_id == first.run_id
    assert sorted((r.transaction_id, r.rules) for r in quarantine_after_first) == [
        (3, ["amount_out_of_range"]),
        (4, ["wrong_type"]),
    ]
    assertDataFrameEqual(harness.silver(), silver_after_first)
    assertDataFrameEqual(
        harness.quarantine(), harness.spark.createDataFrame(quarantine_after_first, harness.quarantine().schema)
    )
    harness.assert_nothing_lost()

    # A later re-run of the day with the fixed configuration agrees with the replay.
    rerun = harness.clean("transactions", "2018-04-01")
    assert (rerun.silver_rows, rerun.quarantined_rows) == (2, 2)
    replays = harness.audit().where(F.col("stage") == "replay").orderBy("started_at").collect()
    assert [(r.input_rows, r.silver_rows, r.quarantined_rows) for r in replays] == [(2, 1, 1), (1, 0, 1)]


def test_labels_that_arrived_first_are_promoted_once_their_transactions_are_in_silver(harness: LakeHarness) -> None:
    harness.land("transactions", "2018-04-01", [tx_line(transaction_id=1), tx_line(transaction_id=2)])
    harness.land("fraud_labels", "2018-04-08", [label_line(transaction_id=1), label_line(transaction_id=7)])
    harness.ingest("transactions")
    harness.ingest("fraud_labels")
    harness.clean("fraud_labels", "2018-04-08")  # before the transactions: nothing is known yet
    assert harness.silver("fraud_labels").count() == 0

    harness.clean("transactions", "2018-04-01")
    result = _replay(harness, "fraud_labels", rules=("unknown_transaction",))

    assert _counts(result) == (2, 1, 0, 1)
    assert [r.transaction_id for r in harness.silver("fraud_labels").collect()] == [1]
    assert [(r.transaction_id, r.reason) for r in harness.quarantine("fraud_labels").collect()] == [
        (7, "no silver transaction 7 on 2018-04-01")
    ]
    harness.assert_nothing_lost("fraud_labels")


def test_a_replayed_copy_of_a_silver_row_is_recorded_as_a_duplicate(harness: LakeHarness) -> None:
    harness.land("transactions", "2018-04-01", [tx_line(transaction_id=1)])
    harness.land("transactions", "2018-04-10", [tx_line(transaction_id=1)], name="resent.json")  # 9 days late
    harness.ingest()
    harness.clean("transactions", "2018-04-01")
    harness.clean("transactions", "2018-04-10")
    assert [r.rules for r in harness.quarantine().collect()] == [["late_beyond_allowed_lateness"]]

    harness.reconfigure(allowed_lateness_days=10)
    result = _replay(harness)

    assert _counts(result) == (1, 0, 1, 0)
    kept = harness.silver().first().record_id
    assert [(r.transaction_id, r.kept_record_id, r.process_date) for r in harness.duplicates().collect()] == [
        (1, kept, date(2018, 4, 1))
    ]
    assert harness.quarantine().count() == 0
    harness.assert_nothing_lost()
