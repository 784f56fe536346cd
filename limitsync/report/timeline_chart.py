"""The chart of one account's timeline: expected, app and cache lines, drift bands, markers for
its alerts and dots for its observations, as inline SVG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from limitsync.report.alerts import Drift, alert_time
from limitsync.report.model import TimelinePoint
from limitsync.report.svg import fmt1, nice_step, svg_open
from limitsync.report.text import Memo, as_int, esc, fmt_clock, format_yuan, parse_time
from limitsync.report.vocabulary import CHART_DOTS_MAX

__all__ = ["svg_timeline"]


_Timed = Sequence[tuple[datetime, TimelinePoint]]  # the points with a time, and their time
_Numbers = tuple[int | None, int | None, int | None]  # a point's expected, app and cache amounts


@dataclass(slots=True)
class _Frame:
    """Maps time and fen onto a timeline chart's plot area."""

    t0: datetime
    span_s: float
    y_top: int
    left: float = 96.0
    top: float = 14.0
    width: float = 800.0
    height: float = 210.0

    def x(self, moment: datetime) -> float:
        share = (moment - self.t0).total_seconds() / self.span_s
        return self.left + min(max(share, 0.0), 1.0) * self.width

    def y(self, fen: int) -> float:
        share = min(max(fen / self.y_top, 0.0), 1.0)
        return self.top + self.height - share * self.height


def _xs(frame: _Frame, timed: _Timed) -> list[str]:
    """Each point's x, written once: the three lines and the dots all pass through it. As
    ``fmt1(frame.x(moment))``, inlined: it runs once a point."""
    t0, span_s, left, width = frame.t0, frame.span_s, frame.left, frame.width
    return [
        f"{left + min(max((moment - t0).total_seconds() / span_s, 0.0), 1.0) * width:.1f}"
        for moment, _ in timed
    ]


def _step_path(xs: Sequence[str], values: Sequence[int | None], ys: _YText, end_x: str) -> str:
    """A step line through the points at ``xs`` (written coordinates) with these values; None
    lifts the pen (no value shown)."""
    commands: list[str] = []
    previous: int | None = None
    for x, value in zip(xs, values, strict=True):
        if previous is not None:
            commands.append("H" + x)
        if value is None:
            previous = None
            continue
        if previous is None:
            commands.append(f"M{x},{ys(value)}")
        elif value != previous:
            commands.append("V" + ys(value))
        previous = value
    if previous is not None:
        commands.append("H" + end_x)
    return "".join(commands)


class _YText:
    """A chart's y coordinates of amounts, written once an amount: a timeline repeats them."""

    __slots__ = ("_frame", "_written")

    def __init__(self, frame: _Frame) -> None:
        self._frame = frame
        self._written: dict[int, str] = {}

    def __call__(self, fen: int) -> str:
        text = self._written.get(fen)
        if text is None:
            text = self._written[fen] = fmt1(self._frame.y(fen))
        return text


def _alert_tip(record: dict[str, Any], raised: datetime, memo: Memo) -> str:
    """A marker's title; ``raised`` is ``alert_time(record)``."""
    source = f"{record['source']} " if record.get("source") else ""
    return (
        f"{record.get('type', '?')} {source}{record.get('reason', '')} "
        f"({record.get('severity', '')}) "
        f"alert {record.get('alert_id', '')} at {raised.isoformat()}: "
        f"expected {memo.plain_money(record.get('expected_available'))}, "
        f"displayed {memo.plain_money(record.get('displayed_available'))}"
    )


def _timeline_frame(
    timed: _Timed, numbers: Sequence[_Numbers], extra_times: Sequence[datetime]
) -> _Frame:
    times = [moment for moment, _ in timed] + list(extra_times)
    t0, t1 = min(times), max(times)
    peak = max(max(expected or 0, shown or 0, cached or 0) for expected, shown, cached in numbers)
    peak = max(peak, 1)
    peak += peak // 10  # headroom above the highest line
    step = nice_step(peak, ticks=5)
    return _Frame(
        t0=t0,
        span_s=max((t1 - t0).total_seconds(), 1.0),
        y_top=step * max(1, math.ceil(peak / step)),
    )


def _timeline_axes(frame: _Frame, tz: tzinfo) -> list[str]:
    parts = []
    step = nice_step(frame.y_top, ticks=5)
    right = frame.left + frame.width
    for tick in range(0, frame.y_top + 1, step):
        y = fmt1(frame.y(tick))
        parts.append(
            f'<line class="grid" x1="{fmt1(frame.left)}" x2="{fmt1(right)}" y1="{y}" y2="{y}"/>'
        )
        parts.append(
            f'<text class="axis" x="{fmt1(frame.left - 6)}" y="{fmt1(frame.y(tick) + 4)}" '
            f'text-anchor="end">{format_yuan(tick)}</text>'
        )
    with_date = frame.span_s >= 86400
    bottom = frame.top + frame.height
    for index in range(5):
        moment = frame.t0 + timedelta(seconds=frame.span_s * index / 4)
        anchor = ("start", "middle", "middle", "middle", "end")[index]
        parts.append(
            f'<text class="axis" x="{fmt1(frame.x(moment))}" y="{fmt1(bottom + 18)}" '
            f'text-anchor="{anchor}">{fmt_clock(moment, tz, with_date)}</text>'
        )
    parts.append(f'<line class="axisline" x1="{fmt1(frame.left)}" x2="{fmt1(right)}" '
                 f'y1="{fmt1(bottom)}" y2="{fmt1(bottom)}"/>')  # fmt: skip
    return parts


def _drift_bands(frame: _Frame, drifts: Sequence[Drift]) -> list[str]:
    parts = []
    end = frame.t0 + timedelta(seconds=frame.span_s)
    for drift in drifts:
        if drift.start is None:
            continue
        x0, x1 = frame.x(drift.start), frame.x(drift.end or end)
        tip = f"drift {drift.alert_id} {drift.reason} from {drift.opened_at}"
        parts.append(
            f'<rect class="drift-band" x="{x0:.1f}" y="{frame.top:.1f}" '
            f'width="{max(x1 - x0, 1.0):.1f}" height="{frame.height:.1f}">'
            f"<title>{esc(tip)}</title></rect>"
        )
    return parts


def _alert_markers(
    frame: _Frame,
    records: Sequence[dict[str, Any]],
    raised: Sequence[datetime | None],
    memo: Memo,
) -> list[str]:
    """A marker per alert record; ``raised``: their ``alert_time``s."""
    parts = []
    top, bottom = f"{frame.top:.1f}", f"{frame.top + frame.height:.1f}"
    head = f"{frame.top - 8:.1f}"
    for record, moment in zip(records, raised, strict=True):
        if moment is None:
            continue
        x = frame.x(moment)
        css = "m-" + str(record.get("type", "")).removeprefix("mismatch.")
        parts.append(
            f'<g class="marker {esc(css)}"><title>{esc(_alert_tip(record, moment, memo))}</title>'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>'
            f'<path d="M{x - 5:.1f},{head}h10l-5,8z"/></g>'
        )
    return parts


def _lines(frame: _Frame, numbers: Sequence[_Numbers], xs: Sequence[str], ys: _YText) -> list[str]:
    """The expected, cache and app lines (in that order: the app's is drawn on top)."""
    end_x = fmt1(frame.x(frame.t0 + timedelta(seconds=frame.span_s)))
    expected = [expected or 0 for expected, _, _ in numbers]
    displayed = [shown for _, shown, _ in numbers]
    cached = [cached for _, _, cached in numbers]
    return [
        f'<path class="line-expected" d="{_step_path(xs, expected, ys, end_x)}"/>',
        f'<path class="line-cached" d="{_step_path(xs, cached, ys, end_x)}"/>',
        f'<path class="line-displayed" d="{_step_path(xs, displayed, ys, end_x)}"/>',
    ]


def _dots(
    timed: _Timed, numbers: Sequence[_Numbers], xs: Sequence[str], ys: _YText, memo: Memo
) -> list[str]:
    """A dot per observation (the first CHART_DOTS_MAX), at the value the source showed."""
    parts: list[str] = []
    for (_, point), (_, shown, cached), x in zip(timed, numbers, xs, strict=True):
        if point.type != "limit.displayed":
            continue
        cache = point.source == "cache"
        value = cached if cache else shown
        if value is None:
            continue
        if len(parts) == CHART_DOTS_MAX:
            break
        parts.append(
            f'<circle class="{"dot-cached" if cache else "dot-displayed"}" cx="{x}" '
            f'cy="{ys(value)}" r="2.5"><title>{esc(point.at)} {"cache" if cache else "app"} '
            f"showed {memo.plain_money(value)}</title></circle>"
        )
    return parts


def svg_timeline(
    points: Sequence[TimelinePoint],
    records: Sequence[dict[str, Any]],
    drifts: Sequence[Drift],
    tz: tzinfo,
    label: str,
    memo: Memo,
) -> str:
    timed = [(moment, p) for p in points if (moment := parse_time(p.at)) is not None]
    if not timed:
        return '<p class="muted">No timestamped records to chart.</p>'
    # Each point's amounts as ints (None: none, or not an int), read once.
    numbers = [(as_int(p.expected), as_int(p.displayed), as_int(p.cached)) for _, p in timed]
    raised = [alert_time(record) for record in records]
    frame = _timeline_frame(timed, numbers, [moment for moment in raised if moment is not None])
    xs = _xs(frame, timed)
    ys = _YText(frame)
    width, height = int(frame.left + frame.width + 16), int(frame.top + frame.height + 28)
    return "".join(
        [
            svg_open(width, height, label),
            *_drift_bands(frame, drifts),
            *_alert_markers(frame, records, raised, memo),
            *_timeline_axes(frame, tz),
            *_lines(frame, numbers, xs, ys),
            *_dots(timed, numbers, xs, ys, memo),
            "</svg>",
        ]
    )
