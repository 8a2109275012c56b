"""Every bad input the ingestion claims to handle: fed as landed files, traced to where it went.

One isolated lake for the module: each scenario owns its own silver day (10 days apart, so lateness windows
never mix scenarios), all files are ingested to bronze and cleaned to silver once, then each test checks one
scenario: which ids reached silver, which were quarantined with exactly which rules, which were recorded as
duplicates, and that the day's lines add up: lines landed = silver + quarantined + duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from ingest_harness import DROP, LakeHarness, label_line, tx_line
from pyspark.sql import DataFrame
from pyspark.sql import functions as F  # noqa: N812


@dataclass(frozen=True)
class LandedFile:
    """One landed file: the landing day folder (default: the scenario's day), its lines, a final newline."""

    lines: tuple[str, ...]
    name: str = "part-0.json"
    landing_day: str | None = None
    newline: bool = True


@dataclass(frozen=True)
class Scenario:
    """A bad input, the day that owns it and where each line must end up."""

    kind: str
    day: str
    files: tuple[LandedFile, ...]
    silver: tuple[int, ...] = ()
    quarantined: tuple[tuple[int | None, tuple[str, ...]], ...] = ()
    duplicates: tuple[int, ...] = ()
    unknown_fields: tuple[str, ...] = ()

    @property
    def lines(self) -> int:
        return sum(len(f.lines) for f in self.files)


def _tx(transaction_id: object, day: str, **overrides: object) -> str:
    return tx_line(transaction_id=transaction_id, tx_datetime=f"{day} 10:00:00", **overrides)


def _raw_amount(transaction_id: int, day: str, amount_text: str) -> str:
    """A transaction line whose amount is written as is (NaN, 1e400: not producible by json.dumps)."""
    line = json.loads(_tx(transaction_id, day))
    line["tx_amount"] = "__AMOUNT__"
    return json.dumps(line).replace('"__AMOUNT__"', amount_text)


SCENARIOS: dict[str, Scenario] = {
    "malformed_json": Scenario(
        "transactions",
        "2018-04-01",
        (LandedFile((_tx(100, "2018-04-01"), '{"transaction_id": 101, "tx_dat', "not json at all", "[1, 2]", "")),),
        silver=(100,),
        quarantined=tuple((None, ("malformed_json",)) for _ in range(4)),
    ),
    "wrong_types": Scenario(
        "transactions",
        "2018-04-11",
        (
            LandedFile(
                (
                    _tx(110, "2018-04-11", customer_id="C5"),
                    _tx(111, "2018-04-11", tx_amount="12.5"),
                    _tx(112, "2018-04-11", terminal_id=[7]),
                    _tx("113", "2018-04-11"),
                    _tx(114, "2018-04-11"),
                )
            ),
        ),
        silver=(114,),
        quarantined=(
            (110, ("wrong_type",)),
            (111, ("wrong_type",)),
            (112, ("wrong_type",)),
            (None, ("wrong_type",)),
        ),
    ),
    "missing_fields": Scenario(
        "transactions",
        "2018-04-21",
        (
            LandedFile(
                (
                    _tx(120, "2018-04-21", terminal_id=DROP),
                    _tx(121, "2018-04-21", customer_id=None),
                    "{}",
                    _tx(122, "2018-04-21"),
                )
            ),
        ),
        silver=(122,),
        quarantined=(
            (120, ("missing_required_field",)),
            (121, ("missing_required_field",)),
            (None, ("missing_required_field",)),
        ),
    ),
    # Decision: extra keys are accepted and dropped from silver; the audit records rows and key names.
    "unknown_extra_fields": Scenario(
        "transactions",
        "2018-05-01",
        (LandedFile((_tx(130, "2018-05-01", channel="web", extra={"a": 1}), _tx(131, "2018-05-01"))),),
        silver=(130, 131),
        unknown_fields=("channel", "extra"),
    ),
    "bad_amounts": Scenario(
        "transactions",
        "2018-05-11",
        (
            LandedFile(
                (
                    _tx(140, "2018-05-11", tx_amount=-5.0),
                    _tx(141, "2018-05-11", tx_amount=0),
                    _raw_amount(142, "2018-05-11", "NaN"),
                    _tx(143, "2018-05-11", tx_amount=1e12),
                    _raw_amount(144, "2018-05-11", "1e400"),
                    _tx(145, "2018-05-11", tx_amount=10_000.0),
                    _tx(146, "2018-05-11", tx_amount=10_000.01),
                )
            ),
        ),
        silver=(145,),
        quarantined=(
            (140, ("amount_out_of_range",)),
            (141, ("amount_out_of_range",)),
            (142, ("amount_not_finite",)),
            (143, ("amount_out_of_range",)),
            (144, ("amount_not_finite",)),
            (146, ("amount_out_of_range",)),
        ),
    ),
    "bad_timestamps": Scenario(
        "transactions",
        "2018-05-21",
        (
            LandedFile(
                (
                    tx_line(transaction_id=150, tx_datetime="2099-06-01 00:00:00"),
                    tx_line(transaction_id=151, tx_datetime="1970-01-01 00:00:00"),
                    tx_line(transaction_id=152, tx_datetime="2018-13-45 10:00:00"),
                    tx_line(transaction_id=153, tx_datetime="2018-05-21T10:00:00Z"),
                    tx_line(transaction_id=154, tx_datetime="3000-01-01 00:00:00"),
                    tx_line(transaction_id=155, tx_datetime="2018-05-21 23:59:59"),
                )
            ),
        ),
        silver=(155,),
        quarantined=(
            (150, ("timestamp_after_landing",)),
            (151, ("late_beyond_allowed_lateness", "timestamp_out_of_bounds")),
            (152, ("invalid_timestamp",)),
            (153, ("invalid_timestamp",)),
            (154, ("timestamp_after_landing", "timestamp_out_of_bounds")),
        ),
    ),
    "duplicate_transaction_ids": Scenario(
        "transactions",
        "2018-05-31",
        (
            LandedFile(
                (_tx(160, "2018-05-31"), _tx(160, "2018-05-31"), _tx(161, "2018-05-31", tx_amount=1.0)), name="a.json"
            ),
            LandedFile((_tx(160, "2018-05-31"), _tx(161, "2018-05-31", tx_amount=2.0)), name="b.json"),
        ),
        silver=(160, 161),
        quarantined=((161, ("duplicate_transaction_id",)),),
        duplicates=(160, 160),
    ),
    "ids_out_of_range": Scenario(
        "transactions",
        "2018-06-10",
        (
            LandedFile(
                (
                    _tx(170, "2018-06-10", customer_id=-1),
                    _tx(171, "2018-06-10", terminal_id=10**10),
                    _tx(-5, "2018-06-10"),
                )
            ),
        ),
        quarantined=(
            (170, ("customer_id_out_of_range",)),
            (171, ("terminal_id_out_of_range",)),
            (-5, ("transaction_id_out_of_range",)),
        ),
    ),
    "empty_file": Scenario(
        "transactions",
        "2018-06-20",
        (LandedFile((), name="empty.json"), LandedFile((_tx(180, "2018-06-20"),))),
        silver=(180,),
    ),
    "truncated_last_line": Scenario(
        "transactions",
        "2018-06-30",
        (
            LandedFile(
                (
                    _tx(190, "2018-06-30"),
                    _tx(191, "2018-06-30"),
                    '{"transaction_id": 192, "tx_datetime": "2018-06-30 10:0',
                ),
                newline=False,
            ),
        ),
        silver=(190, 191),
        quarantined=((None, ("malformed_json",)),),
    ),
    "late_events": Scenario(
        "transactions",
        "2018-07-10",
        (
            LandedFile((_tx(200, "2018-07-10"),), landing_day="2018-07-12"),  # 2 days late: allowed
            LandedFile((_tx(201, "2018-06-25"), _tx(202, "2018-07-10"))),  # 15 days late: not allowed
        ),
        silver=(200, 202),
        quarantined=((201, ("late_beyond_allowed_lateness",)),),
    ),
    "label_for_unknown_transaction": Scenario(
        "fraud_labels",
        "2018-04-08",
        (
            LandedFile(
                (
                    label_line(transaction_id=100, tx_datetime="2018-04-01 10:00:00"),
                    label_line(transaction_id=999, tx_datetime="2018-04-01 10:00:00"),
                    label_line(transaction_id=114, tx_datetime="2018-04-01 10:00:00"),  # 114 is on 04-11
                )
            ),
        ),
        silver=(100,),
        quarantined=((999, ("unknown_transaction",)), (114, ("unknown_transaction",))),
    ),
    "bad_labels": Scenario(
        "fraud_labels",
        "2018-06-05",
        (
            LandedFile(
                (
                    label_line(
                        transaction_id=114,
                        tx_datetime="2018-04-11 10:00:00",
                        reported_at="2018-06-05 10:00:00",
                        tx_fraud=2,
                    ),
                    label_line(
                        transaction_id=145,
                        tx_datetime="2018-05-11 10:00:00",
                        reported_at="2018-06-05 10:00:00",
                        tx_fraud_scenario=9,
                    ),
                    label_line(
                        transaction_id=122, tx_datetime="2018-04-21 10:00:00", reported_at="2018-04-20 10:00:00"
                    ),
                    label_line(
                        transaction_id=160, tx_datetime="2018-05-31 10:00:00", reported_at="2018-06-05 10:00:00"
                    ),
                    label_line(
                        transaction_id=160, tx_datetime="2018-05-31 10:00:00", reported_at="2018-06-05 10:00:00"
                    ),
                )
            ),
        ),
        silver=(160,),
        quarantined=(
            (114, ("invalid_fraud_flag",)),
            (145, ("unknown_fraud_scenario",)),
            (122, ("late_beyond_allowed_lateness", "reported_before_transaction")),
        ),
        duplicates=(160,),
    ),
}


@pytest.fixture(scope="module")
def lake(module_harness_factory: Callable[..., LakeHarness]) -> LakeHarness:
    """Land every scenario, ingest both kinds to bronze, clean transactions then labels over all days."""
    harness = module_harness_factory()
    for name, scenario in SCENARIOS.items():
        for landed in scenario.files:
            harness.land(
                scenario.kind,
                landed.landing_day or scenario.day,
                landed.lines,
                name=f"{name}-{landed.name}",
                newline=landed.newline,
            )
    harness.ingest("transactions")
    harness.ingest("fraud_labels")
    harness.clean("transactions", "2018-04-01", "2018-07-10")
    harness.clean("fraud_labels", "2018-04-08", "2018-06-05")
    return harness


def _owned_by(frame: DataFrame, scenario: Scenario, column: str) -> DataFrame:
    return frame.where(F.col(column) == F.lit(scenario.day).cast("date"))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_bad_input_goes_where_it_belongs(lake: LakeHarness, name: str) -> None:
    scenario = SCENARIOS[name]
    kind = lake.kind(scenario.kind)
    silver = _owned_by(lake.silver(scenario.kind), scenario, kind.partition_column)
    quarantined = _owned_by(lake.quarantine(scenario.kind), scenario, "process_date")
    duplicates = _owned_by(lake.duplicates(scenario.kind), scenario, "process_date")

    assert sorted(row.transaction_id for row in silver.collect()) == sorted(scenario.silver)
    got = sorted(((row.transaction_id, tuple(sorted(row.rules))) for row in quarantined.collect()), key=str)
    assert got == sorted(scenario.quarantined, key=str)
    assert sorted(row.transaction_id for row in duplicates.collect()) == sorted(scenario.duplicates)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_lines_landed_add_up_to_silver_quarantine_and_duplicates(lake: LakeHarness, name: str) -> None:
    scenario = SCENARIOS[name]
    audit = (
        lake.audit()
        .where(
            (F.col("stage") == "silver")
            & (F.col("kind") == scenario.kind)
            & (F.col("process_date") == F.lit(scenario.day).cast("date"))
        )
        .collect()
    )
    assert len(audit) == 1
    row = audit[0]
    expected = (
        scenario.lines,
        len(scenario.silver),
        len(scenario.quarantined),
        len(scenario.duplicates),
    )
    assert (row.input_rows, row.silver_rows, row.quarantined_rows, row.duplicate_rows) == expected
    assert row.input_rows == row.silver_rows + row.quarantined_rows + row.duplicate_rows
    assert row.unknown_fields == list(scenario.unknown_fields)
    assert row.unknown_field_rows == (1 if scenario.unknown_fields else 0)


def test_quarantine_keeps_the_raw_line_and_its_lineage(lake: LakeHarness) -> None:
    row = lake.quarantine().where(F.col("transaction_id") == 143).first()
    assert json.loads(row.value)["tx_amount"] == 1e12
    assert row.reason == "tx_amount 1.0E12 is outside (0, 10000]"
    assert row.source_file.endswith("/date=2018-05-11/bad_amounts-part-0.json")
    assert str(row.landing_date) == "2018-05-11"
    bronze = lake.bronze().where(F.col("record_id") == row.record_id).first()
    assert (bronze.value, bronze.batch_id) == (row.value, row.bronze_batch_id)


def test_late_event_reaches_its_event_date_partition(lake: LakeHarness) -> None:
    row = lake.silver().where(F.col("transaction_id") == 200).first()
    assert (str(row.tx_date), str(row.landing_date)) == ("2018-07-10", "2018-07-12")


@pytest.mark.parametrize("kind", ["transactions", "fraud_labels"])
def test_every_bronze_row_is_in_exactly_one_place(lake: LakeHarness, kind: str) -> None:
    lake.assert_nothing_lost(kind)
    per_batch_bronze = {r.batch_id: r["count"] for r in lake.bronze(kind).groupBy("batch_id").count().collect()}
    placed = (
        lake.silver(kind)
        .select("bronze_batch_id")
        .unionByName(lake.quarantine(kind).select("bronze_batch_id"))
        .unionByName(lake.duplicates(kind).select("bronze_batch_id"))
    )
    per_batch_placed = {r.bronze_batch_id: r["count"] for r in placed.groupBy("bronze_batch_id").count().collect()}
    assert per_batch_placed == per_batch_bronze
