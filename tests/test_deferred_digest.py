"""Idempotency with the content digest deferred: a plainly valid record's bytes stand in for
its digest until the id comes again or the account's state is saved. The contract's rule is
unchanged: the same whole object is a duplicate, any difference is a conflict."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.parse import Parsed, content_digest, parse_event
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


def ingest(engine: Engine, raw: bytes) -> Outcome:
    p = parsed(raw)
    return engine.ingest(p.event, p.digest, p.occurred_us)[0]


def engine() -> Engine:
    return Engine(CoreConfig(), EventTimeClock())


def reformatted(obj: dict[str, Any]) -> bytes:
    """The same object in other bytes: keys reversed, indented."""
    return json.dumps(dict(reversed(list(obj.items()))), indent=2).encode()


def test_a_plain_record_defers_its_digest() -> None:
    raw = orjson.dumps(RECORD)
    assert parsed(raw).digest == raw


def test_a_record_with_a_nested_extra_is_digested_at_once() -> None:
    digest = parsed(orjson.dumps({**RECORD, "meta": {"k": [1, 2]}})).digest
    assert type(digest) is str and len(digest) == 32


def test_the_same_object_in_other_bytes_is_a_duplicate() -> None:
    e = engine()
    ingest(e, orjson.dumps(RECORD))
    assert ingest(e, reformatted(RECORD)) is Outcome.DUPLICATE


def test_another_object_under_the_same_id_is_a_conflict() -> None:
    e = engine()
    ingest(e, orjson.dumps(RECORD))
    assert ingest(e, orjson.dumps({**RECORD, "note": "second"})) is Outcome.CONFLICT


def test_saved_state_holds_digests_not_bytes() -> None:
    e = engine()
    ingest(e, orjson.dumps(RECORD))
    saved = e.accounts["A-1"].to_dict()["seen"]["e-1"]
    assert saved[0] == content_digest(orjson.dumps(RECORD)) and len(saved[0]) == 32


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


def test_a_digest_is_computed_when_its_id_comes_again_with_other_bytes() -> None:
    # an older worker's digest (a string) against a new record's bytes, and the reverse
    digest_first, bytes_first = engine(), engine()
    ingest(digest_first, orjson.dumps({**RECORD, "meta": {"k": 1}}))
    ingest(bytes_first, orjson.dumps({**RECORD, "meta": 1}))
    assert ingest(digest_first, orjson.dumps({**RECORD, "meta": 1})) is Outcome.CONFLICT
    assert ingest(bytes_first, reformatted({**RECORD, "meta": 1})) is Outcome.DUPLICATE


EXTRA_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["x", "y", "{", "["]), EXTRA_VALUES, max_size=3))
def test_whatever_is_deferred_can_be_digested_later_to_the_same_value(
    extras: dict[str, Any],
) -> None:
    raw = orjson.dumps({**RECORD, **extras})
    result = parse_event(raw)
    assert isinstance(result, Parsed)
    eager = parse_event(raw.decode())  # text is never deferred
    assert isinstance(eager, Parsed)
    assert content_digest(result.digest) == eager.digest
