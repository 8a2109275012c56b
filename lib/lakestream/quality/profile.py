"""Exploration: a data profile of the silver transactions (and labels, quarantine) for a date range.

Everything is aggregated by Spark; only small aggregate tables (a row per day, hour, bucket, …) reach the
driver, so the profile works the same on the book's 1.75M rows and on 100x that. The report is one HTML
page with embedded plots, readable without a server (see ``lakestream.io.reports``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import functions as F  # noqa: N812

from lakestream.io.reports import HtmlReport, new_figure

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

AMOUNT_BUCKET_EDGES = (0, 10, 25, 50, 75, 100, 150, 220, 500, 1000)
WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")  # Spark dayofweek: 1 = Sunday


@dataclass(frozen=True)
class DataProfile:
    """Small aggregate tables describing one table and date range."""

    start: dt.date
    end: dt.date
    totals: dict[str, float]
    volumes_per_day: pd.DataFrame
    amount_histogram: pd.DataFrame
    fraud_by_hour: pd.DataFrame
    fraud_by_weekday: pd.DataFrame
    fraud_by_amount_bucket: pd.DataFrame
    fraud_by_scenario: pd.DataFrame
    customer_activity: pd.DataFrame
    terminal_activity: pd.DataFrame
    null_rates: dict[str, float]
    quarantine_by_reason: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def label_transactions(transactions: DataFrame, labels: DataFrame | None) -> DataFrame:
    """Transactions + tx_fraud (0/1) and tx_fraud_scenario (0 when no chargeback)."""
    if labels is None:
        return transactions.withColumn("tx_fraud", F.lit(0)).withColumn("tx_fraud_scenario", F.lit(0))
    reports = labels.groupBy("transaction_id").agg(
        F.max("tx_fraud").alias("tx_fraud"), F.max("tx_fraud_scenario").alias("tx_fraud_scenario")
    )
    return (
        transactions.join(reports, "transaction_id", "left")
        .withColumn("tx_fraud", F.coalesce("tx_fraud", F.lit(0)))
        .withColumn("tx_fraud_scenario", F.coalesce("tx_fraud_scenario", F.lit(0)))
    )


def amount_bucket(column: str = "tx_amount") -> F.Column:
    """Label of the amount bucket of a row, e.g. '50-75' or '1000+'."""
    expr = F.lit(f"{AMOUNT_BUCKET_EDGES[-1]}+")
    for low, high in reversed(list(itertools.pairwise(AMOUNT_BUCKET_EDGES))):
        expr = F.when(F.col(column) < high, F.lit(f"{low}-{high}")).otherwise(expr)
    return expr


def _rate_by(frame: DataFrame, key: F.Column, name: str) -> pd.DataFrame:
    return (
        frame.groupBy(key.alias(name))
        .agg(F.count(F.lit(1)).alias("transactions"), F.sum("tx_fraud").alias("frauds"))
        .withColumn("fraud_rate", F.col("frauds") / F.col("transactions"))
        .orderBy(name)
        .toPandas()
    )


def _activity(frame: DataFrame, entity: str) -> pd.DataFrame:
    per_entity = frame.groupBy(entity).agg(F.count(F.lit(1)).alias("n"))
    return (
        per_entity.groupBy((F.floor(F.col("n") / 10) * 10).alias("transactions_bucket"))
        .agg(F.count(F.lit(1)).alias(f"{entity}s"))
        .orderBy("transactions_bucket")
        .toPandas()
    )


def compute_profile(
    transactions: DataFrame,
    *,
    labels: DataFrame | None,
    quarantine: DataFrame | None,
    start: dt.date,
    end: dt.date,
) -> DataProfile:
    """Aggregate the profile of silver transactions with event dates in [start, end]."""
    in_range = transactions.where(F.col("tx_date").between(F.lit(start), F.lit(end)))
    labelled = label_transactions(in_range, labels).cache()
    try:
        totals_row = labelled.agg(
            F.count(F.lit(1)).alias("transactions"),
            F.sum("tx_fraud").alias("frauds"),
            F.countDistinct("customer_id").alias("customers"),
            F.countDistinct("terminal_id").alias("terminals"),
            F.avg("tx_amount").alias("mean_amount"),
            F.expr("percentile_approx(tx_amount, 0.5)").alias("median_amount"),
            F.max("tx_amount").alias("max_amount"),
        ).first()
        totals = {key: float(value or 0) for key, value in totals_row.asDict().items()}
        totals["fraud_rate"] = totals["frauds"] / totals["transactions"] if totals["transactions"] else 0.0
        volumes = (
            labelled.groupBy("tx_date")
            .agg(F.count(F.lit(1)).alias("transactions"), F.sum("tx_fraud").alias("frauds"))
            .orderBy("tx_date")
            .toPandas()
        )
        histogram = (
            labelled.groupBy((F.floor(F.col("tx_amount") / 5) * 5).alias("amount_from"), "tx_fraud")
            .agg(F.count(F.lit(1)).alias("transactions"))
            .orderBy("amount_from")
            .toPandas()
        )
        null_exprs = [F.avg(F.col(c).isNull().cast("double")).alias(c) for c in in_range.columns]
        null_rates = {k: float(v or 0) for k, v in in_range.agg(*null_exprs).first().asDict().items()}
        quarantine_reasons = None
        if quarantine is not None:
            quarantine_reasons = (
                quarantine.where(F.col("process_date").between(F.lit(start), F.lit(end)))
                .select("kind", F.explode("rules").alias("rule"))
                .groupBy("kind", "rule")
                .agg(F.count(F.lit(1)).alias("records"))
                .orderBy(F.desc("records"))
                .toPandas()
            )
        profile = DataProfile(
            start=start,
            end=end,
            totals=totals,
            volumes_per_day=volumes,
            amount_histogram=histogram,
            fraud_by_hour=_rate_by(labelled, F.hour("tx_datetime"), "hour"),
            fraud_by_weekday=_rate_by(labelled, F.dayofweek("tx_datetime"), "weekday"),
            fraud_by_amount_bucket=_rate_by(labelled, amount_bucket(), "amount_bucket"),
            fraud_by_scenario=_rate_by(labelled, F.col("tx_fraud_scenario"), "scenario"),
            customer_activity=_activity(labelled, "customer_id"),
            terminal_activity=_activity(labelled, "terminal_id"),
            null_rates=null_rates,
            quarantine_by_reason=quarantine_reasons,
        )
    finally:
        labelled.unpersist()
    logger.info(
        "profiled %d transactions (%d frauds) from %s to %s",
        int(totals["transactions"]),
        int(totals["frauds"]),
        start,
        end,
    )
    return profile


def render_profile_report(profile: DataProfile, *, title: str) -> HtmlReport:
    """The profile as an HTML page: headline numbers, plots and the underlying tables."""
    report = HtmlReport(title)
    totals = profile.totals
    report.paragraph(f"Event dates {profile.start} to {profile.end}.", note=True)
    report.kpis(
        {
            "transactions": int(totals["transactions"]),
            "frauds": int(totals["frauds"]),
            "fraud rate": totals["fraud_rate"],
            "customers": int(totals["customers"]),
            "terminals": int(totals["terminals"]),
            "mean amount": totals["mean_amount"],
            "median amount": totals["median_amount"],
            "max amount": totals["max_amount"],
        }
    )

    report.heading("Volumes per day")
    fig, (ax1, ax2) = new_figure(2)
    volumes = profile.volumes_per_day
    ax1.plot(volumes["tx_date"], volumes["transactions"], color="#335")
    ax1.set_title("transactions per day")
    ax2.plot(volumes["tx_date"], volumes["frauds"], color="#c33")
    ax2.set_title("frauds per day")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelrotation=30)
    report.figure(fig)

    report.heading("Amounts")
    fig, (ax,) = new_figure(1)
    hist = profile.amount_histogram
    for fraud, color, label in ((0, "#335", "genuine"), (1, "#c33", "fraud")):
        part = hist[hist["tx_fraud"] == fraud]
        ax.bar(part["amount_from"], part["transactions"], width=5, alpha=0.6, color=color, label=label, align="edge")
    ax.set_yscale("log")
    ax.set_xlabel("amount (buckets of 5)")
    ax.legend()
    report.figure(fig)

    report.heading("Fraud rate by hour, weekday, amount bucket and scenario")
    fig, axes = new_figure(4, width=14)
    by_weekday = profile.fraud_by_weekday.assign(weekday=lambda f: f["weekday"].map(lambda d: WEEKDAYS[int(d) - 1]))
    for ax, frame, key, name in (
        (axes[0], profile.fraud_by_hour, "hour", "hour of day"),
        (axes[1], by_weekday, "weekday", "weekday"),
        (axes[2], profile.fraud_by_amount_bucket, "amount_bucket", "amount bucket"),
        (axes[3], profile.fraud_by_scenario, "scenario", "scenario (0 = genuine)"),
    ):
        ax.bar(
            frame[key].astype(str), frame["fraud_rate"] if key != "scenario" else frame["transactions"], color="#558"
        )
        ax.set_title(name if key != "scenario" else "transactions by scenario")
        ax.tick_params(axis="x", labelrotation=60)
    report.figure(fig)
    report.table(profile.fraud_by_amount_bucket)
    report.table(profile.fraud_by_scenario)

    report.heading("Customer and terminal activity")
    fig, (ax1, ax2) = new_figure(2)
    ax1.bar(profile.customer_activity["transactions_bucket"], profile.customer_activity["customer_ids"], width=9)
    ax1.set_title("customers by number of transactions")
    ax2.bar(profile.terminal_activity["transactions_bucket"], profile.terminal_activity["terminal_ids"], width=9)
    ax2.set_title("terminals by number of transactions")
    report.figure(fig)

    report.heading("Data quality")
    report.kpis({f"null rate {k}": v for k, v in profile.null_rates.items() if k in _KEY_COLUMNS})
    if profile.quarantine_by_reason is not None and len(profile.quarantine_by_reason):
        report.paragraph("Quarantined records by rule (a record may break several rules):")
        report.table(profile.quarantine_by_reason)
    else:
        report.paragraph("No quarantined records in this range.", note=True)
    for note in profile.notes:
        report.paragraph(note, note=True)
    return report


_KEY_COLUMNS = ("transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount")
