"""The engine's kept counters agree with the state they summarise."""

from __future__ import annotations

from limitsync.replay import InputRecord, ReplayOptions, run_replay
from limitsync.simulate import simulate
from schemas.parse import Parsed, parse_event
from streams.core import CoreConfig, Engine, EventTimeClock
from streams.core.state import AccountState


def _counted(engine: Engine, source: str) -> int:
    return sum(1 for a in engine.accounts.values() if getattr(a, source).drift is not None)


def test_open_drifts_matches_the_accounts_in_drift_after_a_faulty_day_and_a_reload() -> None:
    lines = list(simulate(accounts=80, hours=3, seed=4, faults=0.1, bad=0.0))
    engine = run_replay([InputRecord(x) for x in lines], ReplayOptions()).engine
    reloaded = Engine(engine.config, EventTimeClock())
    reloaded.load(AccountState.from_dict(a.to_dict()) for a in engine.accounts.values())
    some = list(reloaded.accounts)[:10]
    reloaded.unload(some)
    kept = [
        (e.open_drifts_of("app"), e.open_drifts_of("cache"), e.open_drifts())
        for e in (engine, reloaded)
    ]
    counted = [
        (_counted(e, "app"), _counted(e, "cache"), _counted(e, "app") + _counted(e, "cache"))
        for e in (engine, reloaded)
    ]
    assert kept == counted and counted[0][0] > 0 and counted[0][1] > 0


def test_ingest_reads_occurred_at_itself_when_the_parser_does_not_hand_it_over() -> None:
    lines = list(simulate(accounts=40, hours=2, seed=9, faults=0.1, bad=0.0))
    told, untold = (Engine(CoreConfig(), EventTimeClock()) for _ in range(2))
    outcomes: list[tuple[object, object]] = []
    for raw in lines:
        parsed = parse_event(raw)
        if isinstance(parsed, Parsed):
            outcomes.append(
                (
                    told.ingest(parsed.event, parsed.digest, parsed.occurred_us),
                    untold.ingest(parsed.event, parsed.digest),
                )
            )
    assert all(a == b for a, b in outcomes) and len(outcomes) > 500
    assert [a.to_dict() for a in told.accounts.values()] == [
        a.to_dict() for a in untold.accounts.values()
    ]


def test_counters_count_applied_events_by_type_and_duplicates() -> None:
    line = next(iter(simulate(accounts=1, hours=1, seed=2, faults=0.0, bad=0.0)))
    parsed = parse_event(line)
    assert isinstance(parsed, Parsed)
    engine = Engine(CoreConfig(), EventTimeClock())
    for _ in range(3):
        engine.ingest(parsed.event, parsed.digest, parsed.occurred_us)
    counted = engine.counters
    assert (counted[f"events.{parsed.event.type}"], counted["duplicate"]) == (1, 2)
