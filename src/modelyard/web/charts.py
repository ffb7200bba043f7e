"""Server-drawn SVG charts (no chart library, no script): bars over days, lines, horizontal bars.

Colours come from CSS classes (``series-1``…) so the charts follow the page's light or dark theme. Every label is
escaped; each mark carries a ``<title>`` so hovering (or a screen reader) gives the exact value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

Format = Callable[[float], str]

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


@dataclass
class Series:
    """One line: a name, a value per label (``None`` where there is no data) and its colour slot (1-4)."""

    name: str
    values: Sequence[float | None]
    slot: int = 1


def _scale(value: float, ticks: int = 4) -> tuple[float, float]:
    """A round step and axis top for values up to ``value``: about ``ticks`` gridlines at 1, 2, 2.5 or 5 x 10^n."""
    if value <= 0:
        return 1.0, float(ticks)
    raw = value / ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if raw <= m * magnitude * (1 + 1e-9))
    return step, step * max(1, math.ceil(value / step - 1e-9))


def _frame(value: float, fmt: Format, labels: Sequence[str], title: str) -> tuple[list[str], float]:
    """The SVG opening, y gridlines with their values, and sparse x labels; returns the parts and the axis top."""
    step, top = _scale(value)
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(round(top / step) + 1):
        tick = step * i
        y = TOP + plot_h * (1 - tick / top)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(tick))}</text>')
    every = max(1, math.ceil(len(labels) / 8))
    slot_w = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    for i, label in enumerate(labels):
        if (len(labels) - 1 - i) % every == 0:  # always label the newest
            x = LEFT + slot_w * (i + 0.5)
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(label[-5:])}</text>'
            )
    return parts, top


def bar_chart(labels: Sequence[str], values: Sequence[float], fmt: Format, title: str, slot: int = 1) -> Markup:
    """Vertical bars, one per label (e.g. spend per day)."""
    parts, top = _frame(max(values, default=0), fmt, labels, title)
    plot_h = HEIGHT - TOP - BOTTOM
    slot_w = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    bar_w = max(2.0, slot_w * 0.7)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top if top else 0
        x = LEFT + slot_w * i + (slot_w - bar_w) / 2
        parts.append(
            f'<rect class="bar series-{slot}" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
            f'height="{max(h, 0):.1f}" rx="2"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and value above is escaped


def line_chart(
    labels: Sequence[str], series: Sequence[Series], fmt: Format, title: str, least_top: float = 0.0
) -> Markup:
    """One polyline per series (gaps where a value is missing), with a point and tooltip per value."""
    known = [v for s in series for v in s.values if v is not None]
    parts, top = _frame(max([*known, least_top]), fmt, labels, title)
    plot_h = HEIGHT - TOP - BOTTOM
    slot_w = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    for line in series:
        points: list[str] = []
        for i, value in enumerate(line.values):
            if value is None:
                continue
            x, y = LEFT + slot_w * (i + 0.5), TOP + plot_h * (1 - value / top)
            points.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle class="dot series-{line.slot}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{escape(line.name)} {escape(labels[i])}: {escape(fmt(value))}</title></circle>"
            )
        if len(points) > 1:
            parts.append(f'<polyline class="line series-{line.slot}" points="{" ".join(points)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and value above is escaped


def hbar_chart(items: Sequence[tuple[str, float]], fmt: Format, title: str, slot: int = 1) -> Markup:
    """Horizontal bars, one per item (e.g. spend per model), largest first as given."""
    row_h, label_w = 26, 200
    height = max(row_h, row_h * len(items)) + 8
    top = max((v for _, v in items), default=0) or 1
    parts = [
        f'<svg class="chart hbar" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    span = WIDTH - label_w - 90
    for i, (label, value) in enumerate(items):
        y = 4 + i * row_h
        w = span * value / top
        short = label if len(label) <= 28 else label[:27] + "…"
        parts.append(f'<text class="axis" x="{label_w - 8}" y="{y + 16}" text-anchor="end">{escape(short)}</text>')
        parts.append(
            f'<rect class="bar series-{slot}" x="{label_w}" y="{y + 4}" width="{max(w, 1):.1f}" height="{row_h - 8}" '
            f'rx="2"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
        )
        parts.append(f'<text class="axis" x="{label_w + w + 6:.1f}" y="{y + 16}">{escape(fmt(value))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and value above is escaped
