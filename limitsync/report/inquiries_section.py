"""The limit inquiries section (``--inquiries``): by verdict, faults confirmed, time to answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from limitsync.report.cards import card, count_items, ordered_keys
from limitsync.report.svg import svg_hbars
from limitsync.report.text import esc, ms_text, share_text

if TYPE_CHECKING:
    from limitsync.inquiry_report import InquirySummary

__all__ = ["section_inquiries"]


def _cards(summary: InquirySummary) -> list[str]:
    from limitsync.inquiry_report import ACTIONS, VERDICTS

    faults = summary.by_verdict.get("fault", 0)
    times = summary.answer_times_ms()
    time_items = "".join(
        f'<li>{key}: <span id="answer-{key}" data-ms="{"" if times is None else times[key]!r}">'
        f'{"n/a" if times is None else esc(ms_text(times[key]))}</span></li>'
        for key in ("p50", "p99", "max")
    )
    return [
        card(
            "inquiries", "inquiries-total", str(summary.inquiries),
            count_items("inquiries", "verdict", dict(summary.by_verdict), VERDICTS),
        ),
        card(
            "faults confirmed", "faults-confirmed", str(summary.faults_confirmed),
            f'<ul><li>of faults: <span id="faults-total">{faults}</span> '
            f"({share_text(summary.faults_confirmed, faults)})</li></ul>"
            + count_items("fault-actions", "action", dict(summary.by_action), ACTIONS),
            f' data-faults="{faults}"',
        ),
        card(
            "time to answer", "answer-timed", str(len(summary.answer_ms)),
            f"<ul>{time_items}</ul>", f' data-untimed="{summary.untimed}"',
        ),
    ]  # fmt: skip


def _notes(summary: InquirySummary, focus_account: str | None) -> list[str]:
    from limitsync.inquiry_report import ANSWER_TIMES_MAX

    notes = []
    if focus_account is not None:
        notes.append(f"Inquiries about account <code>{esc(focus_account)}</code> only.")
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
    return notes


def section_inquiries(summary: InquirySummary, focus_account: str | None) -> str:
    from limitsync.inquiry_report import ACTIONS, VERDICTS

    verdicts = ordered_keys(VERDICTS, summary.by_verdict)
    chart = (
        svg_hbars(
            "Inquiries by verdict",
            [(v, [summary.by_verdict.get(v, 0)]) for v in verdicts],
            ["c-latency"],
        )
        if summary.inquiries
        else '<p class="muted">No inquiries in the records given.</p>'
    )
    action_rows = "".join(
        f'<tr data-action="{esc(a)}"><td><code>{esc(a)}</code></td>'
        f'<td class="num">{summary.by_action.get(a, 0)}</td></tr>'
        for a in ordered_keys(ACTIONS, summary.by_action)
    )
    return (
        '<section id="inquiries"><h2>Limit inquiries</h2>'
        '<p class="note">What users asked about their limit (额度咨询), from the records of '
        f"<code>limit.inquiries</code> in <code>{esc(summary.source)}</code>. A fault is "
        "confirmed when limitsync found the display wrong and acted: it rewrote the cache "
        "(<code>cache_rewritten</code>) or opened or joined an alert on the app "
        "(<code>alert_opened</code>); <code>none</code> is a change still on its way. "
        "Time to answer: from the request's arrival to its answer (<code>answer_ms</code>), "
        "nearest rank.</p>"
        f'<div class="cards">{"".join(_cards(summary))}</div>'
        + "".join(f'<p class="note">{n}</p>' for n in _notes(summary, focus_account))
        + f"{chart}"
        + (
            '<table><thead><tr><th>action on a fault</th><th class="num">faults</th></tr>'
            f"</thead><tbody>{action_rows}</tbody></table>"
            if action_rows
            else ""
        )
        + "</section>"
    )
