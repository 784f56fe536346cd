"""The live shell: carries the core's effects to Kafka, Redis and metrics.

One ``LiveShell`` per worker process. The engine inside it holds the accounts of the
partitions this worker owns; the Faust table (changelog-backed) is the durable copy, and
the engine is rebuilt from it whenever the assignment changes, deadlines included, so a
drifted account that went quiet still alerts after a restart or a rebalance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson
from kafka.partitioner.default import murmur2
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from limitsync.settings import Settings
from schemas.parse import Parsed, conflict_error, dead_letter_record, parse_event
from schemas.timefmt import format_us
from streams.cache import RedisLimitCache
from streams.cache_writer import CacheWriter
from streams.core import (
    AccountState,
    AlertRaised,
    CacheWrite,
    ChangeDisplayed,
    CoreConfig,
    Effect,
    Engine,
    InjectedClock,
    Outcome,
    RescoreRequested,
)
from streams.core.engine import core_config_from_seconds
from streams.core.explain import explain
from streams.metrics import Metrics
from streams.scorer import features_of

__all__ = ["LiveShell", "Publisher", "RawRecord", "wall_us"]

log = logging.getLogger(__name__)
_S = 1_000_000
OWN_WRITE_IN_FLIGHT_US = 5 * _S  # an own-write observation older than this is not in flight


def wall_us() -> int:
    """The live clock: wall time in microseconds since the epoch."""
    return time.time_ns() // 1000


class Publisher(Protocol):
    """Sends a keyed record to one of the contract's topics (Faust topics in production)."""

    async def publish(self, topic: str, key: str, value: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class RawRecord:
    value: bytes
    topic: str
    partition: int
    offset: int


def partition_of(account_id: str, partitions: int) -> int:
    """The default Kafka partitioner (murmur2 of the key), as producers use it."""
    return (murmur2(account_id.encode()) & 0x7FFFFFFF) % partitions


def core_config(settings: Settings) -> CoreConfig:
    return core_config_from_seconds(
        settings.sla_seconds,
        settings.clearing_sla_seconds,
        settings.escalation_factor,
        settings.dedupe_horizon_s,
        settings.rescore_enabled,
        settings.rescore_window_s,
    )


class LiveShell:
    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        cache: RedisLimitCache,
        table: Any,  # a mutable mapping account_id -> AccountState.to_dict() (Faust Table)
        metrics: Metrics,
        barrier: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self._barrier = barrier
        self.topics = settings.topics
        self.publisher = publisher
        self.cache = cache
        self.table = table
        self.metrics = metrics
        self.engine = Engine(core_config(settings), InjectedClock(wall_us))
        self.writer = CacheWriter(
            cache,
            self._on_written,
            settings.cache_write_batch_max,
            settings.cache_retry_backoff_max_s,
            on_error=lambda _: metrics.cache_writes.labels(outcome="error").inc(),
        )
        self.owned: frozenset[int] = frozenset()
        self.ready = False
        self._sample_cursor = 0
        self._written_at: dict[str, int] = {}  # account -> wall time of our last cache write

    # -- ownership -----------------------------------------------------------------------

    def rebuild(self, owned_partitions: Iterable[int]) -> int:
        """Rebuild the engine from the table for the owned partitions; returns accounts.

        It can run while a batch is half applied (a rebalance signal arrives at an await),
        so the engine's unsaved changes go to the table first.
        """
        owned = frozenset(owned_partitions)
        self.persist()
        self._written_at.clear()
        n = self.settings.partitions
        states = [
            AccountState.from_dict(value)
            for key, value in list(self.table.items())
            if value and partition_of(str(key), n) in owned
        ]
        self.engine = Engine(core_config(self.settings), InjectedClock(wall_us))
        self.engine.load(states)
        for acct in states:
            # After a crash, a write may have been lost between commit and Redis: the CAS
            # makes re-sending the current state harmless and the cache converges.
            self._resend(acct.account_id)
        self.owned, self.ready = owned, True
        log.info("engine rebuilt: %d accounts on partitions %s", len(states), sorted(owned))
        return len(states)

    def _resend(self, account_id: str) -> None:
        write = self.engine.cache_write_of(account_id)
        if write is not None:
            self.writer.submit(write)

    def revoke(self) -> None:
        self.ready = False

    # -- records -------------------------------------------------------------------------

    async def handle(self, records: Sequence[RawRecord]) -> None:
        """Parse, dedupe, apply and carry out a batch; then persist changed accounts."""
        for rec in records:
            parsed = parse_event(rec.value)
            if not isinstance(parsed, Parsed):
                await self._dead_letter(
                    rec, parsed.error, "invalid", parsed.event_id, parsed.account_id
                )
                continue
            event = parsed.event
            outcome, effects = self.engine.ingest(event, parsed.digest, parsed.occurred_us)
            if outcome is Outcome.CONFLICT:
                error = conflict_error(event.event_id)
                await self._dead_letter(rec, error, "conflict", event.event_id, event.account_id)
            elif outcome is Outcome.DUPLICATE:
                self._resend(event.account_id)  # a redelivery: its write may have been lost
            else:
                self.metrics.events.labels(type=event.type).inc()
                await self.carry_out(effects)
        self.persist()
        if self._barrier is not None:
            # The batch's offsets may be committed once we return: its table changes must
            # be on their way to the changelog first, or a crash would lose them.
            await self._barrier()

    async def tick(self) -> None:
        """The drift monitor: fire due deadlines even for accounts that send nothing."""
        if not self.ready:
            return
        await self.carry_out(self.engine.advance(wall_us()))
        self.persist()
        self.metrics.open_drifts.set(self.engine.open_drifts())

    def persist(self) -> None:
        for aid in self.engine.dirty:
            acct = self.engine.accounts.get(aid)
            if acct is not None:
                self.table[aid] = acct.to_dict()
        self.engine.dirty.clear()

    # -- effects -------------------------------------------------------------------------

    async def carry_out(self, effects: list[Effect]) -> None:
        for eff in effects:
            if isinstance(eff, CacheWrite):
                self.writer.submit(eff)
            elif isinstance(eff, AlertRaised):
                await self._alert(eff.record)
            elif isinstance(eff, RescoreRequested):
                await self._request_rescore(eff)
            elif isinstance(eff, ChangeDisplayed):
                self.metrics.observe_display_latency(eff.latency_us, self.engine.config.sla_us)

    async def _alert(self, record: dict[str, Any]) -> None:
        kind, reason = record["type"], record["reason"]
        await self.publisher.publish(
            self.topics["alerts"], record["account_id"], orjson.dumps(record)
        )
        self.metrics.alerts.labels(type=kind, reason=reason).inc()
        if kind == "mismatch.opened":
            self.metrics.breaches.labels(reason=reason).inc()
            if reason in self.settings.auto_heal:
                self.metrics.auto_heals.labels(reason=reason).inc()
                await self.carry_out(self.engine.heal(record["account_id"]))

    async def _request_rescore(self, req: RescoreRequested) -> None:
        acct = self.engine.accounts.get(req.account_id)
        if acct is None:
            return
        body = {
            "account_id": req.account_id,
            "requested_at": format_us(req.requested_us),
            "requested_us": req.requested_us,
            "trigger_event_ids": list(req.trigger_event_ids),
            "line_version": acct.line_version,
            "features": asdict(features_of(acct.to_dict(), req.requested_us)),
        }
        await self.publisher.publish(
            self.topics["rescore_requests"], req.account_id, orjson.dumps(body)
        )

    async def _dead_letter(
        self, rec: RawRecord, error: str, reason: str, event_id: str | None, account_id: str | None
    ) -> None:
        record = dead_letter_record(
            rec.value, error, reason, rec.topic, rec.partition, rec.offset, event_id, account_id
        )
        await self.publisher.publish(
            self.topics["dead_letters"], account_id or "", orjson.dumps(record)
        )
        self.metrics.dead_letters.labels(reason=reason).inc()

    async def _on_written(self, write: CacheWrite, written: bool) -> None:
        """Observe our own write as a client would see it: it feeds the core as a display."""
        self.metrics.cache_writes.labels(outcome="written" if written else "stale").inc()
        if not written:
            return
        now = wall_us()
        self._written_at[write.account_id] = now
        if not write.heal:
            self.metrics.sync_latency.observe(max(0, now - write.change_us) / _S)
        await self.observe(
            write.account_id,
            write.available,
            write.version,
            "auto_heal" if write.heal else "cache_write",
            now,
        )

    async def observe(
        self, account_id: str, available: int | None, version: int | None, source: str, now: int
    ) -> None:
        body = {
            "event_id": f"obs:{source}:{account_id}:{version}:{now}",
            "type": "limit.displayed",
            "account_id": account_id,
            "occurred_at": format_us(now),
            "schema_version": 1,
            "displayed_available": available,
            "cache_version": version,
            "source": source,
        }
        await self.publisher.publish(self.topics["displayed"], account_id, orjson.dumps(body))

    # -- black-box sampler (Polaris-style) ------------------------------------------------

    async def sample(self) -> int:
        """Read the cache as a client for accounts with a change in flight, plus a sweep."""
        if not self.ready:
            return 0
        accounts = self.engine.accounts
        hot = [a for a in accounts.values() if a.drift is not None or a.pending_changes]
        limit = self.settings.sampler_batch_max
        chosen = {a.account_id for a in hot[:limit]}
        names = sorted(accounts)
        while len(chosen) < min(limit, len(names)):  # a slow sweep finds tampering anywhere
            self._sample_cursor = (self._sample_cursor + 1) % len(names)
            chosen.add(names[self._sample_cursor])
            if len(chosen) >= len(names):
                break
        ids = sorted(chosen)
        if not ids:
            return 0
        try:
            seen = await self.cache.read_many(ids)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # Redis down: the writer retries; the sampler just skips this round.
            log.warning("sampler could not read the cache: %s", exc)
            return 0
        now = wall_us()
        published = 0
        for aid, cached in zip(ids, seen, strict=True):
            acct = accounts.get(aid)
            if acct is None or (acct.observed and acct.displayed == cached.available):
                continue
            if self._written_at.get(aid, 0) >= now - OWN_WRITE_IN_FLIGHT_US and (
                cached.version == acct.version and cached.available == acct.expected_available
            ):
                continue  # our own write: its observation is already on its way
            await self.observe(aid, cached.available, cached.version, "sampler", now)
            published += 1
        return published

    def explain(self, account_id: str) -> dict[str, Any] | None:
        acct = self.engine.accounts.get(account_id)
        return None if acct is None else explain(acct)
