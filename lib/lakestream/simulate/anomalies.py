"""Anomalies injected into the simulated data, for the ingestion and monitoring tests downstream.

Two families of pure transforms (``DataFrame -> DataFrame``, keyword-only parameters, deterministic for a seed):

- **drift** changes what happened, so it applies to the ground-truth table and the labels follow it:
  ``new_fraud_pattern`` (scenario 4: from a day on, a few compromised terminals are drained at night by many
  small payments from stolen card numbers, each tested once) and ``spending_shift`` (from a day on, a share of the
  customers spend ``factor`` times more, with no change of labels);
- **delivery anomalies** change only how transaction events arrive, so they apply to landed lines
  (see ``landing.build_transaction_event_lines``): duplicates, late arrivals, shuffling within a day and
  malformed lines. The ground truth is untouched by them.

Random choices come from a hash of the seed, a salt and the row's ids (``xxhash64``), not from ``rand()``, so
they do not depend on how Spark partitions the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lakestream.errors import ConfigError
from lakestream.simulate.spark_simulator import TRANSACTION_COLUMNS, assign_transaction_ids

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

DriftKind = Literal["new_fraud_pattern", "spending_shift"]
DRIFT_KINDS: tuple[str, ...] = ("new_fraud_pattern", "spending_shift")

NEW_PATTERN_SCENARIO = 4
# What a malformed line can look like; the anomaly column of a line names which one it got.
MALFORMED_KINDS: tuple[str, ...] = (
    "broken_json",
    "wrong_type",
    "missing_field",
    "negative_amount",
    "absurd_amount",
    "future_timestamp",
)
ABSURD_AMOUNT = 1.0e12
FUTURE_YEAR = "2099"

_SECONDS_PER_DAY = 86_400
_HASH_BITS = 53


def uniform_hash(seed: int, salt: str, *columns: Column | str) -> Column:
    """A U[0, 1) double per row from a hash of (seed, salt, columns): reproducible whatever the partitioning."""
    from pyspark.sql import functions as F  # noqa: N812

    hashed = F.xxhash64(F.lit(seed), F.lit(salt), *columns)
    return hashed.bitwiseAND(F.lit((1 << _HASH_BITS) - 1)).cast("double") / float(1 << _HASH_BITS)


def _check_share(name: str, share: float) -> None:
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"{name} must be a share between 0 and 1, got {share!r}")


# ---------------------------------------------------------------------------------------------- drift


def inject_new_fraud_pattern(
    transactions: DataFrame,
    *,
    from_day: int,
    seed: int,
    terminals_per_day: int = 2,
    transactions_per_terminal: int = 30,
    min_amount: float = 1.0,
    max_amount: float = 10.0,
) -> DataFrame:
    """Ground truth -> ground truth plus night-time card-testing frauds (scenario 4) from `from_day` on.

    Every day from `from_day` to the last simulated day, `terminals_per_day` terminals each take
    `transactions_per_terminal` payments between 01:00 and 05:00 of `min_amount`..`max_amount`, each from a
    stolen card number used once (ids after the simulated customers': the bank's own customers are not the
    ones drained, and a card reported compromised is never seen again). Transaction ids are renumbered so they
    stay in event-time order (original rows keep their relative order). Columns as TRANSACTION_COLUMNS.
    """
    from pyspark.sql import functions as F  # noqa: N812

    if from_day < 0 or terminals_per_day < 1 or transactions_per_terminal < 1 or not 0 < min_amount <= max_amount:
        raise ConfigError(
            f"new_fraud_pattern needs from_day >= 0, at least one terminal and transaction per day and "
            f"0 < min_amount <= max_amount; got from_day={from_day}, terminals_per_day={terminals_per_day}, "
            f"transactions_per_terminal={transactions_per_terminal}, amounts {min_amount}..{max_amount}"
        )
    # Sizes and the start instant are read off the data, so the transform needs nothing but the table.
    bounds = transactions.agg(
        F.max("tx_time_days").alias("last_day"),
        (F.max("customer_id") + 1).alias("n_customers"),
        (F.max("terminal_id") + 1).alias("n_terminals"),
        F.min(F.unix_seconds("tx_datetime") - F.col("tx_time_seconds")).alias("start_epoch"),
    )
    days = F.filter(
        F.sequence(F.lit(from_day).cast("long"), F.greatest(F.col("last_day"), F.lit(from_day).cast("long"))),
        lambda day: day <= F.col("last_day"),
    )
    slots = (
        bounds.select("*", F.explode(days).alias("tx_time_days"))
        .select("*", F.explode(F.sequence(F.lit(0), F.lit(terminals_per_day - 1))).alias("_terminal_slot"))
        .select("*", F.explode(F.sequence(F.lit(0), F.lit(transactions_per_terminal - 1))).alias("_slot"))
    )
    night_seconds = 3600 + F.floor(
        uniform_hash(seed, "night-time", "tx_time_days", "_terminal_slot", "_slot") * 4 * 3600
    )
    cents = F.floor(
        uniform_hash(seed, "night-amount", "tx_time_days", "_terminal_slot", "_slot") * (max_amount - min_amount) * 100
    )
    new_rows = slots.select(
        F.pmod(F.xxhash64(F.lit(seed), F.lit("night-terminal"), "tx_time_days", "_terminal_slot"), "n_terminals").alias(
            "terminal_id"
        ),
        # stolen card numbers, each tested once: ids after the simulated customers', unique per payment
        (
            F.col("n_customers")
            + (F.col("tx_time_days") - F.lit(from_day)) * (terminals_per_day * transactions_per_terminal)
            + F.col("_terminal_slot") * transactions_per_terminal
            + F.col("_slot")
        )
        .cast("long")
        .alias("customer_id"),
        "tx_time_days",
        (F.col("tx_time_days") * _SECONDS_PER_DAY + night_seconds).cast("long").alias("tx_time_seconds"),
        F.round(F.lit(min_amount) + cents / 100.0, 2).alias("tx_amount"),
        "start_epoch",
        (F.col("_terminal_slot") * transactions_per_terminal + F.col("_slot")).cast("long").alias("_order"),
    ).select(
        "*",
        F.timestamp_seconds(F.col("start_epoch") + F.col("tx_time_seconds")).alias("tx_datetime"),
        F.lit(1).alias("tx_fraud"),
        F.lit(NEW_PATTERN_SCENARIO).alias("tx_fraud_scenario"),
        F.lit(1).alias("_is_new"),
    )
    original = transactions.select(
        *[name for name in TRANSACTION_COLUMNS if name != "transaction_id"],
        F.col("transaction_id").alias("_order"),
        F.lit(0).alias("_is_new"),
    )
    merged = original.unionByName(new_rows.drop("start_epoch"))
    renumbered = assign_transaction_ids(merged, tie_breakers=("customer_id", "_is_new", "_order"))
    return renumbered.select(*TRANSACTION_COLUMNS)


def inject_spending_shift(
    transactions: DataFrame, *, from_day: int, seed: int, customer_share: float = 0.2, factor: float = 2.0
) -> DataFrame:
    """Ground truth -> same rows, amounts x `factor` from `from_day` for a `customer_share` of the customers.

    Labels are unchanged: the shift is legitimate spending a model trained before it has never seen.
    """
    from pyspark.sql import functions as F  # noqa: N812

    _check_share("customer_share", customer_share)
    if from_day < 0 or factor <= 0:
        raise ConfigError(f"spending_shift needs from_day >= 0 and factor > 0, got {from_day} and {factor}")
    shifted = (F.col("tx_time_days") >= from_day) & (
        uniform_hash(seed, "spending-shift", "customer_id") < customer_share
    )
    return transactions.withColumn(
        "tx_amount", F.when(shifted, F.round(F.col("tx_amount") * factor, 2)).otherwise(F.col("tx_amount"))
    )


@dataclass(frozen=True)
class DriftIntensity:
    """How strong a drift is: per day, terminals drained and payments each (new_fraud_pattern); the share of
    customers and their spending factor (spending_shift)."""

    terminals_per_day: int = 2
    transactions_per_terminal: int = 30
    customer_share: float = 0.2
    factor: float = 2.0


def apply_drift(
    transactions: DataFrame, *, kind: DriftKind, from_day: int, seed: int, intensity: DriftIntensity = DriftIntensity()
) -> DataFrame:
    """Ground truth -> ground truth with the named drift from `from_day` on (see the two functions above)."""
    if kind == "new_fraud_pattern":
        return inject_new_fraud_pattern(
            transactions,
            from_day=from_day,
            seed=seed,
            terminals_per_day=intensity.terminals_per_day,
            transactions_per_terminal=intensity.transactions_per_terminal,
        )
    if kind == "spending_shift":
        return inject_spending_shift(
            transactions, from_day=from_day, seed=seed, customer_share=intensity.customer_share, factor=intensity.factor
        )
    raise ConfigError(f"unknown drift kind {kind!r}; use one of {list(DRIFT_KINDS)}")


# ---------------------------------------------------------------------------------- delivery anomalies
# Landed lines: transaction_id, event_at, landed_at (timestamps), copy (0 = original), anomaly, value.


def _plus_seconds(timestamp: Column | str, seconds: Column) -> Column:
    from pyspark.sql import functions as F  # noqa: N812

    return F.timestamp_seconds(F.unix_seconds(F.col(timestamp) if isinstance(timestamp, str) else timestamp) + seconds)


def _appended(anomaly: str) -> Column:
    """The anomaly column with one more tag (comma-separated; a line can get several)."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.concat_ws(",", F.col("anomaly"), F.lit(anomaly))


def inject_duplicates(lines: DataFrame, *, share: float, seed: int) -> DataFrame:
    """Lines -> lines plus an exact re-send (same value, copy = 1) of a `share` of them, 1 to 600 s later."""
    from pyspark.sql import functions as F  # noqa: N812

    _check_share("duplicate_share", share)
    resent = lines.where(uniform_hash(seed, "duplicate", "transaction_id", "copy") < share).select(
        "transaction_id",
        "event_at",
        _plus_seconds("landed_at", 1 + F.floor(uniform_hash(seed, "duplicate-delay", "transaction_id") * 600)).alias(
            "landed_at"
        ),
        (F.col("copy") + 1).alias("copy"),
        _appended("duplicate").alias("anomaly"),
        "value",
    )
    return lines.unionByName(resent)


def inject_late_arrivals(lines: DataFrame, *, share: float, max_days: int, seed: int) -> DataFrame:
    """Lines -> same lines, a `share` of them landed 1..`max_days` days after their event day (later folder)."""
    from pyspark.sql import functions as F  # noqa: N812

    _check_share("late_share", share)
    if max_days < 1:
        raise ConfigError(f"late_max_days must be >= 1, got {max_days}")
    late = uniform_hash(seed, "late", "transaction_id", "copy") < share
    days_late = 1 + F.floor(uniform_hash(seed, "late-days", "transaction_id", "copy") * max_days)
    second_of_day = F.floor(uniform_hash(seed, "late-second", "transaction_id", "copy") * _SECONDS_PER_DAY)
    landed = _plus_seconds(F.date_trunc("day", "event_at"), days_late * _SECONDS_PER_DAY + second_of_day)
    return lines.withColumns(
        {
            "landed_at": F.when(late, landed).otherwise(F.col("landed_at")),
            "anomaly": F.when(late, _appended("late")).otherwise(F.col("anomaly")),
        }
    )


def shuffle_within_day(lines: DataFrame, *, seed: int) -> DataFrame:
    """Lines -> same lines, each given a random arrival second within its landing day (file order shuffled)."""
    from pyspark.sql import functions as F  # noqa: N812

    second_of_day = F.floor(uniform_hash(seed, "shuffle", "transaction_id", "copy") * _SECONDS_PER_DAY)
    return lines.withColumns(
        {
            "landed_at": _plus_seconds(F.date_trunc("day", "landed_at"), second_of_day),
            "anomaly": _appended("out_of_order"),
        }
    )


def _malformed_value(kind: str) -> Column:
    """The broken version of a transaction event line for one malformed kind."""
    from pyspark.sql import functions as F  # noqa: N812

    value = F.col("value")
    if kind == "broken_json":  # cut in the middle, as a truncated write leaves it
        return F.expr("substring(value, 1, length(value) div 2)")
    if kind == "wrong_type":  # a string id where a number is expected
        return F.regexp_replace(value, r'"customer_id":(\d+)', '"customer_id":"C$1"')
    if kind == "missing_field":
        return F.regexp_replace(value, r',"terminal_id":\d+', "")
    if kind == "negative_amount":
        return F.regexp_replace(value, r'"tx_amount":', '"tx_amount":-')
    if kind == "absurd_amount":
        return F.regexp_replace(value, r'"tx_amount":[^,}]+', f'"tx_amount":{ABSURD_AMOUNT!r}')
    if kind == "future_timestamp":
        return F.regexp_replace(value, r'"tx_datetime":"\d{4}', f'"tx_datetime":"{FUTURE_YEAR}')
    raise ConfigError(f"unknown malformed kind {kind!r}; use one of {list(MALFORMED_KINDS)}")


def inject_malformed(lines: DataFrame, *, share: float, seed: int) -> DataFrame:
    """Lines -> same lines, a `share` of values replaced by one of MALFORMED_KINDS (tagged in `anomaly`)."""
    from pyspark.sql import functions as F  # noqa: N812

    _check_share("malformed_share", share)
    chosen = uniform_hash(seed, "malformed", "transaction_id", "copy") < share
    kind_index = F.floor(uniform_hash(seed, "malformed-kind", "transaction_id", "copy") * len(MALFORMED_KINDS))
    value = F.col("value")
    anomaly = F.col("anomaly")
    for index, kind in enumerate(MALFORMED_KINDS):
        hit = chosen & (kind_index == index)
        value = F.when(hit, _malformed_value(kind)).otherwise(value)
        anomaly = F.when(hit, _appended(f"malformed:{kind}")).otherwise(anomaly)
    return lines.withColumns({"value": value, "anomaly": anomaly})


def inject_delivery_anomalies(
    lines: DataFrame,
    *,
    seed: int,
    duplicate_share: float = 0.0,
    late_share: float = 0.0,
    late_max_days: int = 3,
    out_of_order: bool = False,
    malformed_share: float = 0.0,
) -> DataFrame:
    """Lines -> lines with the requested anomalies, in this order: duplicates, late, shuffle, malformed."""
    if duplicate_share > 0:
        lines = inject_duplicates(lines, share=duplicate_share, seed=seed)
    if late_share > 0:
        lines = inject_late_arrivals(lines, share=late_share, max_days=late_max_days, seed=seed)
    if out_of_order:
        lines = shuffle_within_day(lines, seed=seed)
    if malformed_share > 0:
        lines = inject_malformed(lines, share=malformed_share, seed=seed)
    return lines
