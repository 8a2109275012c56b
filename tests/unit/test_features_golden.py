"""Golden tests: the Spark engine equals a brute-force Python reference on tiny hand-made data.

The data sits on every edge: rows exactly w days before (outside), one second inside, same-second ties,
labels reported before/after the delay, empty windows, customers with a single transaction.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import random
from pathlib import Path
from typing import Any

import pytest
from feature_reference import reference_features
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from lakestream.features import batch
from lakestream.features.batch import (
    PAIR_JOIN_MAX_DAYS,
    _units_sql,
    add_row_features,
    compute_features,
    utc_session,
)
from lakestream.features.spec import Aggregation, FeatureSetSpec, feature_set_path, load_feature_set

FEATURES_DIR = Path(__file__).resolve().parents[2] / "conf" / "features"
T0 = dt.datetime(2018, 4, 1)
DAY = 86_400
SCHEMA = (
    "transaction_id BIGINT, tx_datetime TIMESTAMP, customer_id BIGINT, terminal_id BIGINT, "
    "tx_amount DOUBLE, tx_fraud INT, reported_at TIMESTAMP"
)

KITCHEN_SINK = FeatureSetSpec.model_validate(
    {
        "name": "kitchen_sink",
        "version": 1,
        "label_delay_days": 7,
        "row_features": [
            {"name": "WE", "kind": "is_weekend"},
            {"name": "NIGHT", "kind": "is_night", "night_end_hour": 6},
            {"name": "HOUR", "kind": "hour_of_day"},
        ],
        "windows": [
            {
                "entity": "customer_id",
                "windows_days": [1, 2],
                "aggregations": [
                    {"name": "C_N_{w}", "agg": "count"},
                    {"name": "C_SUM_{w}", "agg": "sum", "column": "tx_amount"},
                    {"name": "C_AVG_{w}", "agg": "mean", "column": "tx_amount"},
                    {"name": "C_STD_{w}", "agg": "stddev", "column": "tx_amount", "default": 0},
                    {"name": "C_MIN_{w}", "agg": "min", "column": "tx_amount"},
                    {"name": "C_MAX_{w}", "agg": "max", "column": "tx_amount"},
                ],
            },
            {
                "entity": "customer_id",
                "windows_days": [1],
                "include_current": False,
                "aggregations": [
                    {"name": "C_PREV_N_{w}", "agg": "count"},
                    {"name": "C_PREV_AVG_{w}", "agg": "mean", "column": "tx_amount", "default": -1},
                    {"name": "C_PREV_MAX_{w}", "agg": "max", "column": "tx_amount", "default": -1},
                    {"name": "C_SINCE_{w}", "agg": "time_since_last", "default": 86400},
                    {"name": "C_LAST_AMOUNT_{w}", "agg": "last", "column": "tx_amount", "default": 0},
                ],
            },
            {
                "entity": "customer_id",
                "windows_days": [1],
                "ties": "all",
                "aggregations": [{"name": "C_ALLTIES_N_{w}", "agg": "count"}],
            },
            {
                "entity": "terminal_id",
                "windows_days": [1, 3],
                "delay_days": 7,
                "aggregations": [
                    {"name": "T_N_{w}", "agg": "count"},
                    {"name": "T_RISK_{w}", "agg": "mean", "on_label": True, "default": 0},
                    {"name": "T_FRAUDS_{w}", "agg": "sum", "on_label": True, "default": 0},
                    {"name": "T_LAST_LABEL_{w}", "agg": "last", "on_label": True, "default": -1},
                    {"name": "T_LAST_AMOUNT_{w}", "agg": "last", "column": "tx_amount"},
                    {"name": "T_SINCE_FIRST_FRAUD_{w}", "agg": "time_since_first", "on_label": True, "default": -1},
                    {"name": "T_SINCE_LAST_FRAUD_{w}", "agg": "time_since_last", "on_label": True},
                    {"name": "T_SINCE_FIRST_{w}", "agg": "time_since_first"},
                    {"name": "T_SINCE_LAST_{w}", "agg": "time_since_last", "default": 0},
                ],
            },
        ],
        "derived_features": [
            {"name": "RATIO", "kind": "ratio", "column": "tx_amount", "denominator": "C_AVG_2", "default": 1},
            {"name": "Z", "kind": "zscore", "column": "tx_amount", "mean": "C_AVG_2", "std": "C_STD_2"},
        ],
        "model_inputs": ["tx_amount", "T_RISK_1"],
    }
)
# The same features over amounts declared fixed-point (2 decimals): sums and means from exact running totals.
KITCHEN_SINK_CENTS = FeatureSetSpec.model_validate(
    {**KITCHEN_SINK.model_dump(), "name": "kitchen_sink_cents", "source": {"fixed_point": {"tx_amount": 2}}}
)

# Window aggregations over the kitchen sink's row features (the row features are then computed before the windows).
ROW_INPUTS = FeatureSetSpec.model_validate(
    {
        **KITCHEN_SINK.model_dump(),
        "name": "row_inputs",
        "windows": [
            {
                "entity": "customer_id",
                "windows_days": [1, 2],
                "aggregations": [
                    {"name": "C_NIGHTS_{w}", "agg": "sum", "column": "NIGHT"},
                    {"name": "C_MEAN_HOUR_{w}", "agg": "mean", "column": "HOUR"},
                    {"name": "C_MAX_HOUR_{w}", "agg": "max", "column": "HOUR"},
                ],
            },
        ],
        "derived_features": [],
        "model_inputs": ["C_NIGHTS_1"],
    }
)


def _spec(name: str) -> FeatureSetSpec:
    specs = {spec.name: spec for spec in (KITCHEN_SINK, KITCHEN_SINK_CENTS, ROW_INPUTS)}
    return specs[name] if name in specs else load_feature_set(feature_set_path(FEATURES_DIR, name))


def _tx(  # noqa: PLR0917 - a compact row builder reads best positionally
    tid: int, seconds: int, customer: int, terminal: int, amount: float, fraud: int = 0, **kw: Any
) -> dict:
    when = T0 + dt.timedelta(seconds=seconds)
    reported = kw.get("reported", when + dt.timedelta(days=7) if fraud else None)
    return {
        "transaction_id": tid,
        "tx_datetime": when,
        "customer_id": customer,
        "terminal_id": terminal,
        "tx_amount": amount,
        "tx_fraud": fraud,
        "reported_at": reported,
    }


def edge_rows() -> list[dict]:
    """Hand-made rows on every window edge."""
    rows = [
        # customer 1: exactly 1 day apart (outside the 1-day window), then 1 s inside
        _tx(1, 0, 1, 10, 10.0),
        _tx(2, DAY, 1, 10, 20.0),
        _tx(3, 2 * DAY - 1, 1, 11, 30.0),
        # same-second ties for customer 1 (ids 4 and 5 at the same second; 6 later)
        _tx(4, 2 * DAY + 100, 1, 11, 40.0),
        _tx(5, 2 * DAY + 100, 1, 12, 50.0),
        _tx(6, 2 * DAY + 101, 1, 12, 60.0),
        # customer 2: a single transaction (empty windows for the "previous" features)
        _tx(7, 3 * DAY, 2, 10, 5.0),
        # terminal 10 frauds: one reported on time, one reported too late (after the 7-day delay)
        _tx(8, 4 * DAY, 3, 10, 99.0, fraud=1),
        _tx(9, 4 * DAY + 10, 3, 10, 98.0, fraud=1, reported=T0 + dt.timedelta(seconds=4 * DAY + 10 + 9 * DAY)),
        # terminal 10 transactions exactly 7 days and 7 days + 1 day after the frauds (window edges)
        _tx(10, 11 * DAY, 4, 10, 1.0),
        _tx(11, 11 * DAY + 10, 4, 10, 2.0),
        _tx(12, 12 * DAY, 4, 10, 3.0),
        _tx(13, 12 * DAY + 9, 4, 10, 4.0),
        _tx(14, 14 * DAY + 9, 4, 10, 5.0),
        # Saturday night and a weekday noon (2018-04-07 is a Saturday)
        _tx(15, 6 * DAY + 3 * 3600, 5, 13, 7.0),
        _tx(16, 9 * DAY + 12 * 3600, 5, 13, 8.0),
    ]
    return rows


def random_rows(n: int, seed: int) -> list[dict]:
    """Random rows dense enough to have ties and overlapping windows."""
    rng = random.Random(seed)
    rows = []
    for tid in range(n):
        seconds = rng.randrange(0, 20 * DAY, 3600) + rng.choice([0, 0, 1, 30])
        fraud = int(rng.random() < 0.2)
        rows.append(_tx(tid, seconds, rng.randrange(6), rng.randrange(4), round(rng.uniform(1, 200), 2), fraud))
    return rows


def _assert_equal_to_reference(
    spark: SparkSession, rows: list[dict], spec: FeatureSetSpec, schema: str = SCHEMA
) -> None:
    expected = reference_features(rows, spec)
    result = compute_features(spark.createDataFrame(rows, schema), spec=spec).collect()
    assert len(result) == len(rows)
    names = spec.feature_names()
    for row in result:
        want = expected[row["transaction_id"]]
        for name in names:
            got, ref = row[name], want[name]
            if ref is None or got is None:
                assert got == ref, (row["transaction_id"], name, got, ref)
            else:
                assert math.isclose(got, ref, rel_tol=1e-9, abs_tol=1e-9), (row["transaction_id"], name, got, ref)


@pytest.mark.parametrize("spec_name", ["kitchen_sink", "kitchen_sink_cents", "fraud_v1", "fraud_v2", "row_inputs"])
def test_edges_match_the_reference(spark: SparkSession, spec_name: str) -> None:
    _assert_equal_to_reference(spark, edge_rows(), _spec(spec_name))


@pytest.mark.parametrize("spec_name", ["kitchen_sink", "kitchen_sink_cents", "fraud_v1", "row_inputs"])
def test_random_data_matches_the_reference(spark: SparkSession, spec_name: str) -> None:
    _assert_equal_to_reference(spark, random_rows(300, seed=7), _spec(spec_name))


def test_hand_computed_values(spark: SparkSession) -> None:
    """A few values computed by hand, independent of the reference implementation."""
    rows = edge_rows()
    result = {
        r["transaction_id"]: r
        for r in compute_features(spark.createDataFrame(rows, SCHEMA), spec=KITCHEN_SINK).collect()
    }
    assert result[2]["C_N_1"] == 1  # tx 1 is exactly 1 day earlier: outside (t - 1d, t]
    assert result[3]["C_N_1"] == 2  # tx 2 is 1 day - 1 s earlier: inside
    assert result[4]["C_N_1"] == 2  # ties: tx 5 has the same second but a larger id, so it does not count for 4
    assert result[5]["C_N_1"] == 3
    assert result[4]["C_ALLTIES_N_1"] == 3  # ties: all counts both
    assert result[5]["C_AVG_1"] == pytest.approx((30 + 40 + 50) / 3)
    assert (result[7]["C_PREV_N_1"], result[7]["C_PREV_AVG_1"], result[7]["C_SINCE_1"]) == (0, -1, 86400)
    assert (result[6]["C_SINCE_1"], result[6]["C_LAST_AMOUNT_1"]) == (1.0, 50.0)
    # terminal 10, tx 10 at day 11: window (day 3, day 4] holds tx 7 (day 3: excluded) and tx 8 (day 4)
    assert (result[10]["T_N_1"], result[10]["T_RISK_1"]) == (1, 1.0)
    # tx 11 at day 11 + 10 s: window (day 3 + 10 s, day 4 + 10 s] holds tx 8 and tx 9; tx 9 was reported late
    assert (result[11]["T_N_1"], result[11]["T_FRAUDS_1"], result[11]["T_RISK_1"]) == (2, 1, 0.5)
    assert (result[14]["T_N_1"], result[14]["T_RISK_1"]) == (0, 0.0)  # empty window -> default 0
    assert (result[15]["WE"], result[15]["NIGHT"], result[16]["WE"], result[16]["NIGHT"]) == (1, 1, 0, 0)


def test_point_in_time_no_leakage(spark: SparkSession) -> None:
    """Features of rows up to a cut time are the same whether or not the future (rows, late labels) exists."""
    spec = load_feature_set(feature_set_path(FEATURES_DIR, "fraud_v2"))
    rows = random_rows(300, seed=11)
    cut = T0 + dt.timedelta(days=12)
    past = []
    for row in rows:
        if row["tx_datetime"] <= cut:
            visible = dict(row)
            if visible["reported_at"] is not None and visible["reported_at"] > cut:
                visible["tx_fraud"], visible["reported_at"] = 0, None  # not known yet at the cut
            past.append(visible)
    full = compute_features(spark.createDataFrame(rows, SCHEMA), spec=spec)
    truncated = compute_features(spark.createDataFrame(past, SCHEMA), spec=spec)
    ids = [r["transaction_id"] for r in past]
    names = spec.feature_names()
    left = {r["transaction_id"]: r for r in full.where(full.transaction_id.isin(ids)).collect()}
    right = {r["transaction_id"]: r for r in truncated.collect()}
    assert left.keys() == right.keys()
    for tid in ids:
        for name in names:
            assert left[tid][name] == pytest.approx(right[tid][name], rel=1e-12, abs=1e-12), (tid, name)


@pytest.mark.parametrize(
    ("spec_name", "days"),
    [
        ("kitchen_sink", None),
        ("kitchen_sink_cents", None),
        ("kitchen_sink", PAIR_JOIN_MAX_DAYS),  # the ties: all count group sums pairs
        ("fraud_v1", 1),  # every group sums pairs
        ("fraud_v2", 2),
        ("row_inputs", None),
    ],
)
def test_a_build_from_start_equals_the_whole_history_on_its_days(
    spark: SparkSession, spec_name: str, days: int | None
) -> None:
    """compute_features(start=...) drops each window group's older rows before it runs, and with an end (a build
    of a few days) sums the exact groups over joined pairs, its reads filtered on the date column too: the days >=
    start must keep exactly the values of a computation over the whole history (running totals included)."""
    spec = _spec(spec_name)
    rows = random_rows(400, seed=5)
    start = (T0 + dt.timedelta(days=14)).date()
    end = None if days is None else start + dt.timedelta(days=days - 1)
    first = spec.first_day_to_read(start)
    read = [row for row in rows if first <= row["tx_datetime"].date() <= (end or dt.date.max)]

    def events(chosen: list[dict[str, Any]]) -> DataFrame:  # with the UTC date a partitioned source keeps
        return spark.createDataFrame(chosen, SCHEMA).withColumn("tx_date", F.to_date("tx_datetime"))

    full = compute_features(events(rows), spec=spec)
    since = compute_features(events(read), spec=spec, start=start, end=end, date_column="tx_date")
    assert since.columns == full.columns  # the declared column order, although the groups ran in another
    wanted = [row["transaction_id"] for row in rows if start <= row["tx_datetime"].date() <= (end or dt.date.max)]
    left = {r["transaction_id"]: r for r in full.where(full.transaction_id.isin(wanted)).collect()}
    right = {r["transaction_id"]: r for r in since.where(since.transaction_id.isin(wanted)).collect()}
    assert left.keys() == right.keys() == set(wanted)
    for tid in wanted:
        assert left[tid].asDict() == right[tid].asDict(), tid


@pytest.mark.parametrize("entity_type", ["BIGINT", "INT", "STRING"])
def test_entities_and_times_outside_the_sort_hint(spark: SparkSession, entity_type: str) -> None:
    """The window groups sort integral entities first on one long (entity << 32 | second) and then on (entity,
    second, id); entities outside 32 bits, negative ones and seconds before 1970 break the first order, which must
    cost time only: the features still equal the reference. A string entity takes the (entity, second, id) sort
    alone."""
    spec = _spec("kitchen_sink")
    ids = [-5, 2**31 - 1, -(2**31), 0, 7, -1] if entity_type == "INT" else [-5, 2**40 + 3, -(2**35), 0, 2**32, 7]
    shift = dt.timedelta(days=49 * 365)  # 2018 -> 1969: negative epoch seconds
    rows = []
    for row in random_rows(300, seed=13):
        moved = dict(row, tx_datetime=row["tx_datetime"] - shift, customer_id=ids[row["customer_id"]])
        moved["terminal_id"] = ids[row["terminal_id"]]
        if row["reported_at"] is not None:
            moved["reported_at"] = row["reported_at"] - shift
        if entity_type == "STRING":
            moved["customer_id"], moved["terminal_id"] = f"c{moved['customer_id']}", f"t{moved['terminal_id']}"
        rows.append(moved)
    schema = SCHEMA.replace("customer_id BIGINT", f"customer_id {entity_type}").replace(
        "terminal_id BIGINT", f"terminal_id {entity_type}"
    )
    _assert_equal_to_reference(spark, rows, spec, schema)


@pytest.mark.parametrize("decimals", [0, 2, 4])
def test_integer_units_round_as_round_does(spark: SparkSession, decimals: int) -> None:
    """Fixed-point sums add value * 10^decimals rounded half away from zero (RINT with the halves stepped away):
    the same long as CAST(ROUND(...) AS BIGINT) on halves, values just under and over them, decimal texts that are
    not exact in binary (1.005, 0.285), large, tiny and negative values."""
    rng = random.Random(3)
    values = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, -0.49999999999999994, 1.005, 0.285, 2.675]
    values += [0.0, -0.0, 1e-300, 4503599627370495.5, 2.0**52, 2.0**53 + 2, -(2.0**53), 123456.785, 99.995]
    values += [n / 2 / 10**decimals for n in range(-41, 41)]
    values += [round(rng.uniform(-1e6, 1e6), rng.choice([2, 3, 4, 7])) for _ in range(2000)]
    values += [rng.uniform(-1e9, 1e9) for _ in range(2000)]
    values = [v for v in values if abs(v) * 10**decimals < 2.0**62]  # in a long's range
    frame = spark.createDataFrame([(v,) for v in values], "tx_amount DOUBLE")
    aggregation = Aggregation.model_validate({"name": "S_{w}", "agg": "sum", "column": "tx_amount"})
    rows = frame.select(
        F.col("tx_amount"),
        F.expr(f"CAST(ROUND(CAST(tx_amount AS DOUBLE) * {10**decimals}) AS BIGINT)").alias("round"),
        F.expr(_units_sql(aggregation, decimals)).alias("units"),
    ).collect()
    differing = [(r["tx_amount"], r["round"], r["units"]) for r in rows if r["round"] != r["units"]]
    assert not differing, differing[:10]


@pytest.mark.parametrize("column_type", ["TIMESTAMP", "TIMESTAMP_NTZ"])
def test_row_features_by_arithmetic_equal_the_calendar_functions(spark: SparkSession, column_type: str) -> None:
    """In a UTC session the weekday and the hour come from the epoch second by arithmetic: the same values as
    Spark's dayofweek / hour over 1900-2100 (negative seconds, fractions of a second, midnights); in another
    session time zone the calendar functions (the zone's own hours) are used."""
    spec = _spec("kitchen_sink")
    rng = random.Random(17)
    base = dt.datetime(1970, 1, 1)
    times = [base + dt.timedelta(seconds=rng.randrange(-70 * 365 * DAY, 130 * 365 * DAY)) for _ in range(3000)]
    times += [t + dt.timedelta(microseconds=rng.randrange(1, 10**6)) for t in times[:500]]
    times += [base + dt.timedelta(days=d, seconds=s) for d in range(-9, 9) for s in (-1, 0, 1, 6 * 3600, 7 * 3600 - 1)]
    frame = spark.createDataFrame([(t,) for t in times], f"tx_datetime {column_type}")
    calendar = {
        "WE": F.dayofweek("tx_datetime").isin(1, 7).cast("int"),
        "NIGHT": (F.hour("tx_datetime") <= 6).cast("int"),
        "HOUR": F.hour("tx_datetime"),
    }
    expected = frame.select("tx_datetime", *[c.alias(f"_{n}") for n, c in calendar.items()])
    rows = add_row_features(expected, spec).collect()
    assert [f.name for f in spec.row_features] == list(calendar)
    assert all(r[n] == r[f"_{n}"] for r in rows for n in calendar)
    assert {r["WE"] for r in rows} == {0, 1}
    assert len({r["HOUR"] for r in rows}) == 24
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        zoned = add_row_features(frame.select("tx_datetime", F.hour("tx_datetime").alias("_HOUR")), spec).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert all(r["HOUR"] == r["_HOUR"] for r in zoned)
    if column_type == "TIMESTAMP":  # the zone's hours are not UTC's
        assert any(r["HOUR"] != rr["HOUR"] for r, rr in zip(zoned, rows, strict=True))


def test_fraud_v1_plans_one_window_operator_per_group(spark: SparkSession) -> None:
    """The plan the speed depends on: each window group is one Window operator (its ROWS frames read the rows in
    their physical (time, id) order, so they share the RANGE frames' specification), fed by the radix sort on the
    (entity, second) long and then the (entity, second, id) sort, which the optimizer keeps both of."""
    spec = _spec("fraud_v1")
    frame = compute_features(spark.createDataFrame(edge_rows(), SCHEMA), spec=spec)
    plan = frame._jdf.queryExecution().executedPlan().toString()  # the physical plan as explain() prints it
    windows = [line for line in plan.splitlines() if "Window [" in line]
    assert len(windows) == len(spec.windows), plan
    for group in spec.windows:
        assert f"Sort [(shiftleft({group.entity}#" in plan, plan
        assert f"Sort [{group.entity}#" in plan, plan


def test_window_groups_compile_once_per_spec(spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build reuses the window columns an earlier build of an equal spec compiled (a fresh load of the same file
    included), with the same values; a spec that differs anywhere (here the customer group's ties) compiles its own,
    and its values are its own (the reference's)."""
    compiled = []
    compile_group = batch._window_columns

    def counting(group, spec, share):
        compiled.append((spec.name, group.entity, group.ties))
        return compile_group(group, spec, share)

    monkeypatch.setattr(batch, "_window_columns", counting)
    monkeypatch.setattr(batch, "_COMPILED", {})
    rows = spark.createDataFrame(edge_rows(), SCHEMA)
    spec = _spec("fraud_v1")
    first = compute_features(rows, spec=spec).collect()
    again = compute_features(rows, spec=load_feature_set(feature_set_path(FEATURES_DIR, "fraud_v1"))).collect()
    assert compiled == [("fraud_v1", "customer_id", "earlier_only"), ("fraud_v1", "terminal_id", "earlier_only")]
    by_id = operator.itemgetter("transaction_id")
    assert sorted(first, key=by_id) == sorted(again, key=by_id)
    data = spec.model_dump()
    data["windows"][0]["ties"] = "all"
    changed = FeatureSetSpec.model_validate(data)
    _assert_equal_to_reference(spark, edge_rows(), changed)
    assert compiled[2:] == [("fraud_v1", "customer_id", "all"), ("fraud_v1", "terminal_id", "earlier_only")]


@pytest.mark.parametrize(
    ("zone", "utc"),
    [
        ("UTC", True),
        ("Etc/Zulu", True),
        ("UCT", True),
        ("Etc/GMT+0", True),
        ("+00:00", True),
        ("America/New_York", False),
        ("Europe/London", False),  # UTC in winter, not at every instant
        ("+01:00", False),
    ],
)
def test_utc_session_asks_the_zone_rules(spark: SparkSession, zone: str, utc: bool) -> None:
    """The arithmetic weekday and hour are used in any session zone that is UTC at every instant, named so or not;
    the row features equal the calendar functions' in each."""
    spec = _spec("kitchen_sink")
    times = [(T0 + dt.timedelta(hours=h, days=d),) for h in range(24) for d in (0, 1, 2, 3, 4, 5, 6, 100)]
    frame = spark.createDataFrame(times, "tx_datetime TIMESTAMP")
    spark.conf.set("spark.sql.session.timeZone", zone)
    try:
        assert utc_session(spark) is utc
        rows = add_row_features(frame.select("tx_datetime", F.hour("tx_datetime").alias("_HOUR")), spec).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert all(r["HOUR"] == r["_HOUR"] for r in rows)
