"""The contract's input events (docs/contract.md, "Envelope" and "Input events").

Strict on purpose: money is an integer of minor units (a float or a boolean is an error,
not a coercion), timestamps carry an offset, and only the known types exist. Unknown extra
fields are kept so that a newer producer never loses data passing through us.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, final, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)

from schemas.contract import (
    ACCOUNT_ID_LEN_MAX,
    ACCOUNT_ID_PATTERN,
    ID_LEN_MAX,
    LINE_REASON_LEN_MAX,
    LINE_REASONS_MAX,
    MINOR_UNITS_MAX,
    MODEL_VERSION_LEN_MAX,
    SCHEMA_VERSION,
    STATUS_REASON_LEN_MAX,
    VERSION_MAX,
    AccountStatus,
    Cause,
    Channel,
    DisplaySource,
)
from schemas.timefmt import OCCURRED_BOUNDS_TEXT, check_occurred, parse_rfc3339, to_us

__all__ = [
    "EVENT_MODELS",
    "EVENT_TYPES",
    "AccountStatusChanged",
    "CreditLineChanged",
    "DrawdownBooked",
    "Event",
    "LimitDisplayed",
    "RepaymentInitiated",
    "RepaymentPosted",
    "RepaymentReversed",
    "event_fields",
    "event_type",
    "own_fields",
]


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
            "description": f"UTC time within {OCCURRED_BOUNDS_TEXT}",
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
# The limits and value sets are schemas.contract's, shared with the compiled fast path.
Money = Annotated[StrictInt, Field(ge=0, le=MINOR_UNITS_MAX)]
Version = Annotated[StrictInt, Field(ge=0, le=VERSION_MAX)]
Id = Annotated[StrictStr, Field(min_length=1, max_length=ID_LEN_MAX)]
SchemaVersion = Annotated[
    StrictInt,
    Field(
        ge=SCHEMA_VERSION,
        le=SCHEMA_VERSION,
        description=f"always {SCHEMA_VERSION} in contract v1",
        json_schema_extra={"const": SCHEMA_VERSION},
    ),
]
AccountId = Annotated[
    StrictStr, Field(min_length=1, max_length=ACCOUNT_ID_LEN_MAX, pattern=ACCOUNT_ID_PATTERN)
]


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
    channel: Channel


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
    cause: Cause
    model_version: Annotated[StrictStr, Field(max_length=MODEL_VERSION_LEN_MAX)] | None = None
    score: Score | None = None
    reasons: list[Annotated[StrictStr, Field(max_length=LINE_REASON_LEN_MAX)]] | None = Field(
        default=None, max_length=LINE_REASONS_MAX
    )


@final
class AccountStatusChanged(_Envelope):
    """Freeze, unfreeze or close: a frozen or closed account has nothing available."""

    type: Literal["account.status_changed"]
    status: AccountStatus
    version: Version
    reason: Annotated[StrictStr, Field(max_length=STATUS_REASON_LEN_MAX)] | None = None


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


def event_type(model: type[BaseModel]) -> str:
    """The contract type a model stands for: the one value of its ``type`` literal."""
    (kind,) = get_args(model.model_fields["type"].annotation)
    return str(kind)


def own_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a model beyond the envelope's and ``type``, in declaration order."""
    return tuple(name for name in model.model_fields if name not in _ENVELOPE_FIELDS)


_ENVELOPE_FIELDS = frozenset({"type", *_Envelope.model_fields})
# The models of ``Event``, in its order; and the contract's types, read from them.
EVENT_MODELS: tuple[type[BaseModel], ...] = get_args(get_args(Event)[0])
EVENT_TYPES: tuple[str, ...] = tuple(event_type(model) for model in EVENT_MODELS)


def event_fields(event: BaseModel) -> dict[str, Any]:
    """The event as the contract's JSON object (extras included), for re-publishing."""
    return event.model_dump(mode="json", exclude_none=True)
