"""The contract's records (docs/contract.md) and the one function that parses input."""

from schemas.events import (
    EVENT_TYPES,
    AccountStatusChanged,
    CreditLineChanged,
    DrawdownBooked,
    Event,
    LimitDisplayed,
    RepaymentInitiated,
    RepaymentPosted,
    RepaymentReversed,
)
from schemas.parse import Parsed, Rejected, dead_letter_record, parse_event
from schemas.records import AccountLine, AlertRecord, DeadLetterRecord
from schemas.timefmt import format_us, parse_rfc3339, to_us

__all__ = [
    "EVENT_TYPES",
    "AccountLine",
    "AccountStatusChanged",
    "AlertRecord",
    "CreditLineChanged",
    "DeadLetterRecord",
    "DrawdownBooked",
    "Event",
    "LimitDisplayed",
    "Parsed",
    "Rejected",
    "RepaymentInitiated",
    "RepaymentPosted",
    "RepaymentReversed",
    "dead_letter_record",
    "format_us",
    "parse_event",
    "parse_rfc3339",
    "to_us",
]
