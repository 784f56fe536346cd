"""RFC 3339 timestamps on the wire, integer microseconds inside.

The core compares and subtracts times on every record; integers make that exact and cheap,
and one formatter makes every output byte-identical across runs.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Final

__all__ = [
    "EPOCH",
    "OCCURRED_BOUNDS_TEXT",
    "OCCURRED_MAX_US",
    "OCCURRED_MIN_US",
    "check_occurred",
    "format_us",
    "parse_rfc3339",
    "to_us",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_RFC3339 = re.compile(  # ASCII: \d alone also matches other scripts' digits, like "１２３"
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII
)


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; an offset is required (naive times are ambiguous)."""
    if not _RFC3339.match(text):
        raise ValueError(f"not an RFC 3339 timestamp with offset: {text!r}")
    try:
        return datetime.fromisoformat(text)  # the common shapes, fast
    except ValueError:
        pass  # more than 6 fractional digits, or a lower-case z/t
    head, dot, rest = text.partition(".")
    if dot:
        # Python accepts at most 6 fractional digits: cut nanoseconds, keep the offset.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{frac[:6].ljust(6, '0')}{tail}"
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


# docs/contract.md, "Envelope": the UTC time of ``occurred_at`` lies in 2000-01-01T00:00:00Z ..
# 2099-12-31T23:59:59.999Z, both included (read literally: .999000 is the last valid instant).
OCCURRED_MIN_US: Final = 946_684_800_000_000
OCCURRED_MAX_US: Final = 4_102_444_799_999_000
OCCURRED_BOUNDS_TEXT: Final = "2000-01-01T00:00:00Z .. 2099-12-31T23:59:59.999Z"


def check_occurred(occurred_us: int, text: str | None = None) -> None:
    """Raise ValueError unless ``occurred_us`` (parsed from ``text``, when it came as text) is
    within the contract's bounds. Parsing keeps microseconds, so the last valid instant also
    needs the text: ``2099-12-31T23:59:59.9990001Z`` parses to it and lies after it."""
    if OCCURRED_MIN_US <= occurred_us < OCCURRED_MAX_US:
        return
    if occurred_us == OCCURRED_MAX_US and (text is None or not _below_microseconds(text)):
        return
    raise ValueError(f"UTC time must lie in {OCCURRED_BOUNDS_TEXT}")


def _below_microseconds(text: str) -> bool:
    """Whether the stamp's fraction has a non-zero digit past the sixth."""
    fraction = text.partition(".")[2]
    digits = fraction[: len(fraction) - len(fraction.lstrip("0123456789"))]
    return digits[6:].strip("0") != ""


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly: integer arithmetic, not ``timestamp()``, whose
    float seconds lose the last microsecond from 2106 on (2**32 s), like 2111's ``.230141``."""
    return (moment - EPOCH) // _ONE_US


def format_us(us: int) -> str:
    """UTC RFC 3339 with milliseconds, or microseconds when they are not whole milliseconds.

    Always a four-digit year, which RFC 3339 requires and glibc's ``%Y`` drops before the year
    1000. Assembled from integer parts and tables rather than by ``datetime.isoformat``: every
    alert writes three or four of these, and the datetime arithmetic is costly next to table
    lookups (measured with callgrind); the test suite holds this equal to ``isoformat``.
    """
    # Floor division and remainder, not divmod: compiled, they stay machine-int arithmetic,
    # where divmod is a call that boxes its ints and builds a tuple.
    days, rest = us // _DAY_US, us % _DAY_US
    day = _days.get(days)
    if day is None:
        day = date.fromordinal(_EPOCH_ORDINAL + days).isoformat()
        if len(_days) >= _DAYS_MAX:
            _days.clear()
        _days[days] = day
    seconds, micros = rest // 1_000_000, rest % 1_000_000
    minutes, second = seconds // 60, seconds % 60
    hour, minute = minutes // 60, minutes % 60
    millis, sub = micros // 1000, micros % 1000
    frac = _THREE[millis] if sub == 0 else _THREE[millis] + _THREE[sub]
    return f"{day}T{_TWO[hour]}:{_TWO[minute]}:{_TWO[second]}.{frac}Z"


_DAY_US = 86_400 * 1_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_TWO = [f"{i:02d}" for i in range(60)]
_THREE = [f"{i:03d}" for i in range(1000)]
_DAYS_MAX = 4096  # days written recently, by day number: a log spans few of them
_days: dict[int, str] = {}
