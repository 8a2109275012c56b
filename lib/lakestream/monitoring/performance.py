"""Label-delayed performance of the served scores, per day and model version, in Spark.

Labels arrive late (chargebacks, ``label_delay_days`` after the transaction), so a day is judged only once
its labels are complete, and only with the labels reported before the evaluation instant ``as_of``: a
transaction whose fraud was not reported by then counts as genuine, as it would for anyone looking at that
moment (no leakage from the future). Each served row keeps the model version that scored it, so a day
scored by two versions (a hot swap) is judged per version.

As in the protocol (fraud-protocol.md section 3), cards already known to be compromised are left out of a
day: a card whose fraud was reported before the day began (within a memory, the protocol's carry-over from
the training start) would have been blocked, so its transactions that day say nothing about the model.

The metrics, exactly as scikit-learn and the protocol define them but computed with Spark aggregates and
windows (no rows reach the driver):

- AUC ROC with ties at their average rank (Mann-Whitney U);
- Average Precision: the sum over distinct score thresholds, descending, of recall gain x precision;
- Card Precision@k of the day: per card its max score and max label, cards ranked by score (ties by card
  id, ascending), frauds among the top k divided by k.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F  # noqa: N812

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

LABEL = "label"
CARD = "customer_id"
SCORE = "score"


def label_served_scores(served: DataFrame, labels: DataFrame, *, as_of: dt.datetime) -> DataFrame:
    """served + label: 1 if a fraud label of the transaction was reported before as_of, else 0."""
    known = (
        labels.where((F.col("reported_at") < F.lit(as_of)) & (F.col("tx_fraud") == 1))
        .select("transaction_id")
        .distinct()
        .withColumn(LABEL, F.lit(1))
    )
    return served.join(known, on="transaction_id", how="left").withColumn(
        LABEL, F.coalesce(F.col(LABEL), F.lit(0)).cast("int")
    )


def known_compromised_cards(labels: DataFrame, cards: DataFrame, *, as_of: dt.datetime) -> DataFrame:
    """Fraud reports known at as_of, by card: customer_id + reported_at (one row per card and report)."""
    frauds = labels.where((F.col("tx_fraud") == 1) & (F.col("reported_at") < F.lit(as_of)))
    return frauds.join(cards.select("transaction_id", CARD), on="transaction_id").select(CARD, "reported_at").distinct()


def remove_known_compromised_cards(
    labelled: DataFrame, compromised: DataFrame, *, day_column: str, memory_days: int
) -> DataFrame:
    """Drop a card's rows on a day when one of its frauds was reported in the memory_days before the day began."""
    day_start = F.col(day_column).cast("timestamp")
    known = (
        (F.col("c.reported_at") < day_start)
        & (F.col("c.reported_at") >= day_start - F.make_dt_interval(days=F.lit(memory_days)))
        & (F.col(f"l.{CARD}") == F.col(f"c.{CARD}"))
    )
    return labelled.alias("l").join(compromised.alias("c"), on=known, how="left_anti")


def compute_auc_and_ap(labelled: DataFrame, *, groups: Sequence[str]) -> DataFrame:
    """groups + auc_roc + average_precision + transactions + frauds (null metrics when a class is missing)."""
    per_score = labelled.groupBy(*groups, SCORE).agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.col(LABEL)).cast("long").alias("pos")
    )
    ascending = Window.partitionBy(*groups).orderBy(SCORE).rowsBetween(Window.unboundedPreceding, -1)
    descending = Window.partitionBy(*groups).orderBy(F.desc(SCORE)).rowsBetween(Window.unboundedPreceding, 0)
    ranked = (
        per_score.withColumn("below", F.coalesce(F.sum("n").over(ascending), F.lit(0)))
        .withColumn("avg_rank", F.col("below") + (F.col("n") + 1) / 2.0)
        .withColumn("cum_tp", F.sum("pos").over(descending))
        .withColumn("cum_n", F.sum("n").over(descending))
    )
    totals = ranked.groupBy(*groups).agg(
        F.sum("n").alias("transactions"),
        F.sum("pos").alias("frauds"),
        F.sum(F.col("pos") * F.col("avg_rank")).alias("rank_sum"),
        F.sum(F.col("pos") * F.col("cum_tp") / F.col("cum_n")).alias("precision_sum"),
    )
    positives, negatives = F.col("frauds"), F.col("transactions") - F.col("frauds")
    both = (positives > 0) & (negatives > 0)
    auc = (F.col("rank_sum") - positives * (positives + 1) / 2.0) / (positives * negatives)
    return totals.select(
        *groups,
        F.when(both, auc).alias("auc_roc"),
        F.when(positives > 0, F.col("precision_sum") / positives).alias("average_precision"),
        F.col("transactions").cast("long").alias("transactions"),
        F.col("frauds").cast("long").alias("frauds"),
    )


def compute_card_precision(labelled: DataFrame, *, groups: Sequence[str], k: int) -> DataFrame:
    """groups + card_precision (frauds among the top k cards / k) + cards + compromised_cards."""
    cards = labelled.groupBy(*groups, CARD).agg(F.max(SCORE).alias(SCORE), F.max(LABEL).alias(LABEL))
    order = Window.partitionBy(*groups).orderBy(F.desc(SCORE), F.asc(CARD))
    ranked = cards.withColumn("_rank", F.row_number().over(order))
    return ranked.groupBy(*groups).agg(
        (F.sum(F.when(F.col("_rank") <= k, F.col(LABEL)).otherwise(0)) / F.lit(float(k))).alias("card_precision"),
        F.count(F.lit(1)).cast("long").alias("cards"),
        F.sum(LABEL).cast("long").alias("compromised_cards"),
    )


def compute_daily_performance(labelled: DataFrame, *, groups: Sequence[str], k: int) -> DataFrame:
    """groups + auc_roc, average_precision, card_precision, transactions, frauds, cards, compromised_cards."""
    return compute_auc_and_ap(labelled, groups=groups).join(
        compute_card_precision(labelled, groups=groups, k=k), on=list(groups)
    )
