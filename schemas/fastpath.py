"""A verified accelerator for the common case of ``parse_event``.

Pydantic is the contract's one implementation; building a pydantic model costs more than
the whole domain core spends on an event, and replay must keep up with the parse rate of
plain ``json.loads``. So records that are plainly valid are checked here with the same
rules and built directly as the core's native events (``schemas.native``, whose builders
hold the per-type rules); anything this path does not accept goes through pydantic, which
then accepts it or explains the error. A property test holds the two equal: whatever this
path accepts, pydantic accepts, and ``from_model`` of pydantic's model equals this path's
event field by field, extras and time included.
"""

from __future__ import annotations

import re
from typing import Any, Final

from schemas.contract import ACCOUNT_ID_CHARS, ACCOUNT_ID_LEN_MAX, ID_LEN_MAX, SCHEMA_VERSION
from schemas.native import Event, checked_event
from schemas.timefmt import OCCURRED_MAX_US, OCCURRED_MIN_US, parse_rfc3339, to_us

__all__ = ["fast_event"]

# The contract's account_id, bounded and anchored in one pattern: ``\Z``, not ``$``, which in
# Python also matches before a final newline (the models' pattern is for pydantic's engine).
_ACCOUNT: Final = re.compile(f"[{ACCOUNT_ID_CHARS}]{{1,{ACCOUNT_ID_LEN_MAX}}}\\Z")
# The contract's bounds of occurred_at, copied into Final names (C globals once compiled). The
# last valid instant itself is left to pydantic: a stamp finer than microseconds can parse to
# it and lie after it (``check_occurred``), and no log holds it in the common case.
_OCCURRED_MIN_US: Final = OCCURRED_MIN_US
_OCCURRED_MAX_US: Final = OCCURRED_MAX_US


def fast_event(obj: dict[str, Any]) -> tuple[Event, int] | None:
    """The event and its ``occurred_at`` in µs for a plainly valid record, or None to let
    pydantic decide."""
    kind = obj.get("type")
    if type(kind) is not str:
        return None
    event_id = obj.get("event_id")
    account_id = obj.get("account_id")
    stamp = obj.get("occurred_at")
    version = obj.get("schema_version")
    if not (
        type(event_id) is str
        and 0 < len(event_id) <= ID_LEN_MAX
        and type(account_id) is str
        and (account_id in _accounts_seen or _account_ok(account_id))
        and type(version) is int
        and version == SCHEMA_VERSION
        and type(stamp) is str
    ):
        return None
    try:
        occurred_us = _timestamp_us(stamp)
    except ValueError:
        return None
    if occurred_us < _OCCURRED_MIN_US or occurred_us >= _OCCURRED_MAX_US:
        return None
    event = checked_event(kind, obj, event_id, account_id, stamp, occurred_us)
    if event is None:  # an unknown type, or a field pydantic must judge
        return None
    return event, occurred_us


# Remembered valid values: most records of a log repeat an account id, and a timestamp's
# minute, seen before. A set or dict lookup costs a fraction of the regular expression and
# of the datetime arithmetic they save. Bounded: cleared when full. Final: mypyc keeps them
# in C globals, where a plain module name is a dict lookup on every use.
_MEMO_MAX: Final = 1 << 16
_accounts_seen: Final[set[str]] = set()
_minutes_us: Final[dict[str, int]] = {}
# the common shapes: milliseconds, and "Z" or an offset ("+08:00"); remembered by the
# stamp without its seconds and milliseconds
_MS_Z: Final = len("YYYY-MM-DDTHH:MM:SS.mmmZ")
_MS_OFFSET: Final = len("YYYY-MM-DDTHH:MM:SS.mmm+08:00")


def _account_ok(account_id: str) -> bool:
    if not _ACCOUNT.match(account_id):
        return False
    if len(_accounts_seen) >= _MEMO_MAX:
        _accounts_seen.clear()
    _accounts_seen.add(account_id)
    return True


def _timestamp_us(stamp: str) -> int:
    """The stamp's µs since the epoch; raises ValueError exactly where pydantic would.

    A log has hundreds of records per minute: the minute (and offset) is remembered, parsed
    once by ``parse_rfc3339``, and only the seconds and milliseconds are read per record, a
    character at a time (``ord(s[i])`` compiles to a load). No datetime is built for them
    (the core reads µs; a native event makes its datetime only when asked), so what
    ``fromisoformat`` refused on that path is refused here: anything but ASCII digits, and
    second 60 or more (Python has no leap seconds).
    """
    size = len(stamp)
    common = (
        size in (_MS_Z, _MS_OFFSET)
        and stamp[19] == "."
        and (stamp[23] == "Z" or stamp[23] == "+" or stamp[23] == "-")
    )
    if common:
        key = stamp[:16] + stamp[23:]  # "YYYY-MM-DDTHH:MM" and the offset
        base = _minutes_us.get(key)
        if base is not None and stamp[16] == ":":
            tens = ord(stamp[17]) - 48  # "0" is 48
            ones = ord(stamp[18]) - 48
            ms1 = ord(stamp[20]) - 48
            ms2 = ord(stamp[21]) - 48
            ms3 = ord(stamp[22]) - 48
            if (
                0 <= tens <= 5
                and 0 <= ones <= 9
                and 0 <= ms1 <= 9
                and 0 <= ms2 <= 9
                and 0 <= ms3 <= 9
            ):
                millis = (tens * 10 + ones) * 1000 + ms1 * 100 + ms2 * 10 + ms3
                return base + millis * 1000
    occurred = parse_rfc3339(stamp)
    occurred_us = to_us(occurred)
    if common:  # parsed, so its digits are ASCII
        if len(_minutes_us) >= _MEMO_MAX:
            _minutes_us.clear()
        _minutes_us[key] = occurred_us - occurred.second * 1_000_000 - occurred.microsecond
    return occurred_us
