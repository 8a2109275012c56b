"""Stream vs batch parity: the stream's features and scores against the batch engine's, transaction by transaction.

Counts compare exactly and other features within 1e-9; scores are compared with the batch scores of the same model
version (lakestream.scoring.batch) over the batch feature table. Used by the parity test and the streaming
benchmark (on the default dataset).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F  # noqa: N812

from lakestream.features.store import feature_table_path
from lakestream.io.delta import read_delta
from lakestream.scoring.batch import scores_of_model
from lakestream.streaming.pipeline import scores_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakestream.config import LakestreamConfig
    from lakestream.registry.models import LoadedModel

FEATURE_TOLERANCE = 1e-9
SCORE_TOLERANCE = 1e-7


def compare_with_batch(
    spark: SparkSession,
    config: LakestreamConfig,
    model: LoadedModel,
    *,
    start: dt.datetime,
    end: dt.datetime,
    exclude: DataFrame | None = None,
) -> dict[str, Any]:
    """Compare gold.<stream scores> with the batch features and scores of [start, end).

    `exclude` (a frame of transaction_id) leaves transactions out of both sides, e.g. those whose windows hold
    silver rows the stream's validation rejects. Returns counts; parity holds when every mismatch count is 0.
    """
    spec = model.feature_spec
    features = read_delta(spark, feature_table_path(config, spec)).where(
        (F.col("tx_datetime") >= F.lit(start)) & (F.col("tx_datetime") < F.lit(end))
    )
    stream = read_delta(spark, scores_path(config)).where(
        (F.col("tx_datetime") >= F.lit(start)) & (F.col("tx_datetime") < F.lit(end))
    )
    if exclude is not None:
        features = features.join(exclude, "transaction_id", "left_anti")
        stream = stream.join(exclude, "transaction_id", "left_anti")
    batch = scores_of_model(features, model, config).select(
        "transaction_id", F.col("score").alias("_batch_score"), F.col("decision").alias("_batch_decision")
    )
    joined = (
        stream.alias("s")
        .join(features.alias("b"), "transaction_id", "full_outer")
        .join(batch, "transaction_id", "left")
        .persist()
    )
    try:
        checks = []
        for name in spec.feature_names():
            exact = "NB_TX" in name or name.startswith("TX_")
            left, right = F.col(f"s.{name}"), F.col(f"b.{name}")
            differs = (left != right) if exact else (F.abs(left - right) > FEATURE_TOLERANCE)
            checks.append(F.sum((differs | (left.isNull() != right.isNull())).cast("int")).alias(name))
        row = joined.agg(
            F.count(F.lit(1)).alias("transactions"),
            F.sum(F.col("s.score").isNull().cast("int")).alias("missing_in_stream"),
            F.sum(F.col("b.tx_amount").isNull().cast("int")).alias("missing_in_batch"),
            F.sum((F.abs(F.col("s.score") - F.col("_batch_score")) > SCORE_TOLERANCE).cast("int")).alias("scores"),
            F.sum((F.col("s.decision") != F.col("_batch_decision")).cast("int")).alias("decisions"),
            F.sum((F.col("s.model_version") != F.lit(model.version)).cast("int")).alias("other_versions"),
            F.max(F.abs(F.col("s.score") - F.col("_batch_score"))).alias("max_score_difference"),
            *checks,
        ).first()
    finally:
        joined.unpersist()
    values = row.asDict()
    feature_mismatches = {name: int(values[name] or 0) for name in spec.feature_names() if values[name]}
    return {
        "transactions": int(values["transactions"]),
        "missing_in_stream": int(values["missing_in_stream"] or 0),
        "missing_in_batch": int(values["missing_in_batch"] or 0),
        "feature_mismatches": feature_mismatches,
        "score_mismatches": int(values["scores"] or 0),
        "decision_mismatches": int(values["decisions"] or 0),
        "scored_by_another_version": int(values["other_versions"] or 0),
        "max_score_difference": float(values["max_score_difference"] or 0.0),
        "model_version": model.version,
    }


def parity_holds(result: dict[str, Any]) -> bool:
    """Every transaction on both sides, every feature, score and decision equal."""
    return result["transactions"] > 0 and not any(
        result[key]
        for key in (
            "missing_in_stream",
            "missing_in_batch",
            "feature_mismatches",
            "score_mismatches",
            "decision_mismatches",
            "scored_by_another_version",
        )
    )
