"""The consistency section: per observation source, how long until a ledger change showed."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from limitsync.report.svg import svg_columns
from limitsync.report.text import esc, nines, nines_attr, nines_text, share_text
from limitsync.report.view import View
from limitsync.report.vocabulary import SOURCES

__all__ = ["section_latency"]


@dataclass(slots=True)
class _Latency:
    total: int
    buckets: list[tuple[str, str, int]]  # (key, label, count)
    within: list[tuple[str, str, int]]  # (key, label, count within)


def _latency_summary(latencies: Sequence[float], sla_s: int) -> _Latency:
    # A day has a great many changes: counted from their sorted values when none is NaN (the
    # sum is NaN when one is, or when both infinities are); else one by one.
    counts: Mapping[str, int]
    if math.isnan(sum(latencies)):
        counts = _counts_one_by_one(latencies, sla_s)
    else:
        counts = _counts_sorted(sorted(latencies), sla_s)
    mid_label = (
        f"10–{sla_s} s" if sla_s > 10 else f"(empty: SLA {sla_s} s ≤ 10 s)"
    )
    buckets = [
        ("le_1s", "≤ 1 s", counts["le_1s"]),
        ("le_10s", f"1–{min(10, sla_s)} s", counts["le_10s"]),
        ("le_sla", mid_label, counts["le_sla"]),
        ("over_sla", f"> SLA ({sla_s} s)", counts["over_sla"]),
        ("never", "never", counts["never"]),
    ]
    within = [
        ("1s", "1 s", counts["within_1s"]),
        ("10s", "10 s", counts["within_10s"]),
        ("sla", f"the SLA ({sla_s} s)", counts["within_sla"]),
    ]
    return _Latency(total=len(latencies), buckets=buckets, within=within)


def _counts_sorted(ordered: Sequence[float], sla_s: int) -> dict[str, int]:
    """The buckets (a finite value over the SLA, else at most 1 s, 10 s or the SLA; an
    infinite one never) and the counts within 1 s, 10 s and the SLA, of NaN-free values."""
    below = bisect_right(ordered, -math.inf)  # never displayed, like +inf
    above = len(ordered) - bisect_left(ordered, math.inf)

    def upto(bound: int) -> int:  # finite values at most ``bound``
        return bisect_right(ordered, bound) - below

    to_1s, to_10s, to_sla = upto(min(1, sla_s)), upto(min(10, sla_s)), upto(sla_s)
    return {
        "le_1s": to_1s,
        "le_10s": to_10s - to_1s,
        "le_sla": to_sla - to_10s,
        "over_sla": len(ordered) - below - above - to_sla,
        "never": below + above,
        "within_1s": upto(1),
        "within_10s": upto(10),
        "within_sla": to_sla,
    }


def _counts_one_by_one(latencies: Sequence[float], sla_s: int) -> Counter[str]:
    """As ``_counts_sorted``, for values that may be NaN (never displayed too)."""
    counts = Counter[str]()
    for value in latencies:
        if math.isnan(value) or math.isinf(value):
            counts["never"] += 1
            continue
        counts["within_1s"] += value <= 1
        counts["within_10s"] += value <= 10
        counts["within_sla"] += value <= sla_s
        if value > sla_s:
            counts["over_sla"] += 1
        elif value <= 1:
            counts["le_1s"] += 1
        elif value <= 10:
            counts["le_10s"] += 1
        else:
            counts["le_sla"] += 1
    return counts


def section_latency(view: View) -> str:
    data = view.data
    parts = [
        _latency_part(source, data.sync_latencies_s.get(source, []), data.sla_s)
        for source in SOURCES
    ]
    return (
        '<section id="consistency"><h2>Consistency: time until the display showed a change</h2>'
        '<p class="note">Per ledger change and per observation source, how long until that '
        "source showed it, as measured from outside (Polaris-style): the app (what users saw) "
        "and the cache (what the cache held). Bucket bounds are inclusive at the top; over the "
        f"SLA means strictly greater.</p>{''.join(parts)}</section>"
    )


def _slo_item(source: str, key: str, label: str, count: int, total: int) -> str:
    share = count / total if total else None
    value = nines(share) if share is not None else None
    text = "n/a" if value is None else nines_text(value)
    attrs = (
        f' data-share="{"" if share is None else repr(share)}"'
        f' data-nines="{"" if value is None else nines_attr(value)}"'
        f' data-count="{count}" data-total="{total}"'
    )
    return (
        f'<li><span class="big-inline" id="slo-{source}-{key}"{attrs}>{text}</span> '
        f"nines of changes displayed within {esc(label)} "
        f'(<span id="share-{source}-{key}">{share_text(count, total)}</span>, '
        f"{count} of {total})</li>"
    )


def _latency_part(source: str, latencies: Sequence[float], sla_s: int) -> str:
    summary = _latency_summary(latencies, sla_s)
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
        f'<tr data-bucket="{key}"><td>{esc(label)}</td>'
        f'<td class="num" id="latency-{source}-{key}">{count}</td>'
        f'<td class="num">{share_text(count, total)}</td></tr>'
        for key, label, count in summary.buckets
    )
    slo = "".join(_slo_item(source, key, label, n, total) for key, label, n in summary.within)
    chart = (
        svg_columns(f"Time until the {source} showed a change", columns, ["c-latency", "c-late"])
        if total
        else '<p class="muted">No ledger changes measured.</p>'
    )
    return (
        f'<div class="group" id="consistency-{source}"><h3>Source <code>{source}</code>: '
        f'<span id="changes-total-{source}">{total}</span> changes measured</h3>'
        f'<ul class="slo">{slo}</ul>{chart}'
        '<table><thead><tr><th>time to display</th><th class="num">changes</th>'
        '<th class="num">share</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )
