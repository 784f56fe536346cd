"""The sections on drifts themselves: alerts over time, and the longest drifts of each source."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import add, floordiv, sub

from limitsync.report.alerts import Drift, longest_key
from limitsync.report.svg import legend, svg_columns
from limitsync.report.text import (
    bucket_text,
    duration_text,
    esc,
    fmt_clock,
    money_html,
    tz_label,
)
from limitsync.report.view import View
from limitsync.report.vocabulary import DRIFT_ROWS_MAX, GROUPS, SOURCES, TIME_BUCKETS_MAX

__all__ = ["anchor_ids", "section_longest", "section_over_time"]

_TIME_BUCKET_WIDTHS_S = (
    1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800,
)  # fmt: skip


def _time_bucket_width(span_s: float) -> int:
    for width in _TIME_BUCKET_WIDTHS_S:
        if span_s / width < TIME_BUCKETS_MAX:
            return width
    return 86400 * math.ceil(span_s / 86400 / (TIME_BUCKETS_MAX - 1))


def _bucket_counts(times: Iterable[float], offset: float, start: float, width: int) -> Counter[int]:
    """Per bucket, the times in it: ``int((t + offset - start) // width)``, at C speed."""
    shifted = map(sub, map(add, times, repeat(offset)), repeat(start))
    return Counter(map(int, map(floordiv, shifted, repeat(width))))


def section_over_time(view: View) -> str:
    alerts = view.alerts
    intro = '<section id="over-time"><h2>Alerts over time</h2>'
    if alerts.first_timed is None:
        return intro + '<p class="muted">No opened or escalated alerts.</p></section>'
    shift = alerts.first_timed.astimezone(view.tz).utcoffset() or timedelta(0)
    offset = shift.total_seconds()
    series = (alerts.opened_times, alerts.escalated_times)
    first = min(min(times) for times in series if times) + offset
    last = max(max(times) for times in series if times) + offset
    width = _time_bucket_width(last - first)
    start = math.floor(first / width) * width
    count = int((last - start) // width) + 1
    counts = [_bucket_counts(times, offset, start, width) for times in series]
    with_date = width >= 86400 or (last - first) >= 86400
    columns = []
    for index in range(count):
        moment = datetime.fromtimestamp(start + index * width - offset, UTC)
        label = fmt_clock(moment, view.tz, with_date)
        values = [per_kind[index] for per_kind in counts]
        tip = f"{label} (+{bucket_text(width)}): {values[0]} opened, {values[1]} escalated"
        columns.append((label, tip, values))
    label_every = max(1, math.ceil(count / 8))
    chart = svg_columns("Alerts over time", columns, ["c-opened", "c-escalated"], label_every)
    return (
        f'{intro}<p class="note">Opened alerts by <code>detected_at</code> and escalations by '
        "when they were raised (<code>opened_at + age_seconds</code>), in buckets of "
        f'<span id="time-bucket-seconds" data-seconds="{width}">{bucket_text(width)}</span> '
        f"({esc(tz_label(view.tz))}).</p>"
        f"{legend([('opened', 'c-opened'), ('escalated', 'c-escalated')])}{chart}</section>"
    )


def anchor_ids(accounts: Sequence[str]) -> dict[str, str]:
    return {account: f"timeline-{index + 1}" for index, account in enumerate(accounts)}


def section_longest(view: View, anchors: dict[str, str]) -> str:
    """The longest drifts of each source (and the unposted payments), a table each."""
    by_group: dict[str, list[Drift]] = {}
    for drift in view.drifts:
        mine = by_group.get(drift.group)
        if mine is None:
            by_group[drift.group] = [drift]
        else:
            mine.append(drift)
    parts = [
        _longest_table(group, title, by_group.get(group, []), anchors)
        for group, title in GROUPS
        if group in by_group or group in SOURCES
    ]
    return (
        '<section id="longest-drifts"><h2>Longest drifts</h2><p class="note">From opened to '
        "resolved per alert id; a drift still open is measured to the last detected/resolved "
        "time in the data. "
        "Drift ¥ = displayed − expected when the breach fired. Each observation source has its "
        "own drifts: the app's (what users saw) and the cache's (what the cache held).</p>"
        f"{''.join(parts)}</section>"
    )


def _longest_row(rank: int, drift: Drift, anchors: dict[str, str]) -> str:
    duration = drift.duration_s
    account = f"<code>{esc(drift.account_id)}</code>"
    if drift.account_id in anchors:
        account = f'<a href="#{anchors[drift.account_id]}">{account}</a>'
    status = "open" if drift.resolution is None else f"resolved ({esc(drift.resolution)})"
    if drift.escalated:
        status += ", escalated"
    secs = "" if duration is None else f"{duration:.3f}"
    return (
        f'<tr data-alert-id="{esc(drift.alert_id)}" data-seconds="{secs}">'
        f'<td class="num">{rank}</td><td>{account}</td>'
        f"<td><code>{esc(drift.alert_id)}</code></td><td>{esc(drift.reason)}</td>"
        f"<td>{esc(drift.severity)}</td><td>{esc(drift.opened_at)}</td>"
        f'<td class="num">{"?" if duration is None else duration_text(duration)}</td>'
        f'<td class="num">{money_html(drift.drift)}</td><td>{status}</td></tr>'
    )


def _longest_table(
    group: str, title: str, drifts: Sequence[Drift], anchors: dict[str, str]
) -> str:
    # The first rows of the drifts sorted longest first (nsmallest sorts stably, as sorted).
    shown = heapq.nsmallest(DRIFT_ROWS_MAX, drifts, key=longest_key)
    rows = [_longest_row(rank, drift, anchors) for rank, drift in enumerate(shown, start=1)]
    capped = ""
    if len(drifts) > len(shown):
        capped = (
            f'<p class="note" id="drifts-capped-{group}">Showing the {len(shown)} longest of '
            f"{len(drifts)} drifts.</p>"
        )
    body = (
        "<table><thead><tr><th>#</th><th>account</th><th>alert id</th><th>reason</th>"
        "<th>severity</th>"
        '<th>opened at</th><th class="num">duration</th><th class="num">drift ¥</th><th>status</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">No drifts.</p>'
    )
    return (
        f'<div class="group" id="longest-{group}" data-drifts="{len(drifts)}">'
        f"<h3>{esc(title)}</h3>{capped}{body}</div>"
    )
