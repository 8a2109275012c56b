"""Pure transforms from bronze rows to classified rows: parse, assign the silver day, check rules, dedupe.

Every function here is ``DataFrame -> DataFrame`` with keyword-only parameters, Spark SQL functions only
(no UDFs), no session and no IO, so the silver job and the quarantine replay run exactly the same code.

Grain: one row per bronze row all the way through; nothing is filtered out here except by the caller's
choice of days. Internal columns start with ``_``; the final ones are:

- ``event_date``: date of the event-time field when it could be read, else null;
- ``process_date``: the silver day whose run owns the row (see ``assign_process_date``);
- ``_outcome``: ``silver`` | ``quarantine`` | ``duplicate``;
- ``rules`` (distinct rule names, declaration order) and ``reason`` (every human reason, "; "-joined);
- ``_kept_record_id``: for a duplicate, the bronze record kept in silver;
- ``unknown_fields``: JSON keys that are not message fields (dropped, or a rule when so configured).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lakestream.io.schemas import TIMESTAMP_FORMAT

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

    from lakestream.config.models import FraudLabelRulesConfig, IdRangeConfig, QualityConfig, TransactionRulesConfig

# Rule names: what `quarantine.records.rules` holds and what `replay-quarantine --rule` filters on.
MALFORMED_JSON = "malformed_json"
MISSING_REQUIRED_FIELD = "missing_required_field"
WRONG_TYPE = "wrong_type"
UNKNOWN_FIELDS = "unknown_fields"
INVALID_TIMESTAMP = "invalid_timestamp"
TIMESTAMP_OUT_OF_BOUNDS = "timestamp_out_of_bounds"
TIMESTAMP_AFTER_LANDING = "timestamp_after_landing"
LATE_BEYOND_ALLOWED_LATENESS = "late_beyond_allowed_lateness"
TRANSACTION_ID_OUT_OF_RANGE = "transaction_id_out_of_range"
CUSTOMER_ID_OUT_OF_RANGE = "customer_id_out_of_range"
TERMINAL_ID_OUT_OF_RANGE = "terminal_id_out_of_range"
AMOUNT_NOT_FINITE = "amount_not_finite"
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
INVALID_FRAUD_FLAG = "invalid_fraud_flag"
UNKNOWN_FRAUD_SCENARIO = "unknown_fraud_scenario"
REPORTED_BEFORE_TRANSACTION = "reported_before_transaction"
UNKNOWN_TRANSACTION = "unknown_transaction"
DUPLICATE_TRANSACTION_ID = "duplicate_transaction_id"

RULES: tuple[str, ...] = (
    MALFORMED_JSON,
    MISSING_REQUIRED_FIELD,
    WRONG_TYPE,
    UNKNOWN_FIELDS,
    INVALID_TIMESTAMP,
    TIMESTAMP_OUT_OF_BOUNDS,
    TIMESTAMP_AFTER_LANDING,
    LATE_BEYOND_ALLOWED_LATENESS,
    TRANSACTION_ID_OUT_OF_RANGE,
    CUSTOMER_ID_OUT_OF_RANGE,
    TERMINAL_ID_OUT_OF_RANGE,
    AMOUNT_NOT_FINITE,
    AMOUNT_OUT_OF_RANGE,
    INVALID_FRAUD_FLAG,
    UNKNOWN_FRAUD_SCENARIO,
    REPORTED_BEFORE_TRANSACTION,
    UNKNOWN_TRANSACTION,
    DUPLICATE_TRANSACTION_ID,
)

OUTCOME_SILVER = "silver"
OUTCOME_QUARANTINE = "quarantine"
OUTCOME_DUPLICATE = "duplicate"

_RAW = "_raw"
_VIOLATIONS = "_violations"
_SECONDS_PER_DAY = 86_400


def parse_landed_events(bronze: DataFrame, *, event_schema: StructType, timestamp_fields: Sequence[str]) -> DataFrame:
    """Bronze rows -> + one typed column per message field, `_raw` (the JSON object as map<string,string>,
    null when the line is not a JSON object) and `unknown_fields` (sorted extra keys). Grain unchanged.

    Each field is typed independently (from_json keeps the fields it can read), so a wrong type in one
    field never hides the others; timestamp fields are parsed strictly with ``TIMESTAMP_FORMAT`` in UTC.
    """
    from pyspark.sql import functions as F  # noqa: N812

    parsed = F.from_json("value", event_schema)
    raw = F.from_json("value", "map<string,string>")
    known = F.array(*[F.lit(field.name) for field in event_schema.fields])
    typed = {}
    for field in event_schema.fields:
        column = parsed[field.name]
        if field.name in timestamp_fields:
            column = F.try_to_timestamp(column, F.lit(TIMESTAMP_FORMAT))
        typed[field.name] = column
    return (
        bronze.withColumn(_RAW, raw)
        .withColumns(typed)
        .withColumn("unknown_fields", F.coalesce(F.array_sort(F.array_except(F.map_keys(_RAW), known)), F.array()))
    )


def assign_process_date(events: DataFrame, *, event_time_field: str, allowed_lateness_days: int) -> DataFrame:
    """Parsed rows -> + `event_date` (date of the event time) and `process_date` (the silver day owning the row).

    A row belongs to its event date when it landed at most `allowed_lateness_days` after it (or, clock
    skew, on the day before); otherwise - unreadable, too late, or far in the future - to its landing date,
    where it is quarantined. So silver day D reads landing days D-1 .. D+allowed_lateness_days.
    """
    from pyspark.sql import functions as F  # noqa: N812

    event_date = F.to_date(F.col(event_time_field))
    on_time = event_date.between(F.date_sub("landing_date", allowed_lateness_days), F.date_add("landing_date", 1))
    return events.withColumn("event_date", event_date).withColumn(
        "process_date", F.when(on_time, F.col("event_date")).otherwise(F.col("landing_date"))
    )


def check_transaction_rules(
    events: DataFrame, *, quality: QualityConfig, rules: TransactionRulesConfig, required_fields: Sequence[str]
) -> DataFrame:
    """Parsed transaction rows -> + `_violations` (array of {rule, reason}); grain unchanged."""
    from pyspark.sql import functions as F  # noqa: N812

    amount = F.col("tx_amount")
    not_finite = F.isnan(amount) | amount.isin(float("inf"), float("-inf"))
    from lakestream.io.schemas import transaction_event_schema

    checks = [
        *_message_checks(
            event_schema=transaction_event_schema(),
            quality=quality,
            required_fields=required_fields,
            timestamp_fields=("tx_datetime",),
            event_time_field="tx_datetime",
        ),
        _id_range_check("transaction_id", rules.transaction_id, TRANSACTION_ID_OUT_OF_RANGE),
        _id_range_check("customer_id", rules.customer_id, CUSTOMER_ID_OUT_OF_RANGE),
        _id_range_check("terminal_id", rules.terminal_id, TERMINAL_ID_OUT_OF_RANGE),
        _violation(AMOUNT_NOT_FINITE, not_finite, F.concat(F.lit("tx_amount is "), amount.cast("string"))),
        _violation(
            AMOUNT_OUT_OF_RANGE,
            ~not_finite & ((amount <= 0) | (amount > F.lit(rules.max_amount))),
            F.concat(F.lit("tx_amount "), amount.cast("string"), F.lit(f" is outside (0, {rules.max_amount:g}]")),
        ),
    ]
    return _with_violations(events, checks)


def check_fraud_label_rules(
    events: DataFrame,
    *,
    known_transactions: DataFrame,
    quality: QualityConfig,
    rules: FraudLabelRulesConfig,
    transaction_rules: TransactionRulesConfig,
    required_fields: Sequence[str],
) -> DataFrame:
    """Parsed label rows -> + `_violations`; grain unchanged.

    `known_transactions` (transaction_id, tx_date: silver transactions) decides `unknown_transaction`: a
    label must name a silver transaction on the date of its own tx_datetime.
    """
    from pyspark.sql import functions as F  # noqa: N812

    from lakestream.io.schemas import fraud_label_event_schema

    known_key = (F.col("l.transaction_id") == F.col("k.transaction_id")) & (
        F.to_date(F.col("l.tx_datetime")) == F.col("k.tx_date")
    )
    # A semi-join then a join on the unique record_id: the row count cannot grow, whatever `known` holds.
    known_records = (
        events.alias("l")
        .join(known_transactions.alias("k"), known_key, "left_semi")
        .select(F.col("record_id").alias("_known_record_id"))
    )
    labelled = events.join(known_records, F.col("record_id") == F.col("_known_record_id"), "left")
    scenario, flag = F.col("tx_fraud_scenario"), F.col("tx_fraud")
    checks = [
        *_message_checks(
            event_schema=fraud_label_event_schema(),
            quality=quality,
            required_fields=required_fields,
            timestamp_fields=("tx_datetime", "reported_at"),
            event_time_field="reported_at",
        ),
        _id_range_check("transaction_id", transaction_rules.transaction_id, TRANSACTION_ID_OUT_OF_RANGE),
        _violation(
            INVALID_FRAUD_FLAG,
            ~flag.isin(0, 1),
            F.concat(F.lit("tx_fraud "), flag.cast("string"), F.lit(" is not 0 or 1")),
        ),
        _violation(
            UNKNOWN_FRAUD_SCENARIO,
            ~scenario.isin(*rules.fraud_scenarios),
            F.concat(
                F.lit("tx_fraud_scenario "),
                scenario.cast("string"),
                F.lit(f" is not one of {list(rules.fraud_scenarios)}"),
            ),
        ),
        _violation(
            REPORTED_BEFORE_TRANSACTION,
            F.col("reported_at") < F.col("tx_datetime"),
            F.concat(
                F.lit("reported_at "),
                F.col("reported_at").cast("string"),
                F.lit(" is before tx_datetime "),
                F.col("tx_datetime").cast("string"),
            ),
        ),
        _violation(
            UNKNOWN_TRANSACTION,
            F.col("transaction_id").isNotNull() & F.col("tx_datetime").isNotNull() & F.col("_known_record_id").isNull(),
            F.concat(
                F.lit("no silver transaction "),
                F.col("transaction_id").cast("string"),
                F.lit(" on "),
                F.to_date("tx_datetime").cast("string"),
            ),
        ),
    ]
    return _with_violations(labelled, checks).drop("_known_record_id")


def resolve_duplicates(events: DataFrame, *, payload_fields: Sequence[str]) -> DataFrame:
    """Checked rows -> + `_outcome`, `_kept_record_id`, `rules`, `reason`; grain unchanged.

    Among the rows that pass every rule, one per (process_date, transaction_id) is kept: the earliest
    landed (landing_date, source_file, record_id). A later copy with the same payload is an exact re-send
    (`duplicate`, recorded, not in silver); one with a different payload is a conflict and is quarantined
    as `duplicate_transaction_id`, naming the kept record.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    passing = F.size(_VIOLATIONS) == 0
    payload = F.struct(*[F.col(name) for name in payload_fields])
    window = Window.partitionBy(passing, "process_date", "transaction_id").orderBy(
        "landing_date", "source_file", "record_id"
    )
    window_all = window.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    kept_id = F.first("record_id").over(window_all)
    kept_payload = F.first(payload).over(window_all)
    is_kept = F.col("record_id") == F.col("_kept_record_id")
    same_payload = payload == kept_payload
    conflict = _violation(
        DUPLICATE_TRANSACTION_ID,
        passing & ~is_kept & ~same_payload,
        F.concat(
            F.lit("transaction_id "),
            F.col("transaction_id").cast("string"),
            F.lit(" already kept from record "),
            F.col("_kept_record_id"),
            F.lit(" with a different payload"),
        ),
    )
    resolved = (
        events.withColumn("_kept_record_id", F.when(passing, kept_id))
        .withColumn(_VIOLATIONS, F.array_compact(F.concat(F.col(_VIOLATIONS), F.array(conflict))))
        .withColumn(
            "_outcome",
            F.when(F.size(_VIOLATIONS) > 0, F.lit(OUTCOME_QUARANTINE))
            .when(is_kept, F.lit(OUTCOME_SILVER))
            .otherwise(F.lit(OUTCOME_DUPLICATE)),
        )
    )
    return resolved.withColumns(
        {
            "_kept_record_id": F.when(F.col("_outcome") == OUTCOME_DUPLICATE, F.col("_kept_record_id")),
            "rules": F.array_distinct(F.transform(_VIOLATIONS, lambda v: v["rule"])),
            "reason": F.array_join(F.transform(_VIOLATIONS, lambda v: v["reason"]), "; "),
        }
    ).drop(_VIOLATIONS, _RAW)


def _message_checks(
    *,
    event_schema: StructType,
    quality: QualityConfig,
    required_fields: Sequence[str],
    timestamp_fields: Sequence[str],
    event_time_field: str,
) -> list[Column]:
    """Checks every message kind shares: presence, types, unknown keys, timestamp sanity and lateness."""
    from pyspark.sql import functions as F  # noqa: N812

    checks = []
    for name in required_fields:
        checks.append(
            _violation(
                MISSING_REQUIRED_FIELD,
                _raw_field(name).isNull(),
                F.lit(f"required field {name} is missing or null"),
            )
        )
    for field in event_schema.fields:
        name = field.name
        if name in timestamp_fields:
            checks.append(
                _violation(
                    INVALID_TIMESTAMP,
                    _raw_field(name).isNotNull() & F.col(name).isNull(),
                    F.concat(
                        F.lit(f"{name} "), _quoted_raw(name), F.lit(f" is not a '{TIMESTAMP_FORMAT}' UTC timestamp")
                    ),
                )
            )
        else:
            checks.append(
                _violation(
                    WRONG_TYPE,
                    _raw_field(name).isNotNull() & F.col(name).isNull(),
                    F.concat(F.lit(f"{name} "), _quoted_raw(name), F.lit(f" is not a {field.dataType.simpleString()}")),
                )
            )
    if quality.unknown_fields == "quarantine":
        checks.append(
            _violation(
                UNKNOWN_FIELDS,
                F.size("unknown_fields") > 0,
                F.concat(F.lit("unknown fields: "), F.array_join("unknown_fields", ", ")),
            )
        )
    lowest = F.to_timestamp(F.lit(quality.min_event_date.isoformat()))
    beyond_highest = F.to_timestamp(F.lit(quality.max_event_date.isoformat())) + F.expr("INTERVAL 1 DAY")
    after_landing = F.to_timestamp("landing_date") + F.expr(
        f"INTERVAL {_SECONDS_PER_DAY + 60 * quality.future_tolerance_minutes} SECONDS"
    )
    for name in timestamp_fields:
        ts = F.col(name)
        checks.append(
            _violation(
                TIMESTAMP_OUT_OF_BOUNDS,
                (ts < lowest) | (ts >= beyond_highest),
                F.concat(
                    F.lit(f"{name} "),
                    ts.cast("string"),
                    F.lit(f" is outside [{quality.min_event_date}, {quality.max_event_date}]"),
                ),
            )
        )
        checks.append(
            _violation(
                TIMESTAMP_AFTER_LANDING,
                ts >= after_landing,
                F.concat(
                    F.lit(f"{name} "),
                    ts.cast("string"),
                    F.lit(" is after its landing day "),
                    F.col("landing_date").cast("string"),
                    F.lit(f" (+{quality.future_tolerance_minutes} min tolerance)"),
                ),
            )
        )
    event_date = F.to_date(F.col(event_time_field))
    checks.append(
        _violation(
            LATE_BEYOND_ALLOWED_LATENESS,
            event_date < F.date_sub("landing_date", quality.allowed_lateness_days),
            F.concat(
                F.lit(f"{event_time_field} date "),
                event_date.cast("string"),
                F.lit(" landed on "),
                F.col("landing_date").cast("string"),
                F.lit(f", more than {quality.allowed_lateness_days} days late"),
            ),
        )
    )
    return checks


def _id_range_check(name: str, bounds: IdRangeConfig, rule: str) -> Column:
    from pyspark.sql import functions as F  # noqa: N812

    value = F.col(name)
    outside = F.lit(False)
    if bounds.min is not None:
        outside = outside | (value < F.lit(bounds.min))
    if bounds.max is not None:
        outside = outside | (value > F.lit(bounds.max))
    low = "-inf" if bounds.min is None else str(bounds.min)
    high = "+inf" if bounds.max is None else str(bounds.max)
    return _violation(
        rule, outside, F.concat(F.lit(f"{name} "), value.cast("string"), F.lit(f" is outside [{low}, {high}]"))
    )


def _violation(rule: str, broken: Column, reason: Column) -> Column:
    """{rule, reason} when `broken` is true; null when false or unknown (a null field breaks no range rule)."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.when(broken, F.struct(F.lit(rule).alias("rule"), reason.alias("reason")))


def _with_violations(events: DataFrame, checks: Sequence[Column]) -> DataFrame:
    """+ `_violations`: the broken checks, or only malformed_json when the line is not a JSON object."""
    from pyspark.sql import functions as F  # noqa: N812

    malformed = F.array(
        F.struct(
            F.lit(MALFORMED_JSON).alias("rule"),
            F.concat(F.lit("not a JSON object: "), _shortened(F.col("value"))).alias("reason"),
        )
    )
    return events.withColumn(
        _VIOLATIONS, F.when(F.col(_RAW).isNull(), malformed).otherwise(F.array_compact(F.array(*checks)))
    )


def _raw_field(name: str) -> Column:
    from pyspark.sql import functions as F  # noqa: N812

    return F.try_element_at(F.col(_RAW), F.lit(name))


def _quoted_raw(name: str) -> Column:
    from pyspark.sql import functions as F  # noqa: N812

    return F.concat(F.lit("'"), _shortened(_raw_field(name)), F.lit("'"))


def _shortened(text: Column, limit: int = 80) -> Column:
    from pyspark.sql import functions as F  # noqa: N812

    return F.when(F.length(text) > limit, F.concat(F.substring(text, 1, limit), F.lit("…"))).otherwise(text)
