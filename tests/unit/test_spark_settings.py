"""The session settings and the spark-submit command come from the same configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakestream.config import LakestreamConfig, load_config
from lakestream.errors import SetupError
from lakestream.spark import balanced_partitions, build_submit_command, initial_heap, spark_settings

ADVISORY = "spark.sql.adaptive.advisoryPartitionSizeInBytes"


def test_settings_wire_delta_local_jars_and_utc(config: LakestreamConfig) -> None:
    settings = spark_settings(config)
    assert settings["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert settings["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert settings["spark.sql.session.timeZone"] == "UTC"
    assert settings["spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled"] == "true"
    jars = settings["spark.jars"].split(",")
    assert any("delta-spark_4.2_2.13" in jar for jar in jars)
    assert any("spark-sql-kafka-0-10_2.13" in jar for jar in jars)
    assert all(Path(jar).is_file() for jar in jars)


def test_submit_command_carries_the_same_settings(config: LakestreamConfig) -> None:
    command = build_submit_command(config, Path("jobs/x.py"), ["--day", "2018-04-01"], master="spark://h:7077")
    assert command[0].endswith("spark-submit")
    assert command[command.index("--master") + 1] == "spark://h:7077"
    assert command[command.index("--jars") + 1] == spark_settings(config)["spark.jars"]
    confs = {command[i + 1] for i, part in enumerate(command) if part == "--conf"}
    assert "spark.sql.session.timeZone=UTC" in confs
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in confs
    assert command[-3:] == ["jobs/x.py", "--day", "2018-04-01"]


def test_missing_jars_tell_the_user_to_run_setup(tmp_path: Path) -> None:
    config = load_config("local", environ={"LAKESTREAM__SPARK__JARS_DIR": str(tmp_path / "none")})
    with pytest.raises(SetupError, match=r"run `make setup`"):
        spark_settings(config)


def test_java_options_follow_lakestreams_defaults_on_driver_and_executors() -> None:
    defaults = "-Duser.timezone=UTC -XX:-DontCompileHugeMethods"
    plain = spark_settings(load_config("local"))  # driver 4g, executors 2g: each JVM's whole heap from the start
    assert plain["spark.driver.extraJavaOptions"] == f"{defaults} -Xms4096m"
    assert plain["spark.executor.extraJavaOptions"] == f"{defaults} -Xms2048m"
    tuned = spark_settings(load_config("local", environ={"LAKESTREAM__SPARK__JAVA_OPTIONS": "-XX:TieredStopAtLevel=1"}))
    assert tuned["spark.driver.extraJavaOptions"] == f"{defaults} -Xms4096m -XX:TieredStopAtLevel=1"
    assert tuned["spark.executor.extraJavaOptions"] == f"{defaults} -Xms2048m -XX:TieredStopAtLevel=1"


@pytest.mark.parametrize(
    ("memory", "option"),
    [("4g", "-Xms4096m"), ("512m", "-Xms512m"), ("1536", "-Xms1536m"), ("2GB", "-Xms2048m"), ("1t", "-Xms1048576m")],
)
def test_the_initial_heap_is_the_configured_memory(memory: str, option: str) -> None:
    assert initial_heap(memory) == option


def test_a_memory_set_in_spark_conf_sizes_the_initial_heap_too(config: LakestreamConfig) -> None:
    conf = {"spark.driver.memory": "1g", "spark.executor.memory": "3g"}
    settings = spark_settings(config.model_copy(update={"spark": config.spark.model_copy(update={"conf": conf})}))
    assert settings["spark.driver.memory"] == "1g"
    assert "-Xms1024m" in settings["spark.driver.extraJavaOptions"].split()
    assert "-Xms3072m" in settings["spark.executor.extraJavaOptions"].split()
    assert initial_heap("lots") is None  # not a size: no -Xms (Spark refuses the setting itself)


def test_configured_java_options_and_class_path_add_to_lakestreams_own(config: LakestreamConfig) -> None:
    conf = {
        "spark.driver.extraJavaOptions": "-Xss4m",
        "spark.executor.extraJavaOptions": "-Dx=1",
        "spark.driver.extraClassPath": "/opt/extra.jar",
        "spark.sql.shuffle.partitions": "7",
    }
    ours = spark_settings(config)
    settings = spark_settings(config.model_copy(update={"spark": config.spark.model_copy(update={"conf": conf})}))
    assert settings["spark.driver.extraJavaOptions"] == f"{ours['spark.driver.extraJavaOptions']} -Xss4m"
    assert settings["spark.executor.extraJavaOptions"] == f"{ours['spark.executor.extraJavaOptions']} -Dx=1"
    assert settings["spark.driver.extraClassPath"] == f"{ours['spark.driver.extraClassPath']}:/opt/extra.jar"
    assert settings["spark.sql.shuffle.partitions"] == "7"  # any other setting is replaced


def test_local_masters_get_the_nio_local_file_system(config: LakestreamConfig) -> None:
    local = spark_settings(config)
    assert local["spark.hadoop.fs.file.impl"] == "io.lakestream.hadoop.NioLocalFileSystem"
    assert local["spark.hadoop.fs.AbstractFileSystem.file.impl"] == "io.lakestream.hadoop.NioLocalFs"
    assert Path(local["spark.driver.extraClassPath"]) == config.spark.local_fs_jar
    # a cluster's executors are other JVMs (other machines): they keep Hadoop's default
    command = build_submit_command(config, Path("jobs/x.py"), master="spark://h:7077")
    assert not [part for part in command if "fs.file.impl" in part or "extraClassPath" in part]
    off = config.model_copy(update={"spark": config.spark.model_copy(update={"nio_local_fs": False})})
    assert "spark.hadoop.fs.file.impl" not in spark_settings(off)


def test_local_masters_write_shuffle_blocks_uncompressed(config: LakestreamConfig) -> None:
    assert spark_settings(config)["spark.shuffle.compress"] == "false"
    # a cluster's shuffle blocks cross the network: Spark's default (LZ4) stays
    command = build_submit_command(config, Path("jobs/x.py"), master="spark://h:7077")
    assert not [part for part in command if "spark.shuffle.compress" in part]
    conf = {"spark.shuffle.compress": "true"}  # and spark.conf turns it back on
    on = spark_settings(config.model_copy(update={"spark": config.spark.model_copy(update={"conf": conf})}))
    assert on["spark.shuffle.compress"] == "true"


def test_without_the_local_fs_jar_sessions_keep_hadoops_default(config: LakestreamConfig, tmp_path: Path) -> None:
    missing = config.model_copy(
        update={"spark": config.spark.model_copy(update={"local_fs_jar": tmp_path / "none.jar"})}
    )
    assert "spark.hadoop.fs.file.impl" not in spark_settings(missing)


def test_balanced_partitions_round_up_to_a_multiple_of_the_cores(spark: SparkSession) -> None:
    cores = spark.sparkContext.defaultParallelism
    before = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        for wanted in (1, cores, cores + 1, 3 * cores - 1):
            spark.conf.set("spark.sql.shuffle.partitions", str(wanted))
            got = balanced_partitions(spark)
            assert got % cores == 0
            assert wanted <= got < wanted + cores
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)


def test_balanced_partitions_grow_with_the_frames_estimated_size(spark: SparkSession) -> None:
    cores = spark.sparkContext.defaultParallelism
    before = {key: spark.conf.get(key) for key in ("spark.sql.shuffle.partitions", ADVISORY)}
    try:
        spark.conf.set("spark.sql.shuffle.partitions", "1")
        spark.conf.set(ADVISORY, "1000b")
        ids = spark.range(10_000)  # estimated at 8 bytes a row: 80,000 bytes, 80 advisory partitions
        assert balanced_partitions(spark, ids) == -(-80 // cores) * cores
        spark.conf.set(ADVISORY, "1m")
        assert balanced_partitions(spark, ids) == cores  # smaller than the advisory size: the configured count
        unknown = spark.createDataFrame(spark.sparkContext.parallelize([(1,)]), "x INT")  # no size estimate
        assert balanced_partitions(spark, unknown) == cores
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)


def test_dataframe_debugging_round_trips_are_off_unless_configured(
    config: LakestreamConfig, spark: SparkSession
) -> None:
    """PySpark's per-call debugging context (py4j round trips) is off in every session; spark.conf turns it on."""
    from pyspark.errors.utils import is_debugging_enabled

    key = "spark.python.sql.dataFrameDebugging.enabled"
    assert spark_settings(config)[key] == "false"
    assert spark.conf.get(key) == "false"
    assert not is_debugging_enabled()  # what PySpark's DataFrame and Column calls check
    debugging = config.model_copy(update={"spark": config.spark.model_copy(update={"conf": {key: "true"}})})
    assert spark_settings(debugging)[key] == "true"
