"""Golden scenarios: each fault the simulator injects is found by replay, with its reason and in
the sources it shows in.

The simulator records where it injected what (its ground truth); replaying its log must raise
the contract's reason on exactly those accounts and sources, and nothing on a clean log.
"""

from __future__ import annotations

import pytest

from limitsync.replay import InputRecord, ReplayOptions, ReplayResult, run_replay
from limitsync.simulate import Simulation, SimulationStats

ACCOUNTS = 60
HOURS = 3.0  # long enough for the 2 h clearing window to close on unposted payments

# fault kind -> the reason its breach must carry
DISPLAY_FAULTS = {
    "slow_sync": "SYNC_DELAY",
    "lost_sync": "SYNC_DELAY",
    "diverged": "CACHE_DIVERGED",
    "cache_missing": "CACHE_MISSING",
    "freeze_not_applied": "FREEZE_NOT_APPLIED",
    "app_stale": "SYNC_DELAY",
    "not_posted": "REPAYMENT_NOT_POSTED",
}


def _run(
    kinds: frozenset[str], faults: float = 0.2, seed: int = 3
) -> tuple[SimulationStats, ReplayResult]:
    sim = Simulation(ACCOUNTS, HOURS, seed, faults, 0.0, None, kinds)
    lines = list(sim)
    result = run_replay([InputRecord(x) for x in lines], ReplayOptions(keep_timelines=False))
    return sim.stats, result


def _opened(result: ReplayResult) -> set[tuple[str | None, str, str]]:
    """(source, reason, account) of every breach."""
    return {
        (a.get("source"), a["reason"], a["account_id"])
        for a in result.alerts
        if a["type"] == "mismatch.opened"
    }


def test_a_clean_log_raises_no_alert_and_ends_as_the_simulator_expects() -> None:
    stats, result = _run(frozenset(), faults=0.0)
    expected = sorted((a.as_dict() for a in stats.accounts.values()), key=lambda a: a["account_id"])
    assert (result.alerts, result.account_lines()) == ([], expected)


@pytest.mark.parametrize("kind", sorted(DISPLAY_FAULTS))
def test_each_injected_fault_is_found_with_its_reason_in_its_sources_and_nowhere_else(
    kind: str,
) -> None:
    stats, result = _run(frozenset({kind}), faults=0.25)
    injected = [f for f in stats.injected if f.kind == kind]
    assert injected, f"the simulator injected no {kind}"
    expected = {
        (source, DISPLAY_FAULTS[kind], f.account_id)
        for f in injected
        for source in (f.sources or (None,))
    }
    assert _opened(result) == expected


def test_a_stale_app_over_a_right_cache_says_so_in_its_alerts() -> None:
    _, result = _run(frozenset({"app_stale"}), faults=0.25)
    opened = [a for a in result.alerts if a["type"] == "mismatch.opened"]
    assert opened and {(a["source"], a["cache_available"] == a["expected_available"], "note" in a)
                       for a in opened} == {("app", True, True)}


@pytest.mark.parametrize("kind", ["duplicate", "conflict", "out_of_order"])
def test_delivery_faults_change_no_end_state_and_raise_no_alert(kind: str) -> None:
    stats, result = _run(frozenset({kind}))
    expected = sorted((a.as_dict() for a in stats.accounts.values()), key=lambda a: a["account_id"])
    conflicts = stats.faults.get("conflict", 0)
    assert (result.alerts, result.account_lines(), len(result.dead_letters)) == (
        [],
        expected,
        conflicts,
    )
