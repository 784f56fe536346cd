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
        writer = CacheWriter(cache, _nothing, durable=lambda: saved)  # type: ignore[arg-type]
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
