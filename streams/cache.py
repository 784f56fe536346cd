"""The Redis limit cache (docs/contract.md, "The Redis limit cache").

One hash per account. Every write is a versioned compare-and-set, so an older version never
overwrites a newer one: redelivery after a crash, two workers during a rebalance, or a retry
after a timeout are all harmless. A batch of writes is one Lua script call that sets each key
in turn and answers for each: a key of the wrong type, or with a ``version`` that is not a
number, refuses its own write without failing the others. (One call for the batch rather than
one per key: a pipelined command cost a worker more in redis-py than the write cost Redis.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from schemas.timefmt import format_us
from streams.core.effects import CacheWrite

__all__ = ["CachedLimit", "LimitCache", "MemoryLimitCache", "RedisLimitCache", "WriteResult"]

# "refused": Redis answered this key with an error (WRONGTYPE, a corrupt version): retrying
# the same write cannot help, so it is counted and logged instead.
WriteResult = Literal["written", "stale", "refused"]

# KEYS[i] = the hash of write i; ARGV[6(i-1)+1 ..] = its version, available, credit_line,
# outstanding, status, updated_at. Answers 1 (written), 0 (stale: a version as new or newer is
# there) or -1 (refused: Redis erred on this key, or its version is not a number) per key.
_CAS_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 6
  local cur = redis.pcall('HGET', key, 'version')
  if type(cur) == 'table' and cur.err then
    out[i] = -1
  elseif cur and not tonumber(cur) then
    out[i] = -1
  elseif cur and tonumber(cur) >= tonumber(ARGV[a + 1]) then
    out[i] = 0
  else
    local set = redis.pcall('HSET', key, 'version', ARGV[a + 1], 'available', ARGV[a + 2],
      'credit_line', ARGV[a + 3], 'outstanding', ARGV[a + 4], 'status', ARGV[a + 5],
      'updated_at', ARGV[a + 6])
    if type(set) == 'table' and set.err then out[i] = -1 else out[i] = 1 end
  end
end
return out
"""
_RESULTS: dict[int, WriteResult] = {1: "written", 0: "stale", -1: "refused"}


@dataclass(frozen=True, slots=True)
class CachedLimit:
    """What a client reading the cache sees (None fields: no entry)."""

    available: int | None
    version: int | None


class LimitCache(Protocol):
    """What the live shell needs of a limit cache: versioned writes, client-like reads."""

    async def write_many(self, writes: Sequence[CacheWrite]) -> list[WriteResult]: ...

    async def read_many(self, account_ids: Sequence[str]) -> list[CachedLimit]: ...


class MemoryLimitCache:
    """The same versioned writes and reads over a dict, in this process: for tests of the shell
    and its writer without Redis. ``held`` maps an account to its (available, version), and a
    test may set an entry to what a tamperer would."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[int | None, int | None]] = {}
        self.writes = 0  # write calls (batches) made

    async def write_many(self, writes: Sequence[CacheWrite]) -> list[WriteResult]:
        self.writes += 1
        results: list[WriteResult] = []
        for w in writes:
            _, version = self.held.get(w.account_id, (None, None))
            if version is not None and version >= w.version:
                results.append("stale")
                continue
            self.held[w.account_id] = (w.available, w.version)
            results.append("written")
        return results

    async def read_many(self, account_ids: Sequence[str]) -> list[CachedLimit]:
        return [CachedLimit(*self.held.get(a, (None, None))) for a in account_ids]


class RedisLimitCache:
    """Versioned writes and client-like reads of the limit hashes."""

    def __init__(self, client: aioredis.Redis, prefix: str = "limit:") -> None:
        self._client = client
        self._prefix = prefix
        self._cas_many = client.register_script(_CAS_MANY)

    def key(self, account_id: str) -> str:
        return f"{self._prefix}{account_id}"

    async def write_many(self, writes: Sequence[CacheWrite]) -> list[WriteResult]:
        """Apply each write if its version is newer; what became of each.

        Raises only for the connection (down, timeout): then nothing is known of the batch.
        """
        if not writes:
            return []
        keys = [self.key(w.account_id) for w in writes]
        args: list[int | str] = []
        for w in writes:
            args += [w.version, w.available, w.credit_line, w.outstanding, w.status]
            args.append(format_us(w.updated_us))
        answers = await self._cas_many(keys=keys, args=args)
        return [_RESULTS[int(a)] for a in answers]

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
