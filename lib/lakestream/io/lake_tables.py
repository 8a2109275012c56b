"""Create, read and write the ingestion tables from their TableSpec (schema, partitioning, constraints)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lakestream.io.delta import is_delta_table, read_delta, write_delta
from lakestream.io.table_schemas import TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakestream.config.models import LakestreamConfig

logger = logging.getLogger(__name__)

_CONSTRAINT_PREFIX = "delta.constraints."


def ensure_table(spark: SparkSession, config: LakestreamConfig, spec: TableSpec) -> None:
    """Create the table if missing (schema with NOT NULL, partitioning) and add any missing CHECK constraint."""
    from delta.tables import DeltaTable

    path = spec.path(config)
    if not is_delta_table(path):
        builder = DeltaTable.createIfNotExists(spark).location(str(path)).addColumns(spec.schema())
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        builder.execute()
        logger.info("created table %s at %s", spec.name, path)
    if not spec.checks:
        return
    properties = DeltaTable.forPath(spark, str(path)).detail().select("properties").first()[0] or {}
    present = {key[len(_CONSTRAINT_PREFIX) :] for key in properties if key.startswith(_CONSTRAINT_PREFIX)}
    for name, expression in spec.checks.items():
        if name.lower() not in present:
            spark.sql(f"ALTER TABLE delta.`{path}` ADD CONSTRAINT {name} CHECK ({expression})")
            logger.info("added constraint %s to %s: %s", name, spec.name, expression)


def ensure_tables(spark: SparkSession, config: LakestreamConfig, specs: Sequence[TableSpec]) -> None:
    """ensure_table for each spec, in order."""
    for spec in specs:
        ensure_table(spark, config, spec)


def read_table(spark: SparkSession, config: LakestreamConfig, spec: TableSpec) -> DataFrame:
    """The current version of a table."""
    return read_delta(spark, spec.path(config))


def conform_to(df: DataFrame, spec: TableSpec) -> DataFrame:
    """The table's columns, in its order and types (extra columns dropped)."""
    from pyspark.sql import functions as F  # noqa: N812

    return df.select(*[F.col(field.name).cast(field.dataType).alias(field.name) for field in spec.schema().fields])


def replace_rows(df: DataFrame, config: LakestreamConfig, spec: TableSpec, *, where: str) -> None:
    """Atomically replace exactly the rows matching `where` with df (every df row must match it)."""
    write_delta(conform_to(df, spec), spec.path(config), partition_by=spec.partition_by, replace_where=where)


def append_rows(df: DataFrame, config: LakestreamConfig, spec: TableSpec) -> None:
    """Append df to the table."""
    write_delta(conform_to(df, spec), spec.path(config), partition_by=spec.partition_by)


def insert_missing_rows(
    spark: SparkSession, df: DataFrame, config: LakestreamConfig, spec: TableSpec, *, keys: Sequence[str]
) -> None:
    """MERGE: insert the rows of df whose key is not in the table yet; existing rows are left untouched."""
    from delta.tables import DeltaTable

    condition = " AND ".join(f"t.`{key}` = s.`{key}`" for key in keys)
    (
        DeltaTable.forPath(spark, str(spec.path(config)))
        .alias("t")
        .merge(conform_to(df, spec).alias("s"), condition)
        .whenNotMatchedInsertAll()
        .execute()
    )
    logger.info("merged new rows into %s on %s", spec.name, ", ".join(keys))


def apply_quarantine_resolutions(
    spark: SparkSession, resolutions: DataFrame, config: LakestreamConfig, spec: TableSpec
) -> None:
    """MERGE the replay outcome into the quarantine table on (kind, process_date, record_id).

    `resolutions` has kind, process_date (the row's current one), record_id, resolved (bool), rules,
    reason: resolved rows are deleted; the others get the rules and reason they break now.
    """
    from delta.tables import DeltaTable

    (
        DeltaTable.forPath(spark, str(spec.path(config)))
        .alias("t")
        .merge(
            resolutions.alias("s"),
            "t.kind = s.kind AND t.process_date = s.process_date AND t.record_id = s.record_id",
        )
        .whenMatchedDelete(condition="s.resolved")
        .whenMatchedUpdate(
            condition="NOT s.resolved AND (t.rules <> s.rules OR t.reason <> s.reason)",
            set={"rules": "s.rules", "reason": "s.reason"},
        )
        .execute()
    )
    logger.info("applied replay resolutions to %s", spec.name)
