"""What the report shows, as data: ``ReportData``, built by the replay (``report_data``) or by
hand, and the points of an account's timeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from limitsync.report.alerts import AlertDigest

if TYPE_CHECKING:
    from limitsync.inquiry_report import InquirySummary

__all__ = ["ReportData", "TimelinePoint"]


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
    sla_s: int
    # Contract alert records in raised order, or their digest (``report.alerts``: what a reader
    # that does not hold a day of them keeps); a digest's focus must be ``focus_account``.
    alerts: Sequence[dict[str, Any]] | AlertDigest
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
