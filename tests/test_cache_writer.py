"""The cache writer (DESIGN: the cache is written after the state change is in Kafka, never
before; a write that fails is retried, never dropped), with a cache that keeps what it is
given and a ``durable`` the test completes by hand. No Redis, no broker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from streams.cache import WriteResult
from streams.cache_writer import CacheWriter, WriteOutcome
from streams.core.effects import CacheWrite


class Kept:
    def __init__(self) -> None:
        self.written: list[tuple[str, int]] = []

    async def write_many(self, writes: Sequence[CacheWrite]) -> list[WriteResult]:
        self.written.extend((w.account_id, w.version) for w in writes)
        return ["written"] * len(writes)


def write(account_id: str, version: int) -> CacheWrite:
    return CacheWrite(account_id, 100, 100, 0, "active", version, 0, 0, False)


async def _nothing(outcomes: Sequence[WriteOutcome]) -> None:
    return None


def written_when(saved_in_kafka: bool) -> list[tuple[str, int]]:
    """What reached the cache of one submitted write, the state it shows saved or not."""

    async def scenario() -> list[tuple[str, int]]:
        cache = Kept()
        saved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        writer = CacheWriter(cache, _nothing, durable=lambda ticket: saved)
        running = asyncio.ensure_future(writer.run())
        writer.submit(write("A", 1))
        await asyncio.sleep(0.01)
        if saved_in_kafka:
            saved.set_result(None)
        await asyncio.sleep(0.05)
        running.cancel()
        return list(cache.written)

    return asyncio.run(scenario())


def test_a_write_waits_until_the_state_it_shows_is_in_kafka() -> None:
    assert written_when(saved_in_kafka=False) == []


def test_a_write_is_made_once_its_state_is_in_kafka() -> None:
    assert written_when(saved_in_kafka=True) == [("A", 1)]


def test_a_write_waits_for_its_own_flush_not_for_later_ones() -> None:
    """Tickets: a write is made once the flush that took its state is acknowledged, with the
    flushes before it, and not held back by flushes after it."""

    async def scenario() -> tuple[list[int], list[tuple[str, int]]]:
        cache = Kept()
        loop = asyncio.get_running_loop()
        flushes = {1: loop.create_future(), 2: loop.create_future()}
        asked: list[int] = []

        def durable(ticket: int) -> asyncio.Future[None]:
            asked.append(ticket)
            return flushes[ticket]

        writer = CacheWriter(cache, _nothing, durable=durable)
        running = asyncio.ensure_future(writer.run())
        writer.submit(write("A", 1), 1)
        await asyncio.sleep(0.01)
        flushes[1].set_result(None)  # flush 2 (say, observations) still in flight
        await asyncio.sleep(0.01)
        writer.submit(write("B", 1), 2)
        await asyncio.sleep(0.01)
        running.cancel()
        return asked, list(cache.written)

    asked, written = asyncio.run(scenario())
    assert written == [("A", 1)]  # B waits for flush 2
    assert asked == [1, 2]


def test_a_newer_version_keeps_the_newer_ticket() -> None:
    writer = CacheWriter(Kept(), _nothing, durable=None)
    writer.submit(write("A", 2), 5)
    writer.submit(write("A", 1), 9)  # older version: ignored, ticket and all
    writer.submit(write("A", 3), 7)
    assert writer._take() == ([write("A", 3)], 7)
