"""Exact cuts: a hist fit's features discretised to at most ``max_bin`` values before the fit.

XGBoost's hist method buckets each feature at cut points from a quantile sketch. The sketch is approximate, and it
depends on how the rows are spread: over the threads of a single-node fit, over the workers of xgboost.spark. So
the same rows in another order or on another number of workers give other cut points, other trees and, on the
fraud data, AUCs up to 0.04 apart (benchmarks/results/training.json).

A feature with at most ``max_bin`` distinct values is bucketed exactly, one value per bucket, by every sketch. So
this module rounds each feature with more than ``max_bin - 1`` distinct values *down* to the nearest of at most
``max_bin - 1`` edges (quantiles of the training rows, found in one Spark pass). Every fit of those rows then has
the same cut points, whatever the order of the rows or the number of workers, and fits the same trees.

The model needs no rounding at scoring time. Its split conditions are ``x < c`` with c one of the edges, and
rounding down to the nearest edge never moves a value across an edge. So raw features get the same scores as
rounded ones (``tests/unit/test_exact_cuts.py``); values below the first edge go where the first edge goes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from pyspark.sql import functions as F  # noqa: N812

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

DEFAULT_MAX_BIN = 256  # XGBoost's default
SUMMARY_POINTS = 4096  # order statistics per block and feature: an edge's rank is within 1/4096 of its quantile
SUMMARY_BLOCK_ROWS = 1 << 21  # rows summarised at once by a task (a block of float32 features: 8 MB per feature)


def cut_edges(frame: DataFrame, features: Sequence[str], *, max_bin: int = DEFAULT_MAX_BIN) -> dict[str, list[float]]:
    """Per feature that needs rounding, its sorted edges (at most max_bin - 1 float32 values from the data).

    One Spark job reads the rows once: each block of up to ``SUMMARY_BLOCK_ROWS`` rows of a partition sends, per
    feature, its distinct values when it has at most max_bin - 1 of them, and ``SUMMARY_POINTS`` evenly spaced
    order statistics. A feature whose blocks all had few values, and that has at most max_bin - 1 of them in all, is
    exact already and is left out; the others get the weighted quantiles of the blocks' order statistics as edges.
    """
    import numpy as np

    if max_bin < 3:
        raise ValueError(f"exact cuts need max_bin >= 3, got {max_bin}")
    names = list(features)
    few = max_bin - 1
    summaries = frame.select(*[F.col(name).cast("float").alias(name) for name in names]).mapInArrow(
        functools.partial(_summaries, names=names, few=few), SUMMARY_DDL
    )
    distinct: dict[str, set[float] | None] = {name: set() for name in names}
    points: dict[str, list[np.ndarray]] = {name: [] for name in names}
    weights: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for row in summaries.collect():
        name, rows = row["feature"], row["rows"]
        values = np.frombuffer(row["points"], dtype=np.float32)
        points[name].append(values)
        weights[name].append(np.full(len(values), rows / len(values)))
        known = distinct[name]
        if known is not None and row["distinct"] is not None:
            known.update(np.frombuffer(row["distinct"], dtype=np.float32).tolist())
        if row["distinct"] is None or (known is not None and len(known) > few):
            distinct[name] = None
    edges: dict[str, list[float]] = {}
    for name in names:
        if distinct[name] is not None or not points[name]:
            continue  # at most max_bin - 1 values (or none): every sketch buckets them exactly
        values = np.concatenate(points[name])
        order = np.argsort(values, kind="stable")
        cumulative = np.cumsum(np.concatenate(weights[name])[order])
        targets = np.linspace(0.0, cumulative[-1], few)
        picked = sorted({float(v) for v in values[order][np.searchsorted(cumulative, targets, side="left")]})
        if len(picked) > 1:
            edges[name] = picked
    return edges


SUMMARY_DDL = "feature STRING, rows BIGINT, distinct BINARY, points BINARY"


def _summaries(
    batches: Iterator[pa.RecordBatch], *, names: list[str], few: int, block_rows: int = SUMMARY_BLOCK_ROWS
) -> Iterator[pa.RecordBatch]:
    """A partition's rows, a block of at least block_rows rows at a time (the last block: what is left) -> per
    block and feature: row count, distinct values (if at most `few`), order statistics. The driver weighs each
    block's statistics by its rows, so blocks bound a task's memory without changing what the edges estimate."""
    block: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        block.append(batch)
        rows += batch.num_rows
        if rows >= block_rows:
            yield _block_summary(block, names=names, few=few)
            block, rows = [], 0
    if rows:
        yield _block_summary(block, names=names, few=few)


def _block_summary(block: list[pa.RecordBatch], *, names: list[str], few: int) -> pa.RecordBatch:
    import numpy as np
    import pyarrow as pa

    out: dict[str, list] = {"feature": [], "rows": [], "distinct": [], "points": []}
    for name in names:
        chunks = [batch.column(name).to_numpy(zero_copy_only=False) for batch in block]
        values = np.concatenate(chunks).astype(np.float32)
        values = np.sort(values[~np.isnan(values)])  # nulls arrive as NaN
        if not values.size:
            continue
        unique = values[np.concatenate(([True], values[1:] != values[:-1]))]  # values are sorted already
        picks = np.linspace(0, values.size - 1, min(values.size, SUMMARY_POINTS)).round().astype(np.int64)
        out["feature"].append(name)
        out["rows"].append(int(values.size))
        out["distinct"].append(unique.tobytes() if unique.size <= few else None)
        out["points"].append(values[picks].tobytes())
    return pa.RecordBatch.from_pydict(
        out,
        schema=pa.schema(
            [("feature", pa.string()), ("rows", pa.int64()), ("distinct", pa.binary()), ("points", pa.binary())]
        ),
    )


def apply_cuts(frame: DataFrame, edges: dict[str, list[float]]) -> DataFrame:
    """Each feature of edges rounded down to its nearest edge (below the first: the first), as float.

    Null and NaN stay as they are (XGBoost's missing value). A binary search per value in NumPy (``mapInArrow``):
    as Spark expressions, the lookup of a bucket's edge in a literal array cost 10 s at 920k rows with 4,096 bins.
    """
    if not edges:
        return frame
    from pyspark.sql import types as T  # noqa: N812

    typed = frame.withColumns({name: F.col(name).cast("float") for name in edges})
    schema = T.StructType(
        [T.StructField(f.name, f.dataType, nullable=True) if f.name in edges else f for f in typed.schema.fields]
    )
    return typed.mapInArrow(functools.partial(_rounded, edges=edges), schema)


def _rounded(batches: Iterator[pa.RecordBatch], *, edges: dict[str, list[float]]) -> Iterator[pa.RecordBatch]:
    """Arrow batches with the columns of edges rounded down to their nearest edge (nulls and NaN kept)."""
    import numpy as np
    import pyarrow as pa

    lookup = {name: np.asarray(values, dtype=np.float32) for name, values in edges.items()}
    for batch in batches:
        columns = []
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if name not in lookup:
                columns.append(column)
                continue
            values = lookup[name]
            x = column.to_numpy(zero_copy_only=False).astype(np.float32)  # nulls -> NaN, masked again below
            index = np.clip(np.searchsorted(values, x, side="right") - 1, 0, len(values) - 1)
            rounded = np.where(np.isnan(x), x, values[index])
            columns.append(pa.array(rounded, type=pa.float32(), mask=column.is_null().to_numpy(zero_copy_only=False)))
        yield pa.RecordBatch.from_arrays(columns, schema=batch.schema)
