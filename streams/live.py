"""The live shell: carries the core's effects to Kafka, Redis and metrics.

One ``LiveShell`` per worker process. The engine inside it holds the accounts of the
partitions this worker owns; the state store (a changelog-backed table) is the durable copy,
and the engine is rebuilt from it whenever the assignment changes, deadlines included, so a
drifted account that went quiet still alerts after a restart or a rebalance.

Records come in fetched batches. Each record is parsed, checked and applied under its own
guard: whatever one record raises sets that record aside as a dead letter (``internal``) and
the batch goes on. The batch's effects are carried out together, then the changed accounts
are saved once each, and only then may the batch's offsets be committed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Iterable, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson
from kafka.partitioner.default import murmur2
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.settings import Settings
from schemas.native import LimitDisplayed
from schemas.parse import (
    Parsed,
    conflict_error,
    dead_letter_record,
    future_timestamp_error,
    parse_event_digested,
)
from schemas.timefmt import format_us
from streams.cache import LimitCache
from streams.cache_writer import CacheWriter, WriteOutcome
from streams.core import (
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
from streams.core.effects import ReversalUnmatched
from streams.core.explain import explain
from streams.core.journal import Journal
from streams.metrics import Metrics
from streams.scorer import features_of
from streams.state_store import StateStore

__all__ = ["OWN_HEADER", "LiveShell", "Publisher", "RawRecord", "wall_us"]

SOURCES = ("app", "cache")  # the observation sources, each with its own drifts
log = logging.getLogger(__name__)
_S = 1_000_000
OWN_WRITE_IN_FLIGHT_US = 5 * _S  # an own-write observation older than this is not in flight
# The header a worker puts on the observations it publishes of its own cache writes and
# reads: it applied them already, so workers skip them on the way back in (replay does not).
OWN_HEADER = ("limitsync-own", b"1")
_ERROR_TEXT_MAX = 500


def wall_us() -> int:
    """The live clock: wall time in microseconds since the epoch."""
    return time.time_ns() // 1000


class Durability(Protocol):
    """Where the shell's records go and when they are in Kafka (``KafkaOut``)."""

    def flush_soon(self) -> Awaitable[None]: ...

    def ticket(self) -> int: ...

    def durable(self, ticket: int) -> Awaitable[None]: ...


class Publisher(Protocol):
    """Sends a keyed record to one of the contract's topics (Faust topics in production)."""

    async def publish(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One input record as fetched: ``value`` None is a tombstone; ``own`` marks an
    observation a limitsync worker published of its own write (already applied)."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    own: bool = False


@dataclass(slots=True)
class _Batch:
    """What one batch of records leaves to carry out after its records are applied."""

    effects: list[Effect]
    dead: list[tuple[RawRecord, str, str, str | None, str | None]]
    applied: dict[str, int]


# Young objects the collector lets pile up before a pass (CPython: 700). A worker makes and
# drops several per record; at the default, the passes and the older generations they drag
# in cost a large share of a worker's time, for garbage that reference counting frees anyway.
COLLECT_AFTER_OBJECTS = 10_000


def tune_collector() -> None:
    """The cyclic collector's pace for a worker process (see ``COLLECT_AFTER_OBJECTS``)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(COLLECT_AFTER_OBJECTS, older, oldest)


def partition_of(account_id: str, partitions: int) -> int:
    """The default Kafka partitioner (murmur2 of the key), as producers use it."""
    return (murmur2(account_id.encode()) & 0x7FFFFFFF) % partitions


def core_config(settings: Settings) -> CoreConfig:
    return CoreConfig.from_seconds(**settings.core_seconds())


class LiveShell:
    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        cache: LimitCache,
        table: MutableMapping[bytes, bytes],
        metrics: Metrics,
        out: Durability | None = None,
    ) -> None:
        """``out`` says when what was published and saved is in Kafka (``KafkaOut``); with
        none, everything counts as in Kafka at once (tests)."""
        self.settings = settings
        self._out = out
        self.topics = settings.topics
        self.publisher = publisher
        self.cache = cache
        self.store = StateStore(table)
        self.metrics = metrics
        self.journal = Journal()
        self.engine = Engine(core_config(settings), InjectedClock(wall_us), self.journal)
        self.writer = CacheWriter(
            cache,
            self._on_written,
            settings.cache_write_batch_max,
            settings.cache_retry_backoff_max_s,
            on_error=lambda _: metrics.cache_writes.labels(outcome="error").inc(),
            durable=None if out is None else out.durable,
        )
        # Cache writes of changes not saved yet: handed to the writer by ``persist``, which
        # waits for them to be in Kafka (see ``CacheWriter``).
        self._unsaved_writes: list[CacheWrite] = []
        self._future_skew_us = settings.max_future_skew_s * _S
        self.owned: frozenset[int] = frozenset()
        self.ready = False
        self.first_batch_us: int | None = None  # wall time of the first records (benches)
        self._sample_cursor = 0
        self._written_at: dict[str, int] = {}  # account -> wall time of our last cache write
        # (input topic, partition) -> offset up to which its records are handled and their
        # outputs in Kafka: loaded with the state, moved on as batches become durable. Records
        # at or below it, fetched again after a restart or a takeover, are skipped. The moves
        # not saved yet go out with the next save (``StateStore``, "handled").
        self._handled: dict[tuple[str, int], int] = {}
        self._handled_unsaved: dict[tuple[str, int], int] = {}

    # -- ownership -----------------------------------------------------------------------

    def rebuild(self, owned_partitions: Iterable[int]) -> int:
        """Rebuild the engine from the store for the owned partitions; returns accounts.

        It can run while a batch is half applied (a rebalance signal arrives at an await),
        so the engine's unsaved changes are saved first.
        """
        owned = frozenset(owned_partitions)
        # A partition that moved away is its new owner's to mark.
        self._handled_unsaved = {t: o for t, o in self._handled_unsaved.items() if t[1] in owned}
        self.persist()
        self._written_at.clear()
        n = self.settings.partitions
        loaded = self.store.load(lambda account_id: partition_of(account_id, n) in owned)
        self._handled = {tp: o for tp, o in loaded.handled.items() if tp[1] in owned}
        self.engine = Engine(core_config(self.settings), InjectedClock(wall_us), self.journal)
        self.engine.load(loaded.states)
        for acct in loaded.states:
            # After a crash, a write may have been lost between commit and Redis: the CAS
            # makes re-sending the current state harmless and the cache converges.
            self._resend(acct.account_id)
        self._release_writes()  # loaded from Kafka: saved already
        self.owned, self.ready = owned, True
        # What exists now (the framework's objects, the loaded state) lives as long as the
        # partitions do: collected once here, then out of every later pass, so the passes walk
        # only what came after. The core's state holds no reference cycles (replay finds none
        # to collect), so nothing frozen can become garbage only the collector would free.
        gc.collect()
        gc.freeze()
        log.info(
            "engine rebuilt: %d accounts on partitions %s (%d unsaved items dropped)",
            len(loaded.states),
            sorted(owned),
            loaded.dropped_items,
        )
        return len(loaded.states)

    def _resend(self, account_id: str) -> None:
        write = self.engine.cache_write_of(account_id)
        if write is not None:
            self._unsaved_writes.append(write)

    def _release_writes(self) -> None:
        # The writes shown by what is saved so far: durable with the flush that takes it.
        ticket = 0 if self._out is None else self._out.ticket()
        for write in self._unsaved_writes:
            self.writer.submit(write, ticket)
        self._unsaved_writes.clear()

    def revoke(self) -> None:
        self.ready = False

    # -- records -------------------------------------------------------------------------

    async def handle(self, records: Sequence[RawRecord]) -> None:
        """Apply a batch, carry out its effects, save what changed; return once that is in
        Kafka, after which the batch's offsets may be committed."""
        await self.take(records)
        await self.flush()

    async def take(self, records: Sequence[RawRecord]) -> None:
        """Apply a batch record by record, carry out its effects, save what changed: all
        of it gathered for the next ``flush``."""
        batch = _Batch([], [], {})
        now = wall_us()
        if self.first_batch_us is None and records:
            self.first_batch_us = now
        handled, handled_before = self._handled, 0
        for rec in records:
            if rec.own:
                continue  # applied when it was observed
            if handled and rec.offset <= handled.get((rec.topic, rec.partition), -1):
                handled_before += 1  # fetched again after a restart: done already
                continue
            try:
                self._apply(rec, batch, now)
            except Exception as exc:  # one record's fault, whatever it is: set it aside
                log.exception(
                    "record %s[%d]@%d could not be processed", rec.topic, rec.partition, rec.offset
                )
                error = f"internal: {type(exc).__name__}: {exc}"[:_ERROR_TEXT_MAX]
                batch.dead.append((rec, error, "internal", None, None))
        self.metrics.batches.inc()
        for kind, n in batch.applied.items():
            self.metrics.events.labels(type=kind).inc(n)
        for rec, error, reason, event_id, account_id in batch.dead:
            await self._dead_letter(rec, error, reason, event_id, account_id)
        await self.carry_out(batch.effects)
        self.persist()
        if handled_before:
            self.metrics.records_handled_before.inc(handled_before)
        self._mark_handled_when_durable(records)

    def _mark_handled_when_durable(self, records: Sequence[RawRecord]) -> None:
        """Once the flush that takes this batch's outputs is acknowledged, its records are
        handled: their offsets go out with the next save."""
        last: dict[tuple[str, int], int] = {}
        for rec in records:
            tp = (rec.topic, rec.partition)
            if rec.offset > last.get(tp, -1):
                last[tp] = rec.offset
        if not last:
            return
        if self._out is None:
            self._mark_handled(last)
            return
        durable = asyncio.ensure_future(self._out.durable(self._out.ticket()))
        durable.add_done_callback(
            lambda done: None
            if done.cancelled() or done.exception() is not None
            else self._mark_handled(last)
        )

    def _mark_handled(self, last: dict[tuple[str, int], int]) -> None:
        for tp, offset in last.items():
            # A partition that moved away meanwhile is its new owner's to mark.
            if tp[1] in self.owned and offset > self._handled.get(tp, -1):
                self._handled[tp] = self._handled_unsaved[tp] = offset

    def _flush_in_background(self) -> None:
        sent = asyncio.ensure_future(self.flush())
        sent.add_done_callback(_log_failure)

    def flush(self) -> Awaitable[None]:
        """What was published and saved so far, on its way to Kafka: done when it is there."""
        if self._out is None:
            return _done()
        return self._out.flush_soon()

    def _apply(self, rec: RawRecord, batch: _Batch, now: int) -> None:
        parsed = parse_event_digested(rec.value)
        if not isinstance(parsed, Parsed):
            batch.dead.append((rec, parsed.error, "invalid", parsed.event_id, parsed.account_id))
            return
        event = parsed.event
        ahead = future_timestamp_error(parsed.occurred_us, now, self._future_skew_us)
        if ahead is not None:
            batch.dead.append((rec, ahead, "future_timestamp", event.event_id, event.account_id))
            return
        outcome, effects = self.engine.ingest(event, parsed.digest, parsed.occurred_us)
        if outcome is Outcome.APPLIED:
            batch.applied[event.type] = batch.applied.get(event.type, 0) + 1
            batch.effects.extend(effects)
        elif outcome is Outcome.CONFLICT:
            error = conflict_error(event.event_id)
            batch.dead.append((rec, error, "conflict", event.event_id, event.account_id))
        else:
            self._resend(event.account_id)  # a redelivery: its write may have been lost

    async def tick(self) -> None:
        """The drift monitor: fire due deadlines even for accounts that send nothing."""
        if not self.ready:
            return
        await self.carry_out(self.engine.advance(wall_us()))
        self.persist()
        self._flush_in_background()
        for source in SOURCES:
            self.metrics.open_drifts.labels(source=source).set(self.engine.open_drifts_of(source))

    def persist(self) -> None:
        """Save every account changed since the last save, with its new items, and hand
        the cache writes of what is saved to the writer."""
        changes = self.engine.drain_journal()
        dirty = self.engine.dirty
        handled = self._handled_unsaved
        if not dirty and not changes and not handled:
            self._release_writes()
            return
        accounts = [a for aid in dirty if (a := self.engine.accounts.get(aid)) is not None]
        dirty.clear()
        self._handled_unsaved = {}
        large_before = self.store.large_rows
        written = self.store.save(accounts, changes, handled)
        self.metrics.state_bytes.inc(written)
        self.metrics.state_rows.inc(len(accounts))
        if self.store.large_rows > large_before:
            self.metrics.state_rows_large.inc(self.store.large_rows - large_before)
        self._release_writes()

    # -- effects -------------------------------------------------------------------------

    async def carry_out(self, effects: list[Effect]) -> None:
        for eff in effects:
            if type(eff) is CacheWrite:
                self._unsaved_writes.append(eff)
            elif type(eff) is ChangeDisplayed:
                self.metrics.observe_display_latency(
                    eff.latency_us, self.engine.config.sla_us, eff.source
                )
            elif type(eff) is AlertRaised:
                await self._alert(eff.record)
            elif type(eff) is RescoreRequested:
                await self._request_rescore(eff)
            elif type(eff) is ReversalUnmatched:
                self.metrics.reversals_unmatched.inc()
                log.info(
                    "reversal %s of %s: no such repayment on account %s (yet); nothing undone",
                    eff.reversal_event_id,
                    eff.reverses_event_id,
                    eff.account_id,
                )

    async def _alert(self, record: dict[str, Any]) -> None:
        kind, reason = record["type"], record["reason"]
        source = record.get("source", "")  # none on REPAYMENT_NOT_POSTED
        await self.publisher.publish(
            self.topics["alerts"], record["account_id"], orjson.dumps(record)
        )
        self.metrics.alerts.labels(type=kind, reason=reason, source=source).inc()
        if kind == "mismatch.opened":
            self.metrics.breaches.labels(reason=reason, source=source).inc()
            # Rewriting the cache heals the cache's drifts; an app drift is the display
            # layer's (its alert says what the cache holds).
            if reason in self.settings.auto_heal and source == "cache":
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
            "features": asdict(features_of(acct.hot_dict(), req.requested_us)),
        }
        await self.publisher.publish(
            self.topics["rescore_requests"], req.account_id, orjson.dumps(body)
        )

    async def _dead_letter(
        self, rec: RawRecord, error: str, reason: str, event_id: str | None, account_id: str | None
    ) -> None:
        record = dead_letter_record(
            rec.value,
            error,
            reason,
            rec.topic,
            rec.partition,
            rec.offset,
            event_id,
            account_id,
        )
        await self.publisher.publish(
            self.topics["dead_letters"], account_id or "", orjson.dumps(record)
        )
        self.metrics.dead_letters.labels(reason=reason).inc()

    # -- own observations ------------------------------------------------------------------

    async def _on_written(self, outcomes: Sequence[WriteOutcome]) -> None:
        """Observe our own writes as a client would see them: they feed the core directly
        as ``cache`` observations (and are published for the record, marked as ours)."""
        now = wall_us()
        observed: list[tuple[str, int | None, int | None, str]] = []
        for write, result in outcomes:
            self.metrics.cache_writes.labels(outcome=result).inc()
            if result != "written":
                if result == "refused":
                    log.error(
                        "cache key of %s refused the write (wrong type or value)", write.account_id
                    )
                continue
            self._written_at[write.account_id] = now
            if not write.heal:
                self.metrics.sync_latency.observe(max(0, now - write.change_us) / _S)
            observer = "auto_heal" if write.heal else "cache_write"
            observed.append((write.account_id, write.available, write.version, observer))
        await self._observe_own(observed, now)

    async def _observe_own(
        self, observed: Sequence[tuple[str, int | None, int | None, str]], now: int
    ) -> None:
        """What the cache held, seen by limitsync itself: ``source: cache`` observations.
        ``observer`` (an extra field, for people reading the topic) says which of our
        observers saw it: ``cache_write``, ``auto_heal`` or ``sampler``; the core never
        reads it."""
        if not self.ready:
            return
        effects: list[Effect] = []
        bodies = []
        for account_id, available, version, observer in observed:
            if account_id not in self.engine.accounts:
                continue  # no longer ours
            event, body = own_observation(
                f"obs:{observer}:{account_id}:{version}:{now}",
                account_id,
                now,
                available,
                version,
                "cache",
                {"observer": observer},
            )
            effects.extend(self.engine.observe_own(event, now))
            bodies.append((account_id, body))
        self.metrics.own_observations.inc(len(bodies))
        for account_id, body in bodies:
            await self.publisher.publish(
                self.topics["displayed"], account_id, orjson.dumps(body), [OWN_HEADER]
            )
        await self.carry_out(effects)
        if self._unsaved_writes:  # a heal: its new version is saved before it is written
            self.persist()
        # Not awaited: the cache writer must not wait for Kafka between its Redis writes.
        self._flush_in_background()

    # -- black-box sampler (Polaris-style) ------------------------------------------------

    async def sample(self) -> int:
        """Read the cache as a client for accounts with a change in flight to the cache or a
        cache drift, plus a sweep; what differs from the cache's last observation is observed
        (``source: cache``). App drifts do not make an account hot: an app that lags for long
        would crowd out the sweep that finds a tampered cache anywhere."""
        if not self.ready:
            return 0
        accounts = self.engine.accounts
        hot = [a for a in accounts.values() if a.cache.drift is not None or a.cache.pending_changes]
        limit = self.settings.sampler_batch_max
        chosen = {a.account_id for a in hot[:limit]}
        names = list(accounts)
        sweep = min(self.settings.sampler_sweep_max, limit - len(chosen), len(names))
        for _ in range(max(0, sweep)):  # a slow sweep finds tampering anywhere
            self._sample_cursor = (self._sample_cursor + 1) % len(names)
            chosen.add(names[self._sample_cursor])
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
        observed: list[tuple[str, int | None, int | None, str]] = []
        for aid, cached in zip(ids, seen, strict=True):
            acct = accounts.get(aid)
            if acct is None or (acct.cache.observed and acct.cache.displayed == cached.available):
                continue
            if self._written_at.get(aid, 0) >= now - OWN_WRITE_IN_FLIGHT_US and (
                cached.version == acct.version and cached.available == acct.expected_available
            ):
                continue  # our own write: its observation is already on its way
            observed.append((aid, cached.available, cached.version, "sampler"))
        await self._observe_own(observed, now)
        return len(observed)

    def explain(self, account_id: str) -> dict[str, Any] | None:
        acct = self.engine.accounts.get(account_id)
        return None if acct is None else explain(acct)


def own_observation(
    event_id: str,
    account_id: str,
    now: int,
    available: int | None,
    version: int | None,
    source: str,
    extra: dict[str, Any],
) -> tuple[LimitDisplayed, dict[str, Any]]:
    """An observation limitsync makes itself: the event the core applies at once, and the
    ``limit.displayed`` record published for the record (``extra`` says which observer)."""
    occurred_at = format_us(now)
    event = LimitDisplayed(
        event_id, account_id, occurred_at, now, available, version, source, extra
    )
    body = {
        "event_id": event_id,
        "type": "limit.displayed",
        "account_id": account_id,
        "occurred_at": occurred_at,
        "schema_version": 1,
        "displayed_available": available,
        "cache_version": version,
        "source": source,
        **extra,
    }
    return event, body


def _done() -> Awaitable[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


def _log_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("records could not be sent to Kafka", exc_info=done.exception())
