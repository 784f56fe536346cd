"""The contract's names the simulator writes: record types, statuses, observation sources, and
the fields that hold money (docs/contract.md)."""

from __future__ import annotations

DRAWDOWN = "drawdown.booked"
INITIATED = "repayment.initiated"
POSTED = "repayment.posted"
REVERSED = "repayment.reversed"
LINE = "credit_line.changed"
STATUS = "account.status_changed"
DISPLAY = "limit.displayed"

ACTIVE = "active"
FROZEN = "frozen"

APP = "app"
CACHE = "cache"

# How long a display may lag the expected value before the contract calls it a drift, and how
# long a repayment may stay initiated before it counts as not posted.
SLA_MS = 60_000
CLEARING_SLA_MS = 7_200_000

# The one money field of each type that has one (the field an invalid record corrupts).
MONEY_FIELD = {
    DRAWDOWN: "principal",
    INITIATED: "amount",
    POSTED: "principal",
    LINE: "credit_line",
    DISPLAY: "displayed_available",
}
ENVELOPE_REQUIRED = ("event_id", "type", "account_id", "occurred_at")
REQUIRED_FIELDS = {
    DRAWDOWN: ("loan_id", "principal"),
    INITIATED: ("payment_id", "amount", "channel"),
    POSTED: ("loan_id", "principal", "interest", "fee"),
    REVERSED: ("reverses_event_id",),
    LINE: ("credit_line", "version", "cause"),
    STATUS: ("status", "version"),
    DISPLAY: (),
}
