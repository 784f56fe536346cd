"""The idempotency horizon and the reversal window (docs/contract.md "Idempotency horizon",
"Input events": repayment.reversed), with event times far from the clock.

Live workers run the core on the wall clock; a backfill or a re-read topic brings events
whose ``occurred_at`` is weeks old. Nothing may be applied twice because it is old, and a
late reversal must still find its repayment.
"""

from __future__ import annotations

from typing import Any

import pytest
from eventlog import (
    T0_US,
    S,
    credit_line,
    displayed,
    drawdown,
    feed,
    ingest,
    line,
    repayment_initiated,
    repayment_posted,
    repayment_reversed,
)

from schemas.parse import Parsed, parse_event
from streams.core import CoreConfig, Engine, EventTimeClock, InjectedClock, Outcome, outcome_key
from streams.core.effects import ReversalUnmatched
from streams.core.journal import HISTORY, ID, ORPHAN, POSTING, Journal
from streams.core.state import CLEARING_WATCHES_MAX, HELD_VALUES_MAX, HISTORY_MAX

DAY = 24 * 3600 * S  # in the event log's milliseconds
DAY_US = 24 * 3600 * 1_000_000


class WallClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us


def live_engine(wall: WallClock, journal: Journal | None = None) -> Engine:
    return Engine(CoreConfig(), InjectedClock(wall), journal)


def outcome(engine: Engine, event: dict[str, Any]) -> Outcome:
    parsed = parse_event(line(event))
    assert isinstance(parsed, Parsed)
    return engine.ingest(parsed.event, parsed.digest, parsed.occurred_us)[0]


# -- the dedupe horizon counts arrival, not only event time ---------------------------------


def test_a_month_old_duplicate_arriving_live_is_not_applied_twice() -> None:
    wall = WallClock(T0_US + 30 * DAY_US)  # the log is a month old
    engine = live_engine(wall)
    posting = repayment_posted("A", 5 * S, 1_000)
    feed(engine, [credit_line("A", 0, 10_000, 1), drawdown("A", S, 4_000), posting])
    wall.now_us += 3_000_000  # the duplicate comes a few seconds later
    assert outcome(engine, posting) is Outcome.DUPLICATE
    assert engine.accounts["A"].outstanding == 3_000


def test_an_id_is_forgotten_once_both_its_event_time_and_arrival_pass_the_horizon() -> None:
    wall = WallClock(T0_US + 30 * DAY_US)
    engine = live_engine(wall)
    first = drawdown("A", S, 100, event_id="dd-1")
    ingest(engine, first)
    wall.now_us += 7 * DAY_US - 1_000_000
    ingest(engine, displayed("A", 2 * S, 0))  # any record moves the clock and expires ids
    assert "dd-1" in engine.accounts["A"].seen
    wall.now_us += 2_000_000
    ingest(engine, displayed("A", 3 * S, 0))
    assert "dd-1" not in engine.accounts["A"].seen


def test_a_future_stamped_id_is_kept_until_its_event_time_passes_the_horizon() -> None:
    wall = WallClock(T0_US)
    engine = live_engine(wall)
    ingest(engine, drawdown("A", 10 * DAY, 100, event_id="ahead"))
    wall.now_us += 8 * DAY_US  # past arrival + horizon, not past event time + horizon
    ingest(engine, displayed("A", 0, 0))
    assert "ahead" in engine.accounts["A"].seen


def test_replay_remembers_a_late_record_for_a_horizon_after_its_arrival() -> None:
    engine = Engine(CoreConfig(), EventTimeClock())
    late = drawdown("A", 0, 100, event_id="late")
    feed(engine, [drawdown("A", 20 * DAY, 1), late])
    feed(engine, [displayed("A", 26 * DAY, 0)])
    assert outcome(engine, late) is Outcome.DUPLICATE


# -- the reversal window ----------------------------------------------------------------------


def test_a_reversal_thirty_days_after_its_repayment_still_undoes_it() -> None:
    engine = Engine(CoreConfig(), EventTimeClock())
    feed(engine, [
        credit_line("A", 0, 10_000, 1),
        drawdown("A", S, 5_000),
        repayment_posted("A", 2 * S, 2_000, event_id="rp"),
        drawdown("A", 20 * DAY, 1),  # the clock moves well past the dedupe horizon
        repayment_reversed("A", 30 * DAY, "rp"),
    ])
    assert engine.accounts["A"].outstanding == 5_001


def test_a_reversal_after_the_reversal_window_finds_nothing_to_undo() -> None:
    engine = Engine(CoreConfig(reversal_window_us=10 * DAY_US), EventTimeClock())
    feed(engine, [
        credit_line("A", 0, 10_000, 1),
        drawdown("A", S, 5_000),
        repayment_posted("A", 2 * S, 2_000, event_id="rp"),
        drawdown("A", 11 * DAY, 1),
        repayment_reversed("A", 12 * DAY, "rp"),
    ])
    assert engine.accounts["A"].outstanding == 3_001


def test_a_posting_repeated_after_its_id_left_the_horizon_moves_money_once() -> None:
    engine = Engine(CoreConfig(), EventTimeClock())
    posting = repayment_posted("A", 2 * S, 2_000, event_id="rp")
    feed(engine, [credit_line("A", 0, 10_000, 1), drawdown("A", S, 5_000), posting])
    feed(engine, [drawdown("A", 10 * DAY, 1)])
    assert "rp" not in engine.accounts["A"].seen
    feed(engine, [posting])
    assert engine.accounts["A"].outstanding == 3_001


def test_a_reversal_with_no_repayment_says_which_ids() -> None:
    engine = Engine(CoreConfig(), EventTimeClock())
    effects = feed(engine, [repayment_reversed("A", S, "rp-x", event_id="rv-1")])
    assert [e for e in effects if isinstance(e, ReversalUnmatched)] == [
        ReversalUnmatched("A", "rv-1", "rp-x")
    ]


def test_a_payment_posted_long_ago_still_satisfies_a_late_initiation() -> None:
    engine = Engine(CoreConfig(), EventTimeClock())
    feed(engine, [
        repayment_posted("A", S, 100, payment_id="pay-1"),
        drawdown("A", 10 * DAY, 1),
        repayment_initiated("A", 10 * DAY, "pay-1", 100),
    ])
    assert engine.accounts["A"].clearing == {}


# -- bounded state ------------------------------------------------------------------------------


def test_clearing_watches_per_account_are_bounded_oldest_first() -> None:
    engine = Engine(CoreConfig(), EventTimeClock())
    feed(engine, [
        repayment_initiated("A", i * S, f"pay-{i}", 1) for i in range(CLEARING_WATCHES_MAX + 5)
    ])
    watched = engine.accounts["A"].clearing
    assert len(watched) == CLEARING_WATCHES_MAX
    assert "pay-0" not in watched and f"pay-{CLEARING_WATCHES_MAX + 4}" in watched


def test_a_long_drift_remembers_at_most_the_bound_of_held_values() -> None:
    engine = Engine(CoreConfig(), EventTimeClock())
    feed(engine, [credit_line("A", 0, 10**9, 1), displayed("A", 0, 10**9)])
    feed(engine, [drawdown("A", i * S, 1) for i in range(1, HELD_VALUES_MAX + 50)])
    drift = engine.accounts["A"].app.drift
    assert drift is not None
    assert len(drift.held) == HELD_VALUES_MAX
    assert 10**9 in drift.held  # the value shown before the drift opened stays


# -- the journal a live shell stores per id --------------------------------------------------


def test_the_journal_holds_each_new_id_posting_and_history_slot() -> None:
    journal = Journal()
    engine = Engine(CoreConfig(), EventTimeClock(), journal)
    feed(engine, [
        drawdown("A", S, 500, event_id="dd"),
        repayment_posted("A", 2 * S, 100, event_id="rp"),
        repayment_reversed("A", 3 * S, "nope", event_id="rv"),
    ])
    kinds = {(kind, key) for kind, _, key in engine.drain_journal()}
    assert kinds == {
        (ID, "dd"), (ID, "rp"), (ID, "rv"), (POSTING, "rp"), (ORPHAN, "nope"),
        (HISTORY, "0"), (HISTORY, "1"),
    }


def test_draining_the_journal_settles_deferred_digests() -> None:
    journal = Journal()
    engine = Engine(CoreConfig(), EventTimeClock(), journal)
    feed(engine, [drawdown("A", S, 500, event_id="dd")])
    (digest, _), = [v for (kind, _, _), v in engine.drain_journal().items() if kind == ID]
    assert type(digest) is str and len(digest) == 32
    assert engine.accounts["A"].seen["dd"][0] == digest


def test_history_slots_wrap_around_a_ring_of_the_kept_size() -> None:
    journal = Journal()
    engine = Engine(CoreConfig(), EventTimeClock(), journal)
    feed(engine, [drawdown("A", i * S, 1) for i in range(HISTORY_MAX + 3)])
    slots = {key for kind, _, key in engine.drain_journal() if kind == HISTORY}
    assert slots == {str(i) for i in range(HISTORY_MAX)}
    assert len(engine.accounts["A"].history) == HISTORY_MAX


def test_a_forgotten_id_is_journaled_as_gone() -> None:
    journal = Journal()
    engine = Engine(CoreConfig(dedupe_horizon_us=DAY_US), EventTimeClock(), journal)
    feed(engine, [drawdown("A", S, 1, event_id="old")])
    engine.drain_journal()
    feed(engine, [drawdown("A", 2 * DAY, 1)])
    assert engine.drain_journal()[(ID, "A", "old")] is None


@pytest.mark.parametrize("outcome", list(Outcome))
def test_an_outcome_is_counted_under_its_value(outcome: Outcome) -> None:
    assert outcome_key(outcome) == outcome.value
