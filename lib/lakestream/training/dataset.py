"""The labelled training table: gold features of one set joined with the silver fraud labels, with lineage.

A transaction without a label row is genuine (tx_fraud = 0). Both tables are read at a pinned Delta version,
and the versions are returned so that a training run records exactly what it read.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import functions as F  # noqa: N812

from lakestream.config.models import LakestreamConfig
from lakestream.errors import DataError
from lakestream.features.spec import FeatureSetSpec
from lakestream.features.store import LABELS_TABLE, feature_table_path
from lakestream.io.delta import is_delta_table, read_delta, table_version

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

LABEL = "tx_fraud"
KEY_COLUMNS = ("transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_date")


@dataclass(frozen=True)
class TableLineage:
    """What a training or evaluation run read: tables, Delta versions, feature set."""

    features_table: str
    features_version: int
    labels_table: str
    labels_version: int
    feature_set: str
    feature_set_version: int

    def to_dict(self) -> dict[str, str | int]:
        """Flat, for MLflow tags and JSON."""
        return {
            "features_table": self.features_table,
            "features_delta_version": self.features_version,
            "labels_table": self.labels_table,
            "labels_delta_version": self.labels_version,
            "feature_set": self.feature_set,
            "feature_set_version": self.feature_set_version,
        }


def join_fraud_labels(features: DataFrame, labels: DataFrame, *, label_column: str = LABEL) -> DataFrame:
    """Features + tx_fraud (max over the transaction's label rows; 0 without any); one row per transaction."""
    per_transaction = labels.groupBy("transaction_id").agg(F.max(label_column).cast("int").alias(label_column))
    return features.join(per_transaction, on="transaction_id", how="left").withColumn(
        label_column, F.coalesce(F.col(label_column), F.lit(0))
    )


def select_model_frame(labelled: DataFrame, *, spec: FeatureSetSpec, label_column: str = LABEL) -> DataFrame:
    """Keys, the model inputs of the set (as double) and the label: what training and evaluation need."""
    inputs = [F.col(name).cast("double").alias(name) for name in spec.model_inputs if name not in KEY_COLUMNS]
    return labelled.select(*KEY_COLUMNS, *inputs, F.col(label_column).cast("int").alias(label_column))


def read_labelled_features(
    spark: SparkSession,
    config: LakestreamConfig,
    spec: FeatureSetSpec,
    *,
    start: dt.date,
    end: dt.date,
) -> tuple[DataFrame, TableLineage]:
    """gold.features_<set> rows of days [start, end] with their label, and the Delta versions read."""
    features_path = feature_table_path(config, spec)
    labels_path = config.table_path(*LABELS_TABLE)
    if not is_delta_table(features_path):
        raise DataError(
            f"no feature table at {features_path}; build it first: "
            f"lakestream submit jobs/build_features.py --feature-set {spec.name} --start {start} --end {end}"
        )
    if not is_delta_table(labels_path):
        raise DataError(f"no fraud labels at {labels_path}; run the ingest and clean jobs first")
    features_version = table_version(spark, features_path)
    labels_version = table_version(spark, labels_path)
    features = read_delta(spark, features_path, version=features_version).where(
        F.col("tx_date").between(F.lit(start), F.lit(end))
    )
    versions = [row[0] for row in features.select("feature_set_version").distinct().collect()]
    if not versions:
        raise DataError(f"{features_path} has no rows between {start} and {end}; build the features of those days")
    if versions != [spec.version]:
        raise DataError(
            f"{features_path} holds feature_set_version {sorted(versions)} between {start} and {end} but "
            f"conf/features/{spec.name}.yaml is version {spec.version}: rebuild the features of those days"
        )
    labels = read_delta(spark, labels_path, version=labels_version).select("transaction_id", LABEL)
    lineage = TableLineage(
        features_table=str(features_path),
        features_version=features_version,
        labels_table=str(labels_path),
        labels_version=labels_version,
        feature_set=spec.name,
        feature_set_version=spec.version,
    )
    logger.info(
        "reading %s v%d and %s v%d for %s..%s", features_path, features_version, labels_path, labels_version, start, end
    )
    return select_model_frame(join_fraud_labels(features, labels), spec=spec), lineage
