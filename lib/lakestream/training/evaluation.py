"""Evaluate a scored Spark DataFrame with the metrics of lakestream.training.metrics.

Only small things reach the driver:
- CP@k needs one row per (day, card) with the max score and max label: aggregated on Spark, then collected
  (cards x days, e.g. 7 x 5,000 rows for the book's test week);
- AUC ROC, AP, the threshold metrics and calibration need (score, label) per transaction. Up to
  ``evaluation.max_collected_rows`` rows they are collected as they are (the book's test week is ~58k rows).
  Above, every fraud is kept and the genuine transactions are sampled with fraction f and weight 1 / f: the
  weighted metrics are unbiased estimates of the full-set values (a weight w counts like w copies of the row).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import functions as F  # noqa: N812

from lakestream.config.models import EvaluationConfig
from lakestream.training.metrics import EvaluationResult, evaluate_scores

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """The metrics and the collected (score, label[, weight]) rows they came from (for plots)."""

    result: EvaluationResult
    scores: pd.DataFrame
    sampled: bool


def aggregate_card_days(
    scored: DataFrame,
    *,
    score_column: str = "score",
    label_column: str = "tx_fraud",
    card_column: str = "customer_id",
    date_column: str = "tx_date",
) -> DataFrame:
    """Scored transactions -> one row per (day, card): day (ISO string), card, score = max, label = max."""
    return (
        scored.groupBy(date_column, card_column)
        .agg(F.max(score_column).alias("score"), F.max(label_column).alias("label"))
        .select(F.col(date_column).cast("string").alias("day"), F.col(card_column).alias("card"), "score", "label")
    )


def sample_for_metrics(
    scored: DataFrame,
    *,
    genuine_fraction: float,
    seed: int,
    score_column: str = "score",
    label_column: str = "tx_fraud",
) -> DataFrame:
    """All frauds and a Bernoulli sample of the genuine rows: score, label, weight (1 / fraction for genuine)."""
    rows = scored.select(F.col(score_column).alias("score"), F.col(label_column).cast("int").alias("label"))
    if genuine_fraction >= 1.0:
        return rows.withColumn("weight", F.lit(1.0))
    kept = rows.where((F.col("label") == 1) | (F.rand(seed) < F.lit(genuine_fraction)))
    return kept.withColumn("weight", F.when(F.col("label") == 1, F.lit(1.0)).otherwise(F.lit(1.0 / genuine_fraction)))


def evaluate_scored(
    scored: DataFrame,
    *,
    evaluation: EvaluationConfig,
    threshold: float,
    score_column: str = "score",
    label_column: str = "tx_fraud",
    seed: int = 0,
) -> Evaluation:
    """Every metric of a scored set (one row per transaction with score, label, customer_id, tx_date)."""
    scored = scored.persist()  # read three times below; scoring runs once
    try:
        return _evaluate_persisted(
            scored,
            evaluation=evaluation,
            threshold=threshold,
            score_column=score_column,
            label_column=label_column,
            seed=seed,
        )
    finally:
        scored.unpersist()


def _evaluate_persisted(
    scored: DataFrame,
    *,
    evaluation: EvaluationConfig,
    threshold: float,
    score_column: str,
    label_column: str,
    seed: int,
) -> Evaluation:
    counts = {row[0]: row[1] for row in scored.groupBy(label_column).count().collect()}
    total, frauds = sum(counts.values()), counts.get(1, 0)
    genuine = total - frauds
    fraction = (
        1.0
        if total <= evaluation.max_collected_rows
        else max(evaluation.max_collected_rows - frauds, 1) / max(genuine, 1)
    )
    sample = sample_for_metrics(
        scored, genuine_fraction=fraction, seed=seed, score_column=score_column, label_column=label_column
    ).toPandas()
    if fraction < 1.0:
        logger.info(
            "evaluation set of %d rows: all %d frauds + %.4f of the genuine rows, weighted", total, frauds, fraction
        )
    card_days = aggregate_card_days(scored, score_column=score_column, label_column=label_column).toPandas()
    result = evaluate_scores(
        sample if fraction < 1.0 else sample.drop(columns="weight"),
        card_days,
        k=evaluation.top_k,
        threshold=threshold,
        calibration_bins=evaluation.calibration_bins,
    )
    return Evaluation(result=result, scores=sample, sampled=fraction < 1.0)
