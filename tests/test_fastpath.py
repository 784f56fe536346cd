"""The parser's fast path is only an accelerator: whatever it accepts, pydantic accepts equally.

The fast path builds the core's native events (``schemas.native``) straight from the JSON
object; the slow path has pydantic validate and converts its model with ``from_model``. If the
fast path ever accepted a record pydantic rejects, or built an event that differs from the
converted model in any field, extra or time, the contract would have two implementations;
these properties keep it at one. The native classes' fields are held equal to the models'.
"""

from __future__ import annotations

import copy
import inspect
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from test_parse import VALID

from schemas.events import Event
from schemas.fastpath import fast_event
from schemas.native import MODEL_OF, from_model
from schemas.parse import Parsed, parse_event
from schemas.timefmt import OCCURRED_MAX_US, OCCURRED_MIN_US, format_us, parse_rfc3339, to_us

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
            "1999-12-31T23:59:59.999Z",
            "2000-01-01T00:00:00.000Z",
            "2000-01-01T07:59:59.999+08:00",
            "2099-12-31T23:59:59.999Z",
            "2099-12-31T23:59:59.9990001Z",
            "2100-01-01T07:59:59.999+08:00",
            "2100-01-01T00:00:00.000Z",
            "0001-01-01T00:00:00.000+08:00",
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


def _typed(value: Any) -> Any:
    """A value with its exact type, recursively: ``1 == True`` and ``1 == 1.0`` must not pass."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, datetime):  # the instant and the offset it was written with
        return (datetime, to_us(value), value.utcoffset())
    return (type(value), value)


def _fields(event: Any) -> dict[str, Any]:
    """Everything a native event holds that the core or a test can read."""
    seen = {name: _typed(getattr(event, name)) for name in type(event).FIELDS}
    seen["extra"] = _typed(event.extra)
    seen["occurred_us"] = _typed(event.occurred_us)
    return seen


def agrees_with_pydantic(obj: dict[str, Any]) -> None:
    """If the fast path accepts ``obj``, pydantic accepts it and its event is the same."""
    accepted = fast_event(copy.deepcopy(obj))
    if accepted is None:
        return
    fast, occurred_us = accepted
    try:
        slow = _ADAPTER.validate_python(copy.deepcopy(obj))
    except ValidationError as exc:
        raise AssertionError(f"fast path accepted what pydantic rejects: {obj!r}: {exc}") from exc
    converted = from_model(slow)
    assert MODEL_OF[type(fast)] is type(slow)
    assert type(fast) is type(converted)
    assert _fields(fast) == _fields(converted)
    assert occurred_us == fast.occurred_us == to_us(slow.occurred_at)
    assert (fast.extra or {}) == slow.model_extra


def test_every_valid_example_takes_the_fast_path_and_equals_pydantic() -> None:
    for obj in VALID.values():
        assert fast_event(copy.deepcopy(obj)) is not None
        agrees_with_pydantic(obj)
        extras = {"producer": "core-v2", "trace": {"span": [1, None]}, "note": None}
        agrees_with_pydantic({**obj, **extras})


@pytest.mark.parametrize("native", sorted(MODEL_OF, key=lambda c: c.__name__))
def test_each_native_constructor_takes_exactly_its_models_fields(native: type) -> None:
    """A class's ``FIELDS`` are read from its model; its constructor is code: a field added to
    the model and not to the constructor (or the reverse) fails here, and one not checked by
    the class's builder fails tests/test_contract.py."""
    model = MODEL_OF[native]
    assert native.__name__ == model.__name__
    assert tuple(model.model_fields) == native.FIELDS
    # Built from the type's own fields: the envelope's constants and time are the class's.
    own = set(model.model_fields) - {"type", "schema_version", "occurred_at"}
    bookkeeping = {"occurred_raw", "occurred_us", "extra"}
    assert set(inspect.signature(native).parameters) == own | bookkeeping


@pytest.mark.parametrize("kind", sorted(VALID))
def test_from_model_keeps_every_field_of_the_model(kind: str) -> None:
    model = _ADAPTER.validate_python({**VALID[kind], "producer": "x"})
    event = from_model(model)
    assert from_model(event) is event  # a native event is taken as it is
    for name in type(model).model_fields:
        assert _typed(getattr(event, name)) == _typed(getattr(model, name)), name
    assert event.extra == model.model_extra == {"producer": "x"}
    assert event.occurred_us == to_us(model.occurred_at)


def test_from_model_refuses_what_is_not_a_contract_event() -> None:
    with pytest.raises(TypeError):
        from_model({"type": "drawdown.booked"})


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
    agrees_with_pydantic(obj)


_DAY_US = 86_400 * 1_000_000


def _stamp(utc_us: int, offset_minutes: int, nanos: str) -> str:
    """The RFC 3339 text of an instant written at an offset, with 6 fractional digits and
    ``nanos`` after them (``utc_us`` plus the offset is the local time written)."""
    local = format_us(utc_us + offset_minutes * 60 * 1_000_000)[:-1]  # without its "Z"
    if len(local) == len("YYYY-MM-DDTHH:MM:SS.mmm"):
        local += "000"
    if offset_minutes == 0:
        return f"{local}{nanos}Z"
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{local}{nanos}{sign}{hours:02d}:{minutes:02d}"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    utc_us=st.one_of(
        st.sampled_from(
            [OCCURRED_MIN_US - 1, OCCURRED_MIN_US, OCCURRED_MAX_US - 1, OCCURRED_MAX_US,
             OCCURRED_MAX_US + 1]
        ),
        st.integers(OCCURRED_MIN_US - 2 * _DAY_US, OCCURRED_MIN_US + 2 * _DAY_US),
        st.integers(OCCURRED_MAX_US - 2 * _DAY_US, OCCURRED_MAX_US + 2 * _DAY_US),
    ),
    offset_minutes=st.one_of(st.just(0), st.integers(-(24 * 60 - 1), 24 * 60 - 1)),
    nanos=st.sampled_from(["", "000", "001", "999"]),
)
def test_both_paths_hold_the_bounds_of_occurred_at_alike(
    utc_us: int, offset_minutes: int, nanos: str
) -> None:
    """The contract's UTC bounds, whatever the offset: 2000-01-01T00:00:00Z and
    2099-12-31T23:59:59.999Z are the first and the last valid instants."""
    record = {**VALID["limit.displayed"], "occurred_at": _stamp(utc_us, offset_minutes, nanos)}
    last_and_beyond = utc_us == OCCURRED_MAX_US and nanos.strip("0") != ""
    inside = OCCURRED_MIN_US <= utc_us <= OCCURRED_MAX_US and not last_and_beyond
    agrees_with_pydantic(record)
    assert isinstance(parse_event(orjson.dumps(record)), Parsed) is inside
