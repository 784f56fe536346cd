"""Properties of the core: order-free state, deterministic output, bounded memory, and a
lossless state form an engine can be rebuilt from (docs/contract.md "The expected available
limit": any order ends in the same state; docs/design.md "The core is pure": TigerBeetle-style
shuffled replays, Flink-style timers that survive a restart, a limit on everything).
"""

from __future__ import annotations

import json
import random
from typing import Any

from eventlog import (
    S,
    account_status,
    credit_line,
    displayed,
    drawdown,
    feed,
    ingest,
    repayment_initiated,
    repayment_posted,
    repayment_reversed,
    replay,
    us,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core import AccountState, CoreConfig, Engine, EventTimeClock

PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ACCOUNTS = ["A", "B", "C"]
KINDS = ["drawdown", "initiated", "posted", "reversed", "line", "status", "displayed"]


@st.composite
def event_logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A log of valid events with unique ids and unique times (so "latest" is unambiguous)."""
    n = draw(st.integers(1, 40))
    times = draw(st.lists(st.integers(0, 3600 * S), min_size=n, max_size=n, unique=True))
    events: list[dict[str, Any]] = []
    for i, at in enumerate(times):
        kind = draw(st.sampled_from(KINDS))
        acct = draw(st.sampled_from(ACCOUNTS))
        eid = f"e{i}"
        money = draw(st.integers(0, 20_000))
        if kind == "drawdown":
            events.append(drawdown(acct, at, money, event_id=eid))
        elif kind == "initiated":
            pid = f"p{draw(st.integers(0, 5))}"
            events.append(repayment_initiated(acct, at, pid, money, event_id=eid))
        elif kind == "posted":
            paid = draw(st.none() | st.sampled_from(["p0", "p1", "p2"]))
            events.append(repayment_posted(acct, at, money, interest=draw(st.integers(0, 500)),
                                           payment_id=paid, event_id=eid))
        elif kind == "reversed":
            target = f"e{draw(st.integers(0, n))}"  # may be a repayment, anything else, or none
            events.append(repayment_reversed(acct, at, target, event_id=eid))
        elif kind == "line":
            events.append(credit_line(acct, at, money, version=i, event_id=eid,
                                      cause=draw(st.sampled_from(["initial", "rescore"]))))
        elif kind == "status":
            status = draw(st.sampled_from(["active", "frozen", "closed"]))
            events.append(account_status(acct, at, status, version=i, event_id=eid))
        else:
            shown = draw(st.none() | st.integers(0, 20_000))
            source = draw(st.sampled_from([None, "app", "cache"]))  # None: absent, the app
            extra = {} if source is None else {"source": source}
            events.append(displayed(acct, at, shown, event_id=eid, **extra))
    return events


def model(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contract's formulas, computed directly from the whole log."""
    out = []
    for acct in sorted({e["account_id"] for e in events}):
        mine = [e for e in events if e["account_id"] == acct]
        reversed_ids = {e["reverses_event_id"] for e in mine if e["type"] == "repayment.reversed"}
        drawn = sum(e["principal"] for e in mine if e["type"] == "drawdown.booked")
        repaid = sum(e["principal"] for e in mine
                     if e["type"] == "repayment.posted" and e["event_id"] not in reversed_ids)
        lines = [e for e in mine if e["type"] == "credit_line.changed"]
        statuses = [e for e in mine if e["type"] == "account.status_changed"]
        shows = [e for e in mine if e["type"] == "limit.displayed"]
        app = [e for e in shows if e.get("source", "app") == "app"]
        cache = [e for e in shows if e.get("source") == "cache"]
        line = max(lines, key=lambda e: e["version"])["credit_line"] if lines else 0
        status = max(statuses, key=lambda e: e["version"])["status"] if statuses else "active"
        outstanding = max(0, drawn - repaid)
        expected = 0 if status != "active" else max(0, line - outstanding)
        out.append({"account_id": acct, "credit_line": line, "outstanding": outstanding,
                    "status": status, "expected_available": expected,
                    "displayed_available": latest(app), "cache_available": latest(cache)})
    return out


def latest(shows: list[dict[str, Any]]) -> int | None:
    """The newest observation's value (times are unique), None when there is none."""
    return max(shows, key=lambda e: e["occurred_at"])["displayed_available"] if shows else None


def respell(event: dict[str, Any]) -> bytes:
    """The same JSON object with other key order and whitespace."""
    return json.dumps(dict(reversed(list(event.items()))), indent=1).encode()


# -- order-free state -------------------------------------------------------------------------


@PROPS
@given(event_logs())
def test_final_state_follows_the_contract_formulas(events: list[dict[str, Any]]) -> None:
    assert replay(events).account_lines() == model(events)


@PROPS
@given(event_logs(), st.randoms(use_true_random=False),
       st.lists(st.integers(0, 10_000), max_size=10))
def test_any_shuffle_with_duplicates_ends_in_the_same_state(
    events: list[dict[str, Any]], rnd: random.Random, dup_picks: list[int]
) -> None:
    shuffled: list[dict[str, Any] | bytes] = list(events)
    rnd.shuffle(shuffled)
    for k, pick in enumerate(dup_picks):
        original = events[pick % len(events)]
        copy = respell(original) if k % 2 else original
        shuffled.insert(rnd.randrange(len(shuffled) + 1), copy)
    result = replay(shuffled)
    assert result.account_lines() == replay(events).account_lines()
    assert result.dead_letters == []


@PROPS
@given(event_logs())
def test_replay_output_is_identical_across_runs(events: list[dict[str, Any]]) -> None:
    first, second = replay(events), replay(events)
    assert first.alerts == second.alerts
    assert first.account_lines() == second.account_lines()


# -- bounded dedupe memory -----------------------------------------------------------------


def long_stream_sizes(config: CoreConfig, memory: str) -> list[int]:
    """One event a second for 3,000 s, drawdowns and postings in turn: the size of one of the
    account's memories after each."""
    engine = Engine(config, EventTimeClock())
    feed(engine, [credit_line("A", 0, 10**9, 1)])
    sizes = []
    for i in range(1, 3001):
        ingest(engine, drawdown("A", i * S, 1) if i % 2 else repayment_posted("A", i * S, 1))
        sizes.append(len(getattr(engine.accounts["A"], memory)))
    return sizes


def test_dedupe_memory_stays_within_the_horizon_on_a_long_stream() -> None:
    sizes = long_stream_sizes(CoreConfig(dedupe_horizon_us=60 * 1_000_000), "seen")
    assert max(sizes) <= 61


def test_postings_are_kept_for_the_reversal_window_and_no_longer() -> None:
    config = CoreConfig(dedupe_horizon_us=60 * 1_000_000, reversal_window_us=120 * 1_000_000)
    sizes = long_stream_sizes(config, "posted")
    assert max(sizes) == 61  # a posting every 2 s, each kept 120 s


@PROPS
@given(st.lists(st.tuples(st.integers(1, 5 * S), st.sampled_from(["dd", "rp", "rv", "show"])),
                min_size=1, max_size=300))
def test_dedupe_memory_is_bounded_by_the_events_within_the_horizon(
    steps: list[tuple[int, str]]
) -> None:
    horizon = 10 * S
    config = CoreConfig(dedupe_horizon_us=horizon * 1000, reversal_window_us=horizon * 1000)
    engine = Engine(config, EventTimeClock())
    at, times = 0, []
    for i, (gap, kind) in enumerate(steps):
        at += gap
        times.append(at)
        if kind == "dd":
            event = drawdown("A", at, 1, event_id=f"e{i}")
        elif kind == "rp":
            event = repayment_posted("A", at, 1, payment_id=f"p{i}", event_id=f"e{i}")
        elif kind == "rv":
            event = repayment_reversed("A", at, f"e{i - 1}", event_id=f"e{i}")
        else:
            event = displayed("A", at, 0, event_id=f"e{i}")
        ingest(engine, event)
        acct = engine.accounts["A"]
        within = sum(1 for t in times if t >= at - horizon)
        for memory in (acct.seen, acct.posted, acct.posted_payments, acct.orphan_reversals):
            assert len(memory) <= within


@PROPS
@given(st.lists(st.integers(0, 60), min_size=1, max_size=200))
def test_ids_are_forgotten_a_horizon_after_they_arrive_however_old(seconds: list[int]) -> None:
    horizon = 10 * S
    engine = Engine(CoreConfig(dedupe_horizon_us=horizon * 1000), EventTimeClock())
    latest, kept = 0, []
    for i, second in enumerate(seconds):  # in any order: some arrive after later ones
        ingest(engine, displayed("A", second * S, 0, event_id=f"e{i}"))
        latest = max(latest, second * S)
        kept.append((latest, f"e{i}"))  # the clock when it arrived
        remembered = set(engine.accounts["A"].seen)
        assert remembered == {e for arrived, e in kept if arrived >= latest - horizon}


# -- lossless state and a rebuilt engine -------------------------------------------------------


RICH = [
    credit_line("A", 0, 10_000, 1, cause="rescore", reasons=["r1"]),
    displayed("A", 0, 10_000, cache_version=1),
    drawdown("A", 1 * S, 3_000),
    repayment_initiated("A", 2 * S, "pay-1", 500),
    repayment_posted("A", 3 * S, 500, interest=20, payment_id="pay-1", event_id="rp-1"),
    repayment_posted("A", 4 * S, 700, payment_id="pay-2", event_id="rp-2"),
    repayment_reversed("A", 5 * S, "rp-2"),
    repayment_reversed("A", 6 * S, "never-posted"),
    repayment_initiated("A", 7 * S, "pay-3", 900),
    account_status("A", 8 * S, "frozen", 1, reason="review"),
    displayed("A", 9 * S, 4_000),
    displayed("A", 9 * S, 3_000, source="cache", cache_version=4),
]


def through_json(acct: AccountState) -> AccountState:
    return AccountState.from_dict(json.loads(json.dumps(acct.to_dict())))


def rich_engine(config: CoreConfig) -> Engine:
    engine = Engine(config, EventTimeClock())
    feed(engine, RICH)
    return engine


def test_account_state_round_trips_through_json_after_a_rich_scenario() -> None:
    engine = rich_engine(CoreConfig(rescore_enabled=True))
    engine.advance(us(100 * S))  # breach the drift, send the rescore request
    acct = engine.accounts["A"]
    assert acct.app.drift is not None and acct.app.drift.breached and acct.clearing
    assert acct.cache.drift is not None and acct.cache.drift.breached
    assert acct.history and acct.orphan_reversals and acct.posted_payments
    copy = through_json(acct)
    assert copy == acct
    assert copy.to_dict() == acct.to_dict()
    def seen(a: AccountState) -> tuple[int | None, ...]:
        return (a.expected_available, a.outstanding, a.app.displayed, a.cache.displayed)

    assert seen(copy) == seen(acct)


def test_a_state_saved_with_history_as_dicts_still_loads() -> None:
    """Changelogs written before the compact history hold each entry as a dict."""
    acct = rich_engine(CoreConfig()).accounts["A"]
    old_form = {**acct.to_dict(), "history": [h.to_dict() for h in acct.history]}
    assert AccountState.from_dict(json.loads(json.dumps(old_form))) == acct


@PROPS
@given(event_logs())
def test_every_account_state_round_trips_through_json(events: list[dict[str, Any]]) -> None:
    for acct in replay(events).engine.accounts.values():
        assert through_json(acct) == acct


def rebuilt(engine: Engine) -> Engine:
    copy = Engine(engine.config, EventTimeClock())
    copy.load(through_json(a) for a in engine.accounts.values())
    return copy


LOAD_CONFIG = CoreConfig(sla_us=60 * 1_000_000, clearing_sla_us=120 * 1_000_000,
                         rescore_enabled=True)


def pending_deadlines_engine() -> Engine:
    """Open drifts (of both sources) and clearing watches in every stage, and rescores due, at
    clock 130 s."""
    engine = Engine(LOAD_CONFIG, EventTimeClock())
    feed(engine, [
        credit_line("B", 0, 1_000, 1), displayed("B", 0, 1_000), drawdown("B", 1 * S, 100),
        credit_line("F", 0, 1_000, 1), displayed("F", 0, 1_000, source="cache"),
        drawdown("F", 2 * S, 100),
        repayment_initiated("D", 2 * S, "pay-d", 100),
        displayed("OTHER", 125 * S, 0),  # B's app and F's cache breached (not escalated), D too
        credit_line("A", 100 * S, 1_000, 1), displayed("A", 100 * S, 1_000),
        displayed("A", 100 * S, 1_000, source="cache"),
        drawdown("A", 126 * S, 100),  # A drifting in the app and the cache, not breached yet
        repayment_initiated("C", 127 * S, "pay-c", 100),  # C watching, not breached
        drawdown("E", 128 * S, 100),  # E: rescore due
    ])
    return engine


def test_rebuilt_engine_fires_the_same_pending_deadlines() -> None:
    original = pending_deadlines_engine()
    copy = rebuilt(original)
    fired = 0
    for at in (150, 187, 200, 247, 700, 1_300, 1_500, 5_000):
        expected = original.advance(us(at * S))
        assert copy.advance(us(at * S)) == expected
        fired += len(expected)
    # A's two drifts opened+escalated, B and F escalated, C opened+escalated, D escalated, rescores
    assert fired >= 10


def test_rebuilt_engine_goes_on_like_the_original() -> None:
    original = pending_deadlines_engine()
    copy = rebuilt(original)
    later = [displayed("A", 140 * S, 900), repayment_posted("C", 300 * S, 100, payment_id="pay-c"),
             displayed("B", 400 * S, 900), displayed("F", 410 * S, 900, source="cache"),
             displayed("A", 420 * S, 900, source="cache"), drawdown("E", 500 * S, 1)]
    assert feed(copy, later) == feed(original, later)
    assert {k: a.to_dict() for k, a in copy.accounts.items()} == {
        k: a.to_dict() for k, a in original.accounts.items()}


def test_rebuilt_engine_forgets_old_ids_like_the_original() -> None:
    config = CoreConfig(dedupe_horizon_us=60 * 1_000_000)
    original = rich_engine(config)
    copy = rebuilt(original)
    later = [drawdown("A", 1_000 * S, 1)]
    feed(original, later)
    feed(copy, later)
    assert copy.accounts["A"].seen == original.accounts["A"].seen
    assert copy.accounts["A"].posted == original.accounts["A"].posted


def test_rebuilt_engine_forgets_old_payments_and_orphans_like_the_original() -> None:
    config = CoreConfig(dedupe_horizon_us=60 * 1_000_000)
    original = rich_engine(config)
    copy = rebuilt(original)
    later = [drawdown("A", 1_000 * S, 1)]
    feed(original, later)
    feed(copy, later)
    assert (copy.accounts["A"].posted_payments, copy.accounts["A"].orphan_reversals) == (
        original.accounts["A"].posted_payments, original.accounts["A"].orphan_reversals)
