"""What the core asks the outside world to do.

The core never performs I/O: it returns these values and the shells (Faust workers, replay)
carry them out. Times are integer microseconds since the epoch, like everywhere in the core.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = [
    "AlertRaised",
    "CacheWrite",
    "ChangeDisplayed",
    "Effect",
    "RescoreRequested",
]


class CacheWrite(NamedTuple):
    """Write the account's hash ``{cache_prefix}{account_id}`` if ``version`` is newer."""

    account_id: str
    available: int
    credit_line: int
    outstanding: int
    status: str
    version: int
    updated_us: int
    change_us: int  # occurred_at of the change behind this value (sync-latency metric)
    heal: bool = False  # an auto-heal rewrite rather than a ledger change


class AlertRaised(NamedTuple):
    """One record for the alert topic / ``alerts.jsonl`` (already in contract form)."""

    record: dict[str, Any]


class RescoreRequested(NamedTuple):
    """Ask the rescore agent to re-score this account (coalesced per window by the core)."""

    account_id: str
    requested_us: int
    trigger_event_ids: tuple[str, ...]


class ChangeDisplayed(NamedTuple):
    """A ledger change reached the display after ``latency_us`` (None: it never did)."""

    account_id: str
    change_us: int
    latency_us: int | None


Effect = CacheWrite | AlertRaised | RescoreRequested | ChangeDisplayed
