"""The live pipeline ends where replay ends: the cache equals the replay of the same log."""

from __future__ import annotations

from typing import Any

import pytest

from limitsync.replay import InputRecord, ReplayOptions, run_replay
from limitsync.simulate import simulate
from tests.integration.live_harness import LiveSystem, wait_for

pytestmark = pytest.mark.integration


def _replay(lines: list[bytes]) -> tuple[dict[str, dict[str, Any]], int]:
    result = run_replay([InputRecord(line) for line in lines], ReplayOptions(keep_timelines=False))
    return {a["account_id"]: a for a in result.account_lines()}, len(result.dead_letters)


def _cache_matches(system: LiveSystem, expected: dict[str, dict[str, Any]]) -> bool:
    cached = system.cache(expected)
    return all(
        h
        and int(h["available"]) == a["expected_available"]
        and int(h["credit_line"]) == a["credit_line"]
        and int(h["outstanding"]) == a["outstanding"]
        and h["status"] == a["status"]
        for a, h in ((expected[k], cached[k]) for k in expected)
    )


def test_cache_equals_replay_and_dead_letters_are_kept(system: LiveSystem) -> None:
    lines = list(simulate(accounts=40, hours=2, seed=7, faults=0.05, bad=0.01))
    expected, dead = _replay(lines)
    worker = system.worker().start()
    worker.wait_ready()
    system.produce(lines)
    wait_for(lambda: _cache_matches(system, expected), 90, "cache to equal replay")
    dead_letters = wait_for(
        lambda: (
            [d for d in system.read_topic("dead_letters") if d["reason"] != "rescore_failed"]
            if len(system.read_topic("dead_letters")) >= dead
            else None
        ),
        30,
        "dead letters",
    )
    assert len(dead_letters) == dead and all(d["original_b64"] for d in dead_letters)
