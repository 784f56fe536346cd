"""The one parse function: raw bytes in, a typed event or a readable rejection out.

It never raises on bad input: bad input is data to dead-letter, not a crash. The content
digest is what makes idempotency exact: the same ``event_id`` with the same whole JSON
object (extras included, key order and whitespace ignored) is a duplicate; with a different
object it is a conflict.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas import events
from schemas.events import EVENT_TYPES
from schemas.fastpath import fast_event
from schemas.native import Event, from_model

__all__ = [
    "Parsed",
    "Rejected",
    "conflict_error",
    "content_digest",
    "dead_letter_record",
    "parse_event",
]

_EVENT_ADAPTER: TypeAdapter[events.Event] = TypeAdapter(events.Event)
_ERROR_TEXT_MAX = 500


@dataclass(slots=True, init=False)
class Parsed:
    """A valid event, the digest of its whole JSON object and its ``occurred_at`` in µs.
    The event is the core's native one (``schemas.native``) whichever path built it;
    pydantic's model is what validated it on the slow path. Built per record, so its
    constructor is written out: neither a NamedTuple's nor a dataclass's is compiled."""

    event: Event
    digest: str | bytes  # the content digest, or the record's bytes until it is needed
    occurred_us: int

    def __init__(self, event: Event, digest: str | bytes, occurred_us: int) -> None:
        self.event = event
        self.digest = digest
        self.occurred_us = occurred_us


@dataclass(frozen=True, slots=True)
class Rejected:
    """An invalid record: the error a person can act on, and what ids could be read."""

    error: str
    event_id: str | None = None
    account_id: str | None = None


def parse_event(raw: bytes | str) -> Parsed | Rejected:
    """Parse one record value. Never raises for any input.

    ``Parsed.digest`` is the content digest, or, for a plainly valid record given as bytes,
    those bytes: the digest is computed only if the id comes again or the account's state is
    saved (``content_digest``). Most ids never come again, and hashing was a sixth of replay.
    """
    deferrable = type(raw) is bytes
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as fast_error:
        obj = _load_json_slowly(raw, fast_error)
        deferrable = False  # beyond orjson: its digest may need the standard library
    if type(obj) is dict:
        fast = fast_event(obj)
        if fast is not None:  # the common case: plainly valid, checked without pydantic
            if deferrable and _flat(obj):
                return Parsed(fast[0], raw, fast[1])
            try:
                return Parsed(fast[0], _digest(obj), fast[1])
            except (RecursionError, ValueError):
                pass  # the slow path below says why
    return _parse_slowly(obj)


def _parse_slowly(obj: Any) -> Parsed | Rejected:
    if isinstance(obj, Rejected):
        return obj
    if not isinstance(obj, dict):
        return Rejected(f"record is JSON but not an object (got {type(obj).__name__})")
    event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
    account_id = obj.get("account_id") if isinstance(obj.get("account_id"), str) else None
    kind = obj.get("type")
    if kind not in EVENT_TYPES:
        error = "missing field 'type'" if kind is None else f"unknown type {kind!r}"
        return Rejected(_cut(error), event_id, account_id)
    try:
        event = _EVENT_ADAPTER.validate_python(obj)  # the fast path declined it already
        digest = _digest(obj)
    except ValidationError as exc:
        return Rejected(_describe(exc), event_id, account_id)
    except (RecursionError, ValueError) as exc:
        return Rejected(_cut(f"record cannot be fingerprinted: {exc}"), event_id, account_id)
    native = from_model(event)
    return Parsed(native, digest, native.occurred_us)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _load_json_slowly(raw: bytes | str, fast_error: ValueError) -> Any:
    """orjson refuses integers beyond 64 bits; the standard library tells us what it was.

    Only for UTF-8 text, and without NaN/Infinity, which are not JSON.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return Rejected(_cut(f"not JSON: {fast_error}"))


def content_digest(digest: str | bytes) -> str:
    """The content digest behind a ``Parsed.digest``: itself, or computed now from the bytes
    ``parse_event`` kept instead (a flat object orjson read, so this cannot fail)."""
    if type(digest) is str:
        return digest
    return _digest(orjson.loads(digest))


def _flat(obj: dict[str, Any]) -> bool:
    """No object, and no list holding a container, among the values: such a record can always
    be digested later (orjson writes what it read; only nesting can exceed its depth limit)."""
    for value in obj.values():
        kind = type(value)
        if kind is dict:
            return False
        if kind is list:
            for item in value:
                if type(item) is dict or type(item) is list:
                    return False
    return True


def _digest(obj: dict[str, Any]) -> str:
    """Fingerprint of the whole object; a null field counts as absent (the contract's rule)."""
    if any(v is None for v in obj.values()):  # `None in` compares each value with ==
        obj = {k: v for k, v in obj.items() if v is not None}
    try:
        canonical = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # beyond 64-bit ints, or very deep nesting
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    h = _BLAKE2B_16.copy()  # a copy of a fresh hasher: a fifth cheaper than a new one by keyword
    h.update(canonical)
    return h.hexdigest()


_BLAKE2B_16 = hashlib.blake2b(digest_size=16)  # never updated itself


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err["loc"][1:]) or "record"
        if err["type"] == "missing":
            parts.append(f"missing field {loc!r}")
        else:
            value = repr(err.get("input"))[:60]
            parts.append(f"field {loc!r}: {err['msg']} (got {value})")
    more = len(exc.errors()) - 3
    if more > 0:
        parts.append(f"and {more} more")
    return _cut("; ".join(parts))


def _cut(text: str) -> str:
    return text if len(text) <= _ERROR_TEXT_MAX else text[: _ERROR_TEXT_MAX - 1] + "…"


def conflict_error(event_id: str) -> str:
    """The dead-letter error of a conflict (same id, different content)."""
    return f"conflict: event_id {event_id!r} was seen with other content"


def dead_letter_record(
    raw: bytes | str,
    error: str,
    reason: str,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    event_id: str | None = None,
    account_id: str | None = None,
) -> dict[str, Any]:
    """The contract's dead-letter record; keeps the original bytes exactly (base64)."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    return {
        "reason": reason,
        "error": error,
        "original": data.decode("utf-8", "backslashreplace"),
        "original_b64": base64.b64encode(data).decode("ascii"),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "event_id": event_id,
        "account_id": account_id,
    }
