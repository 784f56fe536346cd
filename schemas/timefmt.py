"""RFC 3339 timestamps on the wire, integer microseconds inside.

The core compares and subtracts times on every record; integers make that exact and cheap,
and one formatter makes every output byte-identical across runs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "format_us", "parse_rfc3339", "to_us"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)  # format_us's arithmetic: UTC, with no offset to print
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


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly: integer arithmetic, not ``timestamp()``, whose
    float seconds lose the last microsecond from 2106 on (2**32 s), like 2111's ``.230141``."""
    return (moment - EPOCH) // _ONE_US


def format_us(us: int) -> str:
    """UTC RFC 3339 with milliseconds, or microseconds when they are not whole milliseconds.

    ``isoformat``, not ``strftime``: half the cost (every alert formats three or four of
    these), and a four-digit year always, which RFC 3339 requires and glibc's ``%Y`` drops
    before the year 1000.
    """
    moment = _EPOCH_NAIVE + timedelta(microseconds=us)
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.isoformat(timespec=spec) + "Z"
