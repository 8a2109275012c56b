"""A micro-batch after the stateful operator, on the driver: the driver writer's path, in Arrow and NumPy.

The operator's rows of a micro-batch (a few thousand to about a hundred thousand: one per transaction and entity)
are collected once; combining them per transaction, the late flags, the row and derived features, the score, the
decision and the dead letters are then computed here, without a Spark job or a Spark plan. Built as DataFrames,
the same steps cost the driver about 0.3-0.6 s of plan building and analysis and a scoring job of 0.3-1 s per
micro-batch, whatever its size (measured: lakestream.streaming.pipeline logs the steps of every batch).

The Spark expressions stay the reference (lakestream.streaming.pipeline: ``combine_entities``,
``score_transactions``, ``rejected_rows``, used by Spark's writer): the output columns and their types are taken
from those DataFrames' schemas (``OutputSchemas``), and the tests compare both paths row by row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lakestream.features.spec import SECONDS_PER_DAY

if TYPE_CHECKING:
    import pyarrow as pa

    from lakestream.config.models import LakestreamConfig, ScoringConfig
    from lakestream.features.spec import FeatureSetSpec, RowFeature
    from lakestream.registry.models import LoadedModel
    from lakestream.streaming.online_features import OnlinePlan

SHARED_COLUMNS = ("ts", "kafka_partition", "kafka_offset", "kafka_timestamp")  # equal on every row of a transaction


@dataclass(frozen=True)
class OutputSchemas:
    """The Arrow schemas of the scores and dead-letter rows, as Spark's writer path produces them."""

    scores: pa.Schema
    dead_letters: pa.Schema


def combine(rows: pa.Table, plan: OnlinePlan, *, ok: str) -> pa.Table:
    """Operator rows with status `ok` (one per transaction and entity) -> one row per transaction: each entity's id
    under the entity's name, the shared columns and every window feature (each entity's row carries its own)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = rows.filter(pc.equal(rows.column("status"), ok))
    entity = rows.column("entity")
    columns: dict[str, pa.ChunkedArray] = {"transaction_id": rows.column("transaction_id")}
    for name in plan.entities:
        columns[name] = pc.if_else(pc.equal(entity, name), rows.column("entity_id"), pa.scalar(None, pa.int64()))
    for name in (*SHARED_COLUMNS, *plan.value_columns, *plan.feature_names):
        columns[name] = rows.column(name)
    aggregated = [name for name in columns if name != "transaction_id"]
    by_transaction = pa.table(columns).group_by("transaction_id", use_threads=False)
    grouped = by_transaction.aggregate([(name, "max") for name in aggregated])
    return grouped.rename_columns([name.removesuffix("_max") for name in grouped.column_names])


def late_mask(transactions: pa.Table, high_water: dict[int, int], lateness: int, *, skew: int | None) -> np.ndarray:
    """pipeline._late on combined rows: older than the partition's newest scored event - lateness, or (with a skew)
    than the newest of any partition - lateness - skew."""
    ts = transactions.column("ts").to_numpy()
    partition = transactions.column("kafka_partition").to_numpy()
    late = np.zeros(len(ts), dtype=bool)
    for number, newest in high_water.items():
        late |= (partition == number) & (ts < newest - lateness)
    if skew is not None and high_water:
        late |= ts < max(high_water.values()) - lateness - skew
    return late


def scores(
    transactions: pa.Table,
    *,
    spec: FeatureSetSpec,
    model: LoadedModel,
    config: LakestreamConfig,
    batch_id: int,
    schema: pa.Schema,
    processed_at: dt.datetime,
) -> pa.Table:
    """Combined on-time rows -> the scores table's rows (pipeline.score_transactions' columns, in its schema)."""
    import pyarrow as pa

    n = transactions.num_rows
    ts = transactions.column("ts").to_numpy()
    values: dict[str, pa.Array | pa.ChunkedArray | np.ndarray] = {
        name: transactions.column(name) for name in transactions.column_names
    }
    counts = {name for g in spec.windows for _, a, name in g.expanded() if a.agg == "count"}
    for name in counts:
        values[name] = values[name].cast(pa.int64())  # the count features are whole numbers, as in batch
    micros = ts * 1_000_000
    values["tx_datetime"] = pa.array(micros, pa.timestamp("us", tz="UTC"))
    values["tx_date"] = pa.array(ts // SECONDS_PER_DAY, pa.int32()).cast(pa.date32())
    for feature in spec.row_features:
        values[feature.name] = row_feature(feature, ts, values)
    for feature in spec.derived_features:
        values[feature.name] = row_feature(feature, ts, values)
    score = predict(model, values, n)
    values["score"] = score
    values["decision"] = decisions(score, config.training.scoring)
    constants = {
        "model_name": model.name,
        "model_version": model.version,
        "feature_set": spec.name,
        "feature_set_version": spec.version,
        "kafka_topic": config.kafka.topics.transactions.name,
        "batch_id": batch_id,
        "processed_at": processed_at,
    }
    stamps = transactions.column("kafka_timestamp").to_numpy(zero_copy_only=False)
    values["kafka_timestamp"] = pa.array(stamps * 1000, pa.timestamp("us", tz="UTC"))
    arrays = []
    for field in schema:
        if field.name in constants:
            arrays.append(pa.array([constants[field.name]] * n).cast(field.type))
        else:
            column = values[field.name]
            column = column if isinstance(column, pa.Array | pa.ChunkedArray) else pa.array(column)
            arrays.append(column.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def row_feature(
    feature: RowFeature, ts: np.ndarray, values: dict[str, pa.Array | pa.ChunkedArray | np.ndarray]
) -> pa.Array | pa.ChunkedArray:
    """lakestream.features.batch's row and derived features (Spark's semantics, session time zone UTC)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    hour = (ts // 3600) % 24
    if feature.kind == "is_weekend":  # Spark's dayofweek: Sunday 1 ... Saturday 7; 1970-01-01 was a Thursday (5)
        day = (ts // SECONDS_PER_DAY + 4) % 7 + 1
        return pa.array(np.isin(day, (1, 7)).astype(np.int32))
    if feature.kind == "is_night":
        return pa.array((hour <= feature.night_end_hour).astype(np.int32))
    if feature.kind == "hour_of_day":
        return pa.array(hour.astype(np.int32))
    if feature.kind == "copy":
        return _arrow(values[str(feature.column)])

    def double(name: str | None) -> pa.Array | pa.ChunkedArray:
        return pc.cast(_arrow(values[str(name)]), pa.float64())

    if feature.kind == "ratio":
        denominator = double(feature.denominator)
        ok = pc.fill_null(pc.not_equal(denominator, 0.0), False)
        return pc.if_else(ok, pc.divide(double(feature.column), denominator), feature.default)
    std, mean = double(feature.std), double(feature.mean)
    ok = pc.fill_null(pc.and_(pc.greater(std, 0.0), pc.is_valid(mean)), False)
    return pc.if_else(ok, pc.divide(pc.subtract(double(feature.column), mean), std), feature.default)


def predict(model: LoadedModel, values: dict[str, pa.Array | pa.ChunkedArray | np.ndarray], rows: int) -> np.ndarray:
    """The model's fraud probability per row, from its inputs as float32 (nulls missing), as the scoring UDF."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakestream.scoring.batch import predict_matrix

    matrix = np.empty((rows, len(model.feature_names)), dtype=np.float32)
    for i, name in enumerate(model.feature_names):
        column = pc.cast(_arrow(values[name]), pa.float64())
        matrix[:, i] = pc.fill_null(column, float("nan")).to_numpy(zero_copy_only=False)
    return predict_matrix(model.booster, matrix)


def decisions(score: np.ndarray, scoring: ScoringConfig) -> np.ndarray:
    """block (score >= block_threshold), review (>= review_threshold) or approve: scoring.batch.assign_decisions."""
    return np.where(
        score >= scoring.block_threshold, "block", np.where(score >= scoring.review_threshold, "review", "approve")
    )


def dead_letters(
    rows: pa.Table,
    late: pa.Table,
    *,
    statuses: tuple[str, str],
    primary: str,
    query: str,
    topic: str,
    details: tuple[str, str],
    reasons: tuple[str, str],
    schema: pa.Schema,
    at: dt.datetime,
) -> pa.Table:
    """pipeline.rejected_rows on collected rows: the records that failed validation (operator rows with status
    `statuses[0]`), the duplicates (status `statuses[1]`, the primary entity's row) and the late transactions.

    `reasons` and `details` are the duplicate's and the late transaction's, in that order.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    rejected, duplicate = statuses
    invalid = rows.filter(pc.equal(rows.column("status"), rejected))
    duplicates = rows.filter(
        pc.and_(pc.equal(rows.column("status"), duplicate), pc.equal(rows.column("entity"), primary))
    )
    parts = [(invalid, None, None)] + [
        (frame, reason, detail) for frame, reason, detail in zip((duplicates, late), reasons, details, strict=True)
    ]
    tables = []
    for frame, reason, detail in parts:
        n = frame.num_rows
        if n == 0:
            continue
        own = reason is None  # invalid records carry their own topic, bytes, reason and detail
        columns = {
            "topic": frame.column("topic") if own else pa.array([topic] * n),
            "kafka_partition": frame.column("kafka_partition"),
            "kafka_offset": frame.column("kafka_offset"),
            "kafka_timestamp": pc.multiply(pc.cast(frame.column("kafka_timestamp"), pa.int64()), 1000),
            "raw": frame.column("raw") if own else pa.nulls(n, pa.binary()),
            "reason": frame.column("reason") if own else pa.array([reason] * n),
            "detail": frame.column("detail") if own else pa.array([detail] * n),
            "transaction_id": frame.column("transaction_id"),
            "event_time": pc.multiply(pc.cast(frame.column("ts"), pa.int64()), 1_000_000),
            "query": pa.array([query] * n),
            "dead_lettered_at": pa.array([at] * n),
        }
        arrays = []
        for field in schema:
            column = columns[field.name]
            if pa.types.is_timestamp(field.type) and field.name != "dead_lettered_at":
                column = pc.cast(column, pa.int64()).cast(field.type)  # microseconds since the epoch
            arrays.append(column.cast(field.type))
        tables.append(pa.Table.from_arrays(arrays, schema=schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _arrow(column: pa.Array | pa.ChunkedArray | np.ndarray) -> pa.Array | pa.ChunkedArray:
    import pyarrow as pa

    return column if isinstance(column, pa.Array | pa.ChunkedArray) else pa.array(column)
