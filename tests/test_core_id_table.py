"""A replay's remembered ids in a flat table (streams/core/ids.py) decide exactly as the ids
kept by the live shell (``AccountState.seen``) do: the same outcome for every record (applied,
duplicate, conflict), the same effects, the same accounts, also when ids expire at the dedupe
horizon, arrive out of order, or repeat across accounts (docs/contract.md "Idempotency
horizon"). Only how much memory they take differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from eventlog import S, drawdown, line, repayment_posted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.parse import Parsed, Rejected, parse_event, parse_event_for_replay
from streams.core import CoreConfig, CoreError, Engine, EventTimeClock
from streams.core.ids import CONFLICT_AT, DUPLICATE_AT, PRESIZE_MAX_IDS, IdTable
from streams.core.journal import Journal

PROPS = settings(max_examples=80, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HORIZON_S = 20


def outcomes(
    engine: Engine, raws: list[bytes], parse: Callable[[bytes], Parsed | Rejected] = parse_event
) -> list[tuple[str, list[str]]]:
    """Per record: the outcome and its effects, spelled out."""
    out = []
    for raw in raws:
        parsed = parse(raw)
        assert isinstance(parsed, Parsed)
        outcome, effects = engine.ingest(parsed.event, parsed.digest, parsed.occurred_us)
        out.append((outcome.value, [repr(e) for e in effects]))
    return out


@st.composite
def logs_with_repeats(draw: st.DrawFn) -> list[bytes]:
    """Drawdowns and postings on two accounts, with times jumping back and forth across a
    short horizon, and ids repeated: the same record again, in other bytes, with other
    content (a conflict), on the other account, and long after it expired."""
    raws: list[bytes] = []
    sent: list[dict[str, Any]] = []
    at = 0
    for i in range(draw(st.integers(1, 60))):
        at = max(0, at + draw(st.integers(-15, 30)) * S)
        choice = draw(st.sampled_from(["new", "new", "again", "respelled", "other", "moved"]))
        if choice == "new" or not sent:
            account = draw(st.sampled_from(["A", "B"]))
            amount = draw(st.integers(1, 500))
            kind = drawdown if draw(st.booleans()) else repayment_posted
            event = kind(account, at, amount, event_id=f"e{i % 17}")  # ids come back
        else:
            event = dict(draw(st.sampled_from(sent)))
            if choice == "other":
                event["principal"] = event["principal"] + 1
            elif choice == "moved":
                event["account_id"] = "B" if event["account_id"] == "A" else "A"
        sent.append(event)
        if choice == "respelled":
            raws.append(json.dumps(dict(reversed(list(event.items()))), indent=1).encode())
        else:
            raws.append(line(event))
    return raws


@PROPS
@given(logs_with_repeats())
def test_the_flat_table_decides_every_record_as_the_per_account_ids_do(raws: list[bytes]) -> None:
    config = CoreConfig(dedupe_horizon_us=HORIZON_S * 1_000_000)
    kept = Engine(config, EventTimeClock())
    flat = Engine(config, EventTimeClock(), compact_ids=True)
    assert outcomes(flat, raws) == outcomes(kept, raws)


@PROPS
@given(logs_with_repeats())
def test_a_replay_fingerprint_decides_as_the_saved_digest_does(raws: list[bytes]) -> None:
    config = CoreConfig(dedupe_horizon_us=HORIZON_S * 1_000_000)
    kept = Engine(config, EventTimeClock())
    flat = Engine(config, EventTimeClock(), compact_ids=True)
    assert outcomes(flat, raws, parse_event_for_replay) == outcomes(kept, raws)


def test_an_id_stays_remembered_while_the_table_grows() -> None:
    table = IdTable()
    for n in range(20_000):
        table.put(table.find(1, n, n, 0), 1, n, n, 100, 0)
    assert table.capacity() > 20_000
    assert all(table.find(1, n, n, 0) == DUPLICATE_AT for n in range(20_000))
    assert all(table.find(1, n, n + 1, 0) == CONFLICT_AT for n in range(0, 20_000, 97))


def test_a_table_sized_for_the_ids_expected_holds_them_without_growing() -> None:
    table = IdTable(expected=20_000)
    size = table.capacity()
    for n in range(20_000):
        table.put(table.find(1, n, n, 0), 1, n, n, 100, 0)
    assert table.capacity() == size


def test_a_table_is_sized_for_at_most_the_presize_cap() -> None:
    assert IdTable(expected=10 * PRESIZE_MAX_IDS).capacity() <= 2 * PRESIZE_MAX_IDS


def test_a_growth_drops_the_ids_past_the_horizon() -> None:
    table = IdTable()
    for n in range(50_000):  # each kept until n; the horizon follows 1,000 behind
        table.put(table.find(7, n, 0, n - 1_000), 7, n, 0, n, n - 1_000)
    assert len(table) <= 4_000
    assert table.find(7, 10, 0, 49_000) >= 0  # expired: absent
    assert table.find(7, 49_990, 0, 49_000) == DUPLICATE_AT


def test_the_same_id_on_two_accounts_is_two_ids() -> None:
    table = IdTable()
    table.put(table.find(1, 5, 9, 0), 1, 5, 9, 100, 0)
    assert table.find(2, 5, 9, 0) >= 0
    assert table.find(1, 5, 9, 0) == DUPLICATE_AT


def test_an_engine_with_a_journal_keeps_its_ids_itself() -> None:
    with pytest.raises(CoreError):
        Engine(CoreConfig(), EventTimeClock(), Journal(), compact_ids=True)
