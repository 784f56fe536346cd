"""What the core asks the outside world to do.

The core never performs I/O: it returns these values and the shells (Faust workers, replay)
carry them out. Times are integer microseconds since the epoch, like everywhere in the core.

Plain classes with written-out constructors, compared by value (dataclass ``eq``): one or more
are built for most records, and a NamedTuple's constructor, or a dataclass's generated one, is
Python code even in a compiled module. Treat them as values: nothing changes them once built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AlertRaised",
    "CacheWrite",
    "ChangeDisplayed",
    "Effect",
    "RescoreRequested",
    "ReversalUnmatched",
]


@dataclass(slots=True, init=False)
class CacheWrite:
    """Write the account's hash ``{cache_prefix}{account_id}`` if ``version`` is newer."""

    account_id: str
    available: int
    credit_line: int
    outstanding: int
    status: str
    version: int
    updated_us: int
    change_us: int  # occurred_at of the change behind this value (sync-latency metric)
    heal: bool  # an auto-heal rewrite rather than a ledger change

    def __init__(
        self,
        account_id: str,
        available: int,
        credit_line: int,
        outstanding: int,
        status: str,
        version: int,
        updated_us: int,
        change_us: int,
        heal: bool = False,
    ) -> None:
        self.account_id = account_id
        self.available = available
        self.credit_line = credit_line
        self.outstanding = outstanding
        self.status = status
        self.version = version
        self.updated_us = updated_us
        self.change_us = change_us
        self.heal = heal


@dataclass(slots=True, init=False)
class AlertRaised:
    """One record for the alert topic / ``alerts.jsonl`` (already in contract form).

    ``phase`` and ``firing`` say where in its step it was raised: before (0) or after (2) the
    record's apply, by firing the deadline ``firing`` (its due time and key), or by the apply
    (1, None). A sharded replay merges its shards' alerts into the one order by them."""

    record: dict[str, Any]
    # Where, not what: an alert equals another with the same record wherever it was raised.
    phase: int = field(compare=False)
    firing: tuple[int, Any] | None = field(compare=False)

    def __init__(
        self, record: dict[str, Any], phase: int = 1, firing: tuple[int, Any] | None = None
    ) -> None:
        self.record = record
        self.phase = phase
        self.firing = firing


@dataclass(slots=True, init=False)
class RescoreRequested:
    """Ask the rescore agent to re-score this account (coalesced per window by the core)."""

    account_id: str
    requested_us: int
    trigger_event_ids: tuple[str, ...]

    def __init__(
        self, account_id: str, requested_us: int, trigger_event_ids: tuple[str, ...]
    ) -> None:
        self.account_id = account_id
        self.requested_us = requested_us
        self.trigger_event_ids = trigger_event_ids


@dataclass(slots=True, init=False)
class ChangeDisplayed:
    """A ledger change reached one source's display (``app`` or ``cache``) after
    ``latency_us`` (None: it never did)."""

    account_id: str
    change_us: int
    latency_us: int | None
    source: str

    def __init__(
        self, account_id: str, change_us: int, latency_us: int | None, source: str
    ) -> None:
        self.account_id = account_id
        self.change_us = change_us
        self.latency_us = latency_us
        self.source = source


@dataclass(slots=True, init=False)
class ReversalUnmatched:
    """A reversal arrived with no repayment of that id to undo: it changes nothing now (the
    repayment may still come within the reversal window). Shells count it and log both ids."""

    account_id: str
    reversal_event_id: str
    reverses_event_id: str

    def __init__(self, account_id: str, reversal_event_id: str, reverses_event_id: str) -> None:
        self.account_id = account_id
        self.reversal_event_id = reversal_event_id
        self.reverses_event_id = reverses_event_id


Effect = CacheWrite | AlertRaised | RescoreRequested | ChangeDisplayed | ReversalUnmatched
