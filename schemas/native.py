"""The events as the domain core reads them: plain native classes, one per contract type.

The pydantic models in ``schemas.events`` stay the contract's one implementation: they
validate, explain errors and export the JSON Schema. But the core reads a handful of fields
of every record, and on a pydantic model each read is a generic attribute lookup through the
instance ``__dict__``, and building one (even bypassing validation) costs several dicts.
Compiled by mypyc, these classes are C structs: a read is a load at a fixed offset and a
build is one allocation. So every record reaches the core as one of these, built either

- by the fast path, straight from the decoded JSON object, with the checks below (the
  ``checked_*`` builders: pydantic's rules for plainly valid records, ``None`` otherwise), or
- by ``from_model`` from a pydantic model: the slow path (pydantic validated it) and any
  caller that hands the core a model.

The class names are the models' names, so the core's ``type(event) is X`` tests read the
same. A test holds each class's ``FIELDS`` equal to its model's fields, and the fast path's
events equal to ``from_model`` of pydantic's, field by field: the schema cannot drift apart.

No dataclasses: mypyc runs a dataclass's generated ``__init__`` as Python code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Final, TypeGuard, final

from pydantic import BaseModel

from schemas import events as ev
from schemas.timefmt import parse_rfc3339, to_us

__all__ = [
    "AccountStatusChanged",
    "CreditLineChanged",
    "DrawdownBooked",
    "Event",
    "LimitDisplayed",
    "RepaymentInitiated",
    "RepaymentPosted",
    "RepaymentReversed",
    "checked_event",
    "from_model",
]

_ENVELOPE: Final = ("event_id", "type", "account_id", "occurred_at", "schema_version")
# Copied into Final names: mypyc keeps them in C globals (``ev.X`` is a lookup per use).
_MONEY_MAX: Final = ev.MINOR_UNITS_MAX
_VERSION_MAX: Final = 2**63 - 1
_REASON_LEN_MAX: Final = 200
_REASONS_MAX: Final = 16
_MODEL_VERSION_LEN_MAX: Final = 128
_CHANNELS: Final = frozenset({"balance", "bank_card", "auto_debit", "transfer"})
_CAUSES: Final = frozenset({"initial", "rescore", "policy", "manual"})
_STATUSES: Final = frozenset({"active", "frozen", "closed"})


class _Envelope:
    """What every event carries: the contract's envelope, its time in µs, and its extras.

    ``occurred_at`` is kept as it came (the wire text from the fast path, pydantic's datetime
    from a model) and turned into a datetime only when asked: the core reads ``occurred_us``,
    and building a datetime per record was a large share of the fast path.
    """

    # The contract's field names of the event (the model's fields), for tests and repr.
    FIELDS: ClassVar[tuple[str, ...]] = _ENVELOPE

    event_id: str
    account_id: str
    type: str
    schema_version: int
    occurred_us: int
    occurred_raw: str | datetime
    # The unknown fields (kept: the contract's forward compatibility) are read through
    # ``extra``: given as they are (``from_model``), or picked out of the decoded record the
    # fast path keeps in ``_record``, on the first read. Most records of a log carry one
    # (``source``, ``term_months``) and the core reads one only when a breached drift is
    # resolved, so picking them out per record was a large share of the fast path, for nothing.
    _extra: dict[str, Any] | None
    _record: dict[str, Any] | None

    def __init__(
        self,
        kind: str,
        event_id: str,
        account_id: str,
        occurred_raw: str | datetime,
        occurred_us: int,
        extra: dict[str, Any] | None,
    ) -> None:
        self.event_id = event_id
        self.account_id = account_id
        self.type = kind
        self.schema_version = 1
        self.occurred_raw = occurred_raw
        self.occurred_us = occurred_us
        self._extra = extra
        self._record = None

    @property
    def occurred_at(self) -> datetime:
        """The aware datetime pydantic's model holds (same offset), made on demand."""
        raw = self.occurred_raw
        return raw if isinstance(raw, datetime) else parse_rfc3339(raw)

    @property
    def extra(self) -> dict[str, Any] | None:
        """The record's fields its model does not declare, as pydantic's ``model_extra`` holds
        them, or None when there are none."""
        record = self._record
        if record is not None:
            known = _KNOWN_FIELDS[type(self)]
            self._extra = {k: v for k, v in record.items() if k not in known} or None
            self._record = None
        return self._extra

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({shown}, extra={self.extra!r})"


@final
class DrawdownBooked(_Envelope):
    """A loan was drawn: outstanding principal grows."""

    FIELDS: ClassVar[tuple[str, ...]] = (*_ENVELOPE, "loan_id", "principal")

    def __init__(
        self,
        event_id: str,
        account_id: str,
        occurred_raw: str | datetime,
        occurred_us: int,
        loan_id: str,
        principal: int,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__("drawdown.booked", event_id, account_id, occurred_raw, occurred_us, extra)
        self.loan_id = loan_id
        self.principal = principal


@final
class RepaymentInitiated(_Envelope):
    """The user paid; nothing changes until core banking posts it (opens a clearing watch)."""

    FIELDS: ClassVar[tuple[str, ...]] = (*_ENVELOPE, "payment_id", "amount", "channel")

    def __init__(
        self,
        event_id: str,
        account_id: str,
        occurred_raw: str | datetime,
        occurred_us: int,
        payment_id: str,
        amount: int,
        channel: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            "repayment.initiated", event_id, account_id, occurred_raw, occurred_us, extra
        )
        self.payment_id = payment_id
        self.amount = amount
        self.channel = channel


@final
class RepaymentPosted(_Envelope):
    """Core banking posted a repayment: only principal restores the limit."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        *_ENVELOPE, "loan_id", "principal", "interest", "fee", "payment_id"
    )

    def __init__(
        self,
        event_id: str,
        account_id: str,
        occurred_raw: str | datetime,
        occurred_us: int,
        loan_id: str,
        principal: int,
        interest: int,
        fee: int,
        payment_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__("repayment.posted", event_id, account_id, occurred_raw, occurred_us, extra)
        self.loan_id = loan_id
        self.principal = principal
        self.interest = interest
        self.fee = fee
        self.payment_id = payment_id


@final
class RepaymentReversed(_Envelope):
    """A failed debit: undoes the posted repayment with that event id."""

    FIELDS: ClassVar[tuple[str, ...]] = (*_ENVELOPE, "reverses_event_id")

    def __init__(
        self,
        event_id: str,
        account_id: str,
        occurred_raw: str | datetime,
        occurred_us: int,
        reverses_event_id: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            "repayment.reversed", event_id, account_id, occurred_raw, occurred_us, extra
        )
        self.reverses_event_id = reverses_event_id


@final
class CreditLineChanged(_Envelope):
    """The risk engine (or a rescore, policy or manual action) set a new credit line."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        *_ENVELOPE, "credit_line", "version", "cause", "model_version", "score", "reasons"
    )

    def __init__(
        self,
        event_id: str,
        account_id: str,
        occurred_raw: str | datetime,
        occurred_us: int,
        credit_line: int,
        version: int,
        cause: str,
        model_version: str | None = None,
        score: int | float | None = None,
        reasons: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            "credit_line.changed", event_id, account_id, occurred_raw, occurred_us, extra
        )
        self.credit_line = credit_line
        self.version = version
        self.cause = cause
        self.model_version = model_version
        self.score = score
        self.reasons = reasons


@final
class AccountStatusChanged(_Envelope):
    """Freeze, unfreeze or close: a frozen or closed account has nothing available."""

    FIELDS: ClassVar[tuple[str, ...]] = (*_ENVELOPE, "status", "version", "reason")

    def __init__(
        self,
        event_id: str,
        account_id: str,
        occurred_raw: str | datetime,
        occurred_us: int,
        status: str,
        version: int,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            "account.status_changed", event_id, account_id, occurred_raw, occurred_us, extra
        )
        self.status = status
        self.version = version
        self.reason = reason


@final
class LimitDisplayed(_Envelope):
    """An observation of what the user was shown (``source`` app, or None: absent) or what
    the limit cache held (``source`` cache); no ledger effect."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        *_ENVELOPE, "displayed_available", "cache_version", "source"
    )

    def __init__(
        self,
        event_id: str,
        account_id: str,
        occurred_raw: str | datetime,
        occurred_us: int,
        displayed_available: int | None = None,
        cache_version: int | None = None,
        source: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__("limit.displayed", event_id, account_id, occurred_raw, occurred_us, extra)
        self.displayed_available = displayed_available
        self.cache_version = cache_version
        self.source = source


# The most frequent types first: mypyc reads a field of a union by trying its items in order.
Event = (
    LimitDisplayed
    | DrawdownBooked
    | RepaymentInitiated
    | CreditLineChanged
    | RepaymentPosted
    | AccountStatusChanged
    | RepaymentReversed
)

# -- from a pydantic model (the slow path, and callers that hold models) ---------------------


# Which model each native class mirrors: what ``from_model`` takes as native already, and what
# the tests hold equal.
MODEL_OF: Final[dict[type[_Envelope], type[BaseModel]]] = {
    DrawdownBooked: ev.DrawdownBooked,
    RepaymentInitiated: ev.RepaymentInitiated,
    RepaymentPosted: ev.RepaymentPosted,
    RepaymentReversed: ev.RepaymentReversed,
    CreditLineChanged: ev.CreditLineChanged,
    AccountStatusChanged: ev.AccountStatusChanged,
    LimitDisplayed: ev.LimitDisplayed,
}
# Keyed by the model's exact class (they are final).
NATIVE_OF: Final[dict[type, type[_Envelope]]] = {m: c for c, m in MODEL_OF.items()}


def _converted(native: type[_Envelope], model: Any) -> Event:
    """The native event of a model, its fields passed by name: the constructors' parameters
    are the models' field names (a test holds them equal), so one converter serves all."""
    moment = model.occurred_at
    own = {
        name: _unshared(getattr(model, name))
        for name in native.FIELDS
        if name not in _ENVELOPE
    }
    extra: dict[str, Any] | None = model.model_extra
    build: Callable[..., Any] = native  # each class's own constructor, not _Envelope's
    return build(
        event_id=model.event_id,
        account_id=model.account_id,
        occurred_raw=moment,
        occurred_us=to_us(moment),
        extra=dict(extra) if extra else None,
        **own,
    )


def _unshared(value: Any) -> Any:
    """A list field (``reasons``) copied: the event must not share the model's."""
    return list(value) if type(value) is list else value


def from_model(model: object) -> Event:
    """The native event of a pydantic contract model (validated already); a native event is
    returned as it is."""
    kind = type(model)
    if kind in MODEL_OF:  # first: the core calls this on every record, nearly all native
        return model  # type: ignore[return-value]  # one of Event's classes: checked just above
    native = NATIVE_OF.get(kind)
    if native is None:
        raise TypeError(f"not a contract event: {kind.__name__}")
    return _converted(native, model)


# -- from a decoded JSON object (the fast path) ----------------------------------------------
# Each builder applies its model's field rules (schemas/events.py) to the type's own fields:
# the exact JSON types (a bool is not an int, a float is not money), ranges, lengths and
# literals. A record that breaks one is not rejected here: the builder returns None and
# pydantic decides, and says why. The envelope is checked by the caller.


def _id(v: object) -> TypeGuard[str]:
    return type(v) is str and 0 < len(v) <= 128


def _money(v: object) -> TypeGuard[int]:
    return type(v) is int and 0 <= v <= _MONEY_MAX


def _version(v: object) -> TypeGuard[int]:
    return type(v) is int and 0 <= v <= _VERSION_MAX


def _reasons(v: object) -> TypeGuard[list[str]]:
    return (
        type(v) is list
        and len(v) <= _REASONS_MAX
        and all(type(r) is str and len(r) <= _REASON_LEN_MAX for r in v)
    )


# What ``extra`` leaves out of a kept record: the contract's fields of each class.
_KNOWN_FIELDS: Final[dict[type, frozenset[str]]] = {cls: frozenset(cls.FIELDS) for cls in MODEL_OF}


def checked_event(
    kind: str, obj: dict[str, Any], event_id: str, account_id: str, stamp: str, occurred_us: int
) -> Event | None:
    """The native event of a record whose envelope is valid, if its own fields are plainly
    valid; None otherwise (pydantic decides). ``kind`` is the record's ``type``. The event
    keeps ``obj`` to find its extras in, when asked: the caller must not change it."""
    event = _checked(kind, obj, event_id, account_id, stamp, occurred_us)
    if event is not None:
        event._record = obj
    return event


def _checked(
    kind: str, obj: dict[str, Any], event_id: str, account_id: str, stamp: str, occurred_us: int
) -> Event | None:
    if kind == "limit.displayed":
        shown = obj.get("displayed_available")
        cache_version = obj.get("cache_version")
        source = obj.get("source")
        if (shown is not None and not _money(shown)) or (
            cache_version is not None and not _version(cache_version)
        ):
            return None
        if source is not None and source != "app" and source != "cache":
            return None
        return LimitDisplayed(
            event_id,
            account_id,
            stamp,
            occurred_us,
            shown,
            cache_version,
            source,
            None,
        )
    if kind == "drawdown.booked":
        loan_id = obj.get("loan_id")
        principal = obj.get("principal")
        if not (_id(loan_id) and _money(principal)):
            return None
        return DrawdownBooked(
            event_id, account_id, stamp, occurred_us, loan_id, principal, None
        )
    if kind == "repayment.initiated":
        payment_id = obj.get("payment_id")
        amount = obj.get("amount")
        channel = obj.get("channel")
        if not (_id(payment_id) and _money(amount) and type(channel) is str):
            return None
        if channel not in _CHANNELS:
            return None
        return RepaymentInitiated(
            event_id,
            account_id,
            stamp,
            occurred_us,
            payment_id,
            amount,
            channel,
            None,
        )
    if kind == "credit_line.changed":
        return _credit_line(obj, event_id, account_id, stamp, occurred_us)
    if kind == "repayment.posted":
        loan_id = obj.get("loan_id")
        principal = obj.get("principal")
        interest = obj.get("interest")
        fee = obj.get("fee")
        posted_payment = obj.get("payment_id")
        if not (
            _id(loan_id)
            and _money(principal)
            and _money(interest)
            and _money(fee)
            and (posted_payment is None or _id(posted_payment))
        ):
            return None
        return RepaymentPosted(
            event_id,
            account_id,
            stamp,
            occurred_us,
            loan_id,
            principal,
            interest,
            fee,
            posted_payment,
            None,
        )
    if kind == "account.status_changed":
        status = obj.get("status")
        version = obj.get("version")
        reason = obj.get("reason")
        if not (type(status) is str and _version(version)):
            return None
        if status not in _STATUSES or not (
            reason is None or (type(reason) is str and len(reason) <= _REASON_LEN_MAX)
        ):
            return None
        return AccountStatusChanged(
            event_id,
            account_id,
            stamp,
            occurred_us,
            status,
            version,
            reason,
            None,
        )
    if kind == "repayment.reversed":
        target = obj.get("reverses_event_id")
        if not _id(target):
            return None
        return RepaymentReversed(
            event_id, account_id, stamp, occurred_us, target, None
        )
    return None


def _credit_line(
    obj: dict[str, Any], event_id: str, account_id: str, stamp: str, occurred_us: int
) -> CreditLineChanged | None:
    credit_line = obj.get("credit_line")
    version = obj.get("version")
    cause = obj.get("cause")
    model_version = obj.get("model_version")
    score = obj.get("score")
    reasons = obj.get("reasons")
    if not (_money(credit_line) and _version(version) and type(cause) is str):
        return None
    if cause not in _CAUSES:
        return None
    if model_version is not None and not (
        type(model_version) is str and len(model_version) <= _MODEL_VERSION_LEN_MAX
    ):
        return None
    if not (
        score is None or type(score) is int or (type(score) is float and math.isfinite(score))
    ):
        return None
    if reasons is not None:
        if not _reasons(reasons):
            return None
        reasons = list(reasons)  # pydantic builds its own list: the record's is not shared
    return CreditLineChanged(
        event_id,
        account_id,
        stamp,
        occurred_us,
        credit_line,
        version,
        cause,
        model_version,
        score,
        reasons,
        None,
    )
