"""The timelines of the alerted accounts: per account its state at the end, its chart, its
event table and its explanation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from limitsync.report.alerts import Drift
from limitsync.report.explanation import render_explanation
from limitsync.report.model import TimelinePoint
from limitsync.report.svg import legend
from limitsync.report.text import Memo, as_int, esc, money_html
from limitsync.report.timeline_chart import svg_timeline
from limitsync.report.view import View
from limitsync.report.vocabulary import TIMELINE_ROWS_MAX, TIMELINES_MAX

__all__ = ["section_timelines"]


def _event_row(item: TimelinePoint, memo: Memo) -> str:
    # as_int inlined for the usual exact ints: this runs once a row of every timeline
    expected, displayed, cached = item.expected, item.displayed, item.cached
    fen = expected if type(expected) is int else as_int(expected)
    shown = displayed if type(displayed) is int else as_int(displayed)
    held = cached if type(cached) is int else as_int(cached)
    # shown - expected where both are known and differ
    app_drift = None if fen is None or shown is None or shown == fen else shown - fen
    cache_drift = None if fen is None or held is None or held == fen else held - fen
    css = ' class="drift"' if app_drift is not None or cache_drift is not None else ""
    kind = f"{item.type} ({item.source})" if item.source else item.type
    money = memo.money
    return (
        f'<tr{css}><td class="nowrap">{esc(item.at)}</td>'
        f"<td><code>{esc(item.event_id)}</code></td>"
        f'<td class="nowrap">{memo.text(kind)}</td>'
        f'<td class="num">{money(expected)}</td>'
        f'<td class="num">{money(displayed)}</td>'
        f'<td class="num">{"" if app_drift is None else money(app_drift)}</td>'
        f'<td class="num">{money(cached)}</td>'
        f'<td class="num">{"" if cache_drift is None else money(cache_drift)}</td>'
        f"<td>{memo.text(item.note)}</td></tr>"
    )


def _timeline_table(points: Sequence[TimelinePoint], memo: Memo) -> str:
    half = TIMELINE_ROWS_MAX // 2
    shown: list[TimelinePoint | int] = list(points)
    if len(points) > TIMELINE_ROWS_MAX:
        shown = [*points[:half], len(points) - 2 * half, *points[-half:]]
    rows = [
        f'<tr class="omitted"><td colspan="9">… {item} records omitted …</td></tr>'
        if isinstance(item, int)
        else _event_row(item, memo)
        for item in shown
    ]
    return (
        '<table class="events"><thead><tr><th>occurred at</th><th>event id</th><th>type</th>'
        '<th class="num">expected ¥</th><th class="num">app ¥</th>'
        '<th class="num">app drift ¥</th><th class="num">cache ¥</th>'
        '<th class="num">cache drift ¥</th>'
        f"<th>note</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


_STATE_MONEY = (
    "credit_line", "outstanding", "expected_available", "displayed_available", "cache_available"
)  # fmt: skip


def _account_summary(account: dict[str, Any] | None) -> str:
    if account is None:
        return '<p class="muted">No end-of-input state for this account.</p>'
    head = "".join(f'<th class="num">{key.replace("_", " ")} ¥</th>' for key in _STATE_MONEY)
    cells = "".join(
        f'<td class="num" data-field="{key}">{money_html(account.get(key))}</td>'
        for key in _STATE_MONEY
    )
    status = esc(account.get("status", "?"))
    return (
        f'<table class="state"><thead><tr><th>at the end of the input</th>{head}<th>status</th>'
        f'</tr></thead><tbody><tr><td></td>{cells}<td data-field="status">{status}</td></tr>'
        "</tbody></table>"
    )


def _timeline_section(
    view: View,
    account_id: str,
    anchor: str,
    accounts: dict[str, dict[str, Any]],
    drifts: list[Drift],
    memo: Memo,
) -> str:
    """One account's section; ``drifts`` are its own, in the view's order."""
    data = view.data
    points = data.timelines.get(account_id, [])
    records = view.alerts.records_of(account_id)
    label = f"Expected available limit of account {account_id}, and what the app and cache showed"
    chart = svg_timeline(points, records, drifts, view.tz, label, memo) if points else ""
    table = (
        _timeline_table(points, memo)
        if points
        else '<p class="muted">No timeline records for this account.</p>'
    )
    explanation = ""
    if account_id in data.explanations:
        rendered = render_explanation(data.explanations[account_id], memo)
        explanation = f"<details><summary>Explanation</summary>{rendered}</details>"
    return (
        f'<section class="timeline" id="{anchor}" data-account="{esc(account_id)}">'
        f"<h3>Account <code>{esc(account_id)}</code> — "
        f"{len(drifts)} drift(s), {len(points)} records</h3>"
        f"{_account_summary(accounts.get(account_id))}{chart}"
        f"<details open><summary>Events</summary>{table}</details>{explanation}</section>"
    )


def _no_timelines(view: View) -> str:
    focus = view.data.focus_account
    if focus is not None:
        return f'<p class="muted">Account <code>{esc(focus)}</code> raised no alerts.</p>'
    return '<p class="muted">No account alerted.</p>'


def section_timelines(view: View, ordered: Sequence[str], anchors: dict[str, str]) -> str:
    intro = '<section id="timelines"><h2>Timelines of alerted accounts</h2>'
    if not ordered:
        return f"{intro}{_no_timelines(view)}</section>"
    shown = ordered[:TIMELINES_MAX]
    capped = ""
    if len(ordered) > len(shown):
        capped = (
            f'<p class="note" id="timelines-capped" data-shown="{len(shown)}" '
            f'data-total="{len(ordered)}">'
            f"Showing the timelines of the {len(shown)} accounts with the longest drifts, of "
            f"{len(ordered)} alerted accounts.</p>"
        )
    keys = legend(
        [("expected", "c-expected"), ("app (dashed; gap = no value shown)", "c-displayed"),
         ("cache (dotted)", "c-cached"), ("drift open", "c-band"), ("opened", "c-opened"),
         ("escalated", "c-escalated"),
         ("resolved", "c-m-resolved")]
    )  # fmt: skip
    # Each shown account's drifts, gathered in one pass (not one pass an account).
    drifts: dict[str, list[Drift]] = {a: [] for a in shown}
    for drift in view.drifts:
        theirs = drifts.get(drift.account_id)
        if theirs is not None:
            theirs.append(drift)
    accounts = {str(a.get("account_id", "")): a for a in view.data.accounts}
    memo = Memo()
    sections = "".join(
        _timeline_section(view, a, anchors[a], accounts, drifts[a], memo) for a in shown
    )
    return f"{intro}{capped}{keys}{sections}</section>"
