"""Builders for contract events (docs/contract.md, "Input events") as dicts and JSON bytes.

Times are milliseconds after ``T0`` (``at=70 * S + 1`` is 70.001 s after T0), so SLA
boundaries can be hit exactly. Every builder returns the event as a plain dict; ``line``
turns it into the bytes of one JSON Lines record, and ``replay`` runs a list of events
through the replay shell on the event-time clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import orjson

from limitsync.replay import InputRecord, ReplayOptions, ReplayResult, run_replay
from schemas.parse import Parsed, parse_event
from schemas.timefmt import format_us, parse_rfc3339, to_us
from streams.core import CoreConfig, Effect, Engine

__all__ = [
    "T0",
    "T0_US",
    "S",
    "account_status",
    "credit_line",
    "displayed",
    "drawdown",
    "feed",
    "ingest",
    "line",
    "lines",
    "records",
    "repayment_initiated",
    "repayment_posted",
    "repayment_reversed",
    "replay",
    "ts",
    "us",
]

S = 1000  # milliseconds in a second: ``at`` is in milliseconds after T0
T0 = "2026-11-29T10:00:00.000Z"
T0_US = to_us(parse_rfc3339(T0))

_ids = itertools.count(1)


def us(at: int) -> int:
    """Microseconds since the epoch of ``at`` milliseconds after T0."""
    return T0_US + at * 1000


def ts(at: int) -> str:
    """The RFC 3339 timestamp of ``at`` milliseconds after T0 (as alerts format it)."""
    return format_us(us(at))


def _event(
    kind: str, account: str, at: int, event_id: str | None, fields: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": event_id if event_id is not None else f"ev-{next(_ids)}",
        "type": kind,
        "account_id": account,
        "occurred_at": ts(at),
        "schema_version": 1,
        **fields,
    }


def drawdown(
    account: str, at: int, principal: int, *, event_id: str | None = None,
    loan_id: str = "L1", **extra: Any,
) -> dict[str, Any]:
    return _event("drawdown.booked", account, at, event_id,
                  {"loan_id": loan_id, "principal": principal, **extra})


def repayment_initiated(
    account: str, at: int, payment_id: str, amount: int, *, event_id: str | None = None,
    channel: str = "bank_card", **extra: Any,
) -> dict[str, Any]:
    return _event("repayment.initiated", account, at, event_id,
                  {"payment_id": payment_id, "amount": amount, "channel": channel, **extra})


def repayment_posted(
    account: str, at: int, principal: int, *, interest: int = 0, fee: int = 0,
    payment_id: str | None = None, event_id: str | None = None, loan_id: str = "L1",
    **extra: Any,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"loan_id": loan_id, "principal": principal,
                              "interest": interest, "fee": fee}
    if payment_id is not None:
        fields["payment_id"] = payment_id
    return _event("repayment.posted", account, at, event_id, {**fields, **extra})


def repayment_reversed(
    account: str, at: int, reverses_event_id: str, *, event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return _event("repayment.reversed", account, at, event_id,
                  {"reverses_event_id": reverses_event_id, **extra})


def credit_line(
    account: str, at: int, amount: int, version: int, *, cause: str = "initial",
    event_id: str | None = None, **extra: Any,
) -> dict[str, Any]:
    return _event("credit_line.changed", account, at, event_id,
                  {"credit_line": amount, "version": version, "cause": cause, **extra})


def account_status(
    account: str, at: int, status: str, version: int, *, event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return _event("account.status_changed", account, at, event_id,
                  {"status": status, "version": version, **extra})


def displayed(
    account: str, at: int, available: int | None, *, event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return _event("limit.displayed", account, at, event_id,
                  {"displayed_available": available, **extra})


def line(event: dict[str, Any]) -> bytes:
    """One JSON Lines record (no newline)."""
    return orjson.dumps(event)


def lines(events: Iterable[dict[str, Any] | bytes]) -> list[bytes]:
    """Records as bytes; raw bytes pass through (for bad input)."""
    return [e if isinstance(e, bytes) else line(e) for e in events]


def records(events: Iterable[dict[str, Any] | bytes]) -> list[InputRecord]:
    """Input records with the 0-based index as offset, like a replay file."""
    return [InputRecord(raw, None, None, i) for i, raw in enumerate(lines(events))]


def replay(
    events: Iterable[dict[str, Any] | bytes], *, sla_s: int = 60,
    clearing_sla_s: int = 7200, until: int | None = None, **options: Any,
) -> ReplayResult:
    """Run events through the replay shell; ``until`` is in ms after T0."""
    opts = ReplayOptions(
        core=CoreConfig.from_seconds(sla_s=sla_s, clearing_sla_s=clearing_sla_s),
        until_us=None if until is None else us(until), **options,
    )
    return run_replay(records(events), opts)


def ingest(engine: Engine, event: dict[str, Any]) -> list[Effect]:
    """Parse one event and feed it to an engine; returns its effects."""
    parsed = parse_event(line(event))
    assert isinstance(parsed, Parsed), parsed
    _, effects = engine.ingest(parsed.event, parsed.digest, parsed.occurred_us)
    return effects


def feed(engine: Engine, events: Iterable[dict[str, Any]]) -> list[Effect]:
    """Ingest events in order; returns all their effects."""
    effects: list[Effect] = []
    for event in events:
        effects.extend(ingest(engine, event))
    return effects
