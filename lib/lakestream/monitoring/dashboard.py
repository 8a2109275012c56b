"""The monitoring dashboard: one page over the Delta tables, served by FastAPI, read without the JVM.

Why this shape: the page reads the lake with the ``deltalake`` package (no Spark session, so it starts in a
second and never competes with the stream for a JVM), renders its charts on the server as inline SVG (no
JavaScript chart library, no CDN: it works on an air-gapped laptop and in a headless browser test), and
refreshes its panels every ``monitoring.dashboard.refresh_seconds`` with a few lines of plain JavaScript.
FastAPI and uvicorn are already in the Python set (MLflow and Airflow serve with them); Streamlit would add a
heavy dependency and a websocket protocol for what is a read-only page.

Panels: the live alert feed (review / block decisions of the stream, newest first), scores and decisions per
minute, the model versions in service (and the registry's aliases), feature drift over time (daily PSI),
label-delayed performance (daily CP@k and AP per model version), dead-letter and quarantine reasons, and the
monitoring alerts. ``GET /api/summary`` returns the same numbers as JSON.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakestream.config.models import LakestreamConfig

if TYPE_CHECKING:
    import pandas as pd
    from fastapi import FastAPI

    from lakestream.platform.process import ManagedService, ServiceStatus

logger = logging.getLogger(__name__)

PALETTE = ("#3b6fb6", "#d9822b", "#3a9b5c", "#c23b3b", "#7b5ea7", "#8c6d31", "#d46aa0", "#5f9ea0", "#999933", "#555")
DECISION_COLOURS = {"approve": "#3a9b5c", "review": "#d9822b", "block": "#c23b3b"}


# ------------------------------------------------------------------------------------------- reading the lake


def read_table(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame | None:
    """A Delta table (or some of its columns) as pandas, read with deltalake; None when it does not exist."""
    import pandas as pd

    from lakestream.io.delta import read_delta_arrow

    table = read_delta_arrow(path, columns)
    if table is None:
        return None
    frame = table.to_pandas()
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
            frame[name] = frame[name].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


@dataclass(frozen=True)
class LakeTables:
    """Where the dashboard's tables are, from configuration."""

    stream_scores: Path
    stream_metrics: Path
    dead_letter: Path
    quarantine: Path
    metrics: Path
    alerts: Path

    @classmethod
    def from_config(cls, config: LakestreamConfig) -> LakeTables:
        """The configured locations."""
        streaming, monitoring = config.streaming, config.monitoring
        return cls(
            stream_scores=config.table_path("gold", streaming.scores_table),
            stream_metrics=config.table_path("gold", streaming.metrics_table),
            dead_letter=config.table_path("quarantine", streaming.dead_letter_table),
            quarantine=config.table_path("quarantine", "records"),
            metrics=config.table_path(monitoring.database, monitoring.metrics_table),
            alerts=config.table_path(monitoring.database, monitoring.alerts_table),
        )


# ------------------------------------------------------------------------------------------------ SVG charts


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / count
    return [low + i * step for i in range(count + 1)]


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def line_chart(
    series: dict[str, list[tuple[Any, float]]],
    *,
    title: str,
    x_labels: Callable[[Any], str] = str,
    threshold: float | None = None,
    width: int = 560,
    height: int = 240,
) -> str:
    """Lines (one per series, x values shared and sortable) as an inline SVG; data-points counts the points."""
    points_total = sum(len(v) for v in series.values())
    if not points_total:
        return _empty(title)
    xs = sorted({x for values in series.values() for x, _ in values})
    ys = [y for values in series.values() for _, y in values if not math.isnan(y)]
    if threshold is not None:
        ys.append(threshold)
    low, high = min(0.0, *ys), max(ys) or 1.0
    left, right, top, bottom = 48, 12, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    position = {x: left + (plot_w * i / max(len(xs) - 1, 1)) for i, x in enumerate(xs)}

    def y_of(value: float) -> float:
        return top + plot_h * (1 - (value - low) / (high - low or 1.0))

    parts = [_frame(title, width, height)]
    for tick in _ticks(low, high):
        y = y_of(tick)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" class="axis" text-anchor="end">{_label(tick)}</text>')
    for i in sorted({0, len(xs) // 2, len(xs) - 1}):
        x = xs[i]
        parts.append(
            f'<text x="{position[x]:.1f}" y="{height - 18}" class="axis" text-anchor="middle">'
            f"{html.escape(x_labels(x))}</text>"
        )
    if threshold is not None:
        y = y_of(threshold)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="threshold"/>')
    legend = []
    for index, (name, values) in enumerate(sorted(series.items())):
        colour = PALETTE[index % len(PALETTE)]
        ordered = sorted((x, y) for x, y in values if not math.isnan(y))
        path = " ".join(f"{position[x]:.1f},{y_of(y):.1f}" for x, y in ordered)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" class="series"/>')
        for x, y in ordered:
            parts.append(
                f'<circle cx="{position[x]:.1f}" cy="{y_of(y):.1f}" r="2.5" fill="{colour}">'
                f"<title>{html.escape(name)} {html.escape(x_labels(x))}: {y:.4g}</title></circle>"
            )
        legend.append(f'<span style="color:{colour}">&#9632; {html.escape(name)}</span>')
    parts.append("</svg>")
    svg = parts[0].replace('data-points="0"', f'data-points="{points_total}"', 1) + "".join(parts[1:])
    return svg + f'<div class="legend">{" ".join(legend)}</div>'


def bar_chart(
    bars: dict[Any, dict[str, float]], *, title: str, colours: dict[str, str], x_labels: Callable[[Any], str] = str,
    width: int = 560, height: int = 240,
) -> str:  # fmt: skip
    """Stacked bars (x -> {category: value}) as an inline SVG."""
    if not bars:
        return _empty(title)
    xs = sorted(bars)
    high = max(sum(v.values()) for v in bars.values()) or 1.0
    left, right, top, bottom = 48, 12, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / len(xs)
    parts = [_frame(title, width, height).replace('data-points="0"', f'data-points="{len(xs)}"', 1)]
    for tick in _ticks(0.0, high):
        y = top + plot_h * (1 - tick / high)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" class="axis" text-anchor="end">{_label(tick)}</text>')
    for i, x in enumerate(xs):
        base = top + plot_h
        for category, colour in colours.items():
            value = bars[x].get(category, 0.0)
            if value <= 0:
                continue
            h = plot_h * value / high
            base -= h
            parts.append(
                f'<rect x="{left + i * slot + 1:.1f}" y="{base:.1f}" width="{max(slot - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{html.escape(x_labels(x))} {category}: {value:g}</title></rect>'
            )
    for i in sorted({0, len(xs) // 2, len(xs) - 1}):
        parts.append(
            f'<text x="{left + (i + 0.5) * slot:.1f}" y="{height - 18}" class="axis" text-anchor="middle">'
            f"{html.escape(x_labels(xs[i]))}</text>"
        )
    parts.append("</svg>")
    legend = " ".join(f'<span style="color:{c}">&#9632; {html.escape(k)}</span>' for k, c in colours.items())
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _frame(title: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart" data-points="0" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img"><text x="8" y="16" class="title">{html.escape(title)}</text>'
    )


def _empty(title: str) -> str:
    return f'<div class="chart empty" data-points="0"><b>{html.escape(title)}</b><p>no data yet</p></div>'


def _table(frame: pd.DataFrame | None, *, empty: str) -> str:
    if frame is None or frame.empty:
        return f'<p class="empty">{html.escape(empty)}</p>'
    return frame.to_html(index=False, border=0, classes="rows", float_format=lambda v: f"{v:.4g}", escape=True)


# ------------------------------------------------------------------------------------------------- panels


class Dashboard:
    """Builds each panel's HTML from the tables (every call re-reads them: the page is live)."""

    def __init__(self, config: LakestreamConfig) -> None:
        self.config = config
        self.tables = LakeTables.from_config(config)

    def alert_feed(self) -> str:
        """The newest review / block decisions of the stream."""
        rows = self.config.monitoring.dashboard.alert_feed_rows
        scores = read_table(
            self.tables.stream_scores,
            ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "score", "decision",
             "model_version", "processed_at"],
        )  # fmt: skip
        if scores is None:
            return _table(None, empty="no stream scores yet: start the stream (lakestream stream start)")
        alerts = scores[scores["decision"] != "approve"].sort_values(["processed_at", "score"], ascending=False)
        return _table(alerts.head(rows), empty="no review or block decision yet")

    def decisions_per_minute(self) -> str:
        """Scores per processing minute, split by decision (the last 60 minutes with data)."""
        scores = read_table(self.tables.stream_scores, ["processed_at", "decision"])
        if scores is None or scores.empty:
            return _empty("scores per minute (processing time)")
        minute = scores["processed_at"].dt.floor("min")
        recent = scores[minute >= minute.max() - dt.timedelta(minutes=59)]
        counts = recent.groupby([recent["processed_at"].dt.floor("min"), "decision"]).size()
        bars: dict[Any, dict[str, float]] = defaultdict(dict)
        for (when, decision), n in counts.items():
            bars[when][decision] = float(n)
        return bar_chart(
            bars,
            title="scores per minute by decision (processing time)",
            colours=DECISION_COLOURS,
            x_labels=lambda t: t.strftime("%H:%M"),
        )

    def models_in_service(self) -> str:
        """Rows scored per model version by the stream, and the registry's aliases."""
        scores = read_table(self.tables.stream_scores, ["model_version", "processed_at"])
        aliases = self._aliases()
        if scores is None or scores.empty:
            served = None
        else:
            served = (
                scores.groupby("model_version")
                .agg(
                    scored=("processed_at", "size"),
                    first_scored=("processed_at", "min"),
                    last_scored=("processed_at", "max"),
                )
                .reset_index()
                .sort_values("first_scored")
            )
            served["aliases"] = served["model_version"].map(lambda v: ", ".join(aliases.get(str(v), [])) or "-")
        note = ", ".join(f"{alias} = v{v}" for v, names in sorted(aliases.items()) for alias in names)
        return _table(served, empty="no stream scores yet") + (
            f'<p class="note">registry: {html.escape(note)}</p>' if note else ""
        )

    def _aliases(self) -> dict[str, list[str]]:
        try:
            from mlflow import MlflowClient

            from lakestream.registry.tracking import configure_mlflow

            configure_mlflow(self.config)
            model = MlflowClient().get_registered_model(self.config.mlflow.registered_model)
        except Exception as exc:  # noqa: BLE001 - the registry is optional for the page
            logger.debug("registry not readable: %s", exc)
            return {}
        result: dict[str, list[str]] = defaultdict(list)
        for alias, version in (model.aliases or {}).items():
            result[str(version)].append(alias)
        return dict(result)

    def _metric_series(self, family: str, metric: str, *, by: str) -> dict[str, list[tuple[Any, float]]]:
        metrics = read_table(self.tables.metrics)
        if metrics is None or metrics.empty:
            return {}
        rows = metrics[
            (metrics["family"] == family)
            & (metrics["metric"] == metric)
            & (metrics["granularity"] == "day")
            & (metrics["source"] == self.config.monitoring.source)
            & metrics["value"].notna()
        ]
        series: dict[str, list[tuple[Any, float]]] = defaultdict(list)
        for _, r in rows.iterrows():
            label = f"v{r['model_version']}" if by == "version" else str(r["dimension"])
            if by == "dimension" and r["model_version"]:
                label += f" v{r['model_version']}"
            series[label].append((r["window_start"], float(r["value"])))
        return series

    def drift(self) -> str:
        """Daily PSI of the most drifted model inputs."""
        rule = self.config.monitoring.rules.get("feature_drift")
        excluded = tuple(rule.exclude_dimensions) if rule else ()
        series = {
            name: points
            for name, points in self._metric_series("feature_drift", "psi", by="dimension").items()
            if not name.startswith(excluded)
        }
        top = dict(sorted(series.items(), key=lambda item: -max(v for _, v in item[1]))[:8])
        outside = self._metric_series("feature_drift", "out_of_range_share", by="dimension")
        top_outside = dict(sorted(outside.items(), key=lambda item: -max(v for _, v in item[1]))[:6])
        range_rule = self.config.monitoring.rules.get("out_of_range")
        return line_chart(
            top,
            title="feature drift: daily PSI vs training bins (top 8)",
            x_labels=lambda t: t.strftime("%m-%d"),
            threshold=rule.above if rule else None,
        ) + line_chart(
            top_outside,
            title="daily share of values outside the training range (top 6)",
            x_labels=lambda t: t.strftime("%m-%d"),
            threshold=range_rule.above if range_rule and not range_rule.relative_to_reference else None,
        )

    def performance(self) -> str:
        """Label-delayed daily CP@k and AP per model version."""
        k = self.config.monitoring.card_precision_k or self.config.training.evaluation.top_k
        charts = []
        for metric, name in (("card_precision", f"CP@{k}"), ("average_precision", "AP")):
            charts.append(
                line_chart(
                    self._metric_series("performance", metric, by="version"),
                    title=f"label-delayed daily {name} of the served scores",
                    x_labels=lambda t: t.strftime("%m-%d"),
                )
            )
        return "".join(charts)

    def reasons(self) -> str:
        """Dead-letter reasons of the stream and quarantine rules of the batch path."""
        parts = []
        letters = read_table(self.tables.dead_letter, ["reason"])
        if letters is not None and not letters.empty:
            counts = letters["reason"].value_counts()
            parts.append(
                bar_chart(
                    {reason: {"records": float(n)} for reason, n in counts.items()},
                    title="stream dead letters by reason",
                    colours={"records": "#c23b3b"},
                )
            )
        else:
            parts.append(_empty("stream dead letters by reason"))
        quarantine = read_table(self.tables.quarantine, ["kind", "rules"])
        if quarantine is not None and not quarantine.empty:
            exploded = quarantine.explode("rules")
            counts = (exploded["kind"] + ":" + exploded["rules"].astype(str)).value_counts().head(10)
            parts.append(
                bar_chart(
                    {rule: {"records": float(n)} for rule, n in counts.items()},
                    title="batch quarantine by rule",
                    colours={"records": "#7b5ea7"},
                )
            )
        return "".join(parts)

    def monitoring_alerts(self) -> str:
        """The newest monitoring alerts."""
        alerts = read_table(self.tables.alerts, ["window_start", "severity", "rule", "model_version", "message"])
        if alerts is None:
            return _table(None, empty="no monitoring alert (run jobs/monitor_model.py or the monitoring DAG)")
        return _table(alerts.sort_values("window_start", ascending=False).head(15), empty="no monitoring alert")

    def summary(self) -> dict[str, Any]:
        """The headline numbers as JSON."""
        scores = read_table(self.tables.stream_scores, ["decision", "model_version"])
        letters = read_table(self.tables.dead_letter, ["reason"])
        alerts = read_table(self.tables.alerts, ["rule"])
        return {
            "scored": 0 if scores is None else len(scores),
            "decisions": {} if scores is None else {k: int(v) for k, v in scores["decision"].value_counts().items()},
            "model_versions": [] if scores is None else sorted(str(v) for v in scores["model_version"].unique()),
            "dead_letters": 0 if letters is None else len(letters),
            "monitoring_alerts": 0 if alerts is None else len(alerts),
        }


PANELS: dict[str, tuple[str, str]] = {
    "alert_feed": ("Live alert feed (review / block)", "wide"),
    "decisions_per_minute": ("Scores and decisions per minute", ""),
    "models_in_service": ("Model versions in service", ""),
    "drift": ("Feature drift", ""),
    "performance": ("Label-delayed performance", ""),
    "reasons": ("Dead-letter and quarantine reasons", ""),
    "monitoring_alerts": ("Monitoring alerts", "wide"),
}

_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f8; color: #222; }
header { background: #263859; color: #fff; padding: .8rem 1.5rem; } header small { opacity: .7; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(580px, 1fr)); gap: 1rem; padding: 1rem; }
section { background: #fff; border-radius: 8px; padding: .8rem; box-shadow: 0 1px 3px rgba(0,0,0,.08); overflow: auto; }
section.wide { grid-column: 1 / -1; } h2 { font-size: 1rem; margin: 0 0 .5rem; color: #263859; }
table.rows { border-collapse: collapse; font-size: .8rem; width: 100%; } .rows td, .rows th { padding: .2rem .4rem;
border-bottom: 1px solid #eee; text-align: left; } .rows th { background: #eef1f7; }
svg .grid { stroke: #e3e3e3; } svg .axis { font-size: 10px; fill: #666; }
div.legend { font-size: .75rem; margin: 0 0 .6rem 2.5rem; }
div.legend span { margin-right: .8rem; white-space: nowrap; }
svg .title { font-size: 12px; font-weight: 600; fill: #263859; }
svg .threshold { stroke: #c23b3b; stroke-dasharray: 4 3; }
.empty { color: #888; } .note { color: #666; font-size: .8rem; }
"""

_PAGE_SCRIPT = """
async function refresh() {
  for (const section of document.querySelectorAll('section[data-panel]')) {
    try {
      const response = await fetch('/panels/' + section.dataset.panel);
      if (response.ok) { section.querySelector('.body').innerHTML = await response.text(); }
    } catch (e) { /* keep the last view; the next refresh retries */ }
  }
  document.getElementById('updated').textContent = new Date().toLocaleTimeString();
}
setInterval(refresh, REFRESH_MS);
"""


def render_page(dashboard: Dashboard) -> str:
    """The whole page with every panel rendered (later refreshed panel by panel)."""
    config = dashboard.config
    sections = []
    for name, (title, css) in PANELS.items():
        body = getattr(dashboard, name)()
        sections.append(
            f'<section data-panel="{name}" class="{css}"><h2>{html.escape(title)}</h2>'
            f'<div class="body">{body}</div></section>'
        )
    script = _PAGE_SCRIPT.replace("REFRESH_MS", str(config.monitoring.dashboard.refresh_seconds * 1000))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Lakestream monitoring</title>"
        f"<style>{_PAGE_STYLE}</style></head><body><header><b>Lakestream</b> fraud monitoring "
        f"<small>lake {html.escape(str(config.paths.lake_root))} · {config.monitoring.source} scores · "
        f"refreshed <span id='updated'>now</span></small></header><main>{''.join(sections)}</main>"
        f"<script>{script}</script></body></html>"
    )


def build_dashboard_app(config: LakestreamConfig) -> FastAPI:
    """The FastAPI application: / (the page), /panels/<name> (one panel), /api/summary, /healthz."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse

    dashboard = Dashboard(config)
    app = FastAPI(title="Lakestream monitoring", docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return render_page(dashboard)

    @app.get("/panels/{name}", response_class=HTMLResponse)
    def panel(name: str) -> str:
        if name not in PANELS:
            raise HTTPException(status_code=404, detail=f"no panel {name!r}; panels: {sorted(PANELS)}")
        return getattr(dashboard, name)()

    @app.get("/api/summary")
    def summary() -> dict[str, Any]:
        return dashboard.summary()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# ------------------------------------------------------------------------------------------ the local service


def app_from_environment() -> FastAPI:
    """uvicorn's application factory: configuration from the environment of the server process."""
    from lakestream.config import load_config

    return build_dashboard_app(load_config())


def dashboard_service(config: LakestreamConfig) -> ManagedService:
    """The pid-file-managed dashboard server."""
    from lakestream.platform.process import ManagedService

    settings = config.monitoring.dashboard
    return ManagedService(
        name="dashboard",
        run_dir=config.paths.state_dir / "run",
        host=settings.host,
        port=settings.port,
        hint="set LAKESTREAM__MONITORING__DASHBOARD__PORT to a free port",
    )


def start_dashboard(config: LakestreamConfig) -> ServiceStatus:
    """Serve the dashboard in the background (uvicorn, one worker) unless it runs; return once it answers."""
    import os
    import sys

    settings = config.monitoring.dashboard
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "lakestream.monitoring.dashboard:app_from_environment",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "LAKESTREAM_ENV": config.env, "LAKESTREAM_HOME": str(config.home)}
    env["LAKESTREAM__PATHS__STATE_DIR"] = str(config.paths.state_dir)
    return dashboard_service(config).start(command, env=env, timeout_s=60.0)


def stop_dashboard(config: LakestreamConfig) -> bool:
    """Stop the dashboard server; True if it was running."""
    return dashboard_service(config).stop()


def dashboard_url(config: LakestreamConfig) -> str:
    """Where the dashboard answers."""
    settings = config.monitoring.dashboard
    return f"http://{settings.host}:{settings.port}/"
