"""The self-contained HTML incident report of ``limitsync replay`` and ``limitsync report``.

One HTML document, standard library only: inline CSS and inline SVG, no JavaScript, no
external resource (a Content-Security-Policy forbids them), so it opens from disk anywhere.
Every value taken from the data is escaped. The same data gives the same bytes: nothing
about the time of generation is written. Money is in fen and shown as yuan with integer
arithmetic only. Key numbers carry stable ids and ``data-*`` attributes for tests and tools.
"""

from __future__ import annotations

import functools
import html
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from schemas.money import format_yuan

if TYPE_CHECKING:
    from limitsync.inquiry_report import InquirySummary

__all__ = ["ReportData", "TimelinePoint", "format_yuan", "nines", "render_report"]

TIMELINES_MAX = 50  # accounts with a timeline section (the ones with the longest drifts)
DRIFT_ROWS_MAX = 50  # rows of the longest-drifts table
TIMELINE_ROWS_MAX = 200  # rows of one account's event table (first and last halves)
TIME_BUCKETS_MAX = 48  # columns of the alerts-over-time chart
EXPLANATION_ROWS_MAX = 100  # rows of one list inside an explanation
EXPLANATION_DEPTH_MAX = 4
CHART_DOTS_MAX = 500  # observation dots drawn on one timeline chart
PARSED_TIMES_MAX = 65_536  # timestamps of alert records kept parsed while rendering

REASONS = (
    "REPAYMENT_NOT_POSTED",
    "SYNC_DELAY",
    "FREEZE_NOT_APPLIED",
    "CACHE_MISSING",
    "CACHE_DIVERGED",
)
# A mismatch is explained when its reason names a cause; CACHE_DIVERGED (the display shows a
# value the account never had) and any reason outside the contract are not explained.
EXPLAINED_REASONS = frozenset(REASONS) - {"CACHE_DIVERGED"}
ALERT_TYPES = ("mismatch.opened", "mismatch.escalated", "mismatch.resolved")
SEVERITIES = ("critical", "major")
# The observation sources (docs/contract.md, "Drift, SLA and alerts"), and what the report calls the
# drifts of each; clearing watches (REPAYMENT_NOT_POSTED) have no source.
SOURCES = ("app", "cache")
_GROUPS = (
    ("app", "What users saw (source app)"),
    ("cache", "What the cache held (source cache)"),
    ("payments", "Payments not posted (no source)"),
    ("other", "Drifts whose record names no source"),
)
DEAD_LETTER_REASONS = ("invalid", "conflict")
_TIME_BUCKET_WIDTHS_S = (
    1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800,
)  # fmt: skip
_MONEY_KEY_HINTS = (
    "available", "amount", "principal", "credit_line", "outstanding", "interest", "fee",
    "delta", "drift",
)  # fmt: skip


@dataclass
class TimelinePoint:
    """One processed record of an alerted account."""

    at: str  # occurred_at, RFC 3339
    event_id: str
    type: str  # event type
    expected: int  # expected available after the record (fen)
    displayed: int | None  # the app's displayed available after the record (None = none / null)
    note: str  # short human text, e.g. "repayment posted 500.00 principal"
    cached: int | None = None  # the cache's displayed available after the record
    source: str = ""  # of an observation: "app" or "cache"


@dataclass
class ReportData:
    """Everything the report shows; built by the replay (or report) command."""

    title: str
    generated_from: str  # input description (file path or kafka window)
    sla_seconds: int
    alerts: list[dict[str, Any]]  # contract alert records in raised order
    accounts: list[dict[str, Any]]  # accounts.jsonl records
    timelines: dict[str, list[TimelinePoint]]  # only alerted accounts
    # per source ("app", "cache"), per ledger change: seconds until displayed (inf = never)
    sync_latencies_s: dict[str, Sequence[float]]  # inf: never displayed
    dead_letters_by_reason: dict[str, int]
    events_total: int
    explanations: dict[str, dict[str, Any]] = field(default_factory=dict)  # account -> explain()
    focus_account: str | None = None  # narrow the report to one account's timeline
    # The records of limit.inquiries given to the replay (--inquiries); None: none given, and
    # the report has no inquiries section.
    inquiries: InquirySummary | None = None


# ---------------------------------------------------------------------------------------------
# Formatting


def nines(share: float) -> float:
    """How many nines a share has: 0.999 -> 3.0, 0.9995 -> 3.30..., 1.0 -> inf, 0.0 -> 0.0.

    Computed in decimal from the share's shortest repr, so 0.999 gives exactly 3.0.
    """
    if math.isnan(share) or share < 0.0 or share > 1.0:
        raise ValueError(f"share must be within [0, 1], got {share!r}")
    if share == 1.0:
        return math.inf
    missing = Decimal(1) - Decimal(repr(float(share)))
    return float(-missing.log10()) + 0.0  # + 0.0 turns -0.0 into 0.0


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _money_html(value: object) -> str:
    """Escaped HTML for a money value that may be missing or malformed."""
    fen = _as_int(value)
    if fen is not None:
        return format_yuan(fen)
    if value is None:
        return '<span class="muted">—</span>'
    return _esc(value)


def _nines_text(value: float) -> str:
    if math.isinf(value):
        return "∞"
    return f"{math.floor(value * 10 + 1e-9) / 10:.1f}"  # floored: never overstate


def _nines_attr(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.6f}"


def _pct(share: float) -> str:
    """A percentage precise enough not to read as 100% (or 0%) when it is not."""
    for decimals in range(2, 10):
        text = f"{share * 100:.{decimals}f}"
        rounds_to_edge = float(text) in (100.0, 0.0)
        if not rounds_to_edge or share in (0.0, 1.0):
            return text + "%"
    return f"{share * 100:.10f}%"


def _bucket_text(seconds: int) -> str:
    for unit_s, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds % unit_s == 0:
            return f"{seconds // unit_s} {unit}"
    return f"{seconds} s"


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds != int(seconds) else f"{int(seconds)} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def _parse_time(value: object) -> datetime | None:
    """RFC 3339 to an aware datetime; None when absent or unparsable (naive = UTC)."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_time_text(value)


# A drift's records repeat its times, and the sections read each record's times again.
@functools.lru_cache(maxsize=PARSED_TIMES_MAX)
def _parse_time_text(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _tz_label(tz: tzinfo) -> str:
    offset = datetime(2000, 1, 1, tzinfo=tz).utcoffset() or timedelta(0)
    return timezone(offset).tzname(None)


def _fmt_clock(moment: datetime, tz: tzinfo, with_date: bool) -> str:
    local = moment.astimezone(tz)
    return local.strftime("%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


# ---------------------------------------------------------------------------------------------
# Analysis (pure)


@dataclass(slots=True)
class _Drift:
    alert_id: str
    account_id: str
    group: str  # "app", "cache", "payments" (REPAYMENT_NOT_POSTED) or "other" (no source)
    reason: str
    severity: str
    opened_at: str  # as in the data
    start: datetime | None
    end: datetime | None  # resolved_at, or the end of the data while still open
    resolution: str | None  # None while open
    escalated: bool
    drift: object

    @property
    def duration_s(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, (self.end - self.start).total_seconds())


def _data_end(alerts: Iterable[dict[str, Any]]) -> datetime | None:
    """The last detected/resolved time in the alert records."""
    times = [
        moment
        for record in alerts
        for key in ("detected_at", "resolved_at")
        if (moment := _parse_time(record.get(key))) is not None
    ]
    return max(times, default=None)


def _group_by_alert_id(alerts: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for index, record in enumerate(alerts):
        alert_id = record.get("alert_id")
        key = str(alert_id) if alert_id not in (None, "") else f"(no alert_id #{index})"
        groups.setdefault(key, []).append(record)
    return groups


def _collect_drifts(alerts: Sequence[dict[str, Any]], data_end: datetime | None) -> list[_Drift]:
    """One drift per alert_id, in the order first raised."""
    drifts = []
    for alert_id, records in _group_by_alert_id(alerts).items():
        types = [record.get("type") for record in records]
        first = (
            records[types.index("mismatch.opened")] if "mismatch.opened" in types else records[0]
        )
        resolved = (
            records[types.index("mismatch.resolved")] if "mismatch.resolved" in types else None
        )
        opened_text = next((r["opened_at"] for r in records if r.get("opened_at")), "")
        if resolved is not None:
            end = _parse_time(resolved.get("resolved_at")) or _parse_time(
                resolved.get("detected_at")
            )
        else:
            end = data_end
        reason = str(first.get("reason") or "(none)")
        source = first.get("source")
        group = (
            str(source) if source in SOURCES
            else "payments" if reason == "REPAYMENT_NOT_POSTED"
            else "other"
        )  # fmt: skip
        drifts.append(
            _Drift(
                alert_id=alert_id,
                account_id=str(first.get("account_id", "")),
                group=group,
                reason=reason,
                severity=str(first.get("severity") or "(none)"),
                opened_at=str(opened_text),
                start=_parse_time(opened_text),
                end=end,
                resolution=None if resolved is None else str(resolved.get("resolution") or "?"),
                escalated="mismatch.escalated" in types,
                drift=first.get("drift"),
            )
        )
    return drifts


def _longest_first(drifts: Iterable[_Drift]) -> list[_Drift]:
    def key(drift: _Drift) -> tuple[float, str, str]:
        duration = drift.duration_s
        return (-duration if duration is not None else math.inf, drift.account_id, drift.alert_id)

    return sorted(drifts, key=key)


def _accounts_by_drift(drifts: Sequence[_Drift], timelines: dict[str, Any]) -> list[str]:
    """Alerted accounts, the one with the longest drift first."""
    longest: dict[str, float] = {}
    for drift in drifts:
        duration = drift.duration_s if drift.duration_s is not None else -1.0
        longest[drift.account_id] = max(longest.get(drift.account_id, -1.0), duration)
    for account_id in timelines:
        longest.setdefault(account_id, -1.0)
    return sorted(longest, key=lambda account: (-longest[account], account))


# Alert fields no section reads: a reader that holds a day's alerts for the report may drop
# them (the evidence ids are most of a record). A section that starts reading one must take it
# out of here.
ALERT_FIELDS_UNREAD = ("evidence_event_ids", "payment_id", "sla_seconds")


def timeline_accounts(alerts: Sequence[dict[str, Any]]) -> list[str]:
    """The accounts whose timelines ``render_report`` shows for these alerts (no focus): the
    TIMELINES_MAX with the longest drifts. A report's data needs timelines for these only."""
    drifts = _collect_drifts(alerts, _data_end(alerts))
    return _accounts_by_drift(drifts, {})[:TIMELINES_MAX]


@dataclass(slots=True)
class _Latency:
    total: int
    buckets: list[tuple[str, str, int]]  # (key, label, count)
    within: list[tuple[str, str, int]]  # (key, label, count within)


def _latency_summary(latencies: Sequence[float], sla_seconds: int) -> _Latency:
    counts = Counter[str]()
    within_1s = within_10s = within_sla = 0  # counted here: a day has millions of changes
    for value in latencies:
        if math.isnan(value) or math.isinf(value):
            counts["never"] += 1
            continue
        within_1s += value <= 1
        within_10s += value <= 10
        within_sla += value <= sla_seconds
        if value > sla_seconds:
            counts["over_sla"] += 1
        elif value <= 1:
            counts["le_1s"] += 1
        elif value <= 10:
            counts["le_10s"] += 1
        else:
            counts["le_sla"] += 1
    mid_label = (
        f"10–{sla_seconds} s" if sla_seconds > 10 else f"(empty: SLA {sla_seconds} s ≤ 10 s)"
    )
    buckets = [
        ("le_1s", "≤ 1 s", counts["le_1s"]),
        ("le_10s", f"1–{min(10, sla_seconds)} s", counts["le_10s"]),
        ("le_sla", mid_label, counts["le_sla"]),
        ("over_sla", f"> SLA ({sla_seconds} s)", counts["over_sla"]),
        ("never", "never", counts["never"]),
    ]
    within = [
        ("1s", "1 s", within_1s),
        ("10s", "10 s", within_10s),
        ("sla", f"the SLA ({sla_seconds} s)", within_sla),
    ]
    return _Latency(total=len(latencies), buckets=buckets, within=within)


def _ordered_keys(known: Sequence[str], seen: Iterable[str]) -> list[str]:
    """The known keys in their order, then any other key seen, sorted."""
    extra = sorted(set(seen) - set(known))
    return [*known, *extra]


# ---------------------------------------------------------------------------------------------
# SVG charts


def _f(value: float) -> str:
    return f"{value:.1f}"


def _nice_step(top: int, ticks: int = 4) -> int:
    """The smallest 1/2/5 x 10^k step such that ``ticks`` steps reach ``top`` (integers only)."""
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            if step * ticks >= top:
                return step
        magnitude *= 10


def _legend(series: Iterable[tuple[str, str]]) -> str:
    items = "".join(
        f'<span class="key"><span class="swatch {css}"></span>{_esc(name)}</span>'
        for name, css in series
    )
    return f'<p class="legend">{items}</p>'


def _svg_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_esc(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_esc(label)}</title>"
    )


def _svg_hbars(
    label: str, rows: Sequence[tuple[str, Sequence[int]]], classes: Sequence[str]
) -> str:
    """Stacked horizontal bars, one row per label, one segment per series."""
    width, left, right, row_h = 720, 190, 60, 26
    height = row_h * len(rows) + 10
    top = max((sum(values) for _, values in rows), default=0) or 1
    scale = (width - left - right) / top
    parts = [_svg_open(width, height, label)]
    for index, (name, values) in enumerate(rows):
        y = 5 + index * row_h
        parts.append(
            f'<text class="axis" x="{left - 8}" y="{y + 17}" text-anchor="end">{_esc(name)}</text>'
        )
        x = float(left)
        for value, css in zip(values, classes, strict=True):
            if value:
                parts.append(
                    f'<rect class="{css}" x="{_f(x)}" y="{y + 3}" width="{_f(value * scale)}" '
                    f'height="{row_h - 8}"><title>{_esc(name)}: {value}</title></rect>'
                )
                x += value * scale
        parts.append(f'<text class="value" x="{_f(x + 6)}" y="{y + 17}">{sum(values)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_columns(
    label: str,
    columns: Sequence[tuple[str, str, Sequence[int]]],  # (axis label, tooltip, values per series)
    classes: Sequence[str],
    label_every: int = 1,
) -> str:
    """Stacked vertical columns with an integer count axis."""
    width, height, left, right, top_m, bottom = 720, 240, 48, 12, 12, 44
    plot_w, plot_h = width - left - right, height - top_m - bottom
    peak = max((sum(values) for _, _, values in columns), default=0)
    step = _nice_step(max(peak, 1))
    y_top = step * max(1, math.ceil(peak / step))
    slot = plot_w / max(len(columns), 1)
    bar_w = min(slot * 0.8, 90.0)
    parts = [_svg_open(width, height, label)]
    for tick in range(0, y_top + 1, step):
        y = top_m + plot_h - tick / y_top * plot_h
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{_f(y)}" y2="{_f(y)}"/>'
        )
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{_f(y + 4)}" text-anchor="end">{tick}</text>'
        )
    for index, (axis_label, tip, values) in enumerate(columns):
        x, base = left + index * slot, float(top_m + plot_h)
        for value, css in zip(values, classes, strict=True):
            if value:
                h = max(value / y_top * plot_h, 2.0)  # a non-zero count stays visible
                parts.append(
                    f'<rect class="{css}" x="{_f(x + (slot - bar_w) / 2)}" y="{_f(base - h)}" '
                    f'width="{_f(bar_w)}" height="{_f(h)}"><title>{_esc(tip)}</title></rect>'
                )
                base -= h
        if sum(values) and len(columns) <= 12:
            parts.append(
                f'<text class="value" x="{_f(x + slot / 2)}" y="{_f(base - 4)}" '
                f'text-anchor="middle">{sum(values)}</text>'
            )
        if index % label_every == 0:
            parts.append(
                f'<text class="axis" x="{_f(x + slot / 2)}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{_esc(axis_label)}</text>'
            )
    parts.append(f'<line class="axisline" x1="{left}" x2="{width - right}" '
                 f'y1="{top_m + plot_h}" y2="{top_m + plot_h}"/></svg>')  # fmt: skip
    return "".join(parts)


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


def _step_path(frame: _Frame, steps: Sequence[tuple[datetime, int | None]], end: datetime) -> str:
    """A step line through (time, value) pairs; None lifts the pen (no value shown)."""
    commands: list[str] = []
    previous: int | None = None
    for moment, value in steps:
        x = frame.x(moment)
        if previous is not None:
            commands.append(f"H{_f(x)}")
        if value is None:
            previous = None
            continue
        if previous is None:
            commands.append(f"M{_f(x)},{_f(frame.y(value))}")
        elif value != previous:
            commands.append(f"V{_f(frame.y(value))}")
        previous = value
    if previous is not None:
        commands.append(f"H{_f(frame.x(end))}")
    return "".join(commands)


def _alert_time(record: dict[str, Any]) -> datetime | None:
    """When the record was raised: ``detected_at`` for a breach, ``resolved_at`` for a
    resolution, and ``opened_at + age_seconds`` for an escalation (its ``detected_at`` stays
    the breach's detection time)."""
    detected = _parse_time(record.get("detected_at"))
    kind = record.get("type")
    if kind == "mismatch.resolved":
        return _parse_time(record.get("resolved_at")) or detected
    if kind == "mismatch.escalated":
        opened, age = _parse_time(record.get("opened_at")), record.get("age_seconds")
        if opened is not None and isinstance(age, int | float) and not isinstance(age, bool):
            raised = opened + timedelta(seconds=float(age))
            return raised if detected is None else max(raised, detected)
    return detected


def _alert_tip(record: dict[str, Any]) -> str:
    source = f"{record['source']} " if record.get("source") else ""
    return (
        f"{record.get('type', '?')} {source}{record.get('reason', '')} "
        f"({record.get('severity', '')}) "
        f"alert {record.get('alert_id', '')} at {_alert_time_text(record)}: "
        f"expected {_plain_money(record.get('expected_available'))}, "
        f"displayed {_plain_money(record.get('displayed_available'))}"
    )


def _alert_time_text(record: dict[str, Any]) -> str:
    moment = _alert_time(record)
    return "?" if moment is None else moment.isoformat()


def _plain_money(value: object) -> str:
    fen = _as_int(value)
    return "—" if fen is None else "¥" + format_yuan(fen)


def _timeline_frame(
    points: Sequence[tuple[datetime, TimelinePoint]], extra_times: Sequence[datetime]
) -> _Frame:
    times = [moment for moment, _ in points] + list(extra_times)
    t0, t1 = min(times), max(times)
    values = [p.expected for _, p in points] + [p.displayed or 0 for _, p in points]
    values += [p.cached or 0 for _, p in points]
    peak = max([_as_int(v) or 0 for v in values] + [1])
    peak += peak // 10  # headroom above the highest line
    step = _nice_step(peak, ticks=5)
    return _Frame(
        t0=t0,
        span_s=max((t1 - t0).total_seconds(), 1.0),
        y_top=step * max(1, math.ceil(peak / step)),
    )


def _timeline_axes(frame: _Frame, tz: tzinfo) -> list[str]:
    parts = []
    step = _nice_step(frame.y_top, ticks=5)
    right = frame.left + frame.width
    for tick in range(0, frame.y_top + 1, step):
        y = _f(frame.y(tick))
        parts.append(
            f'<line class="grid" x1="{_f(frame.left)}" x2="{_f(right)}" y1="{y}" y2="{y}"/>'
        )
        parts.append(
            f'<text class="axis" x="{_f(frame.left - 6)}" y="{_f(frame.y(tick) + 4)}" '
            f'text-anchor="end">{format_yuan(tick)}</text>'
        )
    with_date = frame.span_s >= 86400
    bottom = frame.top + frame.height
    for index in range(5):
        moment = frame.t0 + timedelta(seconds=frame.span_s * index / 4)
        anchor = ("start", "middle", "middle", "middle", "end")[index]
        parts.append(
            f'<text class="axis" x="{_f(frame.x(moment))}" y="{_f(bottom + 18)}" '
            f'text-anchor="{anchor}">{_fmt_clock(moment, tz, with_date)}</text>'
        )
    parts.append(f'<line class="axisline" x1="{_f(frame.left)}" x2="{_f(right)}" '
                 f'y1="{_f(bottom)}" y2="{_f(bottom)}"/>')  # fmt: skip
    return parts


def _timeline_marks(
    frame: _Frame, records: Sequence[dict[str, Any]], drifts: Sequence[_Drift]
) -> list[str]:
    parts = []
    end = frame.t0 + timedelta(seconds=frame.span_s)
    for drift in drifts:
        if drift.start is None:
            continue
        x0, x1 = frame.x(drift.start), frame.x(drift.end or end)
        tip = f"drift {drift.alert_id} {drift.reason} from {drift.opened_at}"
        parts.append(
            f'<rect class="drift-band" x="{_f(x0)}" y="{_f(frame.top)}" '
            f'width="{_f(max(x1 - x0, 1.0))}" height="{_f(frame.height)}">'
            f"<title>{_esc(tip)}</title></rect>"
        )
    bottom = frame.top + frame.height
    for record in records:
        moment = _alert_time(record)
        if moment is None:
            continue
        x = frame.x(moment)
        css = "m-" + str(record.get("type", "")).removeprefix("mismatch.")
        parts.append(
            f'<g class="marker {_esc(css)}"><title>{_esc(_alert_tip(record))}</title>'
            f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(frame.top)}" y2="{_f(bottom)}"/>'
            f'<path d="M{_f(x - 5)},{_f(frame.top - 8)}h10l-5,8z"/></g>'
        )
    return parts


def _svg_timeline(
    points: Sequence[TimelinePoint],
    records: Sequence[dict[str, Any]],
    drifts: Sequence[_Drift],
    tz: tzinfo,
    label: str,
) -> str:
    timed = [(moment, p) for p in points if (moment := _parse_time(p.at)) is not None]
    if not timed:
        return '<p class="muted">No timestamped records to chart.</p>'
    extra = [moment for record in records if (moment := _alert_time(record)) is not None]
    frame = _timeline_frame(timed, extra)
    end = frame.t0 + timedelta(seconds=frame.span_s)
    width, height = int(frame.left + frame.width + 16), int(frame.top + frame.height + 28)
    parts = [_svg_open(width, height, label), *_timeline_marks(frame, records, drifts)]
    parts += _timeline_axes(frame, tz)
    expected = [(moment, _as_int(p.expected) or 0) for moment, p in timed]
    displayed = [(moment, _as_int(p.displayed)) for moment, p in timed]
    cached = [(moment, _as_int(p.cached)) for moment, p in timed]
    parts.append(f'<path class="line-expected" d="{_step_path(frame, expected, end)}"/>')
    parts.append(f'<path class="line-cached" d="{_step_path(frame, cached, end)}"/>')
    parts.append(f'<path class="line-displayed" d="{_step_path(frame, displayed, end)}"/>')
    observed = []
    for moment, point in timed:
        if point.type != "limit.displayed":
            continue
        value = _as_int(point.cached if point.source == "cache" else point.displayed)
        if value is not None:
            observed.append((moment, point, value))
    for moment, point, value in observed[:CHART_DOTS_MAX]:
        source = "cache" if point.source == "cache" else "app"
        css = "dot-cached" if source == "cache" else "dot-displayed"
        parts.append(
            f'<circle class="{css}" cx="{_f(frame.x(moment))}" '
            f'cy="{_f(frame.y(value))}" r="2.5">'
            f"<title>{_esc(point.at)} {source} showed {_plain_money(value)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# HTML sections


_CSS = """
:root{color-scheme:light}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Liberation Sans",
sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px 48px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:8px 0 4px}
h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}
code{font:12.5px/1.3 ui-monospace,"DejaVu Sans Mono",monospace;background:#f3f5f8;padding:0 3px;
border-radius:3px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid #e6e9ef;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{color:#4b5566;font-weight:600}.nowrap,td.num,th.num{white-space:nowrap}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drift td{background:#fff4f2}tr.omitted td{color:#6b7385;font-style:italic}
code{overflow-wrap:anywhere}.muted{color:#6b7385}.big-inline{font-weight:700;font-size:15px}.note{color:#6b7385;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid #dde2ea;border-radius:6px;padding:8px 12px;min-width:140px}
.card .big{font-size:22px;font-weight:600;display:block;font-variant-numeric:tabular-nums}
.card ul{margin:2px 0 0;padding-left:16px;font-size:12.5px}
.banner{background:#fff8e1;border:1px solid #f0d98c;border-radius:6px;padding:6px 10px}
nav a{margin-right:12px}
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0}
svg text{font:11px system-ui,"Liberation Sans",sans-serif;fill:#39414f}
svg text.value{font-weight:600}
.grid{stroke:#e8ebf0;stroke-width:1}.axisline{stroke:#8a93a3;stroke-width:1}
.legend{font-size:12.5px;margin:2px 0}.key{margin-right:14px}
.swatch{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px;border-radius:2px}
.c-critical{fill:#c0392b;background:#c0392b}.c-major{fill:#e69f00;background:#e69f00}
.c-other{fill:#8a93a3;background:#8a93a3}
.c-opened{fill:#c0392b;background:#c0392b}.c-escalated{fill:#7b1e12;background:#7b1e12}
.c-latency{fill:#3b6ea8;background:#3b6ea8}.c-late{fill:#c0392b;background:#c0392b}
.c-expected{background:#1f5fa8}.c-displayed{background:#e66100}
.c-band{background:#fbe3df}
.line-expected{fill:none;stroke:#1f5fa8;stroke-width:2}
.line-displayed{fill:none;stroke:#e66100;stroke-width:2;stroke-dasharray:6 3}
.line-cached{fill:none;stroke:#2e8540;stroke-width:2;stroke-dasharray:2 3}
.c-cached{background:#2e8540}
.dot-displayed{fill:#e66100}.dot-cached{fill:#2e8540}.drift-band{fill:#fbe3df}
.marker line{stroke-width:1.2;stroke-dasharray:2 2}
.m-opened line{stroke:#c0392b}.m-opened path{fill:#c0392b}
.m-escalated line{stroke:#7b1e12}.m-escalated path{fill:#7b1e12}
.m-resolved line{stroke:#2e8540}.m-resolved path{fill:#2e8540}
.c-m-resolved{background:#2e8540}
details{margin:6px 0}summary{cursor:pointer;color:#1f5fa8}
dl{margin:4px 0;display:grid;grid-template-columns:max-content auto;gap:2px 12px}
dt{color:#4b5566}dd{margin:0}
@media print{nav{display:none}section.timeline{break-inside:avoid}}
"""


@dataclass(slots=True)
class _View:
    """The data the sections draw from, with the focus applied."""

    data: ReportData
    alerts: list[dict[str, Any]]  # filtered by focus
    drifts: list[_Drift]  # filtered by focus
    all_drifts: list[_Drift]  # the whole input, for the header
    tz: tzinfo


def _build_view(data: ReportData) -> _View:
    data_end = _data_end(data.alerts)
    all_drifts = _collect_drifts(data.alerts, data_end)
    alerts, drifts = data.alerts, all_drifts
    if data.focus_account is not None:
        alerts = [a for a in alerts if str(a.get("account_id", "")) == data.focus_account]
        drifts = [d for d in drifts if d.account_id == data.focus_account]
    return _View(
        data=data, alerts=alerts, drifts=drifts, all_drifts=all_drifts, tz=_display_tz(data)
    )


def _display_tz(data: ReportData) -> tzinfo:
    """The offset of the first timestamp in the data (times read as the source wrote them)."""
    candidates: list[object] = [
        record.get(key) for record in data.alerts for key in ("opened_at", "detected_at")
    ]
    candidates += [point.at for points in data.timelines.values() for point in points]
    for value in candidates:
        moment = _parse_time(value)
        if moment is not None and moment.tzinfo is not None:
            return moment.tzinfo
    return UTC


def _card(title: str, big_id: str, big: str, body: str = "", attrs: str = "") -> str:
    return (
        f'<div class="card"><span class="muted">{_esc(title)}</span>'
        f'<span class="big" id="{big_id}"{attrs}>{big}</span>{body}</div>'
    )


def _count_items(prefix: str, attr: str, counts: dict[str, int], known: Sequence[str]) -> str:
    items = []
    for key in _ordered_keys(known, counts):
        item_id = f' id="{prefix}-{_esc(key)}"' if key in known else ""
        items.append(
            f'<li data-{attr}="{_esc(key)}">{_esc(key)}: '
            f'<span class="n"{item_id}>{int(counts.get(key, 0))}</span></li>'
        )
    return "<ul>" + "".join(items) + "</ul>"


def _section_header(view: _View) -> str:
    data = view.data
    by_type = Counter(str(record.get("type", "?")) for record in data.alerts)
    type_counts = {key.removeprefix("mismatch."): value for key, value in by_type.items()}
    dead_letters = data.dead_letters_by_reason
    dead_total = sum(int(v) for v in dead_letters.values())
    alerted = {str(record.get("account_id", "")) for record in data.alerts}
    open_drifts = sum(1 for drift in view.all_drifts if drift.resolution is None)
    unexplained = _unexplained_counts(view.all_drifts)
    cards = [
        _card("events processed", "events-total", str(int(data.events_total))),
        _card(
            "alert records", "alerts-total", str(len(data.alerts)),
            _count_items("alerts", "alert-type", type_counts, ["opened", "escalated", "resolved"]),
        ),
        _card(
            "drifts (alert ids)", "mismatches-total", str(len(_group_by_alert_id(data.alerts))),
            f'<ul><li>still open: <span id="drifts-open">{open_drifts}</span></li>'
            f"{_group_items(view.all_drifts)}</ul>",
        ),
        _card(
            "dead letters", "dead-letters-total", str(dead_total),
            _count_items("dead-letters", "reason", dead_letters, DEAD_LETTER_REASONS),
        ),
        _card(
            "accounts", "accounts-total", str(len(data.accounts)),
            f'<ul><li>alerted: <span id="accounts-alerted">{len(alerted)}</span></li></ul>',
        ),
        _card("unexplained mismatches", "unexplained-headline", _share_text(*unexplained)),
    ]  # fmt: skip
    focus = ""
    if data.focus_account is not None:
        focus = (
            f'<p class="banner" id="focus" data-account="{_esc(data.focus_account)}">'
            f"Focused on account <code>{_esc(data.focus_account)}</code>: the totals above "
            "cover the whole input; the sections on alerts, drifts and timelines below "
            "cover this account only.</p>"
        )
    return (
        f"<header><h1>{_esc(data.title)}</h1>"
        f'<p class="muted">Input: <code id="generated-from">{_esc(data.generated_from)}</code> · '
        f'drift SLA <span id="sla-seconds">{int(data.sla_seconds)}</span> s · '
        f"times in {_esc(_tz_label(view.tz))} · money in yuan (¥)</p>"
        f'<div class="cards">{"".join(cards)}</div>{focus}</header>'
    )


def _group_items(drifts: Sequence[_Drift]) -> str:
    """Drifts per observation source (and unposted payments), as list items."""
    counts = Counter(d.group for d in drifts)
    return "".join(
        f'<li>{_esc(group)}: <span id="drifts-total-{group}">{counts[group]}</span></li>'
        for group, _ in _GROUPS
        if counts[group] or group in SOURCES
    )


def _source_table(drifts: Sequence[_Drift]) -> str:
    """Per source: drifts, critical ones, escalated ones and those still open."""
    rows = []
    for group, title in _GROUPS:
        mine = [d for d in drifts if d.group == group]
        if not mine and group not in SOURCES:
            continue
        cells = (
            ("drifts", len(mine)),
            ("critical", sum(1 for d in mine if d.severity == "critical")),
            ("escalated", sum(1 for d in mine if d.escalated)),
            ("open", sum(1 for d in mine if d.resolution is None)),
        )
        rows.append(
            f'<tr data-source="{group}"><td>{_esc(title)}</td>'
            + "".join(
                f'<td class="num" id="source-{group}-{key}">{n}</td>' for key, n in cells
            )
            + "</tr>"
        )
    return (
        '<table id="by-source"><thead><tr><th>source</th><th class="num">drifts</th>'
        '<th class="num">critical</th><th class="num">escalated</th><th class="num">still open</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _share_text(part: int, whole: int) -> str:
    return "n/a" if whole == 0 else _pct(part / whole)


def _section_reasons(view: _View) -> str:
    drifts = view.drifts
    reasons = _ordered_keys(REASONS, (d.reason for d in drifts))
    severities = _ordered_keys(SEVERITIES, (d.severity for d in drifts))
    table = Counter((d.reason, d.severity) for d in drifts)
    head = "".join(f'<th class="num">{_esc(s)}</th>' for s in severities)
    rows = []
    for reason in reasons:
        cells = "".join(
            f'<td class="num" data-severity="{_esc(s)}">{table[(reason, s)]}</td>'
            for s in severities
        )
        total = sum(table[(reason, s)] for s in severities)
        rows.append(
            f'<tr data-reason="{_esc(reason)}"><td><code>{_esc(reason)}</code></td>{cells}'
            f'<td class="num total">{total}</td></tr>'
        )
    sev_totals = Counter(d.severity for d in drifts)
    foot = "".join(
        f'<td class="num" id="severity-{_esc(s)}">{sev_totals[s]}</td>' if s in SEVERITIES
        else f'<td class="num" data-severity="{_esc(s)}">{sev_totals[s]}</td>'
        for s in severities
    )  # fmt: skip
    classes = [f"c-{s}" if s in SEVERITIES else "c-other" for s in severities]
    chart_rows = [(r, [table[(r, s)] for s in severities]) for r in reasons]
    chart = _svg_hbars("Drifts by reason and severity", chart_rows, classes) if drifts else ""
    return (
        '<section id="by-reason"><h2>Alerts by source, reason and severity</h2>'
        '<p class="note">Each drift (alert id) counted once, with the reason and severity fixed '
        "when its breach fired. Critical: the display showed more than the account may borrow. "
        "The app and the cache are observed apart, each with its own drifts.</p>"
        f"{_source_table(drifts)}"
        f'<table><thead><tr><th>reason</th>{head}<th class="num">total</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody><tfoot><tr><th>all reasons</th>{foot}"
        f'<td class="num" id="severity-total">{len(drifts)}</td></tr></tfoot></table>'
        f"{_legend((s, c) for s, c in zip(severities, classes, strict=True)) if drifts else ''}"
        f"{chart}</section>"
    )


def _time_bucket_width(span_s: float) -> int:
    for width in _TIME_BUCKET_WIDTHS_S:
        if span_s / width < TIME_BUCKETS_MAX:
            return width
    return 86400 * math.ceil(span_s / 86400 / (TIME_BUCKETS_MAX - 1))


def _section_over_time(view: _View) -> str:
    kinds = ("mismatch.opened", "mismatch.escalated")
    timed = [
        (moment, str(record.get("type")))
        for record in view.alerts
        if record.get("type") in kinds and (moment := _alert_time(record))
    ]
    intro = '<section id="over-time"><h2>Alerts over time</h2>'
    if not timed:
        return intro + '<p class="muted">No opened or escalated alerts.</p></section>'
    offset = (timed[0][0].astimezone(view.tz).utcoffset() or timedelta(0)).total_seconds()
    local = [(moment.timestamp() + offset, kind) for moment, kind in timed]
    first, last = min(t for t, _ in local), max(t for t, _ in local)
    width = _time_bucket_width(last - first)
    start = math.floor(first / width) * width
    count = int((last - start) // width) + 1
    counts = Counter((int((t - start) // width), kind) for t, kind in local)
    with_date = width >= 86400 or (last - first) >= 86400
    columns = []
    for index in range(count):
        moment = datetime.fromtimestamp(start + index * width - offset, UTC)
        label = _fmt_clock(moment, view.tz, with_date)
        values = [counts[(index, kind)] for kind in kinds]
        tip = f"{label} (+{_bucket_text(width)}): {values[0]} opened, {values[1]} escalated"
        columns.append((label, tip, values))
    label_every = max(1, math.ceil(count / 8))
    chart = _svg_columns("Alerts over time", columns, ["c-opened", "c-escalated"], label_every)
    return (
        f'{intro}<p class="note">Opened alerts by <code>detected_at</code> and escalations by '
        "when they were raised (<code>opened_at + age_seconds</code>), in buckets of "
        f'<span id="time-bucket-seconds" data-seconds="{width}">{_bucket_text(width)}</span> '
        f"({_esc(_tz_label(view.tz))}).</p>"
        f"{_legend([('opened', 'c-opened'), ('escalated', 'c-escalated')])}{chart}</section>"
    )


def _anchor_ids(accounts: Sequence[str]) -> dict[str, str]:
    return {account: f"timeline-{index + 1}" for index, account in enumerate(accounts)}


def _section_longest(view: _View, anchors: dict[str, str]) -> str:
    """The longest drifts of each source (and the unposted payments), a table each."""
    parts = []
    for group, title in _GROUPS:
        drifts = [d for d in view.drifts if d.group == group]
        if drifts or group in SOURCES:
            parts.append(_longest_table(group, title, drifts, anchors))
    return (
        '<section id="longest-drifts"><h2>Longest drifts</h2><p class="note">From opened to '
        "resolved per alert id; a drift still open is measured to the last detected/resolved "
        "time in the data. "
        "Drift ¥ = displayed − expected when the breach fired. Each observation source has its "
        "own drifts: the app's (what users saw) and the cache's (what the cache held).</p>"
        f"{''.join(parts)}</section>"
    )


def _longest_table(
    group: str, title: str, drifts: Sequence[_Drift], anchors: dict[str, str]
) -> str:
    ranked = _longest_first(drifts)
    shown = ranked[:DRIFT_ROWS_MAX]
    rows = []
    for rank, drift in enumerate(shown, start=1):
        duration = drift.duration_s
        account = f"<code>{_esc(drift.account_id)}</code>"
        if drift.account_id in anchors:
            account = f'<a href="#{anchors[drift.account_id]}">{account}</a>'
        status = "open" if drift.resolution is None else f"resolved ({_esc(drift.resolution)})"
        if drift.escalated:
            status += ", escalated"
        secs = "" if duration is None else f"{duration:.3f}"
        rows.append(
            f'<tr data-alert-id="{_esc(drift.alert_id)}" data-seconds="{secs}">'
            f'<td class="num">{rank}</td><td>{account}</td>'
            f"<td><code>{_esc(drift.alert_id)}</code></td><td>{_esc(drift.reason)}</td>"
            f"<td>{_esc(drift.severity)}</td><td>{_esc(drift.opened_at)}</td>"
            f'<td class="num">{"?" if duration is None else _duration_text(duration)}</td>'
            f'<td class="num">{_money_html(drift.drift)}</td><td>{status}</td></tr>'
        )
    capped = ""
    if len(ranked) > len(shown):
        capped = (
            f'<p class="note" id="drifts-capped-{group}">Showing the {len(shown)} longest of '
            f"{len(ranked)} drifts.</p>"
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
        f'<div class="group" id="longest-{group}" data-drifts="{len(ranked)}">'
        f"<h3>{_esc(title)}</h3>{capped}{body}</div>"
    )


def _section_latency(view: _View) -> str:
    data = view.data
    parts = [
        _latency_part(source, data.sync_latencies_s.get(source, []), data.sla_seconds)
        for source in SOURCES
    ]
    return (
        '<section id="consistency"><h2>Consistency: time until the display showed a change</h2>'
        '<p class="note">Per ledger change and per observation source, how long until that '
        "source showed it, as measured from outside (Polaris-style): the app (what users saw) "
        "and the cache (what the cache held). Bucket bounds are inclusive at the top; over the "
        f"SLA means strictly greater.</p>{''.join(parts)}</section>"
    )


def _latency_part(source: str, latencies: Sequence[float], sla_seconds: int) -> str:
    summary = _latency_summary(latencies, sla_seconds)
    total = summary.total
    late = {"over_sla", "never"}
    columns = [
        (
            label,
            f"{label}: {count} of {total}",
            [0 if key in late else count, count if key in late else 0],
        )
        for key, label, count in summary.buckets
    ]
    rows = "".join(
        f'<tr data-bucket="{key}"><td>{_esc(label)}</td>'
        f'<td class="num" id="latency-{source}-{key}">{count}</td>'
        f'<td class="num">{_share_text(count, total)}</td></tr>'
        for key, label, count in summary.buckets
    )
    slo = []
    for key, label, count in summary.within:
        share = count / total if total else None
        value = nines(share) if share is not None else None
        nines_text = "n/a" if value is None else _nines_text(value)
        attrs = (
            f' data-share="{"" if share is None else repr(share)}"'
            f' data-nines="{"" if value is None else _nines_attr(value)}"'
            f' data-count="{count}" data-total="{total}"'
        )
        slo.append(
            f'<li><span class="big-inline" id="slo-{source}-{key}"{attrs}>{nines_text}</span> '
            f"nines of changes displayed within {_esc(label)} "
            f'(<span id="share-{source}-{key}">{_share_text(count, total)}</span>, '
            f"{count} of {total})</li>"
        )
    chart = (
        _svg_columns(
            f"Time until the {source} showed a change", columns, ["c-latency", "c-late"]
        )
        if total
        else '<p class="muted">No ledger changes measured.</p>'
    )
    return (
        f'<div class="group" id="consistency-{source}"><h3>Source <code>{source}</code>: '
        f'<span id="changes-total-{source}">{total}</span> changes measured</h3>'
        f'<ul class="slo">{"".join(slo)}</ul>{chart}'
        '<table><thead><tr><th>time to display</th><th class="num">changes</th>'
        '<th class="num">share</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _unexplained_counts(drifts: Sequence[_Drift]) -> tuple[int, int]:
    return sum(1 for d in drifts if d.reason not in EXPLAINED_REASONS), len(drifts)


def _section_unexplained(view: _View, counts: tuple[int, int]) -> str:
    part, whole = counts
    share = "" if whole == 0 else repr(part / whole)
    return (
        '<section id="unexplained"><h2>Mismatches left unexplained</h2>'
        f'<p><span class="big-inline" id="unexplained-share" data-share="{share}" '
        f'data-unexplained="{part}" data-mismatches="{whole}">{_share_text(part, whole)}</span> '
        f"of drifts are unexplained ({part} of {whole}).</p>"
        '<p class="note">A drift is explained when its reason names the cause '
        "(repayment not posted, sync delay, freeze not applied, cache missing). "
        "<code>CACHE_DIVERGED</code> — the display showed a value the account never had — "
        "and any reason outside the contract count as "
        "unexplained: the goal is zero.</p></section>"
    )


def _ms_text(ms: float) -> str:
    return f"{ms:,.1f} ms" if ms < 1000 else f"{ms / 1000:,.2f} s"


def _section_inquiries(summary: InquirySummary, focus_account: str | None) -> str:
    from limitsync.inquiry_report import ACTIONS, ANSWER_TIMES_MAX, VERDICTS

    total = summary.inquiries
    faults = summary.by_verdict.get("fault", 0)
    verdicts = _ordered_keys(VERDICTS, summary.by_verdict)
    actions = _ordered_keys(ACTIONS, summary.by_action)
    times = summary.answer_times_ms()
    timed = len(summary.answer_ms)
    time_items = "".join(
        f'<li>{key}: <span id="answer-{key}" data-ms="{"" if times is None else times[key]!r}">'
        f'{"n/a" if times is None else _esc(_ms_text(times[key]))}</span></li>'
        for key in ("p50", "p99", "max")
    )
    cards = [
        _card(
            "inquiries", "inquiries-total", str(total),
            _count_items("inquiries", "verdict", dict(summary.by_verdict), VERDICTS),
        ),
        _card(
            "faults confirmed", "faults-confirmed", str(summary.faults_confirmed),
            f'<ul><li>of faults: <span id="faults-total">{faults}</span> '
            f"({_share_text(summary.faults_confirmed, faults)})</li></ul>"
            + _count_items("fault-actions", "action", dict(summary.by_action), ACTIONS),
            f' data-faults="{faults}"',
        ),
        _card(
            "time to answer", "answer-timed", str(timed), f"<ul>{time_items}</ul>",
            f' data-untimed="{summary.untimed}"',
        ),
    ]  # fmt: skip
    chart = (
        _svg_hbars(
            "Inquiries by verdict",
            [(v, [summary.by_verdict.get(v, 0)]) for v in verdicts],
            ["c-latency"],
        )
        if total
        else '<p class="muted">No inquiries in the records given.</p>'
    )
    notes = []
    if focus_account is not None:
        notes.append(f"Inquiries about account <code>{_esc(focus_account)}</code> only.")
    if summary.unreadable:
        notes.append(
            f'<span id="inquiries-unreadable">{summary.unreadable}</span> of '
            f"{summary.records} records were not inquiry records (not JSON, or no verdict) "
            "and are not counted."
        )
    if summary.untimed:
        notes.append(f"{summary.untimed} inquiries have no <code>answer_ms</code>: untimed.")
    if summary.times_dropped:
        notes.append(
            f"Times to answer are of the first {ANSWER_TIMES_MAX:,} timed inquiries; "
            f"{summary.times_dropped:,} later ones are counted but not timed."
        )
    action_rows = "".join(
        f'<tr data-action="{_esc(a)}"><td><code>{_esc(a)}</code></td>'
        f'<td class="num">{summary.by_action.get(a, 0)}</td></tr>'
        for a in actions
    )
    return (
        '<section id="inquiries"><h2>Limit inquiries</h2>'
        '<p class="note">What users asked about their limit (额度咨询), from the records of '
        f"<code>limit.inquiries</code> in <code>{_esc(summary.source)}</code>. A fault is "
        "confirmed when limitsync found the display wrong and acted: it rewrote the cache "
        "(<code>cache_rewritten</code>) or opened or joined an alert on the app "
        "(<code>alert_opened</code>); <code>none</code> is a change still on its way. "
        "Time to answer: from the request's arrival to its answer (<code>answer_ms</code>), "
        "nearest rank.</p>"
        f'<div class="cards">{"".join(cards)}</div>'
        + "".join(f'<p class="note">{n}</p>' for n in notes)
        + f"{chart}"
        + (
            '<table><thead><tr><th>action on a fault</th><th class="num">faults</th></tr>'
            f"</thead><tbody>{action_rows}</tbody></table>"
            if action_rows
            else ""
        )
        + "</section>"
    )


# --- timelines -------------------------------------------------------------------------------


def _timeline_table(points: Sequence[TimelinePoint]) -> str:
    half = TIMELINE_ROWS_MAX // 2
    shown: list[TimelinePoint | int] = list(points)
    if len(points) > TIMELINE_ROWS_MAX:
        shown = [*points[:half], len(points) - 2 * half, *points[-half:]]
    rows = []
    for item in shown:
        if isinstance(item, int):
            rows.append(f'<tr class="omitted"><td colspan="9">… {item} records omitted …</td></tr>')
            continue
        expected = _as_int(item.expected)
        app_drift = _drift_of(expected, _as_int(item.displayed))
        cache_drift = _drift_of(expected, _as_int(item.cached))
        css = ' class="drift"' if app_drift is not None or cache_drift is not None else ""
        kind = f"{item.type} ({item.source})" if item.source else item.type
        rows.append(
            f'<tr{css}><td class="nowrap">{_esc(item.at)}</td>'
            f"<td><code>{_esc(item.event_id)}</code></td>"
            f'<td class="nowrap">{_esc(kind)}</td>'
            f'<td class="num">{_money_html(item.expected)}</td>'
            f'<td class="num">{_money_html(item.displayed)}</td>'
            f'<td class="num">{"" if app_drift is None else _money_html(app_drift)}</td>'
            f'<td class="num">{_money_html(item.cached)}</td>'
            f'<td class="num">{"" if cache_drift is None else _money_html(cache_drift)}</td>'
            f"<td>{_esc(item.note)}</td></tr>"
        )
    return (
        '<table class="events"><thead><tr><th>occurred at</th><th>event id</th><th>type</th>'
        '<th class="num">expected ¥</th><th class="num">app ¥</th>'
        '<th class="num">app drift ¥</th><th class="num">cache ¥</th>'
        '<th class="num">cache drift ¥</th>'
        f"<th>note</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _drift_of(expected: int | None, shown: int | None) -> int | None:
    """shown - expected where both are known and differ; else None."""
    if expected is None or shown is None or shown == expected:
        return None
    return shown - expected


def _is_money_key(key: str) -> bool:
    return any(hint in key for hint in _MONEY_KEY_HINTS)


def _render_value(key: str, value: object, depth: int) -> str:
    """Generic, escaped rendering of an explain() value."""
    if depth > EXPLANATION_DEPTH_MAX:
        return _esc(value)
    if isinstance(value, dict):
        items = "".join(
            f"<dt>{_esc(k)}</dt><dd>{_render_value(str(k), v, depth + 1)}</dd>"
            for k, v in value.items()
        )
        return f"<dl>{items}</dl>"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if not value:
            return '<span class="muted">none</span>'
        if all(isinstance(item, dict) for item in value):
            return _render_records(value, depth)
        return (
            "<ul>"
            + "".join(f"<li>{_render_value(key, v, depth + 1)}</li>" for v in value)
            + "</ul>"
        )
    if _is_money_key(key) and _as_int(value) is not None:
        return _money_html(value)
    return _esc(value)


def _render_records(records: Sequence[dict[str, Any]], depth: int) -> str:
    columns: list[str] = []
    for record in records:
        columns += [str(k) for k in record if str(k) not in columns]
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    opening = {c: '<td class="nowrap">' if _keeps_on_one_line(c) else "<td>" for c in columns}
    rows = "".join(
        "<tr>"
        + "".join(f"{opening[c]}{_render_value(c, r.get(c), depth + 1)}</td>" for c in columns)
        + "</tr>"
        for r in records[:EXPLANATION_ROWS_MAX]
    )
    more = len(records) - EXPLANATION_ROWS_MAX
    tail = f'<p class="note">… {more} more not shown.</p>' if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{tail}"


def _keeps_on_one_line(key: str) -> bool:
    return key in ("at", "since", "code") or key.endswith("_at") or _is_money_key(key)


def _account_summary(account: dict[str, Any] | None) -> str:
    if account is None:
        return '<p class="muted">No end-of-input state for this account.</p>'
    money = (
        "credit_line", "outstanding", "expected_available", "displayed_available", "cache_available"
    )
    head = "".join(f'<th class="num">{key.replace("_", " ")} ¥</th>' for key in money)
    cells = "".join(
        f'<td class="num" data-field="{key}">{_money_html(account.get(key))}</td>' for key in money
    )
    status = _esc(account.get("status", "?"))
    return (
        f'<table class="state"><thead><tr><th>at the end of the input</th>{head}<th>status</th>'
        f'</tr></thead><tbody><tr><td></td>{cells}<td data-field="status">{status}</td></tr>'
        "</tbody></table>"
    )


def _timeline_section(
    view: _View,
    account_id: str,
    anchor: str,
    accounts: dict[str, dict[str, Any]],
    records: list[dict[str, Any]],
    drifts: list[_Drift],
) -> str:
    """One account's section; ``records`` and ``drifts`` are its own, in the view's order."""
    data = view.data
    points = data.timelines.get(account_id, [])
    label = f"Expected available limit of account {account_id}, and what the app and cache showed"
    chart = _svg_timeline(points, records, drifts, view.tz, label) if points else ""
    table = (
        _timeline_table(points)
        if points
        else '<p class="muted">No timeline records for this account.</p>'
    )
    explanation = ""
    if account_id in data.explanations:
        rendered = _render_value("", data.explanations[account_id], 0)
        explanation = f"<details><summary>Explanation</summary>{rendered}</details>"
    return (
        f'<section class="timeline" id="{anchor}" data-account="{_esc(account_id)}">'
        f"<h3>Account <code>{_esc(account_id)}</code> — "
        f"{len(drifts)} drift(s), {len(points)} records</h3>"
        f"{_account_summary(accounts.get(account_id))}{chart}"
        f"<details open><summary>Events</summary>{table}</details>{explanation}</section>"
    )


def _section_timelines(view: _View, ordered: Sequence[str], anchors: dict[str, str]) -> str:
    data = view.data
    accounts = {str(a.get("account_id", "")): a for a in data.accounts}
    legend = _legend(
        [("expected", "c-expected"), ("app (dashed; gap = no value shown)", "c-displayed"),
         ("cache (dotted)", "c-cached"), ("drift open", "c-band"), ("opened", "c-opened"),
         ("escalated", "c-escalated"),
         ("resolved", "c-m-resolved")]
    )  # fmt: skip
    intro = '<section id="timelines"><h2>Timelines of alerted accounts</h2>'
    if not ordered:
        if data.focus_account is not None:
            account = _esc(data.focus_account)
            return (
                f'{intro}<p class="muted">Account <code>{account}</code> raised no alerts.</p>'
                "</section>"
            )
        return intro + '<p class="muted">No account alerted.</p></section>'
    shown = ordered[:TIMELINES_MAX]
    capped = ""
    if len(ordered) > len(shown):
        capped = (
            f'<p class="note" id="timelines-capped" data-shown="{len(shown)}" '
            f'data-total="{len(ordered)}">'
            f"Showing the timelines of the {len(shown)} accounts with the longest drifts, of "
            f"{len(ordered)} alerted accounts.</p>"
        )
    # Each shown account's alerts and drifts, gathered in one pass (not one pass an account).
    records: dict[str, list[dict[str, Any]]] = {a: [] for a in shown}
    for record in view.alerts:
        mine = records.get(str(record.get("account_id", "")))
        if mine is not None:
            mine.append(record)
    drifts: dict[str, list[_Drift]] = {a: [] for a in shown}
    for drift in view.drifts:
        theirs = drifts.get(drift.account_id)
        if theirs is not None:
            theirs.append(drift)
    sections = "".join(
        _timeline_section(view, a, anchors[a], accounts, records[a], drifts[a]) for a in shown
    )
    return f"{intro}{capped}{legend}{sections}</section>"


def render_report(data: ReportData) -> str:
    """The whole HTML document for ``data``; the same data gives the same string."""
    view = _build_view(data)
    ordered = _accounts_by_drift(view.drifts, data.timelines)
    if data.focus_account is not None:
        ordered = [a for a in ordered if a == data.focus_account]
    anchors = _anchor_ids(ordered[:TIMELINES_MAX])
    unexplained = _unexplained_counts(view.drifts)
    nav = "".join(
        f'<a href="#{target}">{name}</a>'
        for target, name in (
            ("by-reason", "by reason"), ("over-time", "over time"),
            ("longest-drifts", "longest drifts"), ("consistency", "consistency"),
            ("unexplained", "unexplained"),
            *((("inquiries", "inquiries"),) if data.inquiries is not None else ()),
            ("timelines", "timelines"),
        )
    )  # fmt: skip
    body = "".join(
        [
            _section_header(view),
            f"<nav>{nav}</nav>",
            _section_reasons(view),
            _section_over_time(view),
            _section_longest(view, anchors),
            _section_latency(view),
            _section_unexplained(view, unexplained),
            ""
            if data.inquiries is None
            else _section_inquiries(data.inquiries, data.focus_account),
            _section_timelines(view, ordered, anchors),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f'<meta name="generator" content="limitsync report"><title>{_esc(data.title)}</title>'
        f"<style>{_CSS}</style></head>\n<body>{body}</body></html>\n"
    )
