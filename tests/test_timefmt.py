"""Timestamps on the wire and integer microseconds inside: the two must round-trip exactly."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.timefmt import format_us, parse_rfc3339, to_us

# 0001-01-01 to 9999-12-31, the years RFC 3339 can write
_US = st.integers(min_value=-62_135_596_800_000_000, max_value=253_402_300_799_999_999)


@given(_US)
def test_a_formatted_time_parses_back_to_the_same_microsecond(us: int) -> None:
    assert to_us(parse_rfc3339(format_us(us))) == us


def test_whole_milliseconds_are_written_as_milliseconds() -> None:
    assert format_us(1_795_910_417_950_000) == "2026-11-29T00:00:17.950Z"


def test_other_microseconds_are_written_in_full() -> None:
    assert format_us(1_795_910_417_950_001) == "2026-11-29T00:00:17.950001Z"


def test_years_before_1000_keep_four_digits() -> None:
    assert format_us(-62_135_596_800_000_000) == "0001-01-01T00:00:00.000Z"


@given(_US)
def test_formatting_agrees_with_isoformat(us: int) -> None:
    moment = datetime(1970, 1, 1) + timedelta(microseconds=us)
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    assert format_us(us) == moment.isoformat(timespec=spec) + "Z"
