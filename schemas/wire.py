"""A native event as a tuple of plain values, and back: how one process of a replay hands
the events it parsed to another (``limitsync.replay_pipeline``).

The tuple holds a code for the class, then the constructor's arguments in its order, extras
included, so the event built back is equal to the one given, field by field, with one
exception: an ``occurred_at`` pydantic parsed (a datetime, for a record the fast path left to
it) crosses as its RFC 3339 text, as the fast path keeps it, and the event's ``occurred_at``
is the same instant in the same offset. So every value is one ``marshal`` writes (str, int,
float, None, list, dict), and nothing needs pickle, whose recursion limit a deeply nested
extra would reach.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from schemas.native import (
    AccountStatusChanged,
    CreditLineChanged,
    DrawdownBooked,
    Event,
    LimitDisplayed,
    RepaymentInitiated,
    RepaymentPosted,
    RepaymentReversed,
)

__all__ = ["event_of_wire", "wire_of_event"]

# The classes' codes, the most frequent first (each is tested in this order).
_LIMIT_DISPLAYED: Final = 0
_DRAWDOWN_BOOKED: Final = 1
_REPAYMENT_INITIATED: Final = 2
_REPAYMENT_POSTED: Final = 3
_CREDIT_LINE_CHANGED: Final = 4
_ACCOUNT_STATUS_CHANGED: Final = 5
_REPAYMENT_REVERSED: Final = 6


def wire_of_event(e: Event) -> tuple[Any, ...]:
    """The event as (class code, constructor arguments...)."""
    raw = e.occurred_raw
    occurred = raw.isoformat() if isinstance(raw, datetime) else raw
    if type(e) is LimitDisplayed:
        return (
            _LIMIT_DISPLAYED,
            e.event_id,
            e.account_id,
            occurred,
            e.occurred_us,
            e.displayed_available,
            e.cache_version,
            e.source,
            e.extra,
        )
    if type(e) is DrawdownBooked:
        return (
            _DRAWDOWN_BOOKED,
            e.event_id,
            e.account_id,
            occurred,
            e.occurred_us,
            e.loan_id,
            e.principal,
            e.extra,
        )
    if type(e) is RepaymentInitiated:
        return (
            _REPAYMENT_INITIATED,
            e.event_id,
            e.account_id,
            occurred,
            e.occurred_us,
            e.payment_id,
            e.amount,
            e.channel,
            e.extra,
        )
    if type(e) is RepaymentPosted:
        return (
            _REPAYMENT_POSTED,
            e.event_id,
            e.account_id,
            occurred,
            e.occurred_us,
            e.loan_id,
            e.principal,
            e.interest,
            e.fee,
            e.payment_id,
            e.extra,
        )
    if type(e) is CreditLineChanged:
        return (
            _CREDIT_LINE_CHANGED,
            e.event_id,
            e.account_id,
            occurred,
            e.occurred_us,
            e.credit_line,
            e.version,
            e.cause,
            e.model_version,
            e.score,
            e.reasons,
            e.extra,
        )
    if type(e) is AccountStatusChanged:
        return (
            _ACCOUNT_STATUS_CHANGED,
            e.event_id,
            e.account_id,
            occurred,
            e.occurred_us,
            e.status,
            e.version,
            e.reason,
            e.extra,
        )
    assert type(e) is RepaymentReversed
    return (
        _REPAYMENT_REVERSED,
        e.event_id,
        e.account_id,
        occurred,
        e.occurred_us,
        e.reverses_event_id,
        e.extra,
    )


def event_of_wire(w: tuple[Any, ...]) -> Event:
    """The event ``wire_of_event`` gave ``w`` for."""
    code: int = w[0]
    if code == _LIMIT_DISPLAYED:
        return LimitDisplayed(w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8])
    if code == _DRAWDOWN_BOOKED:
        return DrawdownBooked(w[1], w[2], w[3], w[4], w[5], w[6], w[7])
    if code == _REPAYMENT_INITIATED:
        return RepaymentInitiated(w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8])
    if code == _REPAYMENT_POSTED:
        return RepaymentPosted(w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10])
    if code == _CREDIT_LINE_CHANGED:
        return CreditLineChanged(w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11])
    if code == _ACCOUNT_STATUS_CHANGED:
        return AccountStatusChanged(w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8])
    if code == _REPAYMENT_REVERSED:
        return RepaymentReversed(w[1], w[2], w[3], w[4], w[5], w[6])
    raise ValueError(f"no event class has wire code {code}")
