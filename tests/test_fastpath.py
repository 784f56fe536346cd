"""The parser's fast path is only an accelerator: whatever it accepts, pydantic accepts equally.

If it ever accepted a record pydantic rejects, or built different fields or extras, the
contract would have two implementations; these properties keep it at one.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from test_parse import VALID

from schemas.events import Event
from schemas.fastpath import fast_event

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
    fast = fast_event(copy.deepcopy(obj))
    if fast is None:
        return
    try:
        slow = _ADAPTER.validate_python(copy.deepcopy(obj))
    except ValidationError as exc:
        raise AssertionError(f"fast path accepted what pydantic rejects: {obj!r}: {exc}") from exc
    assert (type(fast), fast, fast.model_extra, fast.model_fields_set) == (
        type(slow),
        slow,
        slow.model_extra,
        slow.model_fields_set,
    )


def test_every_valid_example_takes_the_fast_path_and_equals_pydantic() -> None:
    for obj in VALID.values():
        assert fast_event(copy.deepcopy(obj)) is not None
        _agrees(obj)


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
