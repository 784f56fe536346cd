"""The Redis limit cache (CONTRACT.md, "The Redis limit cache").

One hash per account. Every write is a versioned compare-and-set in one Lua script, so an
older version never overwrites a newer one: redelivery after a crash, two workers during a
rebalance, or a retry after a timeout are all harmless. Writes of a batch go in one
pipeline, and each key's answer is read on its own: a key of the wrong type, or with a
``version`` that is not a number, refuses its write without failing the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from schemas.timefmt import format_us
from streams.core.effects import CacheWrite

__all__ = ["CachedLimit", "RedisLimitCache", "WriteResult"]

# "refused": Redis answered this key with an error (WRONGTYPE, a corrupt version): retrying
# the same write cannot help, so it is counted and logged instead.
WriteResult = Literal["written", "stale", "refused"]

# KEYS[1] = hash key; ARGV = version, available, credit_line, outstanding, status, updated_at
_CAS = """
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'available', ARGV[2], 'credit_line', ARGV[3],
           'outstanding', ARGV[4], 'status', ARGV[5], 'updated_at', ARGV[6])
return 1
"""


@dataclass(frozen=True, slots=True)
class CachedLimit:
    """What a client reading the cache sees (None fields: no entry)."""

    available: int | None
    version: int | None


class RedisLimitCache:
    """Versioned writes and client-like reads of the limit hashes."""

    def __init__(self, client: aioredis.Redis, prefix: str = "limit:") -> None:
        self._client = client
        self._prefix = prefix
        self._cas = client.register_script(_CAS)

    def key(self, account_id: str) -> str:
        return f"{self._prefix}{account_id}"

    async def write_many(self, writes: Sequence[CacheWrite]) -> list[WriteResult]:
        """Apply each write if its version is newer; what became of each.

        Raises only for the connection (down, timeout): then nothing is known of the batch.
        """
        async with self._client.pipeline(transaction=False) as pipe:
            for w in writes:
                args: list[int | str] = [
                    w.version,
                    w.available,
                    w.credit_line,
                    w.outstanding,
                    w.status,
                    format_us(w.updated_us),
                ]
                await self._cas(keys=[self.key(w.account_id)], args=args, client=pipe)
            results = await pipe.execute(raise_on_error=False)
        return [_write_result(r) for r in results]

    async def read_many(self, account_ids: Sequence[str]) -> list[CachedLimit]:
        """Read ``available`` and ``version`` as a client would (for the sampler)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for aid in account_ids:
                pipe.hmget(self.key(aid), "available", "version")
            rows = await pipe.execute(raise_on_error=False)
        # A key of the wrong type answers an error: a client finds no limit there.
        return [
            CachedLimit(None, None) if isinstance(row, ResponseError) else _limit(row)
            for row in rows
        ]

    async def read_hash(self, account_id: str) -> dict[str, str]:
        raw = await self._client.hgetall(self.key(account_id))
        return {_text(k): _text(v) for k, v in raw.items()}


def _write_result(answer: object) -> WriteResult:
    if isinstance(answer, ResponseError):
        return "refused"
    if isinstance(answer, Exception):
        raise answer  # not about this key: the connection; the writer retries the batch
    return "written" if int(answer) else "stale"  # type: ignore[call-overload]


def _limit(row: list[bytes | str | None]) -> CachedLimit:
    return CachedLimit(_int(row[0]), _int(row[1]))


def _int(value: bytes | str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # a corrupt entry reads as missing: the core reports CACHE_MISSING


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
