"""Time splits: the book's dates, no leakage across the delay period, the known-compromised-card rule by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from lakestream.config.models import PrequentialConfig, SplitConfig
from lakestream.errors import ConfigError
from lakestream.training.splits import (
    build_time_split,
    mark_validation_days,
    prequential_folds,
    select_test,
    select_train,
    split_from_config,
)

D = dt.date
SCHEMA = "transaction_id BIGINT, customer_id BIGINT, tx_date DATE, tx_fraud INT"
TEST_DAYS = [D(2018, 8, 8), D(2018, 8, 10), D(2018, 8, 11), D(2018, 8, 14)]


def card_history(spark: SparkSession) -> DataFrame:
    """Seven cards, each with one fraud (or none) somewhere, and a genuine transaction on four test days.

    Transaction ids are card * 100 + a running number; the test-day rows are card * 100 + 10 + i.
    """
    frauds = {
        1: D(2018, 7, 27),  # in the train window: known before any test day
        2: D(2018, 8, 3),  # in the delay period: known from 2018-08-11 (= 08-03 + 8) on
        3: D(2018, 8, 8),  # on the first test day: never known during the test week
        4: D(2018, 7, 24),  # the day before training starts: outside the history, never counts
        5: D(2018, 7, 31),  # last train day: known from 2018-08-08 on
        6: D(2018, 8, 6),  # delay period: known from 2018-08-14 only
        7: None,  # genuine card
    }
    rows = []
    for card, fraud_day in frauds.items():
        if fraud_day is not None and fraud_day not in TEST_DAYS:
            rows.append((card * 100, card, fraud_day, 1))
        for i, day in enumerate(TEST_DAYS):
            rows.append((card * 100 + 10 + i, card, day, int(day == fraud_day)))
        rows.append((card * 100 + 1, card, D(2018, 7, 26), 0))  # a genuine train-window transaction per card
        rows.append((card * 100 + 2, card, D(2018, 8, 5), 0))  # and one in the delay period
    return spark.createDataFrame(rows, SCHEMA)


def ids(frame: DataFrame) -> set[int]:
    return {row.transaction_id for row in frame.select("transaction_id").collect()}


def test_book_split_dates() -> None:
    split = split_from_config(SplitConfig())
    assert (split.train_start, split.train_end) == (D(2018, 7, 25), D(2018, 7, 31))
    assert (split.test_start, split.test_end) == (D(2018, 8, 8), D(2018, 8, 14))
    assert split.delay_days == 7


def test_known_compromised_cards_are_removed_day_by_day(spark: SparkSession) -> None:
    split = build_time_split(train_start=D(2018, 7, 25))
    test = select_test(card_history(spark), split=split)
    day_index = {day: i for i, day in enumerate(TEST_DAYS)}  # 0: 08-08, 1: 08-10, 2: 08-11, 3: 08-14
    expected = {
        # card 1 (train fraud) and card 5 (fraud on the last train day) are gone from every test day
        *(200 + 10 + day_index[d] for d in (D(2018, 8, 8), D(2018, 8, 10))),  # card 2 until 08-10 included
        *(300 + 10 + i for i in range(4)),  # card 3: its fraud is in the test week, never known
        *(400 + 10 + i for i in range(4)),  # card 4: fraud before the train start does not count
        *(600 + 10 + i for i in range(3)),  # card 6: dropped on 08-14 only
        *(700 + 10 + i for i in range(4)),  # genuine card
    }
    assert ids(test) == expected
    assert set(test.columns) == {"transaction_id", "customer_id", "tx_date", "tx_fraud"}
    assert test.columns == ["transaction_id", "customer_id", "tx_date", "tx_fraud"]  # column order kept


def test_a_fraud_on_day_t_minus_7_is_not_yet_known(spark: SparkSession) -> None:
    """Boundary of the rule: a fraud on T - 8 removes the card from T, one on T - 7 does not."""
    split = build_time_split(train_start=D(2018, 7, 25))
    rows = [(1, 1, D(2018, 8, 1), 1), (2, 1, D(2018, 8, 9), 0), (3, 2, D(2018, 8, 2), 1), (4, 2, D(2018, 8, 9), 0)]
    test = select_test(spark.createDataFrame(rows, SCHEMA), split=split)
    assert ids(test) == {4}  # card 1: 08-01 = 08-09 - 8 -> removed; card 2: 08-02 = 08-09 - 7 -> kept


def test_no_leakage_across_the_delay_period(spark: SparkSession) -> None:
    frame = card_history(spark)
    split = build_time_split(train_start=D(2018, 7, 25))
    train = select_train(frame, split=split)
    test = select_test(frame, split=split)
    train_days = train.agg(F.min("tx_date"), F.max("tx_date")).first()
    test_days = test.agg(F.min("tx_date"), F.max("tx_date")).first()
    assert (train_days[0], train_days[1]) == (D(2018, 7, 26), D(2018, 7, 31))
    assert test_days[0] >= train_days[1] + dt.timedelta(days=8)  # 7 unused days in between
    assert ids(train) & ids(test) == set()
    assert train.where(F.col("tx_date").between(D(2018, 8, 1), D(2018, 8, 7))).count() == 0
    assert test.where(F.col("tx_date").between(D(2018, 8, 1), D(2018, 8, 7))).count() == 0


def test_prequential_folds_follow_the_book() -> None:
    split, prequential = split_from_config(SplitConfig()), PrequentialConfig()
    validation = prequential_folds(split, prequential, kind="validation")
    test = prequential_folds(split, prequential, kind="test")
    assert [f.train_start for f in validation] == [D(2018, 7, 11), D(2018, 7, 4), D(2018, 6, 27), D(2018, 6, 20)]
    assert [f.train_start for f in test] == [D(2018, 8, 15), D(2018, 8, 8), D(2018, 8, 1), D(2018, 7, 25)]
    assert test[-1] == build_time_split(train_start=D(2018, 7, 25), name="test_fold3")
    assert (test[0].test_start, test[0].test_end) == (D(2018, 8, 29), D(2018, 9, 4))
    for fold in validation + test:
        assert (fold.test_start - fold.train_end).days == 8
        assert (fold.train_end - fold.train_start).days == 6
    # model selection never sees the test period of the book split
    assert max(f.test_end for f in validation) < build_time_split(train_start=D(2018, 7, 25)).test_start
    explicit = PrequentialConfig(n_folds=2, step_days=14, validation_train_start=D(2018, 7, 1))
    assert [f.train_start for f in prequential_folds(split, explicit, kind="validation")] == [
        D(2018, 7, 1),
        D(2018, 6, 17),
    ]


def test_validation_days_mark_the_end_of_the_train_window(spark: SparkSession) -> None:
    split = build_time_split(train_start=D(2018, 7, 25))
    rows = [(i, 1, D(2018, 7, 25) + dt.timedelta(days=i), 0) for i in range(7)]
    marked = mark_validation_days(spark.createDataFrame(rows, SCHEMA), split=split, validation_days=2)
    assert {r.transaction_id for r in marked.where("is_validation").collect()} == {5, 6}
    with pytest.raises(ConfigError, match="validation_days must be between 1 and 6"):
        mark_validation_days(spark.createDataFrame(rows, SCHEMA), split=split, validation_days=7)


def test_invalid_split_sizes_are_refused() -> None:
    with pytest.raises(ConfigError, match="train_days"):
        build_time_split(train_start=D(2018, 7, 25), train_days=0)
