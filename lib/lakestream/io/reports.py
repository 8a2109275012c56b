"""Self-contained HTML reports: tables and matplotlib figures embedded as PNG, readable without a server."""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #335; padding-bottom: .3rem; } h2 { margin-top: 2rem; color: #335; }
table { border-collapse: collapse; font-size: .9rem; } td, th { border: 1px solid #ccc; padding: .2rem .5rem; }
th { background: #eef; } .kpis { display: flex; flex-wrap: wrap; gap: 1rem; }
.kpi { background: #f4f6fb; border-radius: 6px; padding: .6rem 1rem; } .kpi b { display: block; font-size: 1.3rem; }
img { max-width: 100%; } .note { color: #666; font-size: .85rem; }
"""


@dataclass
class HtmlReport:
    """An HTML page built section by section."""

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        """A section heading."""
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, *, note: bool = False) -> None:
        """A paragraph of text."""
        css = ' class="note"' if note else ""
        self.parts.append(f"<p{css}>{html.escape(text)}</p>")

    def kpis(self, values: dict[str, Any]) -> None:
        """A row of headline numbers."""
        cells = "".join(
            f'<div class="kpi">{html.escape(str(k))}<b>{html.escape(_format(v))}</b></div>' for k, v in values.items()
        )
        self.parts.append(f'<div class="kpis">{cells}</div>')

    def table(self, frame: pd.DataFrame, *, max_rows: int = 50) -> None:
        """A pandas table (first rows)."""
        self.parts.append(frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))

    def figure(self, fig: Figure) -> None:
        """A matplotlib figure as an embedded PNG (the figure is closed afterwards)."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        encoded = base64.b64encode(buffer.getvalue()).decode()
        self.parts.append(f'<img alt="figure" src="data:image/png;base64,{encoded}"/>')

    def render(self) -> str:
        """The whole page."""
        body = "\n".join(self.parts)
        title = html.escape(self.title)
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{title}</h1>\n{body}\n</body></html>\n"
        )

    def write(self, path: Path) -> Path:
        """Write the page to path (parents created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        logger.info("wrote report %s", path)
        return path


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def new_figure(ncols: int = 1, *, width: float = 10.0, height: float = 3.2) -> tuple[Figure, Sequence[Any]]:
    """A figure with ncols axes side by side (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])
