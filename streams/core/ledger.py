"""Ledger rules: how each input event changes an account (docs/contract.md, "Input events").

Every rule is order-free: sums for principal, highest version for line and status, and a
reversal that may arrive before or after the repayment it undoes. That is what lets a
replay of the same events in any order end in the same state.
"""

from __future__ import annotations

from typing import Any

from schemas.native import (
    AccountStatusChanged,
    CreditLineChanged,
    DrawdownBooked,
    RepaymentPosted,
    RepaymentReversed,
)
from streams.core.errors import InvariantViolation
from streams.core.state import AccountState, ChangeEntry

__all__ = ["LedgerEvent", "apply_ledger", "yuan"]

LedgerEvent = (
    DrawdownBooked | RepaymentPosted | RepaymentReversed | CreditLineChanged | AccountStatusChanged
)
REASONS_MAX = 4  # adverse-action practice: at most four specific reasons
Entry = tuple[str, tuple[Any, ...], list[str]]


def yuan(minor: int) -> str:
    """Minor units as a decimal string, by integer arithmetic."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def apply_ledger(
    state: AccountState, event: LedgerEvent, at_us: int, keep_us: int
) -> list[ChangeEntry]:
    """Apply one ledger event; return the explained changes (empty when nothing changed).

    Bumps the cache version exactly when the account's ledger state changed. ``keep_us`` is
    when what a later reversal needs of this event starts to age (the later of its event
    time and the clock at ingestion).
    """
    before = state.expected_available
    entries: list[tuple[str, tuple[Any, ...], list[str]]]
    if type(event) is DrawdownBooked:
        entries = _drawdown(state, event)
    elif type(event) is RepaymentPosted:
        entries = _posted(state, event, keep_us)
    elif type(event) is RepaymentReversed:
        entries = _reversed(state, event, keep_us)
    elif type(event) is CreditLineChanged:
        entries = _credit_line(state, event)
    else:
        entries = _status(state, event)
    if not entries:
        return []
    _check_invariants(state)
    state.version += 1
    state.last_change_us = at_us
    if state.first_us is None or at_us < state.first_us:
        state.first_us = at_us
    after = state.expected_available
    # Only the first entry of an event moves the limit; the rest (interest) explain it.
    return [
        ChangeEntry(at_us, event.event_id, code, before if i == 0 else after, after, facts, reasons)
        for i, (code, facts, reasons) in enumerate(entries)
    ]


def _drawdown(state: AccountState, event: DrawdownBooked) -> list[Entry]:
    state.drawn += event.principal
    state.drawdowns += 1
    return [("DRAWDOWN", (event.principal, event.loan_id), [])]


def _posted(state: AccountState, event: RepaymentPosted, keep_us: int) -> list[Entry]:
    if event.event_id in state.posted:
        # The same posting again after its id left the dedupe memory (the posting itself is
        # kept longer, for reversals): money moves once.
        return []
    # A reversal that came first stays remembered until it expires (a store of write-once
    # facts): the posting is reversed from the start.
    reversed_already = event.event_id in state.orphan_reversals
    state.posted[event.event_id] = [
        event.principal,
        keep_us,
        reversed_already,
        event.payment_id or "",
    ]
    if event.payment_id is not None:
        state.posted_payments[event.payment_id] = keep_us
    if reversed_already:
        return [("REPAYMENT_REVERSED", (event.principal, "late"), [])]
    state.repaid += event.principal
    state.repayments += 1
    entries: list[Entry] = [("REPAYMENT_RESTORED", (event.principal,), [])]
    if event.interest or event.fee:
        entries.append(("INTEREST_NOT_RESTORED", (event.interest, event.fee), []))
    return entries


def _reversed(state: AccountState, event: RepaymentReversed, keep_us: int) -> list[Entry]:
    target = event.reverses_event_id
    posted = state.posted.get(target)
    if posted is None:
        # The repayment has not arrived (or never will): remember, change nothing yet.
        state.orphan_reversals.setdefault(target, [event.event_id, keep_us])
        return []
    if posted[2]:
        return []  # a second reversal of the same repayment changes nothing
    posted[2] = True
    state.repaid -= posted[0]
    state.failed_debits += 1
    return [("REPAYMENT_REVERSED", (posted[0], "undone"), [])]


def _credit_line(state: AccountState, event: CreditLineChanged) -> list[Entry]:
    if state.line_version is not None and event.version <= state.line_version:
        return []  # an older decision arriving late
    old = state.credit_line
    state.credit_line = event.credit_line
    state.line_version = event.version
    if state.rescore_requested_us is not None and event.cause == "rescore":
        state.rescore_requested_us = None
    delta = event.credit_line - old
    reasons = list(event.reasons or [])[:REASONS_MAX] if delta < 0 else []
    facts = (old, event.credit_line, event.cause, event.model_version or "")
    if event.cause == "rescore":
        code = "RESCORE_DECREASE" if delta < 0 else "RESCORE_INCREASE"
    else:
        code = "POLICY_CHANGE"
    return [(code, facts, reasons)]


def _status(state: AccountState, event: AccountStatusChanged) -> list[Entry]:
    if state.status_version is not None and event.version <= state.status_version:
        return []
    old = state.status
    state.status = event.status
    state.status_version = event.version
    facts = (old, event.status, event.reason or "")
    if event.status != "active" and old == "active":
        return [("ACCOUNT_FROZEN", facts, [])]
    if event.status == "active" and old != "active":
        return [("ACCOUNT_UNFROZEN", facts, [])]
    return [("POLICY_CHANGE", facts, [])]


def _check_invariants(state: AccountState) -> None:
    """Checks that survive ``python -O``: broken money must stop, not propagate."""
    if state.drawn < 0 or state.repaid < 0:
        raise InvariantViolation(
            f"{state.account_id}: negative sums (drawn={state.drawn}, repaid={state.repaid})"
        )
    if state.credit_line < 0:
        raise InvariantViolation(f"{state.account_id}: negative credit line")
