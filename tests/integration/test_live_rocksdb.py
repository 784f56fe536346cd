"""The live pipeline with the RocksDB store (``LIMITSYNC_STORE=rocksdb://``, the Kubernetes
default): events apply and reach the cache, the state on disk survives a restart, and a
standby replica's copy takes over when its active worker stops.

Each account gets a credit line, a drawdown and a repayment; after the stop, the repayment is
delivered again (same event, a producer's redelivery) with a second one behind it. A state
lost or restored short of what was saved would apply the redelivered repayment twice, and the
cache would show it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import rocksdict
from kafka import KafkaConsumer, TopicPartition

from streams.live import partition_of
from tests.integration.live_harness import LiveSystem, wait_for
from tests.integration.test_live_resilience import ev, line

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACCOUNTS = [f"rocks-{i}" for i in range(24)]
LINE, DRAWN, REPAID, REPAID_AFTER = 100_000, 40_000, 10_000, 5_000
OFFSET_KEY = b"__faust\0offset__"  # where Faust's RocksDB store keeps a partition's offset


def repayment(account: str, payment: str, principal: int) -> bytes:
    return ev(
        "repayment.posted",
        account,
        loan_id=f"loan-{account}",
        principal=principal,
        interest=0,
        fee=0,
        payment_id=payment,
    )


def opening() -> tuple[list[bytes], list[bytes]]:
    """Every account's first events, and its repayment alone (to deliver again later)."""
    repaid = [repayment(a, f"pay-{a}-1", REPAID) for a in ACCOUNTS]
    lines = [line(a, LINE) for a in ACCOUNTS]
    lines += [ev("drawdown.booked", a, loan_id=f"loan-{a}", principal=DRAWN) for a in ACCOUNTS]
    return lines + repaid, repaid


def after_restart(repaid: list[bytes]) -> list[bytes]:
    """The first repayments again (a redelivery), then a second repayment per account."""
    return [*repaid, *(repayment(a, f"pay-{a}-2", REPAID_AFTER) for a in ACCOUNTS)]


def cache_is(system: LiveSystem, available: int) -> list[str]:
    """Accounts whose cached limit is not ``available`` (empty when every one is)."""
    cached = system.cache(ACCOUNTS)
    return [
        f"{a}: {h.get('available')}"
        for a, h in cached.items()
        if not h or int(h["available"]) != available
    ]


def converge(system: LiveSystem, available: int, timeout_s: float = 90) -> None:
    wrong: list[str] = []

    def done() -> bool:
        wrong[:] = cache_is(system, available)
        return not wrong

    try:
        wait_for(done, timeout_s, f"every account's cached limit to be {available}")
    except AssertionError:
        raise AssertionError(f"{len(wrong)} accounts differ: {wrong[:5]}") from None


def stored(data_dir: Path) -> dict[int, dict[bytes, bytes]]:
    """What a stopped worker's RocksDB store holds, per changelog partition."""
    held: dict[int, dict[bytes, bytes]] = {}
    for path in data_dir.glob("**/state-*.db"):
        match = re.fullmatch(r"state-(\d+)\.db", path.name)
        if match is None:
            continue
        db = rocksdict.Rdict(
            str(path),
            options=rocksdict.Options(raw_mode=True),
            access_type=rocksdict.AccessType.read_only(),
        )
        try:
            held[int(match.group(1))] = dict(db.items())
        finally:
            db.close()
    return held


def changelog_ends(system: LiveSystem) -> dict[int, int]:
    """The state changelog's end offset per partition (the offset its next record gets)."""
    topic = f"{system.settings.app_id}-state-changelog"
    consumer = KafkaConsumer(bootstrap_servers=system.settings.bootstrap_servers)
    try:
        tps = [TopicPartition(topic, p) for p in range(system.settings.partitions)]
        return {tp.partition: end for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def test_a_rocksdb_worker_applies_events_and_its_state_survives_a_restart(
    rocksdb_system: LiveSystem, tmp_path: Path
) -> None:
    system = rocksdb_system
    data_dir = tmp_path / "worker-data"
    first = system.worker(data_dir).start()
    first.wait_ready()
    lines, repaid = opening()
    system.produce(lines)
    converge(system, LINE - DRAWN + REPAID)
    first.stop()
    assert first.proc is not None and first.proc.returncode is not None

    # The store on disk holds every account's row, and exactly what the changelog holds: up
    # to its last record, never beyond (it is written once the changelog has a save).
    held = stored(data_dir)
    rows = {k for keys in held.values() for k in keys if k.startswith(b"a|")}
    assert rows == {f"a|{a}".encode() for a in ACCOUNTS}
    ends = changelog_ends(system)
    for partition, end in ends.items():
        if end:
            assert int(held[partition][OFFSET_KEY]) == end - 1, (partition, end)

    second = system.worker(data_dir).start()
    second.wait_ready(partitions=system.settings.partitions)
    system.produce(after_restart(repaid))
    converge(system, LINE - DRAWN + REPAID + REPAID_AFTER)
    assert "Traceback" not in first.log_tail(400) + second.log_tail(400)


def test_a_standby_on_rocksdb_takes_over_when_its_active_worker_stops(
    rocksdb_system: LiveSystem, tmp_path: Path
) -> None:
    system = rocksdb_system
    first_data = tmp_path / "first-data"
    first = system.worker(first_data).start()
    second = system.worker(tmp_path / "second-data").start()
    wait_for(
        lambda: all((h := w.health()) and h["ready"] and h["partitions"] for w in (first, second)),
        90,
        "both workers to own partitions",
    )
    lines, repaid = opening()
    system.produce(lines)
    converge(system, LINE - DRAWN + REPAID)
    n = system.settings.partitions
    second_owned = set((second.health() or {})["partitions"])
    assert second_owned and len(second_owned) < n

    # The first worker keeps the second one's partitions as a standby: its store receives
    # their rows from the changelog as the second worker saves them (read beside the running
    # worker: RocksDB lets a reader open a database read-only while its writer has it).
    theirs = {f"a|{a}".encode() for a in ACCOUNTS if partition_of(a, n) in second_owned}
    assert theirs

    def standby_rows() -> set[bytes]:
        held = stored(first_data)
        return {k for p in second_owned for k in held.get(p, {})}

    wait_for(
        lambda: theirs <= standby_rows(),
        30,
        "the standby's copy of the second worker's accounts",
    )

    second.stop()
    first.wait_ready(partitions=n, timeout_s=90)
    system.produce(after_restart(repaid))
    converge(system, LINE - DRAWN + REPAID + REPAID_AFTER)
    assert "Traceback" not in first.log_tail(400) + second.log_tail(400)
