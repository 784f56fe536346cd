"""Issue 12, live: what users see and what the cache holds drift apart, and each is alerted on.

A real broker, a real Redis and a worker process, with a 5 s SLA. The experiment: 20 accounts
get a credit line of 1,000.00 (the worker writes the cache, version 1); three seconds later the
app reports showing 500.00-500.19 for each, newer than the cache write. Each account must raise an
``app`` breach after the SLA while the cache stays exact and no ``cache`` drift opens. And a
tampered cache under a right app display still raises a ``cache`` breach, which auto-heals.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventlog import credit_line, displayed, line

from schemas.timefmt import format_us
from tests.integration.live_harness import LiveSystem, make_live_system, wait_for

pytestmark = pytest.mark.integration

SLA_S = 5
LINE = 100_000  # 1,000.00 yuan in fen
ACCOUNTS = [f"exp-{i:02d}" for i in range(20)]


@pytest.fixture
def system(
    kafka_bootstrap: str, redis_url: str, unique_id: str, tmp_path: Path
) -> Iterator[LiveSystem]:
    """The live system of tests/integration/conftest.py with a 5 s SLA and a worker running."""
    s = make_live_system(kafka_bootstrap, redis_url, unique_id, tmp_path, sla_seconds=str(SLA_S))
    s.worker().start().wait_ready()
    yield s
    s.stop_all()


def now(event: dict[str, Any]) -> bytes:
    """The event stamped with the wall clock: the live clock."""
    return line({**event, "occurred_at": format_us(time.time_ns() // 1000)})


def lines_written(system: LiveSystem, accounts: list[str], available: int, version: int) -> bool:
    cached = system.cache(accounts)
    return all(
        h and (int(h["available"]), int(h["version"])) == (available, version)
        for h in cached.values()
    )


def alerts_of(system: LiveSystem, accounts: list[str]) -> list[dict[str, Any]]:
    return [a for a in system.read_topic("alerts", idle_s=1.0) if a["account_id"] in accounts]


def breaches(system: LiveSystem, accounts: list[str]) -> list[dict[str, Any]] | None:
    """The opened alerts of ``accounts``, once there is one per account."""
    found = [a for a in alerts_of(system, accounts) if a["type"] == "mismatch.opened"]
    return found if len(found) >= len(accounts) else None


def explain(system: LiveSystem, account: str) -> dict[str, Any]:
    url = f"{system.workers[0].url}/accounts/{account}/explain"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_the_app_showing_half_of_a_right_cache_breaches_app_side_for_each_account(
    system: LiveSystem,
) -> None:
    system.produce(now(credit_line(a, 0, LINE, 1)) for a in ACCOUNTS)
    wait_for(lambda: lines_written(system, ACCOUNTS, LINE, 1), 30, "the cache written")
    time.sleep(3)
    system.produce(now(displayed(a, 0, 50_000 + i, source="app")) for i, a in enumerate(ACCOUNTS))
    opened = wait_for(lambda: breaches(system, ACCOUNTS), SLA_S + 30, "20 breaches")
    time.sleep(SLA_S)  # time for a cache breach too, were one to come
    alerts = alerts_of(system, ACCOUNTS)
    assert {(a["account_id"], a["type"], a["source"], a["reason"]) for a in alerts} == {
        (a, "mismatch.opened", "app", "CACHE_DIVERGED") for a in ACCOUNTS
    }
    assert {(a["cache_available"], a["note"]) for a in opened} == {
        (LINE, "the cache holds the expected value: the display layer is behind, not the cache")
    }
    assert lines_written(system, ACCOUNTS, LINE, 1)  # exact, and never rewritten by a heal
    assert {explain(system, a)["sources"]["cache"]["in_drift"] for a in ACCOUNTS} == {False}


def test_a_tampered_cache_under_a_right_app_display_breaches_cache_side_and_heals(
    system: LiveSystem,
) -> None:
    account = "tampered-1"
    system.produce([now(credit_line(account, 0, LINE, 1))])
    wait_for(lambda: lines_written(system, [account], LINE, 1), 30, "the cache written")
    system.produce([now(displayed(account, 0, LINE, source="app"))])
    client = system.redis()
    try:
        client.hset(f"{system.settings.cache_prefix}{account}", "available", 55_555)
    finally:
        client.close()
    resolved = wait_for(
        lambda: [a for a in alerts_of(system, [account]) if a["type"] == "mismatch.resolved"],
        SLA_S + 30,
        "the cache breach to heal",
    )
    alerts = alerts_of(system, [account])
    assert [(a["type"], a["source"], a["reason"], a.get("resolution")) for a in alerts] == [
        ("mismatch.opened", "cache", "CACHE_DIVERGED", None),
        ("mismatch.resolved", "cache", "CACHE_DIVERGED", "auto_healed"),
    ] and resolved
    assert lines_written(system, [account], LINE, 2)  # rewritten by the heal
