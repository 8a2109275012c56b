"""Delta Lake through the project's session factory: write, read, MERGE, time travel, constraints, replaceWhere."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from lakestream.config import LakestreamConfig
from lakestream.io.delta import read_delta, table_version, write_delta
from lakestream.spark import register_lake_tables

SCHEMA = "id BIGINT, amount DOUBLE, day DATE"


def _rows(*values: tuple[int, float, str]) -> list[tuple[int, float, dt.date]]:
    return [(i, a, dt.date.fromisoformat(d)) for i, a, d in values]


@pytest.fixture
def table(config: LakestreamConfig, request: pytest.FixtureRequest) -> Path:
    return config.table_path("it", request.node.name.replace("[", "_").replace("]", ""))


def test_write_then_read_back(spark: SparkSession, table: Path) -> None:
    df = spark.createDataFrame(_rows((1, 10.0, "2018-04-01"), (2, 20.5, "2018-04-02")), SCHEMA)
    write_delta(df, table, mode="overwrite", partition_by=["day"])
    assertDataFrameEqual(read_delta(spark, table), df)


def test_merge_upserts_and_time_travel_reads_the_old_version(spark: SparkSession, table: Path) -> None:
    write_delta(spark.createDataFrame(_rows((1, 10.0, "2018-04-01"), (2, 20.0, "2018-04-01")), SCHEMA), table)
    updates = spark.createDataFrame(_rows((2, 25.0, "2018-04-01"), (3, 30.0, "2018-04-02")), SCHEMA)
    (
        DeltaTable.forPath(spark, str(table))
        .alias("t")
        .merge(updates.alias("u"), "t.id = u.id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    assert table_version(spark, table) == 1
    assertDataFrameEqual(
        read_delta(spark, table),
        spark.createDataFrame(_rows((1, 10.0, "2018-04-01"), (2, 25.0, "2018-04-01"), (3, 30.0, "2018-04-02")), SCHEMA),
    )
    assertDataFrameEqual(
        read_delta(spark, table, version=0),
        spark.createDataFrame(_rows((1, 10.0, "2018-04-01"), (2, 20.0, "2018-04-01")), SCHEMA),
    )


def test_table_version_agrees_with_the_history_across_checkpoints(spark: SparkSession, table: Path) -> None:
    write_delta(spark.createDataFrame(_rows((0, 0.0, "2018-04-01")), SCHEMA), table)
    spark.sql(f"ALTER TABLE delta.`{table}` SET TBLPROPERTIES ('delta.checkpointInterval' = '2')")
    for index in range(1, 4):
        write_delta(spark.createDataFrame(_rows((index, float(index), "2018-04-01")), SCHEMA), table, mode="append")
    assert any(name.endswith(".checkpoint.parquet") for name in os.listdir(table / "_delta_log"))
    history = DeltaTable.forPath(spark, str(table)).history(1).select("version").first()[0]
    assert table_version(spark, table) == history == 4


def test_check_constraint_rejects_a_bad_row_and_keeps_the_table(spark: SparkSession, table: Path) -> None:
    write_delta(spark.createDataFrame(_rows((1, 10.0, "2018-04-01")), SCHEMA), table)
    spark.sql(f"ALTER TABLE delta.`{table}` ADD CONSTRAINT amount_positive CHECK (amount >= 0)")
    bad = spark.createDataFrame(_rows((2, -5.0, "2018-04-01")), SCHEMA)
    with pytest.raises((Py4JJavaError, PySparkException), match="amount_positive"):
        write_delta(bad, table)
    assertDataFrameEqual(read_delta(spark, table), spark.createDataFrame(_rows((1, 10.0, "2018-04-01")), SCHEMA))


def test_replace_where_rewrites_exactly_one_day(spark: SparkSession, table: Path) -> None:
    first = spark.createDataFrame(_rows((1, 1.0, "2018-04-01"), (2, 2.0, "2018-04-02")), SCHEMA)
    write_delta(first, table, partition_by=["day"])
    rerun = spark.createDataFrame(_rows((3, 3.0, "2018-04-02")), SCHEMA)
    write_delta(rerun, table, replace_where="day = '2018-04-02'")
    write_delta(rerun, table, replace_where="day = '2018-04-02'")  # a retry changes nothing
    assertDataFrameEqual(
        read_delta(spark, table),
        spark.createDataFrame(_rows((1, 1.0, "2018-04-01"), (3, 3.0, "2018-04-02")), SCHEMA),
    )


def test_txn_version_makes_a_retried_batch_write_once(spark: SparkSession, table: Path) -> None:
    batch = spark.createDataFrame(_rows((1, 1.0, "2018-04-01")), SCHEMA)
    write_delta(batch, table, txn=("it-stream", 0))
    write_delta(batch, table, txn=("it-stream", 0))
    assert read_delta(spark, table).count() == 1


def test_tables_are_reachable_by_name_after_registration(
    spark: SparkSession, config: LakestreamConfig, table: Path
) -> None:
    write_delta(spark.createDataFrame(_rows((7, 70.0, "2018-04-03")), SCHEMA), table)
    names = register_lake_tables(spark, config)
    assert f"it.{table.name}" in names
    assertDataFrameEqual(
        spark.sql(f"SELECT id, amount FROM it.{table.name}"),
        spark.createDataFrame([(7, 70.0)], "id BIGINT, amount DOUBLE"),
    )


def test_local_files_are_written_through_the_nio_file_system(spark: SparkSession, table: Path) -> None:
    """The session's file:// is Lakestream's java.nio local FS (no chmod process per file); files keep the umask."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    uri = jvm.java.net.URI("file:///")
    file_system = jvm.org.apache.hadoop.fs.FileSystem.get(uri, conf)
    assert file_system.getClass().getName() == "io.lakestream.hadoop.NioLocalFileSystem"
    context_fs = jvm.org.apache.hadoop.fs.FileContext.getFileContext(uri, conf).getDefaultFileSystem()
    assert context_fs.getClass().getName() == "io.lakestream.hadoop.NioLocalFs"
    df = spark.createDataFrame(_rows((1, 10.0, "2018-04-01"), (2, 20.5, "2018-04-02")), SCHEMA)
    write_delta(df, table, mode="overwrite", partition_by=["day"])
    assertDataFrameEqual(read_delta(spark, table), df)
    umask = os.umask(0)
    os.umask(umask)
    data_files = list(table.glob("day=*/*.parquet"))
    assert data_files
    for path in [*data_files, *table.glob("_delta_log/*.json")]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    for folder in table.glob("day=*"):
        assert folder.stat().st_mode & 0o777 == 0o777 & ~umask, folder


def test_link_status_without_a_readlink_process(spark: SparkSession, tmp_path: Path) -> None:
    """FileContext's link status (asked before every checkpoint rename) comes from java.nio: a file's own status, a
    missing path not found, a symbolic link as Hadoop's own file system tells it; a rename over a file works."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    context = jvm.org.apache.hadoop.fs.FileContext.getFileContext(jvm.java.net.URI("file:///"), conf)
    (tmp_path / "data").write_bytes(b"12345")
    (tmp_path / "link").symlink_to(tmp_path / "data")

    def hadoop_path(name: str):
        return jvm.org.apache.hadoop.fs.Path(f"file:{tmp_path / name}")

    plain = context.getFileLinkStatus(hadoop_path("data"))
    assert plain.isFile()
    assert not plain.isSymlink()
    assert plain.getLen() == 5
    hadoops = jvm.org.apache.hadoop.fs.RawLocalFileSystem()
    hadoops.initialize(jvm.java.net.URI("file:///"), conf)
    link, expected = context.getFileLinkStatus(hadoop_path("link")), hadoops.getFileLinkStatus(hadoop_path("link"))
    assert (link.isSymlink(), link.isFile(), link.getLen()) == (
        expected.isSymlink(),
        expected.isFile(),
        expected.getLen(),
    )
    with pytest.raises(Py4JJavaError, match="FileNotFoundException"):
        context.getFileLinkStatus(hadoop_path("missing"))
    (tmp_path / "new").write_bytes(b"123")
    overwrite = jvm.org.apache.hadoop.fs.Options.Rename.OVERWRITE
    renames = spark.sparkContext._gateway.new_array(jvm.org.apache.hadoop.fs.Options.Rename, 1)
    renames[0] = overwrite
    context.rename(hadoop_path("new"), hadoop_path("data"), renames)
    assert (tmp_path / "data").read_bytes() == b"123"
    assert not (tmp_path / "new").exists()
