"""The one-call transformWithStateInPandas output writes what PySpark's column-by-column original writes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import types as T  # noqa: N812
from pyspark.sql.conversion import PandasToArrowConversion
from pyspark.sql.pandas.serializers import TransformWithStateInPandasSerializer
from pyspark.sql.types import StructField, StructType

from lakestream.features.spec import load_feature_set
from lakestream.streaming import online_features, tws_output

ORIGINAL = tws_output.replaced["dump_stream"]  # the processor's module installed it on import
ROOT = Path(__file__).resolve().parents[2]


def serializer(*, safecheck: bool = False) -> TransformWithStateInPandasSerializer:
    return TransformWithStateInPandasSerializer(
        timezone="UTC",
        safecheck=safecheck,
        assign_cols_by_name=True,
        prefer_int_ext_dtype=False,
        arrow_max_records_per_batch=10_000,
        arrow_max_bytes_per_batch=2**31 - 1,
        int_to_decimal_coercion_enabled=False,
    )


def written(dump_stream, frames: list[pd.DataFrame], output_type: StructType, **settings) -> list[pa.RecordBatch]:
    """The Arrow batches dump_stream writes for frames (the START_ARROW_STREAM mark checked and skipped)."""
    sink = io.BytesIO()
    dump_stream(serializer(**settings), iter([[(iter(frames), output_type)]]), sink)
    data = sink.getvalue()
    assert int.from_bytes(data[:4], "big", signed=True) == -6  # SpecialLengths.START_ARROW_STREAM
    return list(pa.ipc.open_stream(io.BytesIO(data[4:])))


def assert_same_output(
    frames: list[pd.DataFrame], output_type: StructType, *, one_call: bool = False, **settings
) -> list[pa.RecordBatch]:
    """The patched method writes the original's batches; with one_call, without PySpark's conversion."""
    expected = written(ORIGINAL, frames, output_type, **settings)
    with pytest.MonkeyPatch.context() as patch:
        if one_call:
            patch.setattr(PandasToArrowConversion, "convert", _not_called)
        got = written(tws_output.dump_stream, frames, output_type, **settings)
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.schema == theirs.schema
        assert mine.equals(theirs)
    return got


def _not_called(*args, **kwargs):
    raise AssertionError("PySpark's column-by-column conversion ran")


def stream_frame(n: int, seed: int) -> tuple[pd.DataFrame, StructType]:
    """An output frame of the scoring stream's processor (fraud_v1), with the nulls it emits."""
    spec = load_feature_set(ROOT / "conf" / "features" / "fraud_v1.yaml")
    plan = online_features.OnlinePlan.from_spec(spec, allowed_lateness_seconds=3600)
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {
        "transaction_id": rng.integers(0, 10**7, n),
        "entity": np.full(n, "customer_id", dtype=object),
        "entity_id": rng.integers(0, 5000, n),
        "status": np.where(rng.random(n) < 0.1, online_features.DUPLICATE, online_features.OK).astype(object),
        "ts": rng.integers(0, 10**9, n),
        "kafka_partition": rng.integers(0, 2, n).astype(np.int32),
        "kafka_offset": rng.integers(0, 10**6, n),
        "kafka_timestamp": rng.integers(0, 10**12, n),
    }
    for name in (*plan.value_columns, *plan.feature_names):
        values = rng.random(n)
        values[rng.random(n) < 0.2] = np.nan  # a feature without a value (a duplicate's): null in Arrow
        columns[name] = values
    for name in online_features.PASS_THROUGH_COLUMNS:
        columns[name] = np.full(n, None, dtype=object)
    return pd.DataFrame(columns), plan.output_schema()


def test_the_streams_frames_are_written_as_the_original_writes_them() -> None:
    frames = [stream_frame(n, seed)[0] for seed, n in enumerate((160, 1, 0, 37))]
    _, output_type = stream_frame(1, 0)
    got = assert_same_output(frames, output_type, one_call=True)
    assert [batch.num_rows for batch in got] == [160, 1, 0, 37]


def test_numpy_columns_skip_pandas_and_are_written_as_the_original_writes_their_frame() -> None:
    frames = [stream_frame(n, seed)[0] for seed, n in enumerate((160, 1, 0))]
    _, output_type = stream_frame(1, 0)
    expected = written(ORIGINAL, frames, output_type)
    columns = [tws_output.frame({name: f[name].to_numpy() for name in f.columns}) for f in frames]
    assert all(isinstance(c, tws_output.Columns) for c in columns)  # installed here: no DataFrame is built
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PandasToArrowConversion, "convert", _not_called)
        patch.setattr(tws_output.Columns, "to_pandas", _not_called)
        got = written(tws_output.dump_stream, columns, output_type)
    assert [batch.num_rows for batch in got] == [160, 1, 0]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.schema == theirs.schema
        assert mine.equals(theirs)
    # what the one-call path refuses goes to PySpark as a DataFrame: truncated without the safe check, as before
    small = StructType([StructField("small", T.IntegerType())])
    too_wide = {"small": np.array([2**40], dtype=np.int64)}
    mine = written(tws_output.dump_stream, [tws_output.Columns(too_wide)], small)
    assert mine[0].equals(written(ORIGINAL, [pd.DataFrame(too_wide)], small)[0])


def test_rejected_rows_nullable_integers_strings_and_bytes() -> None:
    output_type = StructType(
        [
            StructField("transaction_id", T.LongType()),
            StructField("kafka_partition", T.IntegerType()),
            StructField("flag", T.BooleanType()),
            StructField("reason", T.StringType()),
            StructField("raw", T.BinaryType()),
            StructField("score", T.DoubleType()),
        ]
    )
    frame = pd.DataFrame(
        {
            "score": [0.5, np.nan, 1.5],  # columns in another order than the schema: taken by name
            "transaction_id": pd.array([7, None, 9], dtype="Int64"),
            "kafka_partition": np.array([0, 1, 1], dtype=np.int64),  # a wider integer, cast safely
            "flag": [True, False, True],
            "reason": ["bad json", None, "oversized"],
            "raw": [b"\x00\xff", None, b""],
        }
    )
    assert_same_output([frame], output_type, one_call=True)


@pytest.mark.parametrize("safecheck", [False, True])
def test_what_the_one_call_path_refuses_goes_through_pysparks_conversion(safecheck: bool) -> None:
    output_type = StructType([StructField("small", T.IntegerType()), StructField("amount", T.DoubleType())])
    too_wide = pd.DataFrame({"small": np.array([2**40], dtype=np.int64), "amount": [1.0]})
    if safecheck:
        with pytest.raises(Exception, match=r"small|overflow|out of bounds"):
            written(ORIGINAL, [too_wide], output_type, safecheck=True)
        with pytest.raises(Exception, match=r"small|overflow|out of bounds"):
            written(tws_output.dump_stream, [too_wide], output_type, safecheck=True)
    else:  # PySpark truncates without the safe check; so does the patched method, through PySpark
        assert_same_output([too_wide], output_type)
    missing = pd.DataFrame({"amount": [1.0]})
    for dump_stream in (ORIGINAL, tws_output.dump_stream):
        with pytest.raises(Exception, match="small"):
            written(dump_stream, [missing], output_type)


def test_nested_or_temporal_output_is_left_to_pyspark() -> None:
    ser = serializer()
    nested = StructType([StructField("point", StructType([StructField("x", T.DoubleType())]))])
    stamped = StructType([StructField("at", T.TimestampType())])
    assert tws_output.flat_schema(ser, nested) is None
    assert tws_output.flat_schema(ser, stamped) is None
    frame = pd.DataFrame({"at": pd.to_datetime(["2018-04-01 10:00:00", None])})
    assert_same_output([frame], stamped)


def test_importing_the_processor_module_installs_it() -> None:
    assert online_features.VECTORISED_OUTPUT  # PySpark 4.2 here
    assert TransformWithStateInPandasSerializer.dump_stream is tws_output.dump_stream
