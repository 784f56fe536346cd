"""The parser's fast path is only an accelerator: whatever it accepts, pydantic accepts equally.

If it ever accepted a record pydantic rejects, or built different fields or extras, the
contract would have two implementations; these properties keep it at one.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from test_parse import VALID

from schemas.events import Event
from schemas.fastpath import fast_event
from schemas.timefmt import parse_rfc3339, to_us

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "2026-11-29T10:00:00Z",
            "2026-11-29T10:00:00.5+08:00",
            "2026-11-29T10:00:00.123Z",
            "2026-11-29T10:00:00.12xZ",
            "2026-11-29T10:00:00.１２３Z",
            "2026-02-30T10:00:00.123Z",
            "2026-11-29T10:00:00.123+",
            "2026-11-29T18:00:00.123+08:00",
            "2026-11-29T18:00:00.123-08:00",
            "2026-11-29T18:00:00.12+08:00",
            "2026-11-29T10:00:59.999Z",
            "2026-11-29T10:00:60.000Z",
            "2026-11-29",
            "2026-11-29T10:00:00",
            "1700000000",
            "acct-1",
            "bad id!",
            "frozen",
            "rescore",
            "bank_card",
            "",
        ]
    ),
    st.lists(st.text(max_size=5), max_size=3),
)


def _agrees(obj: dict[str, Any]) -> None:
    accepted = fast_event(copy.deepcopy(obj))
    if accepted is None:
        return
    fast, occurred_us = accepted
    try:
        slow = _ADAPTER.validate_python(copy.deepcopy(obj))
    except ValidationError as exc:
        raise AssertionError(f"fast path accepted what pydantic rejects: {obj!r}: {exc}") from exc
    assert (type(fast), fast, fast.model_extra, fast.model_fields_set, occurred_us) == (
        type(slow),
        slow,
        slow.model_extra,
        slow.model_fields_set,
        to_us(slow.occurred_at),
    )


def test_every_valid_example_takes_the_fast_path_and_equals_pydantic() -> None:
    for obj in VALID.values():
        assert fast_event(copy.deepcopy(obj)) is not None
        _agrees(obj)


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-29T10:00:00.12xZ",
        "2026-11-29T10:00:00.１２３Z",
        "2026-11-29T10:00:00.-12Z",
        "2026-11-29T18:00:00.1 3+08:00",
        "2026-11-29T18:00:00.123+08:0x",
        "2026-11-29T10:00:60.000Z",
        "2026-11-29T10:00:6x.000Z",
        "2026-11-29T10:00:٣٣.000Z",
        "2026-11-29T18:00:99.123+08:00",
        "2026-11-29T10:00-00.123Z",
    ],
)
def test_a_remembered_minute_does_not_admit_bad_seconds_or_fraction(stamp: str) -> None:
    record = {**VALID["limit.displayed"], "occurred_at": "2026-11-29T10:00:00.001Z"}
    assert fast_event(record) is not None
    record = {**record, "occurred_at": "2026-11-29T18:00:00.001+08:00"}
    assert fast_event(record) is not None  # the minute is now remembered
    assert fast_event({**record, "occurred_at": stamp}) is None


@pytest.mark.parametrize(
    ("first", "then"),
    [
        (".001Z", ".999Z"),
        (".001+08:00", ".999+08:00"),
        (".001-05:30", ".999-05:30"),
        (".00145678Z", ".99945678Z"),  # as long as "mmm+08:00", but nanoseconds
        ("07.001Z", "59.999Z"),
        ("07.001+08:00", "00.000+08:00"),
    ],
)
def test_a_remembered_minute_gives_the_exact_microseconds(first: str, then: str) -> None:
    second = "" if first[0].isdigit() else "07"
    record = {**VALID["limit.displayed"], "occurred_at": f"2026-11-29T10:00:{second}{first}"}
    fast_event(record)
    stamp = f"2026-11-29T10:00:{second}{then}"
    accepted = fast_event({**record, "occurred_at": stamp})
    assert accepted is not None
    assert accepted[1] == to_us(parse_rfc3339(stamp))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(VALID)),
    changes=st.dictionaries(
        st.sampled_from(
            [
                "event_id",
                "account_id",
                "occurred_at",
                "schema_version",
                "type",
                "principal",
                "amount",
                "interest",
                "fee",
                "payment_id",
                "loan_id",
                "channel",
                "credit_line",
                "version",
                "cause",
                "score",
                "reasons",
                "model_version",
                "status",
                "reason",
                "displayed_available",
                "cache_version",
                "reverses_event_id",
                "extra",
            ]
        ),
        _VALUES,
        max_size=3,
    ),
    drop=st.sets(
        st.sampled_from(
            [
                "event_id",
                "payment_id",
                "loan_id",
                "version",
                "reasons",
                "cache_version",
                "displayed_available",
            ]
        ),
        max_size=2,
    ),
)
def test_a_mutated_record_is_accepted_by_the_fast_path_only_if_pydantic_agrees(
    kind: str, changes: dict[str, Any], drop: set[str]
) -> None:
    obj = {**VALID[kind], **changes}
    for name in drop:
        obj.pop(name, None)
    _agrees(obj)
