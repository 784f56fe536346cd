"""The cache writer: the ledger never waits for Redis, and Redis never loses a write.

Pending writes are coalesced per account (only the newest version matters, so the queue is
bounded by the number of accounts owned). While Redis is down the writer retries with
capped exponential backoff; the ledger keeps going, and the display it observes stays old,
which the core reports as SYNC_DELAY breaches rather than as lost data.

A write goes to Redis only once the state change it shows is in Kafka (``durable``): a
worker that died before its change was saved would otherwise leave a version in the cache
that its successor, replaying the same records, numbers differently (a heal, a deadline
fired at another time), and the version check would then keep the successor's right
content out of the cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from streams.cache import LimitCache, WriteResult
from streams.core.effects import CacheWrite

__all__ = ["CacheWriter", "WriteOutcome"]

log = logging.getLogger(__name__)
WriteOutcome = tuple[CacheWrite, WriteResult]
OnWritten = Callable[[Sequence[WriteOutcome]], Awaitable[None]]


class CacheWriter:
    def __init__(
        self,
        cache: LimitCache,
        on_written: OnWritten,
        batch_max: int = 500,
        backoff_max_s: float = 5.0,
        on_error: Callable[[Exception], None] | None = None,
        durable: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        """``durable(ticket)`` gives what completes when the state changes saved under that
        ticket, and every one before them, are in Kafka (``KafkaOut.durable``); the writes
        taken are made after it, for the newest ticket among them. Waiting for that ticket
        and not for everything flushed so far keeps a write from waiting for records added
        after its state (the observations of the writes before it)."""
        self._cache = cache
        self._durable = durable
        self._on_written = on_written
        self._batch_max = batch_max
        self._backoff_max_s = backoff_max_s
        self._on_error = on_error
        self._pending: dict[str, tuple[CacheWrite, int]] = {}  # account -> (write, ticket)
        self._wake = asyncio.Event()
        self.failures = 0

    def submit(self, write: CacheWrite, ticket: int = 0) -> None:
        """Queue a write, made once ``durable(ticket)`` is done; a newer version of the
        same account replaces an older one."""
        current = self._pending.get(write.account_id)
        if current is None:
            self._pending[write.account_id] = (write, ticket)
        elif write.version >= current[0].version:
            self._pending[write.account_id] = (write, max(ticket, current[1]))
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        backoff = 0.05
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            batch, ticket = self._take()
            try:
                if self._durable is not None:
                    await self._durable(ticket)
                written = await self._cache.write_many(batch)
            except (RedisError, OSError, KafkaError) as exc:
                # Redis down, loading, read-only, or the state not in Kafka: retry, never drop
                self.failures += 1
                if self._on_error is not None:
                    self._on_error(exc)
                for w in batch:
                    self.submit(w, ticket)  # keeps any newer version queued meanwhile
                log.warning("cache write failed (%s); retrying in %.2f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)
                continue
            backoff = 0.05
            await self._on_written(list(zip(batch, written, strict=True)))

    def _take(self) -> tuple[list[CacheWrite], int]:
        batch, newest = [], 0
        for key in list(self._pending)[: self._batch_max]:
            write, ticket = self._pending.pop(key)
            batch.append(write)
            newest = max(newest, ticket)
        return batch, newest
