"""Records that once broke a live worker, and records old enough to be forgotten too early
(docs/contract.md "Bad input", "Idempotency horizon"): with a real broker and a real Redis, the
cache ends exact, every bad record is a dead letter with its place in the log, and the same
worker process keeps running.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from limitsync.replay import InputRecord, ReplayOptions, run_replay
from limitsync.simulate import simulate
from tests.integration.live_harness import LiveSystem, wait_for

pytestmark = pytest.mark.integration


def _replay(lines: list[bytes]) -> Any:
    return run_replay([InputRecord(line) for line in lines], ReplayOptions(keep_timelines=False))


def _expected(lines: list[bytes]) -> dict[str, dict[str, Any]]:
    return {a["account_id"]: a for a in _replay(lines).account_lines()}


def _rejections(dead_letters: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((d["reason"], d["event_id"] or "") for d in dead_letters)


def _exact(system: LiveSystem, expected: dict[str, dict[str, Any]]) -> list[str]:
    """Accounts whose cached limit is not the expected one yet."""
    cached = system.cache(expected)
    return [
        aid
        for aid, a in expected.items()
        if not cached[aid]
        or int(cached[aid]["available"]) != a["expected_available"]
        or int(cached[aid]["outstanding"]) != a["outstanding"]
    ]


def _metric(text: str, name: str, **labels: str) -> float:
    want = "".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if m and want in (m[1] or ""):
            total += float(m[2])
    return total


def test_a_month_old_log_with_duplicates_ends_with_an_exact_cache(system: LiveSystem) -> None:
    start = datetime.now(UTC) - timedelta(days=30)
    lines = list(simulate(accounts=80, hours=2, seed=11, faults=0.05, bad=0.0, start=start))
    with_duplicates: list[bytes] = []
    for line in lines:  # every posted repayment comes twice, a few records apart
        with_duplicates.append(line)
        if b'"repayment.posted"' in line:
            with_duplicates.insert(max(0, len(with_duplicates) - 3), line)
    replayed = _replay(with_duplicates)
    expected = {a["account_id"]: a for a in replayed.account_lines()}
    worker = system.worker().start()
    worker.wait_ready()
    system.produce(with_duplicates)
    wait_for(lambda: not _exact(system, expected), 120, "the cache to equal the replay")
    # Only the simulator's deliberate conflicts: no duplicate is taken for one.
    assert _rejections(system.read_topic("dead_letters")) == _rejections(replayed.dead_letters)


BAD_RECORDS: dict[str, bytes] = {
    "lone surrogate": (
        b'{"event_id":"bad-1","type":"drawdown.booked","account_id":"acct-bad",'
        b'"occurred_at":"%s","schema_version":1,"loan_id":"L\\ud800","principal":1}'
    ),
    "year 1": (
        b'{"event_id":"bad-2","type":"drawdown.booked","account_id":"acct-bad",'
        b'"occurred_at":"0001-01-01T00:00:00.000+08:00","schema_version":1,'
        b'"loan_id":"L","principal":1}'
    ),
    "year 10000": (
        b'{"event_id":"bad-3","type":"drawdown.booked","account_id":"acct-bad",'
        b'"occurred_at":"9999-12-31T23:00:00.000-08:00","schema_version":1,'
        b'"loan_id":"L","principal":1}'
    ),
    "440 KB": b'{"event_id":"bad-4","type":"' + b"x" * 440_000 + b'","account_id":"acct-bad"}',
}


def test_records_that_broke_workers_are_dead_lettered_and_the_worker_goes_on(
    system: LiveSystem,
) -> None:
    now = datetime.now(UTC) - timedelta(hours=2)
    lines = list(simulate(accounts=60, hours=1, seed=5, faults=0.02, bad=0.0, start=now))
    stamp = lines[len(lines) // 2].split(b'"occurred_at":"')[1].split(b'"')[0]
    bad = [raw.replace(b"%s", stamp) if b"%s" in raw else raw for raw in BAD_RECORDS.values()]
    mixed = list(lines)
    for i, raw in enumerate(bad):
        mixed.insert((i + 1) * len(lines) // (len(bad) + 2), raw)
    expected = _expected(lines)
    broken = sorted(expected)[0]
    client = system.redis()
    client.set(f"{system.settings.cache_prefix}{broken}", "not a hash")  # WRONGTYPE for HSET
    client.close()

    worker = system.worker().start()
    worker.wait_ready()
    assert worker.proc is not None
    pid = worker.proc.pid
    half = len(mixed) // 2
    system.produce(mixed[:half])
    _produce_tombstone(system, key=b"acct-0001")
    system.produce(mixed[half:])

    others = {aid: a for aid, a in expected.items() if aid != broken}
    wait_for(lambda: not _exact(system, others), 120, "every other account exact")
    rejected = _replay(mixed).dead_letters  # a replay file cannot hold the tombstone
    dead = wait_for(
        lambda: (d if len(d := system.read_topic("dead_letters")) > len(rejected) else None),
        60,
        "the dead letters",
    )
    assert _rejections(dead) == sorted([*_rejections(rejected), ("invalid", "")])
    ours = [d for d in dead if not d["event_id"] or d["event_id"].startswith("bad-")]
    assert len(ours) == len(bad) + 1
    assert all(d["topic"] and d["partition"] is not None and d["offset"] is not None for d in ours)
    assert all(len(orjson.dumps(d)) <= 256 * 1024 for d in dead)
    assert worker.proc.poll() is None and worker.proc.pid == pid
    assert _metric(worker.metrics(), "limitsync_cache_writes_total", outcome="refused") >= 1


def _produce_tombstone(system: LiveSystem, key: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=system.settings.bootstrap_servers)
    try:
        producer.send(system.settings.topics["account_events"], key=key, value=None)
        producer.flush()
    finally:
        producer.close()
