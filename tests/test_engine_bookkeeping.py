"""The engine's kept counters agree with the state they summarise."""

from __future__ import annotations

from limitsync.replay import InputRecord, ReplayOptions, run_replay
from limitsync.simulate import simulate
from streams.core import Engine, EventTimeClock
from streams.core.state import AccountState


def _counted(engine: Engine) -> int:
    return sum(1 for a in engine.accounts.values() if a.drift is not None)


def test_open_drifts_matches_the_accounts_in_drift_after_a_faulty_day_and_a_reload() -> None:
    lines = list(simulate(accounts=80, hours=3, seed=4, faults=0.1, bad=0.0))
    engine = run_replay([InputRecord(x) for x in lines], ReplayOptions()).engine
    reloaded = Engine(engine.config, EventTimeClock())
    reloaded.load(AccountState.from_dict(a.to_dict()) for a in engine.accounts.values())
    some = list(reloaded.accounts)[:10]
    reloaded.unload(some)
    assert (engine.open_drifts(), reloaded.open_drifts()) == (
        _counted(engine),
        _counted(reloaded),
    ) and _counted(engine) > 0
