"""The events as the domain core reads them: plain native classes, one per contract type.

The pydantic models in ``schemas.events`` stay the contract's one implementation: they
validate, explain errors and export the JSON Schema. But the core reads a handful of fields
of every record, and on a pydantic model each read is a generic attribute lookup through the
instance ``__dict__``, and building one (even bypassing validation) costs several dicts.
Compiled by mypyc, these classes are C structs: a read is a load at a fixed offset and a
build is one allocation. So every record reaches the core as one of these, built either

- by the fast path, straight from the decoded JSON object, with the checks below (each class's
  ``_checked_*`` builder, right after it: pydantic's rules for plainly valid records, ``None``
  otherwise), or
- by ``from_model`` from a pydantic model: the slow path (pydantic validated it) and any
  caller that hands the core a model.

What can be read from the models is: each class's type name and ``FIELDS``, and the limits and
value sets the builders check (``schemas.contract``, which the models are built from). What
cannot is code, a constructor and a builder per class: tests hold each constructor's
parameters equal to its model's fields, and each builder's verdicts equal to pydantic's at
every bound the model's metadata states (tests/test_contract.py), and the fast path's events
equal to ``from_model`` of pydantic's, field by field.

The class names are the models' names, so the core's ``type(event) is X`` tests read the
same. No dataclasses: mypyc runs a dataclass's generated ``__init__`` as Python code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Final, TypeGuard, final

from pydantic import BaseModel

from schemas import contract
from schemas import events as ev
from schemas.contract import (
    ID_LEN_MAX,
    LINE_REASON_LEN_MAX,
    LINE_REASONS_MAX,
    MINOR_UNITS_MAX,
    MODEL_VERSION_LEN_MAX,
    SCHEMA_VERSION,
    STATUS_REASON_LEN_MAX,
    VERSION_MAX,
)
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

# The contract's value sets and type names, copied into Final names: mypyc keeps them in C
# globals, where ``contract.X`` would be a lookup per use. Its numbers are used as imported:
# mypyc inlines a Final number of another module into the code, as if written there.
# Each value of a value set as one shared string: what a parsed record's field is replaced
# with once checked, so that the strings a replay keeps (in explained changes) are not one each.
_CHANNELS: Final[dict[str, str]] = {v: v for v in contract.CHANNELS}
_CAUSES: Final[dict[str, str]] = {v: v for v in contract.CAUSES}
_STATUSES: Final[dict[str, str]] = {v: v for v in contract.STATUSES}
# A tuple: most observations carry a source, and comparing it with two strings costs less
# than hashing it for a set (callgrind: the set took 0.35% more instructions per parse).
_DISPLAY_SOURCES: Final = tuple(sorted(contract.DISPLAY_SOURCES))
_DRAWDOWN_BOOKED: Final = ev.event_type(ev.DrawdownBooked)
_REPAYMENT_INITIATED: Final = ev.event_type(ev.RepaymentInitiated)
_REPAYMENT_POSTED: Final = ev.event_type(ev.RepaymentPosted)
_REPAYMENT_REVERSED: Final = ev.event_type(ev.RepaymentReversed)
_CREDIT_LINE_CHANGED: Final = ev.event_type(ev.CreditLineChanged)
_ACCOUNT_STATUS_CHANGED: Final = ev.event_type(ev.AccountStatusChanged)
_LIMIT_DISPLAYED: Final = ev.event_type(ev.LimitDisplayed)


class _Envelope:
    """What every event carries: the contract's envelope, its time in µs, and its extras.

    ``occurred_at`` is kept as it came (the wire text from the fast path, pydantic's datetime
    from a model) and turned into a datetime only when asked: the core reads ``occurred_us``,
    and building a datetime per record was a large share of the fast path.
    """

    # The contract's field names of the event: its model's fields, in the model's order (for
    # ``extra``, ``from_model``, tests and repr).
    FIELDS: ClassVar[tuple[str, ...]] = ()

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
        self.schema_version = SCHEMA_VERSION  # the only one: checked before
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


# Each class is followed by its fast-path builder, which applies its model's field rules
# (schemas/events.py) to the type's own fields: the exact JSON types (a bool is not an int, a
# float is not money), ranges, lengths and literals. A record that breaks one is not rejected
# there: the builder returns None and pydantic decides, and says why. The envelope is checked
# by the caller (``schemas.fastpath``), and ``checked_event`` (at the end) picks the builder.


@final
class DrawdownBooked(_Envelope):
    """A loan was drawn: outstanding principal grows."""

    FIELDS: ClassVar[tuple[str, ...]] = tuple(ev.DrawdownBooked.model_fields)

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
        super().__init__(_DRAWDOWN_BOOKED, event_id, account_id, occurred_raw, occurred_us, extra)
        self.loan_id = loan_id
        self.principal = principal


def _checked_drawdown_booked(
    obj: dict[str, Any], event_id: str, account_id: str, stamp: str, occurred_us: int
) -> DrawdownBooked | None:
    loan_id = obj.get("loan_id")
    principal = obj.get("principal")
    if not (_id(loan_id) and _money(principal)):
        return None
    return DrawdownBooked(event_id, account_id, stamp, occurred_us, loan_id, principal, None)


@final
class RepaymentInitiated(_Envelope):
    """The user paid; nothing changes until core banking posts it (opens a clearing watch)."""

    FIELDS: ClassVar[tuple[str, ...]] = tuple(ev.RepaymentInitiated.model_fields)

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
            _REPAYMENT_INITIATED, event_id, account_id, occurred_raw, occurred_us, extra
        )
        self.payment_id = payment_id
        self.amount = amount
        self.channel = channel


def _checked_repayment_initiated(
    obj: dict[str, Any], event_id: str, account_id: str, stamp: str, occurred_us: int
) -> RepaymentInitiated | None:
    payment_id = obj.get("payment_id")
    amount = obj.get("amount")
    channel = obj.get("channel")
    if not (_id(payment_id) and _money(amount) and type(channel) is str):
        return None
    channel = _CHANNELS.get(channel)
    if channel is None:
        return None
    return RepaymentInitiated(
        event_id, account_id, stamp, occurred_us, payment_id, amount, channel, None
    )


@final
class RepaymentPosted(_Envelope):
    """Core banking posted a repayment: only principal restores the limit."""

    FIELDS: ClassVar[tuple[str, ...]] = tuple(ev.RepaymentPosted.model_fields)

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
        super().__init__(_REPAYMENT_POSTED, event_id, account_id, occurred_raw, occurred_us, extra)
        self.loan_id = loan_id
        self.principal = principal
        self.interest = interest
        self.fee = fee
        self.payment_id = payment_id


def _checked_repayment_posted(
    obj: dict[str, Any], event_id: str, account_id: str, stamp: str, occurred_us: int
) -> RepaymentPosted | None:
    loan_id = obj.get("loan_id")
    principal = obj.get("principal")
    interest = obj.get("interest")
    fee = obj.get("fee")
    payment_id = obj.get("payment_id")
    if not (
        _id(loan_id)
        and _money(principal)
        and _money(interest)
        and _money(fee)
        and (payment_id is None or _id(payment_id))
    ):
        return None
    return RepaymentPosted(
        event_id, account_id, stamp, occurred_us, loan_id, principal, interest, fee, payment_id,
        None,
    )


@final
class RepaymentReversed(_Envelope):
    """A failed debit: undoes the posted repayment with that event id."""

    FIELDS: ClassVar[tuple[str, ...]] = tuple(ev.RepaymentReversed.model_fields)

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
            _REPAYMENT_REVERSED, event_id, account_id, occurred_raw, occurred_us, extra
        )
        self.reverses_event_id = reverses_event_id


def _checked_repayment_reversed(
    obj: dict[str, Any], event_id: str, account_id: str, stamp: str, occurred_us: int
) -> RepaymentReversed | None:
    target = obj.get("reverses_event_id")
    if not _id(target):
        return None
    return RepaymentReversed(event_id, account_id, stamp, occurred_us, target, None)


@final
class CreditLineChanged(_Envelope):
    """The risk engine (or a rescore, policy or manual action) set a new credit line."""

    FIELDS: ClassVar[tuple[str, ...]] = tuple(ev.CreditLineChanged.model_fields)

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
            _CREDIT_LINE_CHANGED, event_id, account_id, occurred_raw, occurred_us, extra
        )
        self.credit_line = credit_line
        self.version = version
        self.cause = cause
        self.model_version = model_version
        self.score = score
        self.reasons = reasons


def _checked_credit_line_changed(
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
    cause = _CAUSES.get(cause)
    if cause is None:
        return None
    if model_version is not None and not _text(model_version, MODEL_VERSION_LEN_MAX):
        return None
    if not (
        score is None or type(score) is int or (type(score) is float and math.isfinite(score))
    ):
        return None
    if reasons is not None:
        if not _line_reasons(reasons):
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


@final
class AccountStatusChanged(_Envelope):
    """Freeze, unfreeze or close: a frozen or closed account has nothing available."""

    FIELDS: ClassVar[tuple[str, ...]] = tuple(ev.AccountStatusChanged.model_fields)

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
            _ACCOUNT_STATUS_CHANGED, event_id, account_id, occurred_raw, occurred_us, extra
        )
        self.status = status
        self.version = version
        self.reason = reason


def _checked_account_status_changed(
    obj: dict[str, Any], event_id: str, account_id: str, stamp: str, occurred_us: int
) -> AccountStatusChanged | None:
    status = obj.get("status")
    version = obj.get("version")
    reason = obj.get("reason")
    if not (type(status) is str and _version(version)):
        return None
    status = _STATUSES.get(status)
    if status is None or not (reason is None or _text(reason, STATUS_REASON_LEN_MAX)):
        return None
    return AccountStatusChanged(
        event_id, account_id, stamp, occurred_us, status, version, reason, None
    )


@final
class LimitDisplayed(_Envelope):
    """An observation of what the user was shown (``source`` app, or None: absent) or what
    the limit cache held (``source`` cache); no ledger effect."""

    FIELDS: ClassVar[tuple[str, ...]] = tuple(ev.LimitDisplayed.model_fields)

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
        super().__init__(_LIMIT_DISPLAYED, event_id, account_id, occurred_raw, occurred_us, extra)
        self.displayed_available = displayed_available
        self.cache_version = cache_version
        self.source = source


def _checked_limit_displayed(
    obj: dict[str, Any], event_id: str, account_id: str, stamp: str, occurred_us: int
) -> LimitDisplayed | None:
    shown = obj.get("displayed_available")
    cache_version = obj.get("cache_version")
    source = obj.get("source")
    if (shown is not None and not _money(shown)) or (
        cache_version is not None and not _version(cache_version)
    ):
        return None
    if source is not None and source not in _DISPLAY_SOURCES:
        return None
    return LimitDisplayed(
        event_id, account_id, stamp, occurred_us, shown, cache_version, source, None
    )


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
# What ``extra`` leaves out of a kept record: the contract's fields of each class.
_KNOWN_FIELDS: Final[dict[type, frozenset[str]]] = {cls: frozenset(cls.FIELDS) for cls in MODEL_OF}
# The fields each constructor takes by name beyond the envelope's (``from_model``).
_OWN_FIELDS: Final[dict[type, tuple[str, ...]]] = {
    cls: ev.own_fields(model) for cls, model in MODEL_OF.items()
}


def _converted(native: type[_Envelope], model: Any) -> Event:
    """The native event of a model, its fields passed by name: the constructors' parameters
    are the models' field names (a test holds them equal), so one converter serves all."""
    moment = model.occurred_at
    own = {name: _unshared(getattr(model, name)) for name in _OWN_FIELDS[native]}
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
# The checks the builders share, one per type of field in the models.


def _id(v: object) -> TypeGuard[str]:
    return type(v) is str and 0 < len(v) <= ID_LEN_MAX


def _money(v: object) -> TypeGuard[int]:
    return type(v) is int and 0 <= v <= MINOR_UNITS_MAX


def _version(v: object) -> TypeGuard[int]:
    return type(v) is int and 0 <= v <= VERSION_MAX


def _text(v: object, longest: int) -> TypeGuard[str]:
    return type(v) is str and len(v) <= longest


def _line_reasons(v: object) -> TypeGuard[list[str]]:
    return (
        type(v) is list
        and len(v) <= LINE_REASONS_MAX
        and all(type(r) is str and len(r) <= LINE_REASON_LEN_MAX for r in v)
    )


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
    """The builder of ``kind``, asked in the order of the types' frequency in a log; None for
    an unknown type. Direct calls, not a dict of builders: a compiled call through a Python
    object costs more than the few string comparisons."""
    if kind == _LIMIT_DISPLAYED:
        return _checked_limit_displayed(obj, event_id, account_id, stamp, occurred_us)
    if kind == _DRAWDOWN_BOOKED:
        return _checked_drawdown_booked(obj, event_id, account_id, stamp, occurred_us)
    if kind == _REPAYMENT_INITIATED:
        return _checked_repayment_initiated(obj, event_id, account_id, stamp, occurred_us)
    if kind == _CREDIT_LINE_CHANGED:
        return _checked_credit_line_changed(obj, event_id, account_id, stamp, occurred_us)
    if kind == _REPAYMENT_POSTED:
        return _checked_repayment_posted(obj, event_id, account_id, stamp, occurred_us)
    if kind == _ACCOUNT_STATUS_CHANGED:
        return _checked_account_status_changed(obj, event_id, account_id, stamp, occurred_us)
    if kind == _REPAYMENT_REVERSED:
        return _checked_repayment_reversed(obj, event_id, account_id, stamp, occurred_us)
    return None
