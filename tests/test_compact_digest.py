"""Idempotency with compact digests: a replay's parser gives a plainly valid record's content
digest as the number its hex spells, and saved state holds the hex. The contract's rule is
unchanged: the same whole object is a duplicate, any difference is a conflict."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.parse import Parsed, content_digest, parse_event, parse_event_digested
from streams.core import CoreConfig, Engine, EventTimeClock, Outcome
from streams.core.state import AccountState

RECORD: dict[str, Any] = {
    "event_id": "e-1",
    "type": "drawdown.booked",
    "account_id": "A-1",
    "occurred_at": "2026-11-29T10:00:00.000Z",
    "schema_version": 1,
    "loan_id": "L1",
    "principal": 5_000,
    "note": "first",
}


def parsed(raw: bytes) -> Parsed:
    result = parse_event(raw)
    assert isinstance(result, Parsed), result
    return result


def parsed_hex(raw: bytes) -> Parsed:
    result = parse_event_digested(raw)
    assert isinstance(result, Parsed), result
    return result


def ingest(engine: Engine, raw: bytes) -> Outcome:
    p = parsed(raw)
    return engine.ingest(p.event, p.digest, p.occurred_us)[0]


def engine() -> Engine:
    return Engine(CoreConfig(), EventTimeClock())


def reformatted(obj: dict[str, Any]) -> bytes:
    """The same object in other bytes: keys reversed, indented."""
    return json.dumps(dict(reversed(list(obj.items()))), indent=2).encode()


def test_a_plain_record_is_remembered_by_the_number_its_digest_spells() -> None:
    raw = orjson.dumps(RECORD)
    assert parsed(raw).digest == int(content_digest(parsed(raw.decode()).digest), 16)


def test_the_same_object_in_other_bytes_is_a_duplicate() -> None:
    e = engine()
    ingest(e, orjson.dumps(RECORD))
    assert ingest(e, reformatted(RECORD)) is Outcome.DUPLICATE


def test_another_object_under_the_same_id_is_a_conflict() -> None:
    e = engine()
    ingest(e, orjson.dumps(RECORD))
    assert ingest(e, orjson.dumps({**RECORD, "note": "second"})) is Outcome.CONFLICT


def test_saved_state_holds_hex_digests() -> None:
    e = engine()
    ingest(e, orjson.dumps(RECORD))
    saved = e.accounts["A-1"].to_dict()["seen"]["e-1"]
    assert saved[0] == parsed_hex(orjson.dumps(RECORD)).digest


def test_after_a_reload_a_redelivery_is_a_duplicate_and_a_change_a_conflict() -> None:
    e = engine()
    ingest(e, orjson.dumps(RECORD))
    state = json.loads(json.dumps(e.accounts["A-1"].to_dict()))
    for again, outcome in [
        (reformatted(RECORD), Outcome.DUPLICATE),
        (orjson.dumps({**RECORD, "principal": 5_001}), Outcome.CONFLICT),
    ]:
        reloaded = engine()
        reloaded.load([AccountState.from_dict(state)])
        assert ingest(reloaded, again) is outcome


def test_a_remembered_hex_digest_and_a_number_of_the_same_object_are_a_duplicate() -> None:
    e = engine()
    first = parsed_hex(orjson.dumps(RECORD))  # what a live worker remembers
    e.ingest(first.event, first.digest, first.occurred_us)
    assert ingest(e, reformatted(RECORD)) is Outcome.DUPLICATE


EXTRA_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["x", "y", "{", "["]), EXTRA_VALUES, max_size=3))
def test_a_compact_digest_spells_the_hex_digest(
    extras: dict[str, Any],
) -> None:
    raw = orjson.dumps({**RECORD, **extras})
    result = parse_event(raw)
    assert isinstance(result, Parsed)
    hex_digest = parse_event_digested(raw)
    assert isinstance(hex_digest, Parsed)
    assert content_digest(result.digest) == hex_digest.digest
