"""Vectorised input for transformWithStateInPandas on the Python worker (PySpark 4.2).

PySpark 4.2's ``TransformWithStateInPandasSerializer.load_stream`` turns every Arrow batch into pandas, walks it
row by row (``itertuples``) to find each row's grouping key, and rebuilds each key's rows as a new DataFrame from
those tuples. For the scoring stream (two operator rows per transaction) that per-row Python was a third of the
worker's time in a 100k-transaction micro-batch (py-spy, `benchmarks/streaming.py`). The rows of one key arrive
contiguously (the serializer relies on it too), so the same chunks come from slicing each batch at the rows where
the key changes.

``install()`` replaces the method on the class, on PySpark 4.2 only (another version keeps its own; the protocol
is internal). It yields what the original does: per run of equal keys, ``(PROCESS_DATA, key, chunks)`` where the
chunks are ``(key, DataFrame)`` of at most ``arrow_max_records_per_batch`` rows (and the byte limit), with the key
as a tuple of Python scalars; then ``PROCESS_TIMER`` and ``COMPLETE``. Each chunk keeps the batch's columns and
their Arrow-derived dtypes (the original re-infers them from Python objects: an INT column comes back int64).
The first micro-batch of a query with an initial state uses another serializer, left as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import groupby
from typing import Any

import numpy as np

PATCHED_VERSION = "4.2."
_NO_BYTE_LIMIT = 2**31 - 1
replaced: dict[str, Any] = {}  # "load_stream": PySpark's own method, once install() has replaced it


def install() -> bool:
    """Use the vectorised load_stream for transformWithStateInPandas input; True when installed."""
    try:
        import pyspark
        from pyspark.sql.pandas.serializers import TransformWithStateInPandasSerializer as Serializer
    except ImportError:  # pragma: no cover - planning without PySpark's worker side
        return False
    if not pyspark.__version__.startswith(PATCHED_VERSION):
        return False
    current = Serializer.__dict__["load_stream"]
    if current is not load_stream:
        replaced["load_stream"] = current
        Serializer.load_stream = load_stream
    return True


def load_stream(self: Any, stream: Any) -> Iterator[tuple]:
    """TransformWithStateInPandasSerializer.load_stream without the per-row loop (see the module docstring)."""
    from pyspark.sql.pandas.serializers import ArrowStreamPandasSerializer
    from pyspark.sql.streaming.stateful_processor_util import TransformWithStateInPandasFuncMode

    batches = super(ArrowStreamPandasSerializer, self).load_stream(stream)
    for key, chunks in groupby(key_chunks(self, batches), key=lambda chunk: chunk[0]):
        yield (TransformWithStateInPandasFuncMode.PROCESS_DATA, key, chunks)
    yield (TransformWithStateInPandasFuncMode.PROCESS_TIMER, None, None)
    yield (TransformWithStateInPandasFuncMode.COMPLETE, None, None)


def key_chunks(self: Any, batches: Iterator[Any]) -> Iterator[tuple[tuple, Any]]:
    """Arrow batches -> (key, DataFrame) for each run of equal keys in a batch, split at the size limits."""
    import pandas as pd
    from pyspark.sql.conversion import ArrowBatchTransformer

    for batch in batches:
        self._update_batch_size_stats(batch)
        if not batch.num_rows:
            continue
        columns = ArrowBatchTransformer.to_pandas(
            batch,
            timezone=self._timezone,
            schema=self._input_type,
            struct_in_pandas=self._struct_in_pandas,
            ndarray_as_list=self._ndarray_as_list,
            prefer_int_ext_dtype=self._prefer_int_ext_dtype,
            df_for_struct=self._df_for_struct,
        )
        frame = pd.concat(columns, axis=1)
        keys = [frame.iloc[:, offset].to_numpy() for offset in self.key_offsets]
        limit = rows_per_chunk(self)
        for start, end in key_runs(keys):
            key = tuple(_scalar(values[start]) for values in keys)
            for first in range(start, end, limit):
                yield key, frame.iloc[first : min(first + limit, end)].reset_index(drop=True)


def key_runs(keys: list[np.ndarray]) -> list[tuple[int, int]]:
    """[start, end) of each run of rows whose key columns are all equal to the previous row's."""
    n = len(keys[0]) if keys else 0
    if n == 0:
        return []
    changed = np.zeros(n - 1, dtype=bool)
    for values in keys:
        changed |= values[1:] != values[:-1]
    starts = np.concatenate([[0], np.flatnonzero(changed) + 1])
    ends = np.append(starts[1:], n)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def rows_per_chunk(self: Any) -> int:
    """The most rows a chunk holds: the record limit, and the byte limit at the average row size seen so far."""
    limit = self.arrow_max_records_per_batch
    if self.arrow_max_bytes_per_batch != _NO_BYTE_LIMIT and self.average_arrow_row_size > 0:
        limit = min(limit, math.ceil(self.arrow_max_bytes_per_batch / self.average_arrow_row_size))
    return max(1, limit)


def _scalar(value: Any) -> Any:
    """A key value as a Python scalar, as the row-by-row original gives it to the state API."""
    return value.item() if isinstance(value, np.generic) else value
