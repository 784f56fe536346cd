"""The report's bar and column charts, as inline SVG (no script: the page forbids it)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from limitsync.report.text import esc

__all__ = ["fmt1", "legend", "nice_step", "svg_columns", "svg_hbars", "svg_open"]


def fmt1(value: float) -> str:
    """A coordinate: one decimal is finer than a pixel."""
    return f"{value:.1f}"


def nice_step(top: int, ticks: int = 4) -> int:
    """The smallest 1/2/5 x 10^k step such that ``ticks`` steps reach ``top`` (integers only)."""
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            if step * ticks >= top:
                return step
        magnitude *= 10


def legend(series: Iterable[tuple[str, str]]) -> str:
    items = "".join(
        f'<span class="key"><span class="swatch {css}"></span>{esc(name)}</span>'
        for name, css in series
    )
    return f'<p class="legend">{items}</p>'


def svg_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{esc(label)}</title>"
    )


def svg_hbars(
    label: str, rows: Sequence[tuple[str, Sequence[int]]], classes: Sequence[str]
) -> str:
    """Stacked horizontal bars, one row per label, one segment per series."""
    width, left, right, row_h = 720, 190, 60, 26
    height = row_h * len(rows) + 10
    top = max((sum(values) for _, values in rows), default=0) or 1
    scale = (width - left - right) / top
    parts = [svg_open(width, height, label)]
    for index, (name, values) in enumerate(rows):
        y = 5 + index * row_h
        parts.append(
            f'<text class="axis" x="{left - 8}" y="{y + 17}" text-anchor="end">{esc(name)}</text>'
        )
        x = float(left)
        for value, css in zip(values, classes, strict=True):
            if value:
                parts.append(
                    f'<rect class="{css}" x="{fmt1(x)}" y="{y + 3}" '
                    f'width="{fmt1(value * scale)}" height="{row_h - 8}">'
                    f"<title>{esc(name)}: {value}</title></rect>"
                )
                x += value * scale
        parts.append(f'<text class="value" x="{fmt1(x + 6)}" y="{y + 17}">{sum(values)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_columns(
    label: str,
    columns: Sequence[tuple[str, str, Sequence[int]]],  # (axis label, tooltip, values per series)
    classes: Sequence[str],
    label_every: int = 1,
) -> str:
    """Stacked vertical columns with an integer count axis."""
    width, height, left, right, top_m, bottom = 720, 240, 48, 12, 12, 44
    plot_w, plot_h = width - left - right, height - top_m - bottom
    peak = max((sum(values) for _, _, values in columns), default=0)
    step = nice_step(max(peak, 1))
    y_top = step * max(1, math.ceil(peak / step))
    slot = plot_w / max(len(columns), 1)
    bar_w = min(slot * 0.8, 90.0)
    parts = [svg_open(width, height, label)]
    for tick in range(0, y_top + 1, step):
        y = top_m + plot_h - tick / y_top * plot_h
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{fmt1(y)}" y2="{fmt1(y)}"/>'
        )
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{fmt1(y + 4)}" text-anchor="end">{tick}</text>'
        )
    for index, (axis_label, tip, values) in enumerate(columns):
        x, base = left + index * slot, float(top_m + plot_h)
        for value, css in zip(values, classes, strict=True):
            if value:
                h = max(value / y_top * plot_h, 2.0)  # a non-zero count stays visible
                parts.append(
                    f'<rect class="{css}" x="{fmt1(x + (slot - bar_w) / 2)}" '
                    f'y="{fmt1(base - h)}" width="{fmt1(bar_w)}" height="{fmt1(h)}">'
                    f"<title>{esc(tip)}</title></rect>"
                )
                base -= h
        if sum(values) and len(columns) <= 12:
            parts.append(
                f'<text class="value" x="{fmt1(x + slot / 2)}" y="{fmt1(base - 4)}" '
                f'text-anchor="middle">{sum(values)}</text>'
            )
        if index % label_every == 0:
            parts.append(
                f'<text class="axis" x="{fmt1(x + slot / 2)}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{esc(axis_label)}</text>'
            )
    parts.append(f'<line class="axisline" x1="{left}" x2="{width - right}" '
                 f'y1="{top_m + plot_h}" y2="{top_m + plot_h}"/></svg>')  # fmt: skip
    return "".join(parts)
