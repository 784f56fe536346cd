"""The report's overview: its header cards, the drifts by source, reason and severity, and the
share of them left unexplained."""

from __future__ import annotations

from collections import Counter

from limitsync.report.cards import card, count_items, ordered_keys
from limitsync.report.svg import legend, svg_hbars
from limitsync.report.tally import DriftTally, GroupCounts
from limitsync.report.text import esc, share_text, tz_label
from limitsync.report.view import View
from limitsync.report.vocabulary import (
    DEAD_LETTER_REASONS,
    GROUPS,
    REASONS,
    SEVERITIES,
    SOURCES,
)

__all__ = ["section_header", "section_reasons", "section_unexplained"]


def section_header(view: View) -> str:
    data, alerts = view.data, view.alerts
    type_counts = {key.removeprefix("mismatch."): n for key, n in alerts.type_counts.items()}
    dead_letters = data.dead_letters_by_reason
    dead_total = sum(int(v) for v in dead_letters.values())
    tally = view.all_tally
    cards = [
        card("events processed", "events-total", str(int(data.events_total))),
        card(
            "alert records", "alerts-total", str(alerts.records),
            count_items("alerts", "alert-type", type_counts, ["opened", "escalated", "resolved"]),
        ),
        card(
            "drifts (alert ids)", "mismatches-total", str(tally.total),
            f'<ul><li>still open: <span id="drifts-open">{tally.open()}</span></li>'
            f"{_group_items(tally)}</ul>",
        ),
        card(
            "dead letters", "dead-letters-total", str(dead_total),
            count_items("dead-letters", "reason", dead_letters, DEAD_LETTER_REASONS),
        ),
        card(
            "accounts", "accounts-total", str(len(data.accounts)),
            f'<ul><li>alerted: <span id="accounts-alerted">{alerts.alerted_accounts}</span>'
            "</li></ul>",
        ),
        card("unexplained mismatches", "unexplained-headline", share_text(*tally.unexplained())),
    ]  # fmt: skip
    focus = ""
    if data.focus_account is not None:
        focus = (
            f'<p class="banner" id="focus" data-account="{esc(data.focus_account)}">'
            f"Focused on account <code>{esc(data.focus_account)}</code>: the totals above "
            "cover the whole input; the sections on alerts, drifts and timelines below "
            "cover this account only.</p>"
        )
    return (
        f"<header><h1>{esc(data.title)}</h1>"
        f'<p class="muted">Input: <code id="generated-from">{esc(data.generated_from)}</code> · '
        f'drift SLA <span id="sla-seconds">{int(data.sla_s)}</span> s · '
        f"times in {esc(tz_label(view.tz))} · money in yuan (¥)</p>"
        f'<div class="cards">{"".join(cards)}</div>{focus}</header>'
    )


def _group_items(tally: DriftTally) -> str:
    """Drifts per observation source (and unposted payments), as list items."""
    groups = tally.groups()
    return "".join(
        f'<li>{esc(group)}: <span id="drifts-total-{group}">'
        f"{groups.get(group, GroupCounts()).drifts}</span></li>"
        for group, _ in GROUPS
        if group in groups or group in SOURCES
    )


def _source_table(tally: DriftTally) -> str:
    """Per source: drifts, critical ones, escalated ones and those still open."""
    groups = tally.groups()
    rows = []
    for group, title in GROUPS:
        if group not in groups and group not in SOURCES:
            continue
        counts = groups.get(group, GroupCounts())
        cells = (
            ("drifts", counts.drifts),
            ("critical", counts.critical),
            ("escalated", counts.escalated),
            ("open", counts.open),
        )
        rows.append(
            f'<tr data-source="{group}"><td>{esc(title)}</td>'
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


def section_reasons(view: View) -> str:
    tally = view.tally
    table = tally.by_reason_and_severity()
    reasons = ordered_keys(REASONS, (reason for reason, _ in table))
    severities = ordered_keys(SEVERITIES, (severity for _, severity in table))
    head = "".join(f'<th class="num">{esc(s)}</th>' for s in severities)
    rows = []
    for reason in reasons:
        cells = "".join(
            f'<td class="num" data-severity="{esc(s)}">{table[(reason, s)]}</td>'
            for s in severities
        )
        total = sum(table[(reason, s)] for s in severities)
        rows.append(
            f'<tr data-reason="{esc(reason)}"><td><code>{esc(reason)}</code></td>{cells}'
            f'<td class="num total">{total}</td></tr>'
        )
    sev_totals = Counter[str]()
    for (_, severity), n in table.items():
        sev_totals[severity] += n
    foot = "".join(
        f'<td class="num" id="severity-{esc(s)}">{sev_totals[s]}</td>' if s in SEVERITIES
        else f'<td class="num" data-severity="{esc(s)}">{sev_totals[s]}</td>'
        for s in severities
    )  # fmt: skip
    classes = [f"c-{s}" if s in SEVERITIES else "c-other" for s in severities]
    chart_rows = [(r, [table[(r, s)] for s in severities]) for r in reasons]
    chart = svg_hbars("Drifts by reason and severity", chart_rows, classes) if tally.total else ""
    return (
        '<section id="by-reason"><h2>Alerts by source, reason and severity</h2>'
        '<p class="note">Each drift (alert id) counted once, with the reason and severity fixed '
        "when its breach fired. Critical: the display showed more than the account may borrow. "
        "The app and the cache are observed apart, each with its own drifts.</p>"
        f"{_source_table(tally)}"
        f'<table><thead><tr><th>reason</th>{head}<th class="num">total</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody><tfoot><tr><th>all reasons</th>{foot}"
        f'<td class="num" id="severity-total">{tally.total}</td></tr></tfoot></table>'
        f"{legend((s, c) for s, c in zip(severities, classes, strict=True)) if tally.total else ''}"
        f"{chart}</section>"
    )


def section_unexplained(counts: tuple[int, int]) -> str:
    part, whole = counts
    share = "" if whole == 0 else repr(part / whole)
    return (
        '<section id="unexplained"><h2>Mismatches left unexplained</h2>'
        f'<p><span class="big-inline" id="unexplained-share" data-share="{share}" '
        f'data-unexplained="{part}" data-mismatches="{whole}">{share_text(part, whole)}</span> '
        f"of drifts are unexplained ({part} of {whole}).</p>"
        '<p class="note">A drift is explained when its reason names the cause '
        "(repayment not posted, sync delay, freeze not applied, cache missing). "
        "<code>CACHE_DIVERGED</code> — the display showed a value the account never had — "
        "and any reason outside the contract count as "
        "unexplained: the goal is zero.</p></section>"
    )
