"""``KafkaOut``'s flushes and tickets, with a client whose deliveries the test completes by
hand: a flush is done only after every flush before it; a ticket is done with its own flush,
not held back by later ones; after a failed flush, nothing counts as durable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.kafka_out import KafkaOut

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
