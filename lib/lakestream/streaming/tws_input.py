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

The first micro-batch of a query with an initial state uses another serializer
(``TransformWithStateInPandasInitStateSerializer``), whose Arrow batches hold either the input rows or the initial
state's rows of a run of keys, as the fields of a struct column (``inputData`` / ``initState``); it walked both row
by row the same way, so the scoring stream's bootstrap batch spent seconds there (the 37-day warm start is ~700k
operator rows). ``load_stream_with_initial_state`` slices those too, and yields what its original does: per run of
equal keys, ``(PROCESS_DATA, key, chunks)`` where each chunk is ``(key, input rows, initial state rows)`` with an
empty DataFrame for the side the batch does not hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import groupby
from typing import Any

import numpy as np

PATCHED_VERSION = "4.2."
_NO_BYTE_LIMIT = 2**31 - 1
# PySpark's own methods, once install() has replaced them: "load_stream", "load_stream_with_initial_state"
replaced: dict[str, Any] = {}


def install() -> bool:
    """Use the vectorised load_stream for transformWithStateInPandas input; True when installed."""
    try:
        from pyspark.sql.pandas.serializers import TransformWithStateInPandasInitStateSerializer as InitSerializer
        from pyspark.sql.pandas.serializers import TransformWithStateInPandasSerializer as Serializer
    except ImportError:  # pragma: no cover - planning without PySpark's worker side
        return False
    if not patchable():
        return False
    replace_method(Serializer, "load_stream", load_stream, replaced)
    replace_method(InitSerializer, "load_stream", load_stream_with_initial_state, replaced)
    return True


def patchable() -> bool:
    """True on the PySpark version whose serializers' internal protocol these replacements follow."""
    import pyspark

    return pyspark.__version__.startswith(PATCHED_VERSION)


def replace_method(cls: type, name: str, method: Any, originals: dict[str, Any]) -> None:
    """cls.name = method, PySpark's own kept in originals under the method's name (once: a second call keeps it)."""
    current = cls.__dict__[name]
    if current is not method:
        originals[method.__name__] = current
        setattr(cls, name, method)


def load_stream(self: Any, stream: Any) -> Iterator[tuple]:
    """TransformWithStateInPandasSerializer.load_stream without the per-row loop (see the module docstring)."""
    from pyspark.sql.pandas.serializers import ArrowStreamPandasSerializer

    batches = super(ArrowStreamPandasSerializer, self).load_stream(stream)
    yield from _by_key(key_chunks(self, batches))


def load_stream_with_initial_state(self: Any, stream: Any) -> Iterator[tuple]:
    """TransformWithStateInPandasInitStateSerializer.load_stream without the per-row loop (the module docstring)."""
    from pyspark.sql.pandas.serializers import ArrowStreamPandasSerializer

    batches = super(ArrowStreamPandasSerializer, self).load_stream(stream)
    yield from _by_key(initial_state_chunks(self, batches))


def _by_key(chunks: Iterator[tuple]) -> Iterator[tuple]:
    """The serializer's protocol: the chunks of each run of equal keys, then the timer and completion marks."""
    from pyspark.sql.streaming.stateful_processor_util import TransformWithStateInPandasFuncMode

    for key, run in groupby(chunks, key=lambda chunk: chunk[0]):
        yield (TransformWithStateInPandasFuncMode.PROCESS_DATA, key, run)
    yield (TransformWithStateInPandasFuncMode.PROCESS_TIMER, None, None)
    yield (TransformWithStateInPandasFuncMode.COMPLETE, None, None)


def key_chunks(self: Any, batches: Iterator[Any]) -> Iterator[tuple[tuple, Any]]:
    """Arrow batches -> (key, DataFrame) for each run of equal keys in a batch, split at the size limits."""
    for batch in batches:
        self._update_batch_size_stats(batch)
        if batch.num_rows:
            yield from _split(self, batch, self.key_offsets)


def initial_state_chunks(self: Any, batches: Iterator[Any]) -> Iterator[tuple[tuple, Any, Any]]:
    """Arrow batches of the first micro-batch with an initial state -> (key, input rows, initial state rows) for
    each run of equal keys in a batch (one of the two frames empty: a batch holds one side only)."""
    import pandas as pd
    import pyarrow as pa

    for batch in batches:
        self._update_batch_size_stats(batch)
        for name, offsets in (("inputData", self.key_offsets), ("initState", self.init_key_offsets)):
            struct = batch.column(batch.schema.get_field_index(name))
            if struct.null_count == len(struct):  # the side this batch does not hold (or an empty batch)
                continue
            for key, frame in _split(self, pa.RecordBatch.from_struct_array(struct), offsets):
                if name == "inputData":
                    yield key, frame, pd.DataFrame()
                else:
                    yield key, pd.DataFrame(), frame


def _split(self: Any, arrow: Any, key_offsets: list[int]) -> Iterator[tuple[tuple, Any]]:
    """An Arrow batch -> (key, DataFrame) for each run of equal keys, split at the size limits."""
    import pandas as pd
    from pyspark.sql.conversion import ArrowBatchTransformer

    columns = ArrowBatchTransformer.to_pandas(
        arrow,
        timezone=self._timezone,
        schema=self._input_type,
        struct_in_pandas=self._struct_in_pandas,
        ndarray_as_list=self._ndarray_as_list,
        prefer_int_ext_dtype=self._prefer_int_ext_dtype,
        df_for_struct=self._df_for_struct,
    )
    frame = pd.concat(columns, axis=1)
    keys = [frame.iloc[:, offset].to_numpy() for offset in key_offsets]
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
