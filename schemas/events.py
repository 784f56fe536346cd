"""The contract's input events (docs/contract.md, "Envelope" and "Input events").

Strict on purpose: money is an integer of minor units (a float or a boolean is an error,
not a coercion), timestamps carry an offset, and only the known types exist. Unknown extra
fields are kept so that a newer producer never loses data passing through us.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)

from schemas.timefmt import check_occurred, parse_rfc3339, to_us

__all__ = [
    "MINOR_UNITS_MAX",
    "AccountStatusChanged",
    "CreditLineChanged",
    "DisplaySource",
    "DrawdownBooked",
    "Event",
    "LimitDisplayed",
    "RepaymentInitiated",
    "RepaymentPosted",
    "RepaymentReversed",
]

# Ten trillion yuan in fen: larger values are typos or attacks, and they stay in int64.
MINOR_UNITS_MAX = 10**15


def _occurred_at(value: object) -> datetime:
    """An RFC 3339 timestamp with offset whose UTC time is within the contract's bounds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp has no offset")
        check_occurred(to_us(value))
        return value
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be an RFC 3339 string, got {type(value).__name__}")
    moment = parse_rfc3339(value)
    check_occurred(to_us(moment), value)
    return moment


OccurredAt = Annotated[
    datetime,
    PlainValidator(_occurred_at),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "UTC time within 2000-01-01T00:00:00Z .. 2099-12-31T23:59:59.999Z",
        }
    ),
]


def _score(value: object) -> int | float:
    """Any finite JSON number, integer or decimal; a boolean is not a number."""
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return value
    if type(value) is float:
        raise ValueError("score must be a finite number")
    raise ValueError(f"score must be a JSON number, integer or decimal, got {type(value).__name__}")


Score = Annotated[int | float, PlainValidator(_score), WithJsonSchema({"type": "number"})]
Money = Annotated[StrictInt, Field(ge=0, le=MINOR_UNITS_MAX)]
Version = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
Id = Annotated[StrictStr, Field(min_length=1, max_length=128)]
SchemaVersion = Annotated[
    StrictInt,
    Field(ge=1, le=1, description="always 1 in contract v1", json_schema_extra={"const": 1}),
]
AccountId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: Id
    account_id: AccountId
    occurred_at: OccurredAt
    schema_version: SchemaVersion


@final
class DrawdownBooked(_Envelope):
    """A loan was drawn: outstanding principal grows."""

    type: Literal["drawdown.booked"]
    loan_id: Id
    principal: Money


@final
class RepaymentInitiated(_Envelope):
    """The user paid; nothing changes until core banking posts it (opens a clearing watch)."""

    type: Literal["repayment.initiated"]
    payment_id: Id
    amount: Money
    channel: Literal["balance", "bank_card", "auto_debit", "transfer"]


@final
class RepaymentPosted(_Envelope):
    """Core banking posted a repayment: only principal restores the limit."""

    type: Literal["repayment.posted"]
    loan_id: Id
    principal: Money
    interest: Money
    fee: Money
    payment_id: Id | None = None


@final
class RepaymentReversed(_Envelope):
    """A failed debit: undoes the posted repayment with that event id."""

    type: Literal["repayment.reversed"]
    reverses_event_id: Id


@final
class CreditLineChanged(_Envelope):
    """The risk engine (or a rescore, policy or manual action) set a new credit line."""

    type: Literal["credit_line.changed"]
    credit_line: Money
    version: Version
    cause: Literal["initial", "rescore", "policy", "manual"]
    model_version: Annotated[StrictStr, Field(max_length=128)] | None = None
    score: Score | None = None
    reasons: list[Annotated[StrictStr, Field(max_length=200)]] | None = Field(
        default=None, max_length=16
    )


@final
class AccountStatusChanged(_Envelope):
    """Freeze, unfreeze or close: a frozen or closed account has nothing available."""

    type: Literal["account.status_changed"]
    status: Literal["active", "frozen", "closed"]
    version: Version
    reason: Annotated[StrictStr, Field(max_length=200)] | None = None


DisplaySource = Literal["app", "cache"]


@final
class LimitDisplayed(_Envelope):
    """An observation of what the user was shown (``source`` app, the default when absent)
    or what the limit cache held (``source`` cache); no ledger effect."""

    type: Literal["limit.displayed"]
    displayed_available: Money | None = None
    cache_version: Version | None = None
    source: DisplaySource | None = None


Event = Annotated[
    DrawdownBooked
    | RepaymentInitiated
    | RepaymentPosted
    | RepaymentReversed
    | CreditLineChanged
    | AccountStatusChanged
    | LimitDisplayed,
    Field(discriminator="type"),
]

EVENT_TYPES: tuple[str, ...] = (
    "drawdown.booked",
    "repayment.initiated",
    "repayment.posted",
    "repayment.reversed",
    "credit_line.changed",
    "account.status_changed",
    "limit.displayed",
)


def event_fields(event: BaseModel) -> dict[str, Any]:
    """The event as the contract's JSON object (extras included), for re-publishing."""
    return event.model_dump(mode="json", exclude_none=True)
