"""The vectorised transformWithStateInPandas input gives what PySpark's row-by-row original gives."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql.pandas.serializers import (
    TransformWithStateInPandasInitStateSerializer,
    TransformWithStateInPandasSerializer,
)

from lakestream.streaming import online_features, tws_input

ORIGINAL = tws_input.replaced["load_stream"]  # the processor's module installed it on import


def arrow_stream(batches: list[pa.RecordBatch]) -> io.BytesIO:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    sink.seek(0)
    return sink


def batch(entities: list[str], buckets: list[int], first_id: int) -> pa.RecordBatch:
    n = len(entities)
    return pa.record_batch(
        {
            "entity": pa.array(entities, pa.string()),
            "bucket": pa.array(buckets, pa.int32()),
            "transaction_id": pa.array([first_id + i if i % 5 else None for i in range(n)], pa.int64()),
            "known": pa.array([i % 2 for i in range(n)], pa.int32()),
            "tx_amount": pa.array([float(i) / 3 if i % 4 else None for i in range(n)], pa.float64()),
            "raw": pa.array([b"\x00\xff" if i % 3 == 0 else None for i in range(n)], pa.binary()),
        }
    )


def serializer(
    max_records: int, max_bytes: int = 2**31 - 1, kind: type = TransformWithStateInPandasSerializer
) -> TransformWithStateInPandasSerializer:
    ser = kind(
        timezone="UTC",
        safecheck=False,
        assign_cols_by_name=True,
        prefer_int_ext_dtype=False,
        arrow_max_records_per_batch=max_records,
        arrow_max_bytes_per_batch=max_bytes,
        int_to_decimal_coercion_enabled=False,
    )
    ser.key_offsets = ser.init_key_offsets = [0, 1]
    return ser


def run(load_stream, batches: list[pa.RecordBatch], **limits) -> list[tuple]:
    """(mode, key, chunk sizes, the key's rows as one frame) for each element load_stream yields."""
    out = []
    for mode, key, chunks in load_stream(serializer(**limits), arrow_stream(batches)):
        frames = [frame for _, frame in chunks] if chunks is not None else []
        rows = pd.concat(frames, ignore_index=True) if frames else None
        out.append((mode, key, [len(f) for f in frames], rows))
    return out


def assert_same_rows(got: pd.DataFrame | None, expected: pd.DataFrame | None, key: tuple | None) -> None:
    """The same columns and values as the original's rows (dtypes may differ: see the first test); both None or not."""
    if expected is None:
        assert got is None, key
        return
    assert list(got.columns) == list(expected.columns), key
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


BATCHES = [
    # a key spanning two Arrow batches, keys that differ only in the bucket, a one-row run
    batch(["customer_id"] * 7 + ["terminal_id"] * 3, [0] * 4 + [1] * 3 + [1] * 3, 0),
    batch(["terminal_id"] * 5 + ["terminal_id"] + ["_rejected"] * 4, [1] * 5 + [2] + [7] * 4, 100),
]


@pytest.mark.parametrize(("limits", "sizes"), [({"max_records": 10_000}, None), ({"max_records": 2}, 2)])
def test_same_keys_and_rows_as_the_row_by_row_original(limits: dict, sizes: int | None) -> None:
    expected = run(ORIGINAL, BATCHES, **limits)
    got = run(tws_input.load_stream, BATCHES, **limits)
    assert [(m, k) for m, k, _, _ in got] == [(m, k) for m, k, _, _ in expected]
    assert [k for _, k, _, _ in got if k is not None] == [
        ("customer_id", 0),
        ("customer_id", 1),
        ("terminal_id", 1),
        ("terminal_id", 2),
        ("_rejected", 7),
    ]
    assert all(type(v) in {str, int} for _, k, _, _ in got if k is not None for v in k)
    for (_, key, got_sizes, got_rows), (_, _, _, rows) in zip(got, expected, strict=True):
        assert_same_rows(got_rows, rows, key)
        if rows is None:
            continue
        assert sum(got_sizes) == len(rows), key
        if sizes is not None:
            assert max(got_sizes) <= sizes
    # the processor reads INT columns as int32 now (the original re-inferred int64 from Python ints)
    assert got[0][3]["known"].dtype == np.int32


def test_a_byte_limit_splits_chunks_as_the_original_does() -> None:
    limits = {"max_records": 10_000, "max_bytes": 64}
    got = run(tws_input.load_stream, BATCHES, **limits)
    expected = run(ORIGINAL, BATCHES, **limits)
    assert [sum(s) for _, _, s, _ in got] == [sum(s) for _, _, s, _ in expected]
    assert max(max(s, default=0) for _, _, s, _ in got) < 7  # the 7-row runs were split


def test_key_runs() -> None:
    keys = [np.array(["a", "a", "b", "b", "b"], dtype=object), np.array([1, 2, 2, 2, 3])]
    assert tws_input.key_runs(keys) == [(0, 1), (1, 2), (2, 4), (4, 5)]
    assert tws_input.key_runs([np.array([], dtype=object)]) == []


def test_installed_on_the_worker_by_the_processor_module() -> None:
    assert online_features.VECTORISED_INPUT  # importing the processor's module installs it (PySpark 4.2 here)
    assert TransformWithStateInPandasSerializer.load_stream is tws_input.load_stream


ORIGINAL_WITH_INITIAL_STATE = tws_input.replaced["load_stream_with_initial_state"]


def sided(rows: pa.RecordBatch, *, initial: bool) -> pa.RecordBatch:
    """rows as the first micro-batch of a query with an initial state sends them: one side of two struct columns."""
    struct = pa.StructArray.from_arrays(rows.columns, names=rows.schema.names)
    absent = pa.nulls(rows.num_rows, struct.type)
    data, init = (absent, struct) if initial else (struct, absent)
    return pa.record_batch({"inputData": data, "initState": init})


def run_with_initial_state(load_stream, batches: list[pa.RecordBatch], max_records: int) -> list[tuple]:
    """(mode, key, the key's input rows, its initial state rows) for each element load_stream yields."""
    out = []
    for mode, key, chunks in load_stream(
        serializer(max_records, kind=TransformWithStateInPandasInitStateSerializer), arrow_stream(batches)
    ):
        sides: tuple[list, list] = ([], [])
        for chunk_key, data, init in chunks or ():
            assert chunk_key == key
            assert data.empty or init.empty
            sides[0].extend([data] if not data.empty else [])
            sides[1].extend([init] if not init.empty else [])
        out.append((mode, key, *(pd.concat(s, ignore_index=True) if s else None for s in sides)))
    return out


@pytest.mark.parametrize("max_records", [10_000, 2])
def test_the_first_batch_with_an_initial_state_gives_what_the_original_gives(max_records: int) -> None:
    # the operator's first batch: a key's initial state rows, then its input rows; keys with only one of the two
    state = batch(["customer_id"] * 6 + ["terminal_id"] * 4, [0] * 3 + [1] * 3 + [1] * 4, 0)
    data = batch(["customer_id"] * 2 + ["terminal_id"] * 3, [1] * 2 + [1] * 2 + [3], 50)
    batches = [sided(state, initial=True), sided(data, initial=False), sided(data.slice(0, 0), initial=False)]
    expected = run_with_initial_state(ORIGINAL_WITH_INITIAL_STATE, batches, max_records)
    got = run_with_initial_state(tws_input.load_stream_with_initial_state, batches, max_records)
    assert [(m, k) for m, k, _, _ in got] == [(m, k) for m, k, _, _ in expected]
    assert [k for _, k, _, _ in got if k is not None] == [
        ("customer_id", 0),
        ("customer_id", 1),
        ("terminal_id", 1),
        ("customer_id", 1),
        ("terminal_id", 1),
        ("terminal_id", 3),
    ]
    assert all(type(v) in {str, int} for _, k, _, _ in got if k is not None for v in k)
    for (_, key, *got_sides), (_, _, *sides) in zip(got, expected, strict=True):
        for got_rows, rows in zip(got_sides, sides, strict=True):
            assert_same_rows(got_rows, rows, key)


def test_the_initial_state_serializer_is_installed_too() -> None:
    assert TransformWithStateInPandasInitStateSerializer.load_stream is tws_input.load_stream_with_initial_state
