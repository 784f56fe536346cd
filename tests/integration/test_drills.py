"""Issue 15, contingency drills, live: a real broker, a real Redis and two workers with a 5 s
SLA (and a 6 s consumer session, the broker's minimum, so a killed worker's partitions move
within a drill). ``limitsync drill SCENARIO --accounts 20 --json`` must report ``passed``:
every account detected within the SLA plus the tolerance, healed, no event lost.

The scenarios run in this file's order on one stack; worker-kill last, as it leaves one
worker. Routing an inquiry to its owner needs two workers, so it is tested here too.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from eventlog import credit_line, line

from limitsync.cli import main
from limitsync.drill import summarize
from limitsync.remedy_commands import post_inquiry
from schemas.timefmt import format_us
from streams.live import partition_of
from tests.integration.live_harness import LiveSystem, make_live_system, wait_for

pytestmark = pytest.mark.integration

SLA_S = 5
ACCOUNTS = 20


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveSystem, Path]]:
    tmp = tmp_path_factory.mktemp("drills")
    unique = f"drill{time.time_ns()}"
    system = make_live_system(kafka_bootstrap, redis_url, unique, tmp, sla_seconds=str(SLA_S))
    system.env["BROKER_SESSION_TIMEOUT"] = "6"  # Faust reads these from the environment
    system.env["BROKER_HEARTBEAT_INTERVAL"] = "1"
    try:
        first, second = system.worker().start(), system.worker().start()
        wait_for(lambda: _split(first, second), 90, "two workers sharing the partitions")
        state_file = tmp / "state.json"
        state_file.write_text(json.dumps({
            "bootstrap_servers": kafka_bootstrap,
            "redis_url": redis_url,
            "topic_prefix": system.settings.topic_prefix,
            "web_urls": [w.url for w in system.workers],
        }))
        yield system, state_file
    finally:
        system.stop_all()


def _split(*workers: Any) -> bool:
    healths = [w.health() for w in workers]
    owned = [len(h["partitions"]) for h in healths if h and h["ready"]]
    return len(owned) == 2 and min(owned) > 0 and sum(owned) == 8


def drill(system: LiveSystem, state_file: Path, scenario: str) -> dict[str, Any]:
    """``limitsync drill SCENARIO --accounts 20 --json`` on the stack, as an operator runs it
    (the stack's cache prefix and SLA come from the environment, as a worker's do)."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as env, redirect_stdout(out):
        env.setenv("LIMITSYNC_CACHE_PREFIX", system.settings.cache_prefix)
        env.setenv("LIMITSYNC_SLA_SECONDS", str(SLA_S))
        main(["drill", scenario, "--accounts", str(ACCOUNTS), "--state-file", str(state_file),
              "--json", "--outage-s", "8"])
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def outcome(report: dict[str, Any]) -> tuple[Any, ...]:
    return (report["passed"], report["detected"], report["healed"], report["lost_events"])


def test_cache_divergence_is_detected_and_healed_within_the_sla(
    stack: tuple[LiveSystem, Path],
) -> None:
    report = drill(*stack, "cache-divergence")
    assert outcome(report) == (True, ACCOUNTS, ACCOUNTS, 0), report


def test_cache_loss_is_detected_and_healed_within_the_sla(
    stack: tuple[LiveSystem, Path],
) -> None:
    report = drill(*stack, "cache-loss")
    assert outcome(report) == (True, ACCOUNTS, ACCOUNTS, 0), report


def test_a_redis_outage_is_detected_and_healed_with_nothing_lost(
    stack: tuple[LiveSystem, Path],
) -> None:
    report = drill(*stack, "redis-outage")
    assert outcome(report) == (True, ACCOUNTS, ACCOUNTS, 0), report


def test_an_inquiry_sent_to_the_other_worker_is_answered_by_the_owner(
    stack: tuple[LiveSystem, Path],
) -> None:
    system, _ = stack
    account = "routed-001"
    system.produce([line({**credit_line(account, 0, 50_000, 1),
                          "occurred_at": format_us(time.time_ns() // 1000)})])
    wait_for(lambda: system.cache([account])[account].get("available") == "50000", 30,
             "the account's cache")
    owner_partition = partition_of(account, system.settings.partitions)
    other = next(w for w in system.workers
                 if owner_partition not in (w.health() or {}).get("partitions", []))
    status, reply = post_inquiry([other.url], {"account_id": account,
                                               "displayed_available": 50_000})
    assert (status, reply["verdict"]) == (200, "correct")


def test_a_killed_worker_is_detected_and_its_accounts_healed_by_the_other(
    stack: tuple[LiveSystem, Path],
) -> None:
    report = drill(*stack, "worker-kill")
    assert outcome(report) == (True, ACCOUNTS, ACCOUNTS, 0), report


def test_a_drill_with_one_account_detected_late_fails() -> None:
    report = summarize("cache-loss", ["a", "b"], {"a": 1.0, "b": 10.5}, {"a": 2.0, "b": 11.0},
                       5.0, 5.0, 0)
    assert report["passed"] is False


def test_a_drill_with_a_lost_event_fails() -> None:
    report = summarize("worker-kill", ["a"], {"a": 1.0}, {"a": 2.0}, 5.0, 5.0, 1)
    assert report["passed"] is False
