"""The monitoring report: one self-contained HTML page per run (plots embedded), written to the reports folder.

Drawn from the metric history the run judged (already aggregated rows, no table scans): feature drift per
input over time (daily PSI), the score distribution against the reference, label-delayed daily AP and CP@k
per model version, data-quality rates (dead letters, quarantine, volume), the alerts and the retraining
decision. ``<reports_dir>/monitoring/latest.html`` always points at the newest run's page.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lakestream.io.reports import HtmlReport, new_figure

if TYPE_CHECKING:
    from lakestream.config.models import LakestreamConfig
    from lakestream.monitoring.retraining import RetrainingDecision
    from lakestream.monitoring.rules import RuleOutcome
    from lakestream.monitoring.tables import MetricRow


def _daily(rows: Sequence[MetricRow], family: str, metric: str) -> list[MetricRow]:
    return sorted(
        (
            r
            for r in rows
            if r.family == family and r.metric == metric and r.granularity == "day" and r.value is not None
        ),
        key=lambda r: r.window_start,
    )


def _series(rows: Sequence[MetricRow], *, by_version: bool = True) -> dict[str, list[tuple[dt.datetime, float]]]:
    """label (dimension and/or version) -> [(day, value)]."""
    series: dict[str, list[tuple[dt.datetime, float]]] = defaultdict(list)
    for r in rows:
        label = r.dimension or r.metric
        if by_version and r.model_version:
            label = f"{label} v{r.model_version}"
        series[label].append((r.window_start, float(r.value)))  # type: ignore[arg-type]
    return series


def _line_plot(
    report: HtmlReport,
    series: dict[str, list[tuple[dt.datetime, float]]],
    *,
    title: str,
    ylabel: str,
    hline: float | None = None,
    top: int = 12,
) -> None:
    if not series:
        report.paragraph(f"{title}: no data in this period.", note=True)
        return
    ranked = sorted(series.items(), key=lambda item: -max(v for _, v in item[1]))[:top]
    fig, (ax,) = new_figure(width=10.5, height=3.6)
    for label, points in ranked:
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=label)
    if hline is not None:
        ax.axhline(hline, color="red", linestyle="--", linewidth=1, label=f"threshold {hline:g}")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=3)
    fig.autofmt_xdate()
    report.figure(fig)


def write_report(
    config: LakestreamConfig,
    history: Sequence[MetricRow],
    outcome: RuleOutcome,
    decision: RetrainingDecision,
    *,
    start: dt.date,
    end: dt.date,
    run_id: str,
) -> Path:
    """Render and write the page; returns its path (also copied to latest.html)."""
    import pandas as pd

    rules = config.monitoring.rules
    report = HtmlReport(f"Lakestream monitoring {start} .. {end} ({config.monitoring.source} scores)")
    report.paragraph(
        f"Run {run_id}. Event-time days {start} .. {end}; the plots show the metric history the rules judged. "
        "Windows are in event time; performance uses only labels reported before the run's as-of instant."
    )
    report.kpis(
        {
            "alerts in this run": len(outcome.alerts),
            "still active": len(outcome.active),
            "retraining": "requested" if decision.needed else "not requested",
            "mode": decision.mode,
        }
    )
    report.paragraph(f"Retraining decision: {decision.reason}")

    report.heading("Alerts")
    if outcome.alerts:
        report.table(
            pd.DataFrame(
                [
                    {
                        "window": a.window_start.strftime("%Y-%m-%d %H:%M"),
                        "rule": a.rule,
                        "severity": a.severity,
                        "model": a.model_version or "-",
                        "message": a.message,
                    }
                    for a in outcome.alerts
                ]
            ),
            max_rows=200,
        )
    else:
        report.paragraph("No rule breached in this period.", note=True)

    report.heading("Feature drift (daily PSI of each model input against its training bins)")
    threshold = rules["feature_drift"].above if "feature_drift" in rules else None
    _line_plot(
        report, _series(_daily(history, "feature_drift", "psi")), title="PSI per input", ylabel="PSI", hline=threshold
    )

    report.heading("Predictions")
    _line_plot(
        report,
        _series(_daily(history, "prediction_drift", "psi")),
        title="score PSI vs the test-window scores",
        ylabel="PSI",
    )
    shares = [r for r in _daily(history, "prediction_drift", "score_bin_share")]
    if shares:
        newest = max(r.window_start for r in shares)
        last = sorted((r for r in shares if r.window_start == newest), key=lambda r: r.dimension)
        fig, (ax,) = new_figure(width=8, height=3.2)
        positions = [int(r.dimension) for r in last]
        ax.bar(
            [p - 0.2 for p in positions], [r.reference or 0.0 for r in last], width=0.4, label="reference (test window)"
        )
        ax.bar([p + 0.2 for p in positions], [r.value or 0.0 for r in last], width=0.4, label=f"{newest:%Y-%m-%d}")
        ax.set_xlabel("score bin (reference deciles)")
        ax.set_ylabel("share of transactions")
        ax.set_title("score distribution, newest day vs reference")
        ax.legend(fontsize=8)
        report.figure(fig)
    _line_plot(
        report,
        _series(_daily(history, "prediction_drift", "alert_rate")),
        title="alert rate (review + block)",
        ylabel="share",
    )

    report.heading("Label-delayed performance of the served scores (complete days only)")
    for metric, label in (("card_precision", "Card Precision@k"), ("average_precision", "Average Precision")):
        rows = _daily(history, "performance", metric)
        _line_plot(report, _series(rows), title=f"daily {label}", ylabel=label)
        if rows:
            report.table(
                pd.DataFrame(
                    [
                        {
                            "day": r.window_start.date(),
                            "model": r.model_version,
                            metric: r.value,
                            "reference": r.reference,
                            "transactions": r.sample_size,
                        }
                        for r in rows
                    ]
                ),
                max_rows=60,
            )

    report.heading("Data quality")
    _line_plot(
        report,
        _series(_daily(history, "data_quality", "dead_letter_rate"), by_version=False),
        title="stream dead-letter rate by reason ('dead_letter_rate' = all)",
        ylabel="share",
    )
    _line_plot(
        report,
        _series(_daily(history, "data_quality", "quarantine_rate"), by_version=False),
        title="batch quarantine rate by kind and rule",
        ylabel="share",
    )
    _line_plot(
        report,
        _series(_daily(history, "data_quality", "volume_ratio"), by_version=False),
        title="volume vs the training window",
        ylabel="ratio",
    )
    nulls = [r for r in _daily(history, "data_quality", "null_rate") if (r.value or 0) > 0]
    _line_plot(report, _series(nulls), title="null rate of model inputs (non-zero only)", ylabel="share")

    folder = config.paths.reports_dir / "monitoring"
    path = report.write(folder / f"monitoring_{start}_{end}.html")
    shutil.copyfile(path, folder / "latest.html")
    return path
