"""Batch scoring: gold features -> fraud probability and decision per transaction -> Delta gold.scores.

Scoring is vectorised: a pandas UDF loads the booster once per Spark task (from the raw model bytes shipped
with the task, so executors never call the model registry) and predicts Arrow batches of the model's inputs with
``Booster.inplace_predict``, one thread per task. A day range is written with ``replaceWhere`` on its days, so a
re-run of a day replaces exactly that day.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd  # at module level: the pandas UDF's type hints are resolved from these globals
from pyspark.sql import Observation
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.types import DoubleType, StructField, StructType

from lakestream.config.models import LakestreamConfig, ScoringConfig
from lakestream.errors import DataError
from lakestream.io.delta import is_delta_table, read_delta, write_delta

if TYPE_CHECKING:
    import numpy as np
    from pyspark.sql import DataFrame, SparkSession

    from lakestream.registry.models import LoadedModel

logger = logging.getLogger(__name__)

SCORE = "score"
DECISIONS = ("approve", "review", "block")  # assign_decisions' values
SCORES_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "tx_date",
    "customer_id",
    SCORE,
    "decision",
    "model_name",
    "model_version",
    "feature_set",
    "feature_set_version",
    "scored_at",
)


def scores_schema() -> StructType:
    """gold.scores: one row per transaction and scoring run, partitioned by tx_date."""
    from pyspark.sql.types import DateType, IntegerType, LongType, StringType, TimestampType

    return StructType(
        [
            StructField("transaction_id", LongType(), nullable=False),
            StructField("tx_datetime", TimestampType(), nullable=False),
            StructField("tx_date", DateType(), nullable=False),
            StructField("customer_id", LongType(), nullable=False),
            StructField(SCORE, DoubleType(), nullable=False),
            StructField("decision", StringType(), nullable=False),
            StructField("model_name", StringType(), nullable=False),
            StructField("model_version", StringType(), nullable=False),
            StructField("feature_set", StringType(), nullable=False),
            StructField("feature_set_version", IntegerType(), nullable=False),
            StructField("scored_at", TimestampType(), nullable=False),
        ]
    )


_BOOSTERS: dict[str, object] = {}  # worker-side cache: a streaming job loads each model version once per worker


def score_with_booster(
    frame: DataFrame,
    *,
    model_bytes: bytes,
    features: Sequence[str],
    score_column: str = SCORE,
    nthread: int = 1,
    cache_key: str | None = None,
) -> DataFrame:
    """Every column of frame + score (fraud probability).

    The booster is loaded once per task, or once per Python worker when a cache_key (e.g. "name/version")
    is given, so a stream's micro-batches reuse it.
    """
    names = list(features)
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise DataError(f"the model needs columns {missing} that the scored rows do not have")

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.Series]:
        import numpy as np
        import xgboost as xgb

        booster = _BOOSTERS.get(cache_key) if cache_key else None
        if booster is None:
            booster = xgb.Booster(params={"nthread": nthread}, model_file=bytearray(model_bytes))
            if cache_key:
                _BOOSTERS.clear()  # keep only the version in use
                _BOOSTERS[cache_key] = booster
        for batch in batches:  # the struct's fields, in the model's feature order
            values = batch.to_numpy(dtype=np.float32)  # nulls become NaN: missing to XGBoost
            yield pd.Series(predict_matrix(booster, values))

    # only the model's inputs go to Python and only the score comes back; the other columns stay in the JVM
    udf = F.pandas_udf(predict, DoubleType())  # type: ignore[call-overload]
    return frame.withColumn(score_column, udf(F.struct(*[F.col(name) for name in names])))


def predict_matrix(booster: object, matrix: np.ndarray) -> np.ndarray:
    """Fraud probabilities (float64) of a float32 matrix of the model's inputs in its feature order, NaN missing:
    the scoring UDF's and the stream driver's (lakestream.streaming.collected) one prediction."""
    import numpy as np

    return np.asarray(booster.inplace_predict(matrix, validate_features=False), dtype=float)  # type: ignore[attr-defined]


def assign_decisions(scored: DataFrame, *, scoring: ScoringConfig, score_column: str = SCORE) -> DataFrame:
    """Add decision: block (score >= block_threshold), review (>= review_threshold) or approve."""
    score = F.col(score_column)
    decision = (
        F.when(score >= F.lit(scoring.block_threshold), F.lit("block"))
        .when(score >= F.lit(scoring.review_threshold), F.lit("review"))
        .otherwise(F.lit("approve"))
    )
    return scored.withColumn("decision", decision)


def build_scores(
    features: DataFrame,
    *,
    model_bytes: bytes,
    model_inputs: Sequence[str],
    model_name: str,
    model_version: str,
    scoring: ScoringConfig,
    scored_at: dt.datetime | None = None,
) -> DataFrame:
    """gold feature rows -> gold.scores rows (schema of scores_schema()); scored_at defaults to the query time."""
    keys = ["transaction_id", "tx_datetime", "tx_date", "customer_id", "feature_set", "feature_set_version"]
    inputs = [F.col(name).cast("double").alias(name) for name in model_inputs if name not in keys]
    scored = score_with_booster(features.select(*keys, *inputs), model_bytes=model_bytes, features=model_inputs)
    return (
        assign_decisions(scored, scoring=scoring)
        .withColumn("model_name", F.lit(model_name))
        .withColumn("model_version", F.lit(model_version))
        .withColumn("scored_at", F.current_timestamp() if scored_at is None else F.lit(scored_at))
        .select(
            *[F.col(field.name).cast(field.dataType).alias(field.name) for field in scores_schema().fields],
        )
    )


@dataclass(frozen=True)
class ScoringResult:
    """What one batch-scoring run wrote."""

    model_name: str
    model_version: str
    feature_set: str
    start: str
    end: str
    rows: int
    decisions: dict[str, int]
    table: str
    features_delta_version: int


def scores_of_model(
    features: DataFrame, model: LoadedModel, config: LakestreamConfig, *, scored_at: dt.datetime | None = None
) -> DataFrame:
    """build_scores with a registry model and the configured decision thresholds."""
    return build_scores(
        features,
        model_bytes=model.raw_bytes,
        model_inputs=model.feature_names,
        model_name=model.name,
        model_version=model.version,
        scoring=config.training.scoring,
        scored_at=scored_at,
    )


def scores_table_path(config: LakestreamConfig) -> Path:
    """gold.<training.scoring.table> (gold.scores by default)."""
    return config.table_path("gold", config.training.scoring.table)


def score_batch(
    spark: SparkSession,
    config: LakestreamConfig,
    model: LoadedModel,
    *,
    start: dt.date,
    end: dt.date,
    scored_at: dt.datetime | None = None,
) -> ScoringResult:
    """Score the gold features of days [start, end] with a loaded model; replace those days in gold.scores."""
    from lakestream.features.store import feature_table_path
    from lakestream.io.delta import table_version

    if end < start:
        raise DataError(f"scoring: end {end} is before start {start}")
    features_path = feature_table_path(config, model.feature_spec)
    if not is_delta_table(features_path):
        raise DataError(f"no feature table at {features_path} for model {model.name} v{model.version}")
    features_version = table_version(spark, features_path)
    features = read_delta(spark, features_path, version=features_version).where(
        F.col("tx_date").between(F.lit(start), F.lit(end))
    )
    scores = scores_of_model(features, model, config, scored_at=scored_at)
    path = scores_table_path(config)
    # the decisions are counted by the write itself (an observation): no second job reading the days back
    counted = Observation("decisions")
    observed = scores.observe(
        counted, *[F.count_if(F.col("decision") == F.lit(name)).alias(name) for name in DECISIONS]
    )
    write_delta(observed, path, partition_by=["tx_date"], replace_where=f"tx_date >= '{start}' AND tx_date <= '{end}'")
    decisions = {name: int(count) for name, count in counted.get.items() if count}
    rows = sum(decisions.values())
    if rows == 0:
        logger.warning("no feature rows between %s and %s in %s: nothing scored", start, end, features_path)
    logger.info("scored %d rows of %s..%s with %s v%s into %s", rows, start, end, model.name, model.version, path)
    return ScoringResult(
        model.name,
        model.version,
        model.feature_spec.name,
        start.isoformat(),
        end.isoformat(),
        rows,
        decisions,
        str(path),
        features_version,
    )
