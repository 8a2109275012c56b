"""The one SparkSession factory, and the spark-submit command built from the same settings.

Every session gets Delta (extensions and catalog), the local jars (Delta, Kafka connector), UTC,
the RocksDB state store and the worker Python of this virtualenv. Tables are reached by name through an
in-memory catalog that is filled from the lake folder (``register_lake_tables``): no Hive metastore,
so any number of JVMs (a stream, batch jobs, a SQL shell) can read the same tables at the same time.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lakestream.config.models import LakestreamConfig
from lakestream.platform.jars import LOCAL_FS_CLASS, LOCAL_FS_CONTEXT_CLASS, list_jars

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"

# JVM options of the driver and executors, before the configured ones (spark.java_options, which may override them).
# HotSpot never JIT-compiles a method of more than 8,000 bytecodes, and whole-stage codegen writes bigger ones for
# wide projections: the stream's validation (31 checks over two JSON parses) ran interpreted, 39% of its CPU in one
# generated method. With huge methods compiled it took 0.75 s instead of 1.83 s per 100k records here.
JVM_OPTIONS = ("-Duser.timezone=UTC", "-XX:-DontCompileHugeMethods")

_MEMORY = re.compile(r"^\s*(\d+)\s*([kmgtp]?)b?\s*$", re.IGNORECASE)
_MIB_PER_UNIT = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024**2, "p": 1024**3}  # a bare number is MiB


def initial_heap(memory: str) -> str | None:
    """-Xms of a JVM whose heap Spark sizes from `memory` (spark.driver.memory / spark.executor.memory): the whole
    heap from the start. G1 otherwise keeps the heap near 1 GB, and the stream's allocation (~20 GB a minute at
    5,000 events/s) then fills the young generation ~115 times a minute (2.2 s of pauses). Alternated latency runs at
    5,000/s (2026-12-07 01:19-01:34) with -Xms4g: alert p50 / p99 0.71 / 1.26 and 0.72 / 1.20 s, 148 micro-batches
    in the minute, the JVM at 0.80 cores, against 0.79 / 1.46 and 0.84 / 1.52 s, 129 and 128, 0.91 without. None
    for a setting that is not a plain size (Spark refuses it anyway). A -Xms in spark.java_options comes later and
    wins."""
    match = _MEMORY.match(memory)
    if match is None:
        return None
    mib = max(int(int(match.group(1)) * _MIB_PER_UNIT[match.group(2).lower()]), 1)
    return f"-Xms{mib}m"


# Settings whose configured value (spark.conf) is added to Lakestream's own rather than replacing it, with the
# separator of each: a user's -Xss or extra class path must not drop UTC, the JIT option or the local file system.
_APPENDED = {
    "spark.driver.extraJavaOptions": " ",
    "spark.executor.extraJavaOptions": " ",
    "spark.driver.extraClassPath": os.pathsep,
    "spark.executor.extraClassPath": os.pathsep,
}

# Settings that spark-submit takes as flags of its own rather than --conf.
_SUBMIT_FLAGS = {"spark.jars": "--jars", "spark.driver.memory": "--driver-memory"}


def worker_python() -> str:
    """The interpreter Spark workers must run: this virtualenv's, so xgboost and lakestream import."""
    return os.environ.get("PYSPARK_PYTHON") or sys.executable


def spark_settings(config: LakestreamConfig, *, master: str | None = None) -> dict[str, str]:
    """Every spark.* setting Lakestream needs, from configuration; shared by sessions and spark-submit.

    `master` (default: the configured one) decides the local-only settings: with a local master the driver JVM
    is the only JVM, and gets the java.nio local file system (see ``local_fs_settings``).
    """
    jars = list_jars(config.spark.jars_dir, what="Spark (Delta, Kafka connector)")

    def java_options(memory: str) -> str:
        options = (*JVM_OPTIONS, initial_heap(memory), config.spark.java_options.strip())
        return " ".join(option for option in options if option)

    settings = {
        "spark.jars": ",".join(str(jar) for jar in jars),
        "spark.driver.memory": config.spark.driver_memory,
        "spark.executor.memory": config.spark.executor_memory,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(config.paths.state_dir / "warehouse"),
        "spark.sql.session.timeZone": "UTC",
        # a memory set in spark.conf replaces the setting below, and -Xms must follow it (never above -Xmx)
        "spark.driver.extraJavaOptions": java_options(
            config.spark.conf.get("spark.driver.memory", config.spark.driver_memory)
        ),
        "spark.executor.extraJavaOptions": java_options(
            config.spark.conf.get("spark.executor.memory", config.spark.executor_memory)
        ),
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        "spark.ui.enabled": str(config.spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.streaming.stateStore.providerClass": ROCKSDB_PROVIDER,
        # A RocksDB state store commit writes the batch's changes (a changelog file) instead of zipping and copying
        # a snapshot of the store to the checkpoint; snapshots move to the background maintenance task. The stream's
        # operator's commit took ~100 ms a batch instead of ~200 ms in a 63-day replay here, ~170 ms instead of
        # ~225 ms at 1k events/s (alternated runs). A checkpoint written either way can be restarted the other way.
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # Counting a store's rows reads each key's current value before every write to it: the stream's list
        # states append a chunk to a bucket's events each micro-batch, and each append first read the bucket's
        # whole list (1.5 GB a minute out of RocksDB at 5,000 events/s, 2026-12-06). The count is a metric only
        # (the progress's numRowsTotal); the stream's metrics give the store's size in bytes instead (state_bytes).
        "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows": "false",
        "spark.pyspark.python": worker_python(),
        "spark.databricks.delta.snapshotPartitions": str(max(config.spark.shuffle_partitions, 1)),
        # PySpark's DataFrame debugging context: every DataFrame and Column call (F.col, F.lit, select, ...) first
        # asks the JVM for the active session, a setting and the Python call site, about 8 py4j round trips of ~16
        # per call; a daily fraud_v1 feature build makes ~250 such calls, 0.3 s of its 0.9 s of plan building
        # here, and every stream micro-batch plans its writes again. The cost: an analysis error names the failing
        # expression but not the Python line that built it (set it back to true in spark.conf when debugging).
        "spark.python.sql.dataFrameDebugging.enabled": "false",
    }
    if (master or config.spark.master).startswith("local"):
        settings.update(local_fs_settings(config))
        # After every commit Delta rebuilds the table's snapshot in a Spark job with this many tasks: a local
        # table's log is small, and one task (not eight) took a 10k-row overwrite from 3.4 s to 1.9 s here.
        settings["spark.databricks.delta.snapshotPartitions"] = "1"
        # A local master's shuffle blocks never cross a network: they go to this machine's disk (its page cache;
        # Spark deletes them once their job's plan is gone), so compressing them (LZ4) only costs CPU, each block
        # compressed by its writer and decompressed by its reader. The 17.7M-row features benchmark (10x), alternated
        # (2026-12-07/08, two runs each): full builds 60.2 / 62.7 and 67.6 / 76.3 s against 72.7 / 72.0 and
        # 72.2 / 69.5 s (best 1.79x and 1.97x DuckDB against 2.13x and 2.06x); at the default size each window
        # stage's task CPU fell 0.3-0.5 s (profiles, two JVMs each). spark.conf can set it back.
        settings["spark.shuffle.compress"] = "false"
    for key, value in config.spark.conf.items():
        ours = settings.get(key) if key in _APPENDED else None
        settings[key] = _APPENDED[key].join(filter(None, (ours, value.strip()))) if ours else value
    return settings


def local_fs_settings(config: LakestreamConfig) -> dict[str, str]:
    """file:// through Lakestream's java.nio local file system, when enabled and built (`make setup`).

    Without Hadoop's native library every file and folder a local job creates costs a `chmod` child process
    (hundreds per partitioned Delta write, more in streaming checkpoints). The jar goes on the driver's class path:
    with a local master the executors run in that JVM. Without the jar, Hadoop's default stays (a log line says so).
    """
    jar = config.spark.local_fs_jar
    if not config.spark.nio_local_fs:
        return {}
    if not jar.is_file():
        logger.info("no %s (built by `make setup` with javac): Hadoop's default local file system", jar)
        return {}
    return {
        "spark.driver.extraClassPath": str(jar),
        "spark.hadoop.fs.file.impl": LOCAL_FS_CLASS,
        "spark.hadoop.fs.AbstractFileSystem.file.impl": LOCAL_FS_CONTEXT_CLASS,
    }


def build_spark_session(
    config: LakestreamConfig,
    app_name: str,
    *,
    extra_conf: Mapping[str, str] | None = None,
    register_tables: bool = False,
) -> SparkSession:
    """Build (or reuse) the SparkSession of this process from configuration.

    Under spark-submit the submit flags win: settings already present in the launcher's SparkConf are
    left alone, so `--master` or `--conf` on the command line override the configuration.
    """
    os.environ.setdefault("PYSPARK_PYTHON", worker_python())
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if config.spark.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # local mode stays on loopback
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    launched_by_submit = "PYSPARK_GATEWAY_PORT" in os.environ or SparkContext._active_spark_context is not None
    if launched_by_submit:
        SparkContext._ensure_initialized()  # connect to spark-submit's JVM first, or SparkConf() reads nothing
    present = SparkConf() if launched_by_submit else None
    # the master this session really gets (spark-submit's --master wins): it decides the local-only settings
    master = present.get("spark.master") if present is not None and present.contains("spark.master") else None
    settings = {**spark_settings(config, master=master), **(extra_conf or {})}
    builder = SparkSession.builder.appName(f"{config.spark.app_name_prefix}-{app_name}")
    if master is None:
        builder = builder.master(config.spark.master)
    for key, value in settings.items():
        if present is None or not present.contains(key):
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(config.spark.log_level)
    logger.info("spark session %s on %s (Spark %s)", app_name, spark.sparkContext.master, spark.version)
    if register_tables:
        register_lake_tables(spark, config)
    return spark


def balanced_partitions(spark: SparkSession, frame: DataFrame | None = None) -> int:
    """spark.sql.shuffle.partitions, or more for a big ``frame``, rounded up to a multiple of the cores.

    For a repartition whose tasks should keep every core busy to the end: adaptive execution coalesces a
    column-only repartition by size, and 3 tasks on 2 cores take as long as 4 (measured on the 1.75M-row feature
    build: 12.5 s with 3 tasks, 11.0 s with 2 or 4). A repartition given this number is left as it is.

    With ``frame`` (the rows to be repartitioned), at least one partition per
    spark.sql.adaptive.advisoryPartitionSizeInBytes (64 MB by default) of its estimated size, as adaptive execution
    sizes a column-only repartition: a fixed count does not grow with the data. The estimate is the analyzed plan's
    statistics (the files' sizes scaled by the columns' widths; computed in milliseconds, where the optimized plan's
    took 50-100 ms). The 17.7M-row fraud_v1 build (10x the default dataset) in 4 partitions spilled 2.4-3.2 GB from
    each sort; in the 8, 14 and 20 partitions this gives its stages, none. A size the plan cannot estimate (Spark's
    default, larger than any real one) adds nothing.
    """
    cores = max(spark.sparkContext.defaultParallelism, 1)
    wanted = max(int(spark.conf.get("spark.sql.shuffle.partitions") or cores), 1)
    if frame is not None:
        size = int(frame._jdf.queryExecution().analyzed().stats().sizeInBytes())
        if size < spark._jsparkSession.sessionState().conf().defaultSizeInBytes():
            advisory = spark.conf.get("spark.sql.adaptive.advisoryPartitionSizeInBytes") or "64m"
            java_utils = spark.sparkContext._jvm.org.apache.spark.network.util.JavaUtils
            wanted = max(wanted, -(-size // max(java_utils.byteStringAsBytes(advisory), 1)))
    return -(-wanted // cores) * cores


def lake_tables(config: LakestreamConfig) -> list[tuple[str, str, Path]]:
    """Every Delta table under the lake root as (database, table, path): <lake_root>/<database>/<table>."""
    root = config.paths.lake_root
    if not root.is_dir():
        return []
    found = []
    for database in sorted(p for p in root.iterdir() if p.is_dir()):
        for table in sorted(p for p in database.iterdir() if (p / "_delta_log").is_dir()):
            found.append((database.name, table.name, table))
    return found


def register_lake_tables(spark: SparkSession, config: LakestreamConfig) -> list[str]:
    """Make every lake table reachable by name (database.table) in this session's catalog."""
    names = []
    for database, table, path in lake_tables(config):
        if not spark.catalog.databaseExists(database):
            spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        spark.sql(f"CREATE TABLE IF NOT EXISTS `{database}`.`{table}` USING delta LOCATION '{path}'")
        names.append(f"{database}.{table}")
    logger.info("registered %d lake tables: %s", len(names), ", ".join(names) or "none yet")
    return names


def spark_submit_executable() -> Path:
    """The spark-submit script of the installed pyspark."""
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


def build_submit_command(
    config: LakestreamConfig,
    script: Path,
    args: Sequence[str] = (),
    *,
    master: str | None = None,
    name: str | None = None,
) -> list[str]:
    """The spark-submit command that runs `script` with exactly the settings a session would get."""
    settings = spark_settings(config, master=master)
    command = [
        str(spark_submit_executable()),
        "--master",
        master or config.spark.master,
        "--deploy-mode",
        config.spark.deploy_mode,
        "--name",
        name or f"{config.spark.app_name_prefix}-{script.stem}",
    ]
    for key, flag in _SUBMIT_FLAGS.items():
        command += [flag, settings.pop(key)]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, str(script), *args]


def submit_environment(config: LakestreamConfig, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a spark-submit child: the venv's Python and the same configuration selection."""
    env = dict(os.environ if base is None else base)
    env.setdefault("PYSPARK_PYTHON", worker_python())
    env.setdefault("PYSPARK_DRIVER_PYTHON", worker_python())
    env["LAKESTREAM_ENV"] = config.env
    env["LAKESTREAM_HOME"] = str(config.home)
    if config.spark.master.startswith("local"):
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env
