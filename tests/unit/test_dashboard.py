"""The dashboard's pieces: SVG charts from small series, and a page over an empty lake (no table yet)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from lakestream.config import load_config
from lakestream.monitoring.dashboard import PANELS, Dashboard, bar_chart, line_chart, render_page


def test_a_line_chart_draws_every_point_and_a_threshold() -> None:
    day = dt.datetime(2018, 5, 1)
    series = {"a": [(day, 0.1), (day + dt.timedelta(days=1), 0.3)], "b": [(day, 0.2)]}
    svg = line_chart(series, title="psi", threshold=0.25, x_labels=lambda t: t.strftime("%m-%d"))
    assert 'data-points="3"' in svg
    assert svg.count("<circle") == 3
    assert svg.count("<polyline") == 2
    assert 'class="threshold"' in svg
    assert "05-01" in svg
    assert "a</span>" in svg


def test_a_bar_chart_stacks_categories_and_skips_zeros() -> None:
    svg = bar_chart(
        {1: {"approve": 5.0, "block": 1.0}, 2: {"approve": 3.0}},
        title="t",
        colours={"approve": "#0f0", "block": "#f00"},
    )
    assert 'data-points="2"' in svg
    assert svg.count("<rect") == 3


def test_empty_charts_say_so() -> None:
    assert 'data-points="0"' in line_chart({}, title="nothing")
    assert "no data yet" in bar_chart({}, title="nothing", colours={})


def test_the_page_renders_every_panel_over_an_empty_lake(tmp_path: Path) -> None:
    config = load_config(overrides={"paths.state_dir": str(tmp_path)})
    page = render_page(Dashboard(config))
    assert re.findall(r'data-panel="(\w+)"', page) == list(PANELS)
    assert "start the stream" in page
    assert "setInterval(refresh, 5000)" in page
    assert Dashboard(config).summary() == {
        "scored": 0,
        "decisions": {},
        "model_versions": [],
        "dead_letters": 0,
        "monitoring_alerts": 0,
    }
