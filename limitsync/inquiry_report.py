"""The replay report's inquiries section (issue 15): the records of ``limit.inquiries``, counted.

A worker publishes one record an inquiry (``streams.inquiries``):
``{"inquiry_id", "received_at", "request": {...}, "answer": {...}, "answer_ms"}``. A replay is
given them as a file of the topic's records (``--inquiries FILE``: JSON Lines, an archive
segment, a folder or a glob, as ``--input``), since they are answers the live system gave,
not events the core replays. This module reads them into an :class:`InquirySummary`: counts by
verdict and by action, the faults confirmed (a ``fault`` whose cache or app was wrong, so
limitsync rewrote the cache or opened an alert) and the time to answer (``answer_ms``: from the
request's arrival, ``received_at``, to its answer).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from limitsync.replay import InputRecord

__all__ = [
    "ACTIONS",
    "ANSWER_TIMES_MAX",
    "CONFIRMING_ACTIONS",
    "VERDICTS",
    "InquirySummary",
    "summarize_inquiries",
]

VERDICTS = ("correct", "fault", "unknown_account")
ACTIONS = ("none", "cache_rewritten", "alert_opened")
# A fault is confirmed when limitsync found something wrong and acted: the cache was wrong
# (rewritten) or the app showed an old value past its SLA (alert opened or joined).
CONFIRMING_ACTIONS = frozenset({"cache_rewritten", "alert_opened"})
# Answer times kept for the percentiles, 8 bytes each (16 MB): beyond it the times of later
# inquiries are not kept, the counts still are, and the section says so.
ANSWER_TIMES_MAX = 2_000_000


@dataclass
class InquirySummary:
    """What the report shows of the inquiries of a replay's input."""

    source: str  # the file given, as the user named it
    records: int = 0  # records read, readable or not
    unreadable: int = 0  # not JSON, or without an answer's verdict
    by_verdict: Counter[str] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)  # of the faults
    faults_confirmed: int = 0
    answer_ms: array[float] = field(default_factory=lambda: array("d"))
    untimed: int = 0  # readable inquiries whose record has no answer_ms
    times_dropped: int = 0  # answer times past ANSWER_TIMES_MAX, not kept

    @property
    def inquiries(self) -> int:
        return sum(self.by_verdict.values())

    def answer_times_ms(self) -> dict[str, float] | None:
        """p50, p99 (nearest rank) and max of the kept answer times; None when none is kept."""
        if not self.answer_ms:
            return None
        ordered = array("d", sorted(self.answer_ms))
        n = len(ordered)
        # ceil(q * n) in integers: per mille, so that 0.99 * 100 is rank 99, not 100.
        return {
            "p50": ordered[max(1, -(-500 * n // 1000)) - 1],
            "p99": ordered[max(1, -(-990 * n // 1000)) - 1],
            "max": ordered[-1],
        }


def _answer_ms(record: dict[str, Any]) -> float | None:
    value = record.get("answer_ms")
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        return None  # missing, not a number, negative or NaN
    return float(value)


def _account_of(record: dict[str, Any], answer: dict[str, Any]) -> object:
    request = record.get("request")
    if isinstance(request, dict) and "account_id" in request:
        return request["account_id"]
    return answer.get("account_id")


def summarize_inquiries(
    records: Iterable[InputRecord], source: str, account: str | None = None
) -> InquirySummary:
    """Count the inquiry records; with ``account``, only that account's inquiries."""
    summary = InquirySummary(source)
    for rec in records:
        summary.records += 1
        try:
            record = orjson.loads(rec.value) if rec.value is not None else None
        except orjson.JSONDecodeError:
            record = None
        answer = record.get("answer") if isinstance(record, dict) else None
        verdict = answer.get("verdict") if isinstance(answer, dict) else None
        if not isinstance(record, dict) or not isinstance(verdict, str):
            summary.unreadable += 1
            continue
        assert isinstance(answer, dict)  # a verdict was read from it
        if account is not None and _account_of(record, answer) != account:
            continue
        summary.by_verdict[verdict] += 1
        if verdict == "fault":
            action = answer.get("action")
            action_text = action if isinstance(action, str) else "?"
            summary.by_action[action_text] += 1
            if action_text in CONFIRMING_ACTIONS:
                summary.faults_confirmed += 1
        answer_ms = _answer_ms(record)
        if answer_ms is None:
            summary.untimed += 1
        elif len(summary.answer_ms) < ANSWER_TIMES_MAX:
            summary.answer_ms.append(answer_ms)
        else:
            summary.times_dropped += 1
    return summary


def load_inquiries(spec: str, account: str | None = None) -> InquirySummary:
    """The inquiry records of ``spec`` (``--inquiries``: a file, segment, folder or glob, as
    ``--input``), counted; raises :class:`limitsync.inputs.InputError` when it cannot be read."""
    from limitsync.inputs import open_input

    return summarize_inquiries(open_input(spec), spec, account)
