"""How the report writes values: escaped text, money, shares, nines, durations and times."""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal

from schemas.money import format_yuan

__all__ = [
    "Memo",
    "as_int",
    "bucket_text",
    "duration_text",
    "esc",
    "fmt_clock",
    "format_yuan",
    "money_html",
    "ms_text",
    "nines",
    "nines_attr",
    "nines_text",
    "parse_time",
    "pct",
    "plain_money",
    "share_text",
    "tz_label",
]

MISSING_MONEY_HTML = '<span class="muted">—</span>'


def nines(share: float) -> float:
    """How many nines a share has: 0.999 -> 3.0, 0.9995 -> 3.30..., 1.0 -> inf, 0.0 -> 0.0.

    Computed in decimal from the share's shortest repr, so 0.999 gives exactly 3.0.
    """
    if math.isnan(share) or share < 0.0 or share > 1.0:
        raise ValueError(f"share must be within [0, 1], got {share!r}")
    if share == 1.0:
        return math.inf
    missing = Decimal(1) - Decimal(repr(float(share)))
    return float(-missing.log10()) + 0.0  # + 0.0 turns -0.0 into 0.0


def esc(value: object) -> str:
    if type(value) is str and not (
        "&" in value or "<" in value or ">" in value or '"' in value or "'" in value
    ):
        return value  # most text has nothing to escape, and this is the page's commonest call
    return html.escape("" if value is None else str(value), quote=True)


def as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def money_html(value: object) -> str:
    """Escaped HTML for a money value that may be missing or malformed."""
    fen = as_int(value)
    if fen is not None:
        return format_yuan(fen)
    if value is None:
        return MISSING_MONEY_HTML
    return esc(value)


class Memo:
    """The escaped text and the money of values a page repeats (a timeline's amounts, event
    types and notes, an explanation's codes), each written once a page."""

    __slots__ = ("_money", "_plain", "_text")

    def __init__(self) -> None:
        self._money: dict[int, str] = {}
        self._plain: dict[int, str] = {}
        self._text: dict[str, str] = {}

    def money(self, value: object) -> str:
        """``money_html(value)``."""
        if type(value) is not int:
            return money_html(value)
        cell = self._money.get(value)
        if cell is None:
            cell = self._money[value] = format_yuan(value)
        return cell

    def plain_money(self, value: object) -> str:
        """``plain_money(value)``."""
        if type(value) is not int:
            return plain_money(value)
        text = self._plain.get(value)
        if text is None:
            text = self._plain[value] = "¥" + self.money(value)
        return text

    def text(self, value: object) -> str:
        """``esc(value)``."""
        if type(value) is not str:
            return esc(value)
        cell = self._text.get(value)
        if cell is None:
            cell = self._text[value] = esc(value)
        return cell


def plain_money(value: object) -> str:
    fen = as_int(value)
    return "—" if fen is None else "¥" + format_yuan(fen)


def nines_text(value: float) -> str:
    if math.isinf(value):
        return "∞"
    return f"{math.floor(value * 10 + 1e-9) / 10:.1f}"  # floored: never overstate


def nines_attr(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.6f}"


def pct(share: float) -> str:
    """A percentage precise enough not to read as 100% (or 0%) when it is not."""
    for decimals in range(2, 10):
        text = f"{share * 100:.{decimals}f}"
        rounds_to_edge = float(text) in (100.0, 0.0)
        if not rounds_to_edge or share in (0.0, 1.0):
            return text + "%"
    return f"{share * 100:.10f}%"


def share_text(part: int, whole: int) -> str:
    return "n/a" if whole == 0 else pct(part / whole)


def bucket_text(seconds: int) -> str:
    for unit_s, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds % unit_s == 0:
            return f"{seconds // unit_s} {unit}"
    return f"{seconds} s"


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds != int(seconds) else f"{int(seconds)} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def ms_text(ms: float) -> str:
    return f"{ms:,.1f} ms" if ms < 1000 else f"{ms / 1000:,.2f} s"


def parse_time(value: object) -> datetime | None:
    """RFC 3339 to an aware datetime; None when absent or unparsable (naive = UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def tz_label(tz: tzinfo) -> str:
    offset = datetime(2000, 1, 1, tzinfo=tz).utcoffset() or timedelta(0)
    return timezone(offset).tzname(None)


def fmt_clock(moment: datetime, tz: tzinfo, with_date: bool) -> str:
    local = moment.astimezone(tz)
    return local.strftime("%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
