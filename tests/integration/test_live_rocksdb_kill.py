"""SIGKILL with the RocksDB store: a worker dies mid-stream, with no chance to finish a save,
commit its offsets or close its databases.

A few hundred accounts each get a credit line, drawdowns, repayments and line changes
(versions out of order among them), with byte-identical duplicates mixed in, shuffled, and
produced in chunks while a worker applies them. The worker is killed once its metrics show
it has applied some of the events and not all. Then a worker restarts on the same data dir
(or, with two workers, the survivor takes over), the whole log is produced again (every
record a duplicate) with new events behind it, and every account's cache hash must equal
the replay of the produced log: nothing lost, nothing applied twice. The amounts keep every
account's outstanding above its largest repayment and its limit above zero, so a repayment
applied twice (or lost) always shows in ``available``.

Right after the kill, each killed worker's store on disk must be a prefix of the changelog:
for each partition, exactly what the changelog's records up to the offset the store records
add up to (``ChangelogTable(durable_first=True)``), never a save the changelog lacks. After
the single worker's restart, a worker on a new data dir must also restore every account
exactly from the changelog alone.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.integration.live_harness import LiveSystem, WorkerProcess, wait_for
from tests.integration.test_live_resilience import converge, ev, line, replay_accounts
from tests.integration.test_live_rocksdb import OFFSET_KEY, stored

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACCOUNTS = [f"kill-{i}" for i in range(400)]
CHUNK = 500  # lines per produce call while the worker runs (each call is a new producer)
# Paced: unpaced, a worker once applied the whole workload before the killer's reads of its
# metrics saw a third of it (CI, 2026-12-04), and the kill then found nothing in flight.
CHUNK_PAUSE_S = 0.2
KILL_AT = 0.3  # share of the distinct events applied when the worker is killed
TAKEOVER_S = 150  # a killed member leaves the group only at its session timeout


def workload(rng: random.Random) -> tuple[list[bytes], list[bytes]]:
    """The first stream (shuffled, duplicates in it), and new events for after the restart."""
    first: list[bytes] = []
    later: list[bytes] = []
    for a in ACCOUNTS:
        loan = f"loan-{a}"
        first.append(line(a, 1_000_000))
        first += [
            ev("drawdown.booked", a, loan_id=loan, principal=rng.randint(20_000, 50_000))
            for _ in range(12)
        ]
        first += [
            ev(
                "repayment.posted",
                a,
                loan_id=loan,
                principal=rng.randint(1_000, 9_000),
                interest=rng.randint(0, 500),
                fee=0,
                payment_id=f"pay-{a}-{n}",
            )
            for n in range(8)
        ]
        # Versions 2 and 3, in either order: the highest wins wherever it lands
        first += [line(a, rng.randint(800_000, 1_200_000), version=v) for v in (2, 3)]
        later += [
            ev("drawdown.booked", a, loan_id=loan, principal=rng.randint(20_000, 50_000)),
            ev(
                "repayment.posted",
                a,
                loan_id=loan,
                principal=rng.randint(1_000, 9_000),
                interest=0,
                fee=0,
                payment_id=f"pay-{a}-later",
            ),
            line(a, rng.randint(800_000, 1_200_000), version=4),
        ]
    first += rng.sample(first, len(first) // 10)  # redeliveries within the stream
    rng.shuffle(first)
    later += rng.sample(later, len(later) // 10)
    rng.shuffle(later)
    return first, later


def expected(lines: list[bytes]) -> dict[str, dict[str, Any]]:
    """The replay of ``lines``; checked to be sensitive to a repayment lost or doubled."""
    accounts = replay_accounts(lines)
    assert set(accounts) == set(ACCOUNTS)
    for a in accounts.values():
        # outstanding > 9,000 (the largest repayment) and available > 0: every repayment
        # applied once more, or once less, changes available
        assert a["outstanding"] > 9_000 and a["expected_available"] > 0, a
    return accounts


def applied(worker: WorkerProcess) -> int | None:
    """Events the worker applied (``limitsync_events_total``; duplicates are not counted)."""
    try:
        text = worker.metrics()
    except OSError:
        return None
    return int(
        sum(float(v) for v in re.findall(r"^limitsync_events_total\{[^}]*\} (\S+)$", text, re.M))
    )


class Feeder(threading.Thread):
    """Produces lines in chunks, in the background, as a steady stream."""

    def __init__(self, system: LiveSystem, lines: Sequence[bytes]) -> None:
        super().__init__(daemon=True)
        self.system, self.lines = system, lines
        self.error: BaseException | None = None
        self.produced = 0

    def run(self) -> None:
        try:
            for i in range(0, len(self.lines), CHUNK):
                self.produced += self.system.produce(self.lines[i : i + CHUNK])
                time.sleep(CHUNK_PAUSE_S)
        except BaseException as exc:  # re-raised by finish()
            self.error = exc

    def finish(self) -> None:
        self.join(120)
        assert not self.is_alive(), "the producer did not finish"
        if self.error is not None:
            raise self.error


def kill_mid_stream(victim: WorkerProcess, workers: Sequence[WorkerProcess], distinct: int) -> int:
    """SIGKILL ``victim`` as soon as ``workers`` are seen to have applied KILL_AT of
    ``distinct`` events; returns what the victim had applied when last seen (checked: some,
    not all)."""
    deadline = time.monotonic() + 60
    while True:
        counts = [applied(w) or 0 for w in workers]
        mine = counts[workers.index(victim)]
        if sum(counts) >= KILL_AT * distinct and mine > 0:
            victim.kill()
            break
        assert time.monotonic() < deadline, f"{KILL_AT:.0%} not applied in 60 s: {counts}"
        time.sleep(0.01)
    assert sum(counts) < distinct, f"everything applied before the kill: {counts} of {distinct}"
    return mine


def changelog(system: LiveSystem) -> dict[int, list[tuple[int, bytes, bytes | None]]]:
    """Every record of the state changelog so far, per partition: (offset, key, value)."""
    topic = f"{system.settings.app_id}-state-changelog"
    consumer = KafkaConsumer(
        bootstrap_servers=system.settings.bootstrap_servers,
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(system.settings.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: dict[int, list[tuple[int, bytes, bytes | None]]] = {
            tp.partition: [] for tp in ends
        }
        remaining = {tp for tp, end in ends.items() if end}
        for m in consumer:
            tp = TopicPartition(m.topic, m.partition)
            if m.offset < ends[tp]:
                records[m.partition].append((m.offset, m.key, m.value))
            if m.offset >= ends[tp] - 1:
                remaining.discard(tp)
            if not remaining:
                break
        assert not remaining, f"changelog partitions not read to their end: {remaining}"
        return records
    finally:
        consumer.close()


def store_not_a_changelog_prefix(system: LiveSystem, data_dir: Path) -> list[str]:
    """How a stopped worker's store differs from the changelog up to the offset it records
    per partition (empty when it holds exactly that: no save the changelog lacks)."""
    log = changelog(system)
    problems = []
    for partition, held in stored(data_dir).items():
        data = {k: v for k, v in held.items() if k != OFFSET_KEY}
        if OFFSET_KEY not in held:
            if data:
                problems.append(f"partition {partition}: {len(data)} keys and no offset")
            continue
        upto = int(held[OFFSET_KEY])
        records = log.get(partition, [])
        if not records or upto > records[-1][0]:
            problems.append(f"partition {partition}: store at offset {upto}, changelog ends before")
            continue
        folded: dict[bytes, bytes] = {}
        for offset, key, value in records:
            if offset > upto:
                break
            if value is None:
                folded.pop(key, None)
            else:
                folded[key] = value
        if data != folded:
            problems.append(f"partition {partition}: " + _difference(data, folded, records, upto))
    return problems


def _difference(
    data: dict[bytes, bytes],
    folded: dict[bytes, bytes],
    records: list[tuple[int, bytes, bytes | None]],
    upto: int,
) -> str:
    """How a store differs from the changelog folded up to ``upto``: keys whose stored value
    is one the changelog has only after ``upto`` (and the highest such offset), keys whose
    value the changelog never had, keys the store lacks or holds an older value of."""
    latest: dict[tuple[bytes, bytes | None], int] = {}
    for offset, key, value in records:
        latest[(key, value)] = offset
    later = [latest[(k, v)] for k, v in data.items() if folded.get(k) != v and (k, v) in latest]
    later = [o for o in later if o > upto]
    never = [k for k, v in data.items() if (k, v) not in latest]
    older = [
        k
        for k, v in folded.items()
        if k in data and data[k] != v and (k, data[k]) in latest and latest[(k, data[k])] < upto
    ]
    missing = [k for k in folded if k not in data]
    return (
        f"recorded offset {upto}, changelog to {records[-1][0]}: {len(later)} keys hold values "
        f"from after it (up to offset {max(later, default=None)}), {len(never)} values the "
        f"changelog never had {never[:3]}, {len(older)} older values {older[:3]}, "
        f"{len(missing)} keys missing {missing[:3]}"
    )


def distinct_events(lines: Sequence[bytes]) -> int:
    return len(set(lines))


def test_a_rocksdb_worker_killed_mid_stream_restarts_on_its_data_dir_exact(
    rocksdb_system: LiveSystem, tmp_path: Path
) -> None:
    system = rocksdb_system
    data_dir = tmp_path / "worker-data"
    first, later = workload(random.Random(1))
    want_first = expected(first)
    want_all = expected([*first, *first, *later])

    worker = system.worker(data_dir).start()
    worker.wait_ready(partitions=system.settings.partitions)
    feeder = Feeder(system, first)
    feeder.start()
    at_kill = kill_mid_stream(worker, [worker], distinct_events(first))
    print(f"killed at {at_kill} applied, {feeder.produced} of {len(first)} produced")
    feeder.finish()

    wrong = store_not_a_changelog_prefix(system, data_dir)
    # shown with -rP or on a failure: how far the store was behind the changelog at the kill
    print(
        "store's recorded offsets",
        {p: int(h.get(OFFSET_KEY, -1)) for p, h in sorted(stored(data_dir).items())},
        "changelog ends",
        {p: len(r) for p, r in sorted(changelog(system).items())},
    )
    assert not wrong, wrong

    restarted = system.worker(data_dir).start()
    restarted.wait_ready(partitions=system.settings.partitions, timeout_s=TAKEOVER_S)
    converge(system, want_first, 120)
    system.produce([*first, *later])
    converge(system, want_all, 120)
    assert "Traceback" not in restarted.log_tail(400)

    # What the changelog holds is enough on its own: a worker with a new data dir restores
    # every account from it, and the whole log once more changes nothing (a save the store
    # had and the changelog lacked would be missing its remembered ids here)
    restarted.stop()
    fresh = system.worker(tmp_path / "fresh-data").start()
    fresh.wait_ready(partitions=system.settings.partitions, timeout_s=TAKEOVER_S)
    system.produce([*first, *later])
    converge(system, want_all, 120)
    assert "Traceback" not in fresh.log_tail(400)


def test_a_rocksdb_worker_killed_mid_stream_its_standby_takes_over_exact(
    rocksdb_system: LiveSystem, tmp_path: Path
) -> None:
    system = rocksdb_system
    n = system.settings.partitions
    victim_data = tmp_path / "victim-data"
    first, later = workload(random.Random(2))
    want_first = expected(first)
    want_all = expected([*first, *first, *later])

    victim = system.worker(victim_data).start()
    survivor = system.worker(tmp_path / "survivor-data").start()
    wait_for(
        lambda: all(
            (h := w.health()) and h["ready"] and h["partitions"] for w in (victim, survivor)
        ),
        90,
        "both workers to own partitions",
    )
    moved = set((victim.health() or {})["partitions"])
    assert moved and len(moved) < n
    print("victim owns", sorted(moved))
    feeder = Feeder(system, first)
    feeder.start()
    at_kill = kill_mid_stream(victim, [victim, survivor], distinct_events(first))
    print(f"killed at {at_kill} applied, {feeder.produced} of {len(first)} produced")
    feeder.finish()

    survivor.wait_ready(partitions=n, timeout_s=TAKEOVER_S)
    converge(system, want_first, 120)
    # The changelog keeps growing (the survivor saves): the victim's store must still be a
    # prefix of it
    wrong = store_not_a_changelog_prefix(system, victim_data)
    assert not wrong, wrong
    system.produce([*first, *later])
    converge(system, want_all, 120)
    assert "Traceback" not in survivor.log_tail(400)
