"""Turns a replay's result into what the report shows (kept apart from rendering)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Container, Iterable, Mapping
from itertools import repeat
from operator import truediv
from typing import TYPE_CHECKING, Any

from limitsync.replay import NEVER_SHOWN, ReplayOptions, ReplayResult
from limitsync.report import (
    AlertDigest,
    ReportData,
    TimelinePoint,
    digest_alerts,
    timeline_accounts,
)
from schemas.timefmt import format_us
from streams.core.explain import describe, explain

if TYPE_CHECKING:
    from limitsync.inquiry_report import InquirySummary

__all__ = [
    "AccountParts",
    "account_parts",
    "assemble_report_data",
    "build_report_data",
    "shown_accounts",
]

_NOTES = {
    "drawdown.booked": "drawdown",
    "repayment.initiated": "repayment initiated",
    "repayment.posted": "repayment posted",
    "repayment.reversed": "repayment reversed",
    "credit_line.changed": "credit line changed",
    "account.status_changed": "status changed",
}


def _notes(kind: str, source: str) -> str:
    if kind == "limit.displayed":
        return "cache observed" if source == "cache" else "app display observed"
    return _NOTES.get(kind, kind)


def build_report_data(
    result: ReplayResult,
    options: ReplayOptions,
    source: str,
    focus_account: str | None = None,
    inquiries: InquirySummary | None = None,
    alerts: AlertDigest | None = None,
) -> ReportData:
    """``alerts``: the replay's alert records as read back and digested (``outputs``), for a
    replay that streamed them; by default ``result.alerts``, digested here. With a focus
    account, the report's alerts are that account's only."""
    if alerts is None:
        records = result.alerts
        if focus_account is not None:
            records = [a for a in records if a["account_id"] == focus_account]
        alerts = digest_alerts(records, focus_account)
    shown = shown_accounts(alerts, focus_account, result.engine.accounts)
    return assemble_report_data(
        options,
        source,
        alerts,
        result.account_lines(),
        account_parts(result, shown),
        result.latencies_us,
        result.counts,
        focus_account,
        inquiries,
    )


def shown_accounts(
    alerts: AlertDigest, focus_account: str | None, known: Container[str]
) -> list[str]:
    """The accounts whose timelines and explanations the report shows. Only these are
    explained: a day has thousands alerted, and explaining them all was most of the
    command's time after the replay."""
    if focus_account is not None:
        return [focus_account] if focus_account in known else []
    return timeline_accounts(alerts)


AccountParts = dict[str, tuple[list[TimelinePoint], dict[str, Any]]]


def account_parts(result: ReplayResult, accounts: Iterable[str]) -> AccountParts:
    """Each shown account's timeline and explanation (of the accounts this result holds)."""
    return {
        account: (_timeline(result, account), explain(result.engine.accounts[account]))
        for account in accounts
        if account in result.engine.accounts
    }


def assemble_report_data(
    options: ReplayOptions,
    source: str,
    alerts: AlertDigest,
    account_lines: list[dict[str, Any]],
    parts: AccountParts,
    latencies_us: Mapping[str, array[int]],
    counts: Mapping[str, int],
    focus_account: str | None = None,
    inquiries: InquirySummary | None = None,
) -> ReportData:
    """The report's data from a replay's pieces (one process's result, or a sharded
    replay's, gathered from its shards)."""
    dead_letters = {"invalid": counts.get("invalid", 0), "conflict": counts.get("conflict", 0)}
    if options.now_us is not None:  # a replay applies the future-timestamp rule only then
        dead_letters["future_timestamp"] = counts.get("future_timestamp", 0)
    return ReportData(
        title="limitsync replay report",
        generated_from=source,
        sla_s=options.core.sla_us // 1_000_000,
        alerts=alerts,
        accounts=account_lines,
        timelines={account: timeline for account, (timeline, _) in parts.items()},
        sync_latencies_s={kind: _seconds(latencies) for kind, latencies in latencies_us.items()},
        dead_letters_by_reason=dead_letters,
        events_total=counts.get("records", 0),
        explanations={account: explanation for account, (_, explanation) in parts.items()},
        focus_account=focus_account,
        inquiries=inquiries,
    )


def _timeline(result: ReplayResult, account_id: str) -> list[TimelinePoint]:
    """The account's last records, each with the words for what it changed, if anything."""
    line = result.timelines.get(account_id)
    if line is None:
        return []
    # The history entry of each event id (the last one, if several), described when shown.
    changes = {h.event_id: h for h in result.engine.accounts[account_id].history}
    details: dict[str, str] = {}
    points = []
    for at, event_id, kind, source, expected, shown, cached in line.entries():
        note = details.get(event_id)
        if note is None:
            change = changes.get(event_id)
            note = _notes(kind, source) if change is None else describe(change)
            if change is not None:
                details[event_id] = note
        points.append(
            TimelinePoint(format_us(at), event_id, kind, expected, shown, note, cached, source)
        )
    return points


def _seconds(latencies_us: array[int]) -> array[float]:
    """Per change, the seconds until it showed (inf: never), as ``us / 1_000_000``: divided at
    C speed (one a ledger change), then the never shown ones set to inf."""
    seconds = array("d", map(truediv, latencies_us, repeat(1_000_000)))
    index = -1
    for _ in range(latencies_us.count(NEVER_SHOWN)):
        index = latencies_us.index(NEVER_SHOWN, index + 1)
        seconds[index] = math.inf
    return seconds
