"""Data quality and stream health per event-time window, in Spark: pure transforms over the served rows.

- **dead letters** of the stream are placed in event time: by their own event time when it could be read,
  else by their position in the Kafka partition (the event time of the nearest scored record before them,
  or after them at the start of a partition); rates are per reason and in total, over scored + dead-lettered;
- **freshness**: seconds from the Kafka append to the scores commit (p50, p95) of the stream's rows;
- **volume**: transactions per window (the expected volume comes from the reference profile);
- **quarantine** of the batch path: per silver day and reason, from ``quality.ingest_audit`` (the latest run
  of each day) and ``quarantine.records``;
- **stream health**: per window, the micro-batches that scored its rows (from ``gold.stream_metrics``): how
  many, the slowest, the worst p99 latency, and how many could not reach the model registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F  # noqa: N812

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

WINDOW_KEYS = ("granularity", "window_start", "window_end")
GRANULARITY_UNITS = {"hour": "HOUR", "day": "DAY"}


def explode_windows(frame: DataFrame, *, granularities: Sequence[str], time_column: str = "tx_datetime") -> DataFrame:
    """One row per input row and granularity: + granularity, window_start, window_end (event time)."""
    windows = []
    for granularity in granularities:
        start = F.date_trunc(GRANULARITY_UNITS[granularity], F.col(time_column))
        end = start + F.expr(f"INTERVAL 1 {GRANULARITY_UNITS[granularity]}")
        windows.append(
            F.struct(F.lit(granularity).alias("granularity"), start.alias("window_start"), end.alias("window_end"))
        )
    return frame.select("*", F.inline(F.array(*windows)))


def attribute_dead_letters(dead_letters: DataFrame, scored: DataFrame) -> DataFrame:
    """Dead-letter rows + tx_datetime: their event time, else that of their Kafka neighbours among scored rows.

    scored: kafka_topic, kafka_partition, kafka_offset, tx_datetime of the served rows around the dead letters.
    Rows that can be placed neither way (e.g. an unreadable record on a topic with nothing scored) keep a
    null tx_datetime.
    """
    numbered = dead_letters.withColumn("_id", F.monotonically_increasing_id()).localCheckpoint()
    positions = scored.select(
        F.col("kafka_topic").alias("topic"),
        "kafka_partition",
        "kafka_offset",
        "tx_datetime",
        F.lit(None).cast("long").alias("_id"),
    )
    letters = numbered.select(
        "topic", "kafka_partition", "kafka_offset", F.lit(None).cast("timestamp").alias("tx_datetime"), "_id"
    )
    # dead letters sort after a scored row at the same offset (there is none: one record, one place)
    by_offset = Window.partitionBy("topic", "kafka_partition").orderBy("kafka_offset", F.col("_id").isNotNull())
    before = F.last("tx_datetime", ignorenulls=True).over(by_offset.rowsBetween(Window.unboundedPreceding, 0))
    after = F.first("tx_datetime", ignorenulls=True).over(by_offset.rowsBetween(0, Window.unboundedFollowing))
    placed = (
        positions.unionByName(letters)
        .withColumn("_neighbour_time", F.coalesce(before, after))
        .where(F.col("_id").isNotNull())
        .select("_id", "_neighbour_time")
    )
    own_time = F.col("event_time") if "event_time" in dead_letters.columns else F.lit(None).cast("timestamp")
    return (
        numbered.join(placed, on="_id", how="left")
        .withColumn("tx_datetime", F.coalesce(own_time, F.col("_neighbour_time")))
        .drop("_id", "_neighbour_time")
    )


def compute_dead_letter_rates(windowed_letters: DataFrame, windowed_scored: DataFrame) -> DataFrame:
    """Window keys + dimension (reason, '' for all) + dead_letters + records + dead_letter_rate."""
    scored = windowed_scored.groupBy(*WINDOW_KEYS).agg(F.count(F.lit(1)).alias("scored"))
    per_reason = windowed_letters.groupBy(*WINDOW_KEYS, F.col("reason").alias("dimension")).agg(
        F.count(F.lit(1)).alias("dead_letters")
    )
    total = windowed_letters.groupBy(*WINDOW_KEYS).agg(F.count(F.lit(1)).alias("all_letters"))
    base = scored.join(total, on=list(WINDOW_KEYS), how="full").fillna(0, subset=["scored", "all_letters"])
    records = F.col("scored") + F.col("all_letters")
    totals = base.select(
        *WINDOW_KEYS,
        F.lit("").alias("dimension"),
        F.col("all_letters").alias("dead_letters"),
        records.alias("records"),
    )
    reasons = per_reason.join(base, on=list(WINDOW_KEYS)).select(
        *WINDOW_KEYS, "dimension", "dead_letters", records.alias("records")
    )
    return (
        totals.unionByName(reasons)
        .withColumn("dead_letter_rate", F.col("dead_letters") / F.col("records"))
        .withColumn("records", F.col("records").cast("long"))
        .withColumn("dead_letters", F.col("dead_letters").cast("long"))
    )


def compute_freshness(windowed: DataFrame) -> DataFrame:
    """Window keys + freshness p50/p95 seconds (Kafka append -> processed) + rows with a Kafka timestamp."""
    lag = (F.unix_millis("processed_at") - F.unix_millis("kafka_timestamp")) / 1000.0
    timed = windowed.where(F.col("kafka_timestamp").isNotNull())
    return (
        timed.groupBy(*WINDOW_KEYS)
        .agg(
            F.percentile_approx(lag, [0.5, 0.95], 10_000).alias("_p"),
            F.count(F.lit(1)).alias("rows"),
        )
        .select(
            *WINDOW_KEYS,
            F.col("_p")[0].cast("double").alias("freshness_p50_seconds"),
            F.col("_p")[1].cast("double").alias("freshness_p95_seconds"),
            "rows",
        )
    )


def compute_volume(windowed: DataFrame) -> DataFrame:
    """Window keys + rows + the model version that scored most of them (whose reference gives the expectation)."""
    per_version = windowed.groupBy(*WINDOW_KEYS, "model_version").agg(F.count(F.lit(1)).alias("n"))
    top = Window.partitionBy(*WINDOW_KEYS).orderBy(F.desc("n"), F.desc("model_version"))
    return (
        per_version.withColumn("_rank", F.row_number().over(top))
        .withColumn("rows", F.sum("n").over(Window.partitionBy(*WINDOW_KEYS)))
        .where(F.col("_rank") == 1)
        .select(*WINDOW_KEYS, F.col("model_version").alias("main_model_version"), F.col("rows").cast("long"))
    )


def compute_prediction_stats(windowed: DataFrame) -> DataFrame:
    """Window keys + model version + rows, mean_score, alert_rate (review or block), block_rate."""
    return windowed.groupBy(*WINDOW_KEYS, "model_version").agg(
        F.count(F.lit(1)).alias("rows"),
        F.avg("score").alias("mean_score"),
        F.avg((F.col("decision") != "approve").cast("double")).alias("alert_rate"),
        F.avg((F.col("decision") == "block").cast("double")).alias("block_rate"),
    )


def compute_null_rates(long_windowed: DataFrame) -> DataFrame:
    """Window keys + model version + feature + null_rate + rows, from melted feature values."""
    return long_windowed.groupBy(*WINDOW_KEYS, "model_version", "feature").agg(
        F.avg(F.col("value").isNull().cast("double")).alias("null_rate"),
        F.count(F.lit(1)).alias("rows"),
    )


def compute_stream_health(windowed: DataFrame, stream_metrics: DataFrame) -> DataFrame:
    """Window keys + batches, max_batch_ms, latency_p99_ms (worst batch), registry_failures."""
    batches = windowed.select(*WINDOW_KEYS, "batch_id").distinct()
    joined = batches.join(
        stream_metrics.select("batch_id", "duration_ms", "latency_p99_ms", "registry_ok"), on="batch_id", how="left"
    )
    return joined.groupBy(*WINDOW_KEYS).agg(
        F.count(F.lit(1)).alias("batches"),
        F.max("duration_ms").cast("double").alias("max_batch_ms"),
        F.max("latency_p99_ms").cast("double").alias("latency_p99_ms"),
        F.sum((F.col("registry_ok") == F.lit(False)).cast("long")).alias("registry_failures"),
    )


def compute_quarantine_rates(audit: DataFrame, quarantine: DataFrame) -> DataFrame:
    """Per silver day: window keys (day) + dimension ('<kind>' total, '<kind>:<rule>') + quarantined + records + rate.

    audit: quality.ingest_audit silver rows; the latest run of each (kind, day) counts. quarantine: the
    records of those runs (a record that broke two rules counts once per rule).
    """
    latest = Window.partitionBy("kind", "process_date").orderBy(F.desc("finished_at"))
    runs = (
        audit.where(F.col("stage") == "silver")
        .withColumn("_rank", F.row_number().over(latest))
        .where(F.col("_rank") == 1)
        .select("kind", "process_date", "run_id", "input_rows", "quarantined_rows")
    )
    day_keys = [
        F.lit("day").alias("granularity"),
        F.col("process_date").cast("timestamp").alias("window_start"),
        (F.col("process_date") + F.expr("INTERVAL 1 DAY")).cast("timestamp").alias("window_end"),
    ]
    totals = runs.select(
        *day_keys,
        F.col("kind").alias("dimension"),
        F.col("quarantined_rows").cast("long").alias("quarantined"),
        F.col("input_rows").cast("long").alias("records"),
    )
    per_rule = (
        quarantine.join(
            runs.select("kind", "process_date", "run_id", "input_rows"), on=["kind", "process_date", "run_id"]
        )
        .select("kind", "process_date", "input_rows", F.explode("rules").alias("rule"))
        .groupBy("kind", "process_date", "input_rows", "rule")
        .agg(F.count(F.lit(1)).alias("quarantined"))
        .select(
            *day_keys,
            F.concat_ws(":", "kind", "rule").alias("dimension"),
            F.col("quarantined").cast("long"),
            F.col("input_rows").cast("long").alias("records"),
        )
    )
    return totals.unionByName(per_rule).withColumn(
        "quarantine_rate", F.when(F.col("records") > 0, F.col("quarantined") / F.col("records"))
    )
