"""Faust's consumer, handing the ledger's input records over a fetched batch at a time.

Faust delivers each record through its conductor, a channel queue and a stream: per record,
a wait on two futures, an event object, queue and stream bookkeeping, an ack. That is most
of a worker's time when the work per record is a few microseconds. Here the fetch loop hands
the records of the topics a sink was attached for to that sink, one call per fetched batch.
The records of standby replicas' changelog partitions go straight to their tables
(``_StandbyApplier``). Every other topic (the rescore requests, the changelogs read by
recovery) takes Faust's own path, but a changelog record skips the two futures Faust's loop
waits on per record when its delivery cannot block (flow on, changelog queue not full).

What Faust does around records stays: group membership and rebalances, the pause and seek of
recovery (``SeekSafeConsumer``), the read offsets and gaps, and commits of acked offsets. The
records of a batch are tracked as unacked until the sink's work on them is durable, so a
rebalance waits for them (``Consumer.wait_empty``) before it commits and lets the partitions
go. The sink says which records it took, and gives what completes when its work on them is
durable (its writes are in Kafka); the fetch loop goes on with the next batch meanwhile, and
acks the records then. At most ``IN_FLIGHT_MAX`` batches wait so.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import AppT, Message

from streams.kafka_out import ChangelogRecord
from streams.recovery_seek import SeekSafeConsumer

__all__ = ["SCHEME", "BatchSink", "BatchingConsumer", "attach", "register"]

SCHEME = "limitsync-batch"
FETCH_TIMEOUT_S = 1.0
IN_FLIGHT_MAX = 4  # fetched batches applied but not yet durable
# The broker answers a fetch once it has this much for us, or after FETCH_WAIT_MS: under a
# trickle a batch then holds what arrived in that wait instead of one or two records, and
# what is paid per batch (the hop to the consumer's thread, a save, a flush, a cache
# write) is paid that much less often. It bounds the latency a record can gain here.
FETCH_MIN_BYTES = 64 * 1024
FETCH_WAIT_MS = 20
BatchSink = Callable[[Sequence[Message]], Awaitable[tuple[Sequence[Message], Awaitable[None]]]]

# The sink of each app, found by its consumer when the fetch loop starts (the consumer is
# built by Faust, after the app; the app is the one object both know).
_SINKS: weakref.WeakKeyDictionary[AppT, tuple[frozenset[str], BatchSink]] = (
    weakref.WeakKeyDictionary()
)


def attach(app: AppT, topics: Sequence[str], sink: BatchSink) -> None:
    """Hand the records of ``topics`` to ``sink`` in fetched batches. The sink returns the
    messages it took (the rest are neither acked nor committed: not ours any more) and an
    awaitable that completes when its work on them is durable."""
    _SINKS[app] = (frozenset(topics), sink)


class _BatchFetchingThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with fetches that wait for a batch (``FETCH_MIN_BYTES``)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes neither; the client reads them when it starts (its fetcher is built
        # then), which is after this.
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS
        return consumer


class BatchingConsumer(SeekSafeConsumer):
    """``SeekSafeConsumer`` whose fetch loop gives the attached topics' records to a sink."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _BatchFetchingThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight = asyncio.Semaphore(IN_FLIGHT_MAX)
        self._acking: set[asyncio.Future[None]] = set()

    async def _drain_messages(self, fetcher: Any) -> None:
        attached = _SINKS.get(self.app)
        if attached is None:
            await super()._drain_messages(fetcher)
            return
        topics, sink = attached
        fetcher_stopped = fetcher._stopped.is_set
        consumer_stopped = self._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                batch = await self._drain_one_fetch(topics)
                if batch:
                    await self._hand_over(sink, batch)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _drain_one_fetch(self, topics: frozenset[str]) -> list[Message]:
        """One fetch: the attached topics' records come back; the standby changelog records
        are applied to their tables here (``_StandbyApplier``); the others go to Faust's
        conductor one by one, as its own loop does.

        Faust's ``getmany`` with the checks it makes per record, minus its per-record work
        that a batch needs once: the end offset it reads for its monitor (read per
        partition here), its round robin over topics (a fetch here is one batch anyway), and
        a message object for each standby record."""
        batch: list[Message] = []
        await asyncio.sleep(0)  # a fetch can return at once, again and again
        if self.should_stop:
            return batch
        records, active_partitions = await self._wait_next_records(FETCH_TIMEOUT_S)
        if records is None or self.should_stop:
            return batch
        if not self.flow_active:
            await self._seek_back()
            return batch
        app = self.app
        generation_id = app.consumer_generation_id
        read_offset = self._read_offset
        acks_enabled_for = app.topics.acks_enabled_for
        unacked = self._unacked_messages
        tables = cast(Any, app.tables)  # its type does not declare the changelog queue
        changelogs = tables.changelog_topics
        changelog_queue = tables.changelog_queue
        flow = app.flow_control
        buffered = self._buffered_partitions
        track_end_offset = app.monitor.track_tp_end_offset
        to_message = self._to_message
        standby = _StandbyApplier(tables.recovery)
        for tp, tp_records in records.items():
            if not self.flow_active or app.consumer_generation_id != generation_id:
                break  # a rebalance began: what is left is fetched again after it
            if not (active_partitions is None or tp in active_partitions or tp in buffered):
                continue
            track_end_offset(tp, self.highwater(tp))
            topic = tp.topic
            attached = topic in topics
            changelog = topic in changelogs
            for record in tp_records:
                offset = record.offset
                r_offset = read_offset[tp]
                if r_offset is not None and offset < r_offset:
                    continue  # fetched before a seek back: read again later
                if changelog and standby.take(tp, record):
                    read_offset[tp] = offset
                    continue
                standby.apply()  # what it holds goes first: the awaits below may reorder
                gap = offset - (r_offset or 0)
                if gap > 1 and r_offset and acks_enabled_for(topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
                message = to_message(tp, record)
                if attached:
                    unacked.add(message)  # a rebalance now waits for the sink (wait_empty)
                    batch.append(message)
                elif changelog and flow.is_active() and not changelog_queue.full():
                    # Faust's delivery awaits only flow control and room in the queue:
                    # neither can block now, so no delivery is left waiting if the flow
                    # stops.
                    await self.callback(message)
                else:
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
                read_offset[tp] = offset
                if not self.flow_active or app.consumer_generation_id != generation_id:
                    break
        standby.apply()
        return batch

    async def _seek_back(self) -> None:
        """What Faust's ``getmany`` does when called while the flow is off."""
        try:
            await self.perform_seek()
        except Exception as exc:
            self.log.warning(f"exception performing seek when flow not active {exc}")

    async def _hand_over(self, sink: BatchSink, batch: list[Message]) -> None:
        await self._in_flight.acquire()
        try:
            taken, durable = await sink(batch)
        except BaseException:
            self._in_flight.release()
            raise
        if len(taken) != len(batch):
            # Not ours any more (a rebalance while it was fetched): let another worker have
            # them; they were never applied here.
            kept = set(map(id, taken))
            for message in batch:
                if id(message) not in kept:
                    self._unacked_messages.discard(message)
        acking = asyncio.ensure_future(self._ack_when_durable(taken, durable))
        self._acking.add(acking)
        acking.add_done_callback(self._acking.discard)

    async def _ack_when_durable(self, taken: Sequence[Message], durable: Awaitable[None]) -> None:
        try:
            await durable
        except Exception as exc:  # the writes did not reach Kafka: nothing may be committed
            await self.crash(exc)
            return
        finally:
            self._in_flight.release()
        ack = self.ack
        for message in taken:
            ack(message)


class _StandbyApplier:
    """Applies the standby replicas' changelog records of one fetch to their tables.

    Faust's own path hands each record to its conductor, wraps it in an event, queues it and
    has its recovery service take it off the queue, buffer it and apply the buffer: per
    record, several objects, two queue operations and a task switch, for what ends as one
    store write. A second worker pays that for every record the first one saves. Here the
    records of a standby partition go to the store's ``apply_changelog_batch`` directly
    (the store keeps its own bookkeeping: the partition of each key, RocksDB's persisted
    offsets), and the recovery service's offset for the partition moves on as its own loop
    moves it, so a seek back or a promotion to active starts where it would have.

    Every record of a partition goes this way for as long as it is a standby: none can be
    held in Faust's queue or buffers meanwhile (the queue is cleared when the flow resumes
    after a rebalance, and the buffers are flushed when partitions are revoked), so the
    order of a partition's records is kept. Keys of different partitions never meet (every
    key of an account is in the account's partition), so batches of different partitions
    may be applied in any order. Partitions that are not standbys, or a table with a
    changelog callback, take Faust's path.
    """

    def __init__(self, recovery: Any) -> None:
        self._standby_tps = recovery.standby_tps
        self._active_tps = recovery.active_tps
        self._tables = recovery.tp_to_table
        self._offsets = recovery.standby_offsets
        self._pending: dict[Any, list[ChangelogRecord]] = {}

    def take(self, tp: Any, record: Any) -> bool:
        """Take a changelog record if it belongs to a standby partition."""
        if tp not in self._standby_tps or tp in self._active_tps:
            return False
        table = self._tables.get(tp)
        if table is None or table._on_changelog_event is not None:
            return False
        seen = self._offsets.get(tp)
        if seen is None or record.offset > seen:  # as Faust's recovery skips what it applied
            self._offsets[tp] = record.offset
            events = self._pending.get(table)
            if events is None:
                events = self._pending[table] = []
            events.append(ChangelogRecord(tp, record.offset, record.key, record.value))
        return True

    def apply(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, {}
            for table, events in pending.items():
                table.apply_changelog_batch(events)


class _BatchingTransport(faust_aiokafka.Transport):
    Consumer = BatchingConsumer


def register() -> None:
    """Make ``limitsync-batch://host:port`` a broker URL Faust understands."""
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:_BatchingTransport"
