"""The one parse function: raw bytes in, a typed event or a readable rejection out.

It never raises on bad input: bad input is data to dead-letter, not a crash. The content
digest is what makes idempotency exact: the same ``event_id`` with the same whole JSON
object (extras included, key order and whitespace ignored) is a duplicate; with a different
object it is a conflict.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas import events
from schemas.contract import ACCOUNT_ID_LEN_MAX, ID_LEN_MAX, MAX_FUTURE_SKEW_S
from schemas.events import EVENT_TYPES
from schemas.fastpath import fast_event
from schemas.native import Event, from_model
from schemas.timefmt import format_us

__all__ = [
    "DEAD_LETTER_MAX_BYTES",
    "MAX_FUTURE_SKEW_S",
    "ORIGINAL_KEPT_BYTES",
    "TOMBSTONE_ERROR",
    "InputRecord",
    "Parsed",
    "Rejected",
    "conflict_error",
    "content_digest",
    "dead_letter_record",
    "future_timestamp_error",
    "load_record",
    "parse_event",
    "parse_event_digested",
    "parse_event_for_replay",
    "parse_loaded_for_replay",
]

_EVENT_ADAPTER: TypeAdapter[events.Event] = TypeAdapter(events.Event)
_ERROR_TEXT_MAX = 500
# The error of a Kafka record whose value is null: no event, invalid (docs/contract.md, "Envelope").
TOMBSTONE_ERROR: Final = "tombstone: the record value is null"


@dataclass(slots=True, init=False)
class Parsed:
    """A valid event, the digest of its whole JSON object and its ``occurred_at`` in µs.
    The event is the core's native one (``schemas.native``) whichever path built it;
    pydantic's model is what validated it on the slow path. Built per record, so its
    constructor is written out: neither a NamedTuple's nor a dataclass's is compiled."""

    event: Event
    digest: str | int  # the content digest, in hex or as the number it spells (compact)
    occurred_us: int

    def __init__(self, event: Event, digest: str | int, occurred_us: int) -> None:
        self.event = event
        self.digest = digest
        self.occurred_us = occurred_us


@dataclass(slots=True, init=False)
class InputRecord:
    """One record of a log as read, and where it came from (what its dead letter names). The
    record type of every replay input: files, archive segments, Kafka. Built per line: a
    written-out constructor, as neither a NamedTuple's nor a dataclass's is compiled. The
    value of a Kafka tombstone is None (the parser rejects it)."""

    value: bytes | None
    topic: str | None
    partition: int | None
    offset: int | None

    def __init__(
        self,
        value: bytes | None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.value = value
        self.topic = topic
        self.partition = partition
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Rejected:
    """An invalid record: the error a person can act on, and what ids could be read."""

    error: str
    event_id: str | None = None
    account_id: str | None = None


def parse_event(raw: bytes | str | None) -> Parsed | Rejected:
    """Parse one record value. Never raises for any input; None (a Kafka record whose value
    is null, a tombstone) is rejected.

    ``Parsed.digest`` is the content digest as the 128-bit number its hex spells, for a
    plainly valid record: a replay remembers every id inside the dedupe horizon, and the
    number takes 44 bytes where the hex takes 81 and the record's bytes several hundred.
    ``content_digest`` gives its hex, so remembered numbers save and compare as digests.
    """
    return _parse(raw, _NUMBER)


def parse_event_digested(raw: bytes | str | None) -> Parsed | Rejected:
    """``parse_event`` with the content digest in hex: for a live worker, which stores the
    digest of every id it applies with the batch."""
    return _parse(raw, _HEX)


def parse_event_for_replay(raw: bytes | str | None) -> Parsed | Rejected:
    """``parse_event`` with a fingerprint that lives only as long as this process: Python's
    hash of the content's canonical bytes (non-negative), for a replay, whose id table keeps
    62 bits of a digest and dies with it (streams/core/ids.py). Cheaper than the BLAKE2b
    digest, which a digest saved or compared across processes needs."""
    return _parse(raw, _PROCESS_HASH)


_NUMBER: Final = 0
_HEX: Final = 1
_PROCESS_HASH: Final = 2


def load_record(raw: bytes | str | None) -> Any:
    """A record's JSON as ``parse_event_for_replay`` reads it, or the ``Rejected`` of one that
    is not JSON (a tombstone, a lone surrogate...): what a sharded replay reads of every record
    to find the account it belongs to, before the shard that holds the account parses it
    (``parse_loaded_for_replay``)."""
    if raw is None:
        return Rejected(TOMBSTONE_ERROR)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as fast_error:
        return _load_json_slowly(raw, fast_error)


def parse_loaded_for_replay(obj: Any) -> Parsed | Rejected:
    """``parse_event_for_replay`` of a record whose JSON ``load_record`` read."""
    return _parse_loaded(obj, _PROCESS_HASH)


def _parse(raw: bytes | str | None, digests: int) -> Parsed | Rejected:
    return _parse_loaded(load_record(raw), digests)


def _parse_loaded(obj: Any, digests: int) -> Parsed | Rejected:
    if type(obj) is dict:
        fast = fast_event(obj)
        if fast is not None:  # the common case: plainly valid, checked without pydantic
            try:
                digest = _fingerprint(obj, digests)
            except (RecursionError, ValueError):
                pass  # the slow path below says why
            else:
                return Parsed(fast[0], digest, fast[1])
    return _parse_slowly(obj, digests)


def _fingerprint(obj: dict[str, Any], digests: int) -> str | int:
    if digests == _PROCESS_HASH:
        return hash(_canonical(obj)) & _HASH_BITS
    return _digest_number(obj) if digests == _NUMBER else _digest(obj)


_HASH_BITS: Final = (1 << 63) - 1


def _parse_slowly(obj: Any, digests: int = _NUMBER) -> Parsed | Rejected:
    if isinstance(obj, Rejected):
        return obj
    if not isinstance(obj, dict):
        return Rejected(f"record is JSON but not an object (got {type(obj).__name__})")
    event_id, account_id = _readable_ids(obj)
    kind = obj.get("type")
    if kind not in EVENT_TYPES:
        error = "missing field 'type'" if kind is None else f"unknown type {kind!r}"
        return Rejected(_cut(error), event_id, account_id)
    try:
        event = _EVENT_ADAPTER.validate_python(obj)  # the fast path declined it already
        digest = _fingerprint(obj, digests) if digests == _PROCESS_HASH else _digest(obj)
    except ValidationError as exc:
        return Rejected(_describe(exc), event_id, account_id)
    except (RecursionError, ValueError) as exc:
        return Rejected(_cut(f"record cannot be fingerprinted: {exc}"), event_id, account_id)
    native = from_model(event)
    return Parsed(native, digest, native.occurred_us)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _load_json_slowly(raw: bytes | str, fast_error: ValueError) -> Any:
    """What orjson refused, read by the standard library, which tells us what it was.

    Only for UTF-8 text, and without NaN/Infinity, which are not JSON. The standard library
    also reads a lone surrogate (``"\\ud800"`` with no pair, or one in a ``str`` given
    here), which orjson refuses: a record holding one is invalid (it could not be written out
    again as UTF-8), said here with where it is. The fast path never sees one.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return Rejected(_cut(f"not JSON: {fast_error}"))
    where = _lone_surrogate(obj)
    if where is not None:
        ids = _readable_ids(obj) if type(obj) is dict else (None, None)
        return Rejected(
            _cut(f"{where} holds a lone surrogate (a \\ud800-style escape with no pair)"), *ids
        )
    return obj


# A raw pattern: the regular expression reads the escapes (no surrogate in this source).
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")


def _lone_surrogate(obj: Any) -> str | None:
    """Where the first string holding a surrogate is, keys included, at any depth; or None.
    A decoded string holds one only unpaired: the decoder joins an escaped pair into one
    character."""
    pending: list[tuple[Any, str]] = [(obj, "")]
    while pending:
        value, path = pending.pop()
        kind = type(value)
        if kind is str:
            if _SURROGATE.search(value):
                return f"field {path!r}" if path else "the record"
        elif kind is dict:
            for key, item in value.items():
                if _SURROGATE.search(key):
                    where = f"field {path!r}" if path else "the record"
                    return f"a key of {where} ({key[:40]!r})"
                pending.append((item, f"{path}.{key}" if path else key))
        elif kind is list:
            for index, item in enumerate(value):
                pending.append((item, f"{path}[{index}]"))
    return None


def _readable_ids(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """The record's ``event_id`` and ``account_id`` where they are strings of the contract's
    lengths without a lone surrogate: a rejection carries them into its dead letter, which
    must stay small and writable."""
    return _bounded_id(obj.get("event_id"), ID_LEN_MAX), _bounded_id(
        obj.get("account_id"), ACCOUNT_ID_LEN_MAX
    )


def _bounded_id(value: object, longest: int) -> str | None:
    if type(value) is str and 0 < len(value) <= longest and not _SURROGATE.search(value):
        return value
    return None


def content_digest(digest: str | int) -> str:
    """The content digest behind a ``Parsed.digest``, in hex (the form saved state holds)."""
    if type(digest) is str:
        return digest
    return format(digest, "032x")


def _canonical(obj: dict[str, Any]) -> bytes:
    """The whole object with sorted keys; a null field counts as absent (the contract's rule)."""
    if any(v is None for v in obj.values()):  # `None in` compares each value with ==
        obj = {k: v for k, v in obj.items() if v is not None}
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # beyond 64-bit ints, or very deep nesting
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _digest(obj: dict[str, Any]) -> str:
    """Fingerprint of the whole object, in hex."""
    h = _BLAKE2B_16.copy()  # a copy of a fresh hasher: a fifth cheaper than a new one by keyword
    h.update(_canonical(obj))
    return h.hexdigest()


def _digest_number(obj: dict[str, Any]) -> int:
    """The same fingerprint as the number its hex spells."""
    h = _BLAKE2B_16.copy()
    h.update(_canonical(obj))
    return int.from_bytes(h.digest())


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


def future_timestamp_error(occurred_us: int, now_us: int, max_future_skew_us: int) -> str | None:
    """The contract's future-timestamp rule: the dead-letter error (reason
    ``future_timestamp``) of a valid record whose ``occurred_at`` is more than
    ``max_future_skew_us`` ahead of the clock ``now_us``, saying by how much; None when it may
    be applied. Live workers apply it with their wall clock; a replay only when given --now."""
    ahead = occurred_us - now_us
    if ahead <= max_future_skew_us:
        return None
    return (
        f"future_timestamp: occurred_at {format_us(occurred_us)} is {_seconds(ahead)} s ahead "
        f"of the clock ({format_us(now_us)}), more than the {_seconds(max_future_skew_us)} s "
        "allowed"
    )


def _seconds(us: int) -> str:
    """Microseconds as exact decimal seconds: 301000000 -> "301", 300000001 -> "300.000001"."""
    whole, fraction = divmod(us, 1_000_000)
    return f"{whole}.{fraction:06d}".rstrip("0").rstrip(".")


# docs/contract.md, "Bad input": a dead letter never exceeds 256 KB written out; a longer original
# keeps its first 64 KB, its length and its SHA-256.
DEAD_LETTER_MAX_BYTES: Final = 256 * 1024
ORIGINAL_KEPT_BYTES: Final = 64 * 1024
# The other fields are bounded too, so that the original always has room: an error of at most
# 1,000 characters, a topic of at most 255 (Kafka's limit is 249), ids within the contract's
# lengths. Written out, a character takes at most 6 bytes (a control character, \u0000).
_ERROR_MAX: Final = 1000
_TOPIC_MAX: Final = 255
# An original this short always fits whole: 6 bytes of text and 4/3 of base64 a byte, plus at
# most ~10 KB for the other fields, stay far below the bound; only longer ones are measured.
_ALWAYS_FITS: Final = 16 * 1024


def dead_letter_record(
    raw: bytes | str | None,
    error: str,
    reason: str,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    event_id: str | None = None,
    account_id: str | None = None,
) -> dict[str, Any]:
    """The contract's dead-letter record (``schemas.records.DeadLetterRecord``): the original
    bytes exactly (base64) and as text, where the record was, why it was set aside (``reason``:
    one of ``schemas.records.DeadLetterReason``).

    A tombstone (``raw`` None) has no bytes: ``original`` and ``original_b64`` are null. A
    record that would be written out longer than ``DEAD_LETTER_MAX_BYTES`` keeps the first
    ``ORIGINAL_KEPT_BYTES`` of the original (``original_b64``; ``original`` is their text, cut
    further when escaping makes it too long) with ``original_truncated``, ``original_length``
    (bytes) and ``original_sha256`` (of the whole original). ``event_id`` and ``account_id``
    are kept only as strings within the contract's lengths (``schemas.contract``) that can be
    written out, else null; ``error`` is cut to 1,000 characters and ``topic`` to 255.
    """
    record: dict[str, Any] = {
        "reason": reason,
        "error": _writable(error, _ERROR_MAX),
        "original": None,
        "original_b64": None,
        "topic": None if topic is None else _writable(topic, _TOPIC_MAX),
        "partition": partition,
        "offset": offset,
        "event_id": _bounded_id(event_id, ID_LEN_MAX),
        "account_id": _bounded_id(account_id, ACCOUNT_ID_LEN_MAX),
    }
    if raw is None:
        return record
    data = _original_bytes(raw) if isinstance(raw, str) else bytes(raw)
    record["original"] = data.decode("utf-8", "backslashreplace")
    record["original_b64"] = _b64(data)
    if len(data) > _ALWAYS_FITS and len(orjson.dumps(record)) > DEAD_LETTER_MAX_BYTES:
        _keep_the_start(record, data)
    return record


def _b64(data: bytes) -> str:
    """``base64.b64encode(data)`` as text, from binascii itself: that wrapper is Python code."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _keep_the_start(record: dict[str, Any], data: bytes) -> None:
    """Cut a too-long dead letter's original to its first bytes, and their text to what fits."""
    kept = data[:ORIGINAL_KEPT_BYTES]
    record["original"] = ""
    record["original_b64"] = _b64(kept)
    record["original_truncated"] = True
    record["original_length"] = len(data)
    record["original_sha256"] = hashlib.sha256(data).hexdigest()
    room = DEAD_LETTER_MAX_BYTES - len(orjson.dumps(record))  # for the text, written out
    record["original"] = _prefix_within(kept.decode("utf-8", "backslashreplace"), room)


def _prefix_within(text: str, room: int) -> str:
    """The longest start of ``text`` that takes at most ``room`` bytes as JSON (its quotes are
    counted already): at most 6 bytes a character, so a binary search over its length."""
    if _json_size(text) <= room:
        return text
    fits, too_long = 0, len(text)  # fits: a length that fits; too_long: one that does not
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if _json_size(text[:middle]) <= room:
            fits = middle
        else:
            too_long = middle
    return text[:fits]


def _json_size(text: str) -> int:
    return len(orjson.dumps(text)) - 2  # without the quotes


def _writable(text: str, longest: int) -> str:
    """``text`` cut to ``longest`` characters, a lone surrogate escaped (UTF-8 cannot hold it)."""
    if len(text) > longest:
        text = text[: longest - 1] + "…"
    if _SURROGATE.search(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _original_bytes(raw: str) -> bytes:
    """The bytes of a record given as text: undecodable bytes a caller kept as surrogate
    escapes go back to what they were; any other lone surrogate is written in its three-byte
    form (surrogatepass), as UTF-8 cannot hold it."""
    try:
        return raw.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return raw.encode("utf-8", "surrogatepass")
