"""``KafkaOut``'s flushes and tickets, with a client whose deliveries the test completes by
hand: a flush is done only after every flush before it; a ticket is done with its own flush,
not held back by later ones; after a failed flush, nothing counts as durable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP

from streams.core.journal import ID
from streams.core.state import AccountState
from streams.kafka_out import ChangelogTable, KafkaOut
from streams.state_store import StateStore

HUGE = b"huge"


class Batch:
    """Holds up to ``CAPACITY`` records; a record of value ``HUGE`` fits no batch."""

    CAPACITY = 1000

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(
        self, *, key: bytes | None, value: bytes | None, timestamp: Any, headers: Any
    ) -> Any:
        if len(self.records) >= self.CAPACITY or value == HUGE:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class Client:
    """Keeps each batch sent with the future its delivery completes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, Batch, asyncio.Future[None]]] = []

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> Any:
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, partition, batch, delivered))
        return delivered

    async def send(
        self, topic: str, value: bytes, *, key: bytes, partition: int, headers: Any
    ) -> Any:
        alone = Batch()
        alone.records.append((key, value))
        return await self.send_batch(alone, topic, partition=partition)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_ticket_waits_for_its_flush_and_those_before_it_only() -> None:
    async def scenario() -> None:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        out.add("t", 0, b"k", b"1")
        first = out.ticket()
        out.flush_soon()
        out.add("t", 1, b"k", b"2")
        second = out.ticket()
        assert second == first + 1
        later = out.flush_soon()
        await settle()
        assert len(client.sent) == 2
        mine = out.durable(first)
        client.sent[1][3].set_result(None)  # the later flush's delivery first
        await settle()
        assert not mine.done() and not later.done()  # the later one waits for the first
        client.sent[0][3].set_result(None)
        await settle()
        assert mine.done() and later.done()
        await out.durable(second)  # done and forgotten: done at once

    asyncio.run(scenario())


def test_a_ticket_not_flushed_yet_flushes_what_is_gathered() -> None:
    async def scenario() -> None:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        out.add("t", 3, b"k", b"1")
        waiting = out.durable(out.ticket())
        await settle()
        assert [(t, p, b.records) for t, p, b, _ in client.sent] == [("t", 3, [(b"k", b"1")])]
        client.sent[0][3].set_result(None)
        await waiting

    asyncio.run(scenario())


def test_after_a_failed_flush_nothing_is_durable() -> None:
    async def scenario() -> None:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        out.add("t", 0, b"k", b"1")
        ticket = out.ticket()
        failed = out.flush_soon()
        await settle()
        client.sent[0][3].set_exception(RuntimeError("broker gone"))
        with pytest.raises(RuntimeError):
            await failed
        with pytest.raises(RuntimeError):
            await out.durable(ticket)
        with pytest.raises(RuntimeError):
            await out.durable(ticket + 5)

    asyncio.run(scenario())


def test_a_flush_hands_over_the_first_batch_of_every_partition_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client takes a partition's next batch only after the one before it went out: the
    first batches of all partitions go first, and each partition keeps its order (a record
    too large for a batch goes alone, in its place)."""
    monkeypatch.setattr(Batch, "CAPACITY", 2)

    async def scenario() -> list[tuple[int, list[bytes | None]]]:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        for value in (b"1", b"2", b"3", HUGE, b"4", b"5"):
            out.add("t", 0, b"k", value)
        out.add("t", 1, b"k", b"a")
        out.flush_soon()
        await settle()
        return [(p, [v for _, v in b.records]) for _, p, b, _ in client.sent]

    assert asyncio.run(scenario()) == [
        (0, [b"1", b"2"]),
        (1, [b"a"]),
        (0, [b"3"]),
        (0, [HUGE]),
        (0, [b"4", b"5"]),
    ]


class Acked:
    """What the client's delivery gives: the offset of the first record of the send."""

    def __init__(self, offset: int) -> None:
        self.offset = offset


def test_a_watched_topic_gets_its_records_with_offsets_once_they_and_earlier_flushes_are_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each send's acknowledgement numbers its records from the send's first offset (a
    record too large for a batch has a send of its own); the watcher hears of a flush after
    every earlier flush is acknowledged, before the flush itself is done; another topic's
    records are not given to it."""
    monkeypatch.setattr(Batch, "CAPACITY", 2)

    async def scenario() -> None:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        heard: list[tuple[int, list[tuple[int, bytes | None, bytes | None]]]] = []
        out.watch("log", lambda partition, records: heard.append((partition, records)))
        out.add("log", 0, b"a", b"1")
        first = out.flush_soon()
        for value in (b"2", b"3", HUGE, None):
            out.add("log", 0, b"b", value)
        out.add("other", 0, b"x", b"y")
        second = out.flush_soon()
        await settle()
        sent = {(t, tuple(b.records)): done for t, _, b, done in client.sent}
        sent[("log", ((b"b", b"2"), (b"b", b"3")))].set_result(Acked(11))
        sent[("log", ((b"b", HUGE),))].set_result(Acked(13))
        sent[("log", ((b"b", None),))].set_result(Acked(14))
        sent[("other", ((b"x", b"y"),))].set_result(Acked(0))
        await settle()
        assert heard == [] and not second.done()  # the first flush is not in yet
        sent[("log", ((b"a", b"1"),))].set_result(Acked(10))
        await first
        await second
        assert heard == [
            (0, [(10, b"a", b"1")]),
            (0, [(11, b"b", b"2"), (12, b"b", b"3"), (13, b"b", HUGE), (14, b"b", None)]),
        ]

    asyncio.run(scenario())


def test_a_failed_flush_is_not_given_to_its_watcher() -> None:
    async def scenario() -> None:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        heard: list[Any] = []
        out.watch("log", lambda partition, records: heard.append(records))
        out.add("log", 2, b"a", b"1")
        failed = out.flush_soon()
        await settle()
        client.sent[0][3].set_exception(RuntimeError("broker gone"))
        with pytest.raises(RuntimeError):
            await failed
        assert heard == []

    asyncio.run(scenario())


class Store(dict[bytes, bytes]):
    """A table's store that, like RocksDB's, takes changelog records with their offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.offsets: dict[int, int] = {}


class Table:
    """The parts of a Faust table ``ChangelogTable`` uses."""

    def __init__(self) -> None:
        self.data = Store()
        self.changelog_topic = self
        self.applied: list[tuple[int, int, bytes | None, bytes | None]] = []

    def get_topic_name(self) -> str:
        return "log"

    def apply_changelog_batch(self, events: list[Any]) -> None:
        for event in events:
            message = event.message
            self.applied.append((message.tp.partition, message.offset, event.key, event.value))
            if event.value is None:
                self.data.pop(event.key, None)
            else:
                self.data[event.key] = event.value
            self.data.offsets[message.partition] = message.offset


def acknowledge(client: Client, first_offset: int) -> int:
    """Acknowledge every send not acknowledged yet, numbering from ``first_offset``."""
    for _, _, batch, done in client.sent:
        if not done.done():
            done.set_result(Acked(first_offset))
            first_offset += batch.record_count()
    return first_offset


def test_a_durable_first_table_stores_a_write_only_once_the_changelog_has_it() -> None:
    """Until its flush is acknowledged a write is only held, and reads see it; then it is
    in the store with its offset. A key written again in a later flush keeps showing the
    newest value while the earlier flush reaches the store; a removal hides the key."""

    async def scenario() -> None:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        table = Table()
        table.data[b"old"] = b"0"  # what the store held already (a restore)
        log = ChangelogTable(table, out, lambda key: 3, durable_first=True)
        log[b"a"] = b"1"
        first = out.flush_soon()
        log[b"a"] = b"2"
        log[b"b"] = b"1"
        del log[b"old"]
        with pytest.raises(KeyError):
            del log[b"never"]
        assert dict(table.data) == {b"old": b"0"}  # nothing stored before the changelog
        assert dict(log.items()) == {b"a": b"2", b"b": b"1"} and len(log) == 2
        await settle()
        next_offset = acknowledge(client, 100)
        await first
        assert table.applied == [(3, 100, b"a", b"1")]
        assert log[b"a"] == b"2"  # the newer write is still held, and wins
        second = out.flush_soon()
        await settle()
        acknowledge(client, next_offset)
        await second
        assert dict(table.data) == {b"a": b"2", b"b": b"1"}
        assert table.data.offsets == {3: 103}
        assert sorted(log) == [b"a", b"b"] and dict(log.items()) == dict(table.data)

    asyncio.run(scenario())


def test_a_flush_acknowledged_after_its_partition_moved_away_is_not_stored() -> None:
    """A rebalance between a flush and its acknowledgement: the partition is no longer this
    worker's, so the records stay in the changelog only (whoever reads the partition next
    reads them there, in order), and the held write is let go: reads fall back to the store."""

    async def scenario() -> None:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        table = Table()
        table.data[b"a"] = b"newer"  # what a standby applied from the new owner meanwhile
        active = {TP("log", 3)}
        log = ChangelogTable(
            table, out, lambda key: 3, durable_first=True, is_active=lambda tp: tp in active
        )
        log[b"a"] = b"older"
        flushed = out.flush_soon()
        await settle()
        active.clear()  # the rebalance
        acknowledge(client, 100)
        await flushed
        assert (table.applied, log[b"a"]) == ([], b"newer")

    asyncio.run(scenario())


def test_a_flush_acknowledged_while_its_partition_is_active_is_stored() -> None:
    async def scenario() -> None:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        table = Table()
        log = ChangelogTable(
            table, out, lambda key: 3, durable_first=True, is_active=lambda tp: tp.partition == 3
        )
        log[b"a"] = b"1"
        flushed = out.flush_soon()
        await settle()
        acknowledge(client, 100)
        await flushed
        assert table.applied == [(3, 100, b"a", b"1")]

    asyncio.run(scenario())


def test_a_table_in_memory_is_written_at_once() -> None:
    async def scenario() -> None:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        table = Table()
        log = ChangelogTable(table, out, lambda key: 0)
        log[b"a"] = b"1"
        assert dict(table.data) == {b"a": b"1"} and out.pending == 1
        done = out.flush_soon()
        await settle()
        acknowledge(client, 0)
        await done
        assert table.applied == []

    asyncio.run(scenario())


def test_the_state_store_round_trips_through_a_durable_first_table() -> None:
    """What a save wrote loads back the same whether its flush is in the store yet or not."""

    async def scenario() -> None:
        client = Client()
        out = KafkaOut(lambda: client, 8)
        table = Table()
        store = StateStore(ChangelogTable(table, out, lambda key: 0, durable_first=True))
        acct = AccountState(account_id="acct-1")
        acct.credit_line = 5_000
        acct.seen["ev-1"] = (1, 2)
        store.save([acct], {(ID, "acct-1", "ev-1"): [1, 2]})
        held = store.load(lambda account_id: True)
        flushed = out.flush_soon()
        await settle()
        acknowledge(client, 0)
        await flushed
        stored = store.load(lambda account_id: True)
        for loaded in (held, stored):
            assert [s.to_dict() for s in loaded.states] == [acct.to_dict()]
            assert loaded.dropped_items == 0

    asyncio.run(scenario())
