"""Reason codes, severity and the alert records (docs/contract.md, "Drift, SLA and alerts")."""

from __future__ import annotations

import hashlib
from typing import Any

from schemas.timefmt import format_us
from streams.core.state import AccountState, ClearingWatch, Display, DriftState

__all__ = [
    "CACHE_RIGHT_NOTE",
    "alert_id",
    "classify",
    "clearing_record",
    "drift_record",
    "severity",
]

_US = 1_000_000
# On an app alert whose account's cache holds the expected value (docs/contract.md, "Decisions
# where the contract was ambiguous"): what a support engineer reads first.
CACHE_RIGHT_NOTE = (
    "the cache holds the expected value: the display layer is behind, not the cache"
)


def alert_id(*parts: object) -> str:
    """A stable id from what identifies the drift, equal in live and replay."""
    text = "|".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def classify(state: AccountState, shown: int | None, drift: DriftState) -> str:
    """The reason of a breach of a source showing ``shown``, fixed when it fires; the
    contract's order of tests."""
    if state.status != "active" and shown is not None and shown > 0:
        return "FREEZE_NOT_APPLIED"
    if shown is None:
        return "CACHE_MISSING"
    if shown in drift.held:
        return "SYNC_DELAY"
    return "CACHE_DIVERGED"


def severity(expected: int, displayed: int | None) -> str:
    """Showing more than allowed is a credit-risk hole: critical. Anything else: major."""
    return "critical" if displayed is not None and displayed > expected else "major"


def _base(
    kind: str,
    aid: str,
    source: str | None,
    state: AccountState,
    shown: int | None,
    reason: str,
    sev: str,
    opened_us: int,
    detected_us: int,
    now_us: int,
    sla_us: int,
    evidence: list[str],
) -> dict[str, Any]:
    expected = state.expected_available
    record: dict[str, Any] = {"type": kind, "alert_id": aid}
    if source is not None:
        record["source"] = source
    # Set one by one, not by update() from a dict display: the same order, one dict fewer.
    record["account_id"] = state.account_id
    record["reason"] = reason
    record["severity"] = sev
    record["expected_available"] = expected
    record["displayed_available"] = shown
    record["drift"] = None if shown is None else shown - expected
    record["opened_at"] = format_us(opened_us)
    record["detected_at"] = format_us(detected_us)
    record["sla_seconds"] = sla_us // _US
    record["age_seconds"] = (now_us - opened_us) // _US
    record["evidence_event_ids"] = list(evidence)
    return record


def drift_record(
    kind: str,
    state: AccountState,
    display: Display,
    drift: DriftState,
    detected_us: int,
    now_us: int,
    sla_us: int,
    resolution: str | None = None,
) -> dict[str, Any]:
    """A ``mismatch.*`` record for a drift of one source. An app record of an account whose
    cache was observed says what the cache held (``cache_available``) and, when that is the
    expected value, that the display layer is behind (``note``)."""
    record = _base(
        kind,
        drift.alert_id,
        display.source,
        state,
        display.displayed,
        drift.reason,
        drift.severity,
        drift.opened_us,
        detected_us,
        now_us,
        sla_us,
        drift.evidence,
    )
    cache = state.cache
    if display is state.app and cache.observed:
        record["cache_available"] = cache.displayed
        if cache.displayed == record["expected_available"]:
            record["note"] = CACHE_RIGHT_NOTE
    if resolution is not None:
        record["resolved_at"] = format_us(now_us)
        record["resolution"] = resolution
    return record


def clearing_record(
    kind: str,
    state: AccountState,
    watch: ClearingWatch,
    detected_us: int,
    now_us: int,
    sla_us: int,
    resolution: str | None = None,
) -> dict[str, Any]:
    """A ``mismatch.*`` record for a payment core banking has not posted."""
    record = _base(
        kind,
        watch.alert_id,
        None,
        state,
        state.app.displayed,
        "REPAYMENT_NOT_POSTED",
        "major",
        watch.opened_us,
        detected_us,
        now_us,
        sla_us,
        [watch.event_id],
    )
    record["payment_id"] = watch.payment_id
    if resolution is not None:
        record["resolved_at"] = format_us(now_us)
        record["resolution"] = resolution
    return record
