"""Faust's consumer, handing the ledger's input records over a fetched batch at a time.

Faust delivers each record through its conductor, a channel queue and a stream: per record,
a wait on two futures, an event object, queue and stream bookkeeping, an ack. That is most
of a worker's time when the work per record is a few microseconds. Here the fetch loop hands
the records of the topics a sink was attached for to that sink, one call per fetched batch.
Every other topic (the rescore requests, the changelogs read by recovery and by standby
replicas) takes Faust's own path, but a changelog record skips the two futures Faust's loop
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
        """One ``getmany``: the attached topics' records come back; the others go to Faust's
        conductor one by one, as its own loop does."""
        batch: list[Message] = []
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        unacked = self._unacked_messages
        tables = cast(Any, self.app.tables)  # its type does not declare the changelog queue
        changelogs = tables.changelog_topics
        changelog_queue = tables.changelog_queue
        flow = self.app.flow_control
        await asyncio.sleep(0)  # getmany can return at once, again and again
        if self.should_stop:
            return batch
        async for tp, message in self.getmany(timeout=FETCH_TIMEOUT_S):
            offset = message.offset
            r_offset = read_offset[tp]
            if r_offset is not None and offset < r_offset:
                continue  # fetched before a seek back: read again later
            gap = offset - (r_offset or 0)
            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
            if message.topic in topics:
                unacked.add(message)  # a rebalance now waits for the sink (wait_empty)
                batch.append(message)
            elif message.topic in changelogs and flow.is_active() and not changelog_queue.full():
                # Faust's delivery awaits only flow control and room in the queue: neither
                # can block now, so no delivery is left waiting if the flow stops.
                await self.callback(message)
            else:
                await self.wait_first(self.callback(message), self.suspend_flow.wait())
            read_offset[tp] = offset
        return batch

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


class _BatchingTransport(faust_aiokafka.Transport):
    Consumer = BatchingConsumer


def register() -> None:
    """Make ``limitsync-batch://host:port`` a broker URL Faust understands."""
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:_BatchingTransport"
