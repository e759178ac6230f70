"""Charts for the figures page, drawn on the server as SVG: no script, nothing to download.

Two kinds cover every figure: grouped horizontal bars (a median beside its
90th percentile, per channel) and stacked horizontal bars (open work per
queue, split by age). Every text in a chart comes in as data and is escaped
here; the chart is `Markup` only once it is built from escaped parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

PALETTE = ("#2f6db5", "#e08a1e", "#3b9c5a", "#c0392b", "#8e5cb5", "#7f8c8d")
WIDTH = 640
LABEL_WIDTH = 150
VALUE_WIDTH = 90
BAR = 14
GAP = 10
LEGEND = 24


@dataclass(frozen=True, slots=True)
class Bars:
    """A chart's rows: a label each, and one value per series (None: nothing measured)."""

    title: str
    series: Sequence[str]
    rows: Sequence[tuple[str, Sequence[float | None]]]


def _text(x: float, y: float, content: str, anchor: str = "start") -> Markup:
    return Markup('<text x="{:.1f}" y="{:.1f}" text-anchor="{}">{}</text>').format(
        x, y, anchor, content
    )


def _rect(x: float, y: float, width: float, height: float, colour: str, tip: str) -> Markup:
    return Markup(
        '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{}" fill="{}"><title>{}</title></rect>'
    ).format(x, y, width, height, colour, tip)


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _legend(series: Sequence[str]) -> list[Markup]:
    parts, x = [], LABEL_WIDTH
    for index, name in enumerate(series):
        parts += [_rect(x, 4, 12, 12, _colour(index), name), _text(x + 16, 14, name)]
        x += 24 + 8 * len(name)
    return parts


def _frame(title: str, height: float, parts: list[Markup]) -> Markup:
    return Markup(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {:.0f}" width="100%"'
        ' xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="system-ui, sans-serif">'
        "<title>{}</title>{}</svg>"
    ).format(title, WIDTH, height, title, Markup("").join(parts))


def _scale(largest: float) -> Callable[[float], float]:
    room = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    return lambda value: room * value / largest if largest > 0 else 0.0


def render_grouped_bars(chart: Bars, shown: Callable[[float | None], str]) -> Markup:
    """One bar per series in each row, side by side; `shown` writes a value beside its bar."""
    values = [v for _label, row in chart.rows for v in row if v is not None]
    scale = _scale(max(values, default=0))
    per_row = BAR * len(chart.series) + GAP
    parts, y = _legend(chart.series), float(LEGEND)
    for label, row in chart.rows:
        parts.append(_text(LABEL_WIDTH - 6, y + per_row / 2, label, "end"))
        for index, value in enumerate(row):
            top, width = y + index * BAR, scale(value or 0)
            tip = f"{chart.series[index]}: {shown(value)}"
            parts.append(_rect(LABEL_WIDTH, top, width, BAR - 2, _colour(index), tip))
            parts.append(_text(LABEL_WIDTH + width + 4, top + BAR - 4, shown(value)))
        y += per_row
    return _frame(chart.title, y + 4, parts)


def render_stacked_bars(chart: Bars) -> Markup:
    """One bar per row, split into the series; the row's total is written beside it."""
    totals = [sum(v or 0 for v in row) for _label, row in chart.rows]
    scale = _scale(max(totals, default=0))
    parts, y = _legend(chart.series), float(LEGEND)
    for (label, row), total in zip(chart.rows, totals, strict=True):
        parts.append(_text(LABEL_WIDTH - 6, y + BAR - 3, label, "end"))
        x = float(LABEL_WIDTH)
        for index, value in enumerate(row):
            width = scale(value or 0)
            if width > 0:
                tip = f"{chart.series[index]}: {value:g}"
                parts.append(_rect(x, y, width, BAR, _colour(index), tip))
            x += width
        parts.append(_text(x + 4, y + BAR - 3, f"{total:g}"))
        y += BAR + GAP
    return _frame(chart.title, y + 4, parts)
