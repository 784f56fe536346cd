"""A native event goes from one process of a pipelined replay to the other as plain values
(``schemas.wire``) and arrives as the event that was sent, field by field.

Every class of the contract, with its optional fields present and absent and with unknown
extra fields of every JSON type, is rebuilt from ``marshal``'s bytes of its wire with the same
class, fields, extras, ``occurred_at`` as written (its text, offset and nanoseconds) and time
in µs. A record pydantic parsed (the fast path declines the contract's last instant) holds its
``occurred_at`` as a datetime, which crosses as its RFC 3339 text: the event arrives with the
same ``occurred_at``. A code no class has is refused.
"""

from __future__ import annotations

import marshal
from datetime import datetime
from typing import Any

import orjson
import pytest
from eventlog import (
    account_status,
    credit_line,
    displayed,
    drawdown,
    repayment_initiated,
    repayment_posted,
    repayment_reversed,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.contract import CAUSES, CHANNELS, STATUSES
from schemas.native import Event
from schemas.parse import Parsed, parse_event_for_replay
from schemas.wire import event_of_wire, wire_of_event

# Written with an offset and nanoseconds: text a rebuilt event could not get back from µs.
STAMP = "2026-11-29T18:00:00.123456789+08:00"
# The contract's last valid instant: pydantic accepts it, the fast path leaves it to pydantic.
LAST_INSTANT = "2100-01-01T07:59:59.999+08:00"
EXTRAS: dict[str, Any] = {
    "producer": "core-v2",
    "trace": {"span": [1, None, 2.5, True, "x"], "depth": {"n": -3}},
    "retries": 0,
    "sampled": False,
    "ratio": 0.1,
    "note": None,
}

# Each type with every optional field present, values all distinct, and extras.
FULL: dict[str, dict[str, Any]] = {
    "drawdown.booked": drawdown("A-1", 0, 50_000, event_id="e-dd", loan_id="L9", **EXTRAS),
    "repayment.initiated": repayment_initiated(
        "A-1", 0, "pay-1", 20_000, event_id="e-ri", channel="auto_debit", **EXTRAS
    ),
    "repayment.posted": repayment_posted(
        "A-1",
        0,
        20_000,
        interest=150,
        fee=10,
        payment_id="pay-1",
        event_id="e-rp",
        loan_id="L9",
        **EXTRAS,
    ),
    "repayment.reversed": repayment_reversed("A-1", 0, "e-rp", event_id="e-rr", **EXTRAS),
    "credit_line.changed": credit_line(
        "A-1",
        0,
        100_000,
        3,
        cause="rescore",
        event_id="e-cl",
        model_version="m7",
        score=642.7,
        reasons=["high utilisation", "short tenure"],
        **EXTRAS,
    ),
    "account.status_changed": account_status(
        "A-1", 0, "frozen", 2, event_id="e-as", reason="fraud review", **EXTRAS
    ),
    "limit.displayed": displayed(
        "A-1", 0, 80_000, event_id="e-ld", cache_version=4, source="cache", **EXTRAS
    ),
}
# Each type with its required fields alone (optional ones absent or null), no extras.
MINIMAL: dict[str, dict[str, Any]] = {
    "drawdown.booked": drawdown("A-1", 0, 1, event_id="m-dd"),
    "repayment.initiated": repayment_initiated("A-1", 0, "pay-2", 2, event_id="m-ri"),
    "repayment.posted": repayment_posted("A-1", 0, 3, event_id="m-rp"),
    "repayment.reversed": repayment_reversed("A-1", 0, "m-rp", event_id="m-rr"),
    "credit_line.changed": credit_line("A-1", 0, 4, 0, event_id="m-cl"),
    "account.status_changed": account_status("A-1", 0, "active", 0, event_id="m-as"),
    "limit.displayed": displayed("A-1", 0, None, event_id="m-ld"),
}
KINDS = sorted(FULL)


def parsed(record: dict[str, Any], stamp: str = STAMP) -> Event:
    """The event a replay parses from ``record`` stamped ``stamp``."""
    result = parse_event_for_replay(orjson.dumps({**record, "occurred_at": stamp}))
    assert isinstance(result, Parsed), result
    return result.event


def held(event: Event) -> dict[str, Any]:
    """Everything a native event holds that the core or a report can read; repr shows each
    contract field (by FIELDS, each value with its exact type) and the extras."""
    return {
        "class": type(event),
        "repr": repr(event),
        "occurred_raw": repr(event.occurred_raw),
        "occurred_us": event.occurred_us,
        "type": event.type,
        "schema_version": event.schema_version,
        "extra": repr(event.extra),
    }


def through_marshal(event: Event) -> Event:
    return event_of_wire(marshal.loads(marshal.dumps(wire_of_event(event))))


@pytest.mark.parametrize("kind", KINDS)
def test_an_event_with_every_field_and_extras_arrives_as_sent(kind: str) -> None:
    event = parsed(FULL[kind])
    assert held(through_marshal(event)) == held(event)


@pytest.mark.parametrize("kind", KINDS)
def test_an_event_with_only_its_required_fields_arrives_as_sent(kind: str) -> None:
    event = parsed(MINIMAL[kind])
    assert held(through_marshal(event)) == held(event)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
_MONEY = st.integers(0, 10**15)
_VERSION = st.integers(0, 2**63 - 1)
_ID = st.text(min_size=1, max_size=8)
_FIELDS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "drawdown.booked": st.fixed_dictionaries({"loan_id": _ID, "principal": _MONEY}),
    "repayment.initiated": st.fixed_dictionaries(
        {"payment_id": _ID, "amount": _MONEY, "channel": st.sampled_from(sorted(CHANNELS))}
    ),
    "repayment.posted": st.fixed_dictionaries(
        {"loan_id": _ID, "principal": _MONEY, "interest": _MONEY, "fee": _MONEY},
        optional={"payment_id": _ID | st.none()},
    ),
    "repayment.reversed": st.fixed_dictionaries({"reverses_event_id": _ID}),
    "credit_line.changed": st.fixed_dictionaries(
        {"credit_line": _MONEY, "version": _VERSION, "cause": st.sampled_from(sorted(CAUSES))},
        optional={
            "model_version": st.text(max_size=8) | st.none(),
            "score": st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.none(),
            "reasons": st.lists(st.text(max_size=8), max_size=4) | st.none(),
        },
    ),
    "account.status_changed": st.fixed_dictionaries(
        {"status": st.sampled_from(sorted(STATUSES)), "version": _VERSION},
        optional={"reason": st.text(max_size=8) | st.none()},
    ),
    "limit.displayed": st.fixed_dictionaries(
        {},
        optional={
            "displayed_available": _MONEY | st.none(),
            "cache_version": _VERSION | st.none(),
            "source": st.sampled_from(["app", "cache"]) | st.none(),
        },
    ),
}


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, Any]:
    """A valid record of any type, optional fields drawn present, null or absent, with
    extras of any JSON shape, stamped in any of the shapes the fast path takes."""
    kind = draw(st.sampled_from(KINDS))
    extras = draw(st.dictionaries(st.text(max_size=6).map(lambda k: "x_" + k), _JSON))
    stamp = draw(
        st.sampled_from(
            [
                "2026-11-29T10:00:00.000Z",
                "2026-11-29T10:00:00Z",
                "2026-11-29T18:00:00.5+08:00",
                "2026-11-29T05:30:00.123456-04:30",
                STAMP,
                "2000-01-01T00:00:00.000Z",
            ]
        )
    )
    return {
        "event_id": draw(_ID),
        "type": kind,
        "account_id": draw(st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)),
        "occurred_at": stamp,
        "schema_version": 1,
        **draw(_FIELDS[kind]),
        **extras,
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_records())
def test_any_valid_record_arrives_as_sent(record: dict[str, Any]) -> None:
    event = parsed(record, record["occurred_at"])
    assert held(through_marshal(event)) == held(event)


# -- a time pydantic parsed ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_event_pydantic_parsed_holds_its_time_as_a_datetime(kind: str) -> None:
    """The premise of the test below: the fast path leaves the last instant to pydantic,
    whose model holds a datetime, and the native event built from it keeps that."""
    assert isinstance(parsed(FULL[kind], LAST_INSTANT).occurred_raw, datetime)


@pytest.mark.parametrize("kind", KINDS)
def test_an_event_pydantic_parsed_arrives_with_its_time_as_text(kind: str) -> None:
    """Its datetime crosses as RFC 3339 text, as the fast path keeps a time: everything else it
    holds arrives as sent, its ``occurred_at`` (in repr) the same instant in the same offset."""
    event = parsed(FULL[kind], LAST_INSTANT)
    arrived = through_marshal(event)
    assert {**held(arrived), "occurred_raw": None} == {**held(event), "occurred_raw": None}


# -- codes -----------------------------------------------------------------------------------


def test_each_class_has_its_own_code() -> None:
    codes = {wire_of_event(parsed(FULL[kind]))[0] for kind in KINDS}
    assert len(codes) == len(KINDS)


def test_a_code_no_class_has_is_refused() -> None:
    wires = [wire_of_event(parsed(FULL[kind])) for kind in KINDS]
    unknown = max(w[0] for w in wires) + 1
    with pytest.raises(ValueError, match="wire code"):
        event_of_wire((unknown, *wires[0][1:]))
