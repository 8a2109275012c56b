"""Time splits of fraud-protocol.md section 3-4: train window, label-delay gap, test window, prequential folds.

A split is [train_start, train_end] for training, ``delay_days`` unused days (the labels of the last training
days only become known then), and [test_start, test_end] for testing. The default is the book's: train
2018-07-25..07-31, delay 7 days, test 2018-08-08..08-14.

Known compromised cards are removed from the test set: a card is dropped from test day T if it had a fraud on
any day from the training start up to T - delay - 1 (T - 8 with the book's 7-day delay), i.e. a fraud whose
label is known by the morning of T. That is the carry-over of the book: the training frauds, plus each day of
the delay period as its labels arrive.

Prequential folds (book chapter 5) shift the split back by ``step_days`` per fold: the validation folds
(model selection) start training on train_start - delay - test_days (2018-07-11) and go back week by week; the
test folds (performance estimate) start on train_start + (n_folds - 1) * step_days (2018-08-15) and go back
the same way, so their last fold is the split itself.

The transforms here are pure (DataFrame -> DataFrame, no actions); the frame is the labelled feature table
(one row per transaction with ``tx_date``, the card column and the label).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pyspark.sql import functions as F  # noqa: N812

from lakestream.config.models import PrequentialConfig, SplitConfig
from lakestream.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

DATE = "tx_date"
CARD = "customer_id"
LABEL = "tx_fraud"
VALIDATION = "is_validation"


@dataclass(frozen=True)
class TimeSplit:
    """Inclusive train and test day ranges separated by delay_days unused days."""

    name: str
    train_start: dt.date
    train_end: dt.date
    test_start: dt.date
    test_end: dt.date
    delay_days: int

    @property
    def first_day(self) -> dt.date:
        """The first day any part of the split reads."""
        return self.train_start

    def to_dict(self) -> dict[str, str | int]:
        """ISO dates, for logs, MLflow params and JSON."""
        return {
            "name": self.name,
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
            "delay_days": self.delay_days,
        }


def build_time_split(
    *, train_start: dt.date, train_days: int = 7, delay_days: int = 7, test_days: int = 7, name: str = "split"
) -> TimeSplit:
    """The split that trains on train_days from train_start, skips delay_days, then tests on test_days."""
    if train_days < 1 or test_days < 1 or delay_days < 0:
        raise ConfigError(
            f"split {name}: train_days ({train_days}) and test_days ({test_days}) must be >= 1 and delay_days "
            f"({delay_days}) >= 0"
        )
    train_end = train_start + dt.timedelta(days=train_days - 1)
    test_start = train_end + dt.timedelta(days=delay_days + 1)
    return TimeSplit(
        name=name,
        train_start=train_start,
        train_end=train_end,
        test_start=test_start,
        test_end=test_start + dt.timedelta(days=test_days - 1),
        delay_days=delay_days,
    )


def split_from_config(split: SplitConfig, *, name: str = "split") -> TimeSplit:
    """The configured split (defaults: the book's)."""
    return build_time_split(
        train_start=split.train_start,
        train_days=split.train_days,
        delay_days=split.delay_days,
        test_days=split.test_days,
        name=name,
    )


def build_prequential_folds(
    *,
    latest_train_start: dt.date,
    n_folds: int = 4,
    step_days: int = 7,
    train_days: int = 7,
    delay_days: int = 7,
    test_days: int = 7,
    prefix: str = "fold",
) -> list[TimeSplit]:
    """n_folds splits, fold 0 training from latest_train_start, fold k from k * step_days earlier."""
    return [
        build_time_split(
            train_start=latest_train_start - dt.timedelta(days=fold * step_days),
            train_days=train_days,
            delay_days=delay_days,
            test_days=test_days,
            name=f"{prefix}{fold}",
        )
        for fold in range(n_folds)
    ]


def prequential_folds(
    split: TimeSplit, prequential: PrequentialConfig, *, kind: Literal["validation", "test"]
) -> list[TimeSplit]:
    """The validation (model selection) or test (estimate) folds around a split, as the book does."""
    train_days = (split.train_end - split.train_start).days + 1
    test_days = (split.test_end - split.test_start).days + 1
    if kind == "validation":
        latest = prequential.validation_train_start or split.train_start - dt.timedelta(
            days=split.delay_days + test_days
        )
    else:
        latest = prequential.test_train_start or split.train_start + dt.timedelta(
            days=(prequential.n_folds - 1) * prequential.step_days
        )
    return build_prequential_folds(
        latest_train_start=latest,
        n_folds=prequential.n_folds,
        step_days=prequential.step_days,
        train_days=train_days,
        delay_days=split.delay_days,
        test_days=test_days,
        prefix=f"{kind}_fold",
    )


def select_days(frame: DataFrame, *, start: dt.date, end: dt.date, date_column: str = DATE) -> DataFrame:
    """Rows whose date lies in [start, end]."""
    return frame.where(F.col(date_column).between(F.lit(start), F.lit(end)))


def select_train(frame: DataFrame, *, split: TimeSplit, date_column: str = DATE) -> DataFrame:
    """The training rows of a split: days [train_start, train_end]."""
    return select_days(frame, start=split.train_start, end=split.train_end, date_column=date_column)


def mark_validation_days(
    train: DataFrame, *, split: TimeSplit, validation_days: int, column: str = VALIDATION, date_column: str = DATE
) -> DataFrame:
    """Add a boolean column: True on the last validation_days of the train window (held out for early stopping)."""
    train_days = (split.train_end - split.train_start).days + 1
    if not 1 <= validation_days < train_days:
        raise ConfigError(
            f"validation_days must be between 1 and {train_days - 1} for a {train_days}-day train window, "
            f"got {validation_days}"
        )
    first_validation_day = split.train_end - dt.timedelta(days=validation_days - 1)
    return train.withColumn(column, F.col(date_column) >= F.lit(first_validation_day))


def remove_known_compromised_cards(
    test: DataFrame,
    history: DataFrame,
    *,
    history_start: dt.date,
    delay_days: int,
    card_column: str = CARD,
    label_column: str = LABEL,
    date_column: str = DATE,
) -> DataFrame:
    """Drop a test row of day T if its card had a fraud in history on a day in [history_start, T - delay - 1]."""
    first_known_fraud = (
        history.where((F.col(label_column) == 1) & (F.col(date_column) >= F.lit(history_start)))
        .groupBy(card_column)
        .agg(F.min(date_column).alias("_first_fraud_day"))
    )
    last_known_day = F.date_sub(F.col(date_column), delay_days + 1)
    return (
        test.join(first_known_fraud, on=card_column, how="left")
        .where(F.col("_first_fraud_day").isNull() | (F.col("_first_fraud_day") > last_known_day))
        .select(*test.columns)
    )


def select_test(
    frame: DataFrame,
    *,
    split: TimeSplit,
    card_column: str = CARD,
    label_column: str = LABEL,
    date_column: str = DATE,
) -> DataFrame:
    """The test rows of a split, without the cards whose frauds are known by their test day."""
    test = select_days(frame, start=split.test_start, end=split.test_end, date_column=date_column)
    history = select_days(
        frame.select(card_column, label_column, date_column),
        start=split.train_start,
        end=split.test_end - dt.timedelta(days=split.delay_days + 1),
        date_column=date_column,
    )
    return remove_known_compromised_cards(
        test,
        history,
        history_start=split.train_start,
        delay_days=split.delay_days,
        card_column=card_column,
        label_column=label_column,
        date_column=date_column,
    )
