"""Server-rendered SVG charts: the geometry here, the markup in ``_chart.html``.

No JavaScript and no chart library: a line of readers over time and paired
bars of arrivals and departures, with round-number gridlines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28
MAX_LABELS = 8


@dataclass(frozen=True)
class Mark:
    """Something drawn at (x, y): a gridline label, an axis label or a point."""

    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Bar:
    """One bar; ``kind`` is its CSS class (``joined`` or ``left``)."""

    x: float
    y: float
    width: float
    height: float
    kind: str
    title: str


@dataclass
class Chart:
    """Everything ``_chart.html`` draws."""

    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    bottom: int = HEIGHT - BOTTOM
    gridlines: list[Mark] = field(default_factory=list)
    labels: list[Mark] = field(default_factory=list)
    points: list[Mark] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    line: str = ""
    area: str = ""


def nice_step(largest: float, lines: int = 4) -> int:
    """A round gridline step (1, 2 or 5 times a power of ten) for values up to ``largest``."""
    raw = max(largest, 1) / lines
    power = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if multiple * power >= raw:
            return max(1, int(multiple * power))
    return int(10 * power)  # pragma: no cover - the loop always returns


def _frame(chart: Chart, largest: int, labels: Sequence[str]) -> tuple[float, float]:
    """Gridlines and axis labels; returns (slot width, pixels per unit)."""
    step = nice_step(largest)
    top_value = max(step, math.ceil(max(largest, 1) / step) * step)
    scale = (chart.bottom - TOP) / top_value
    for value in range(0, top_value + 1, step):
        chart.gridlines.append(Mark(chart.left, chart.bottom - value * scale, f"{value:,}"))
    slot = (chart.right - chart.left) / max(len(labels), 1)
    # Every n-th label, counted back from the newest, so the current one shows.
    every = max(1, math.ceil(len(labels) / MAX_LABELS))
    for i, text in enumerate(labels):
        if (len(labels) - 1 - i) % every == 0:
            chart.labels.append(Mark(chart.left + slot * (i + 0.5), chart.bottom + 18, text))
    return slot, scale


def line_chart(values: Sequence[int], labels: Sequence[str], titles: Sequence[str]) -> Chart:
    """A line (with a shaded area under it) through ``values``, one per label."""
    chart = Chart()
    slot, scale = _frame(chart, max(values, default=0), labels)
    for i, (value, title) in enumerate(zip(values, titles, strict=True)):
        x, y = round(chart.left + slot * (i + 0.5), 1), round(chart.bottom - value * scale, 1)
        chart.points.append(Mark(x, y, title))
    if chart.points:
        path = " ".join(f"{p.x},{p.y}" for p in chart.points)
        chart.line = f"M{path}"
        first, last = chart.points[0], chart.points[-1]
        chart.area = f"M{first.x},{chart.bottom} L{path} L{last.x},{chart.bottom} Z"
    return chart


def bar_chart(pairs: Sequence[tuple[int, int]], labels: Sequence[str], titles: Sequence[str]) -> Chart:
    """Side-by-side bars per label: arrivals (``joined``) and departures (``left``)."""
    chart = Chart()
    largest = max((max(pair) for pair in pairs), default=0)
    slot, scale = _frame(chart, largest, labels)
    width = max(1.0, slot * 0.38)
    for i, ((joined, left), title) in enumerate(zip(pairs, titles, strict=True)):
        middle = chart.left + slot * (i + 0.5)
        for offset, value, kind in ((-width, joined, "joined"), (0.0, left, "left")):
            height = value * scale
            x, y = round(middle + offset, 1), round(chart.bottom - height, 1)
            chart.bars.append(Bar(x, y, round(width, 1), round(height, 1), kind, title))
    return chart
