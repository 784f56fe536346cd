"""Faust's consumer, handing the ledger's input records over a fetched batch at a time.

Faust delivers each record through its conductor, a channel queue and a stream: per record,
a wait on two futures, an event object, queue and stream bookkeeping, an ack. That is most
of a worker's time when the work per record is a few microseconds. Here the fetch loop hands
the records of the topics a sink was attached for to that sink, one call per fetched batch;
every other topic (the rescore requests, the changelogs during recovery) takes Faust's own
path. What Faust does around records stays: group membership and rebalances, the pause and
seek of recovery (``SeekSafeConsumer``), the read offsets and gaps, and commits of acked
offsets. The records of a batch are tracked as unacked while the sink runs, so a rebalance
waits for the batch (``Consumer.wait_empty``) before it commits and lets the partitions go;
the sink acks each record it took care of.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import AppT, Message

from streams.recovery_seek import SeekSafeConsumer

__all__ = ["SCHEME", "BatchSink", "BatchingConsumer", "attach", "register"]

SCHEME = "limitsync-batch"
FETCH_TIMEOUT_S = 1.0
BatchSink = Callable[[Sequence[Message]], Awaitable[Sequence[Message]]]

# The sink of each app, found by its consumer when the fetch loop starts (the consumer is
# built by Faust, after the app; the app is the one object both know).
_SINKS: weakref.WeakKeyDictionary[AppT, tuple[frozenset[str], BatchSink]] = (
    weakref.WeakKeyDictionary()
)


def attach(app: AppT, topics: Sequence[str], sink: BatchSink) -> None:
    """Hand the records of ``topics`` to ``sink`` in fetched batches. The sink returns the
    messages it is done with; the rest are neither acked nor committed."""
    _SINKS[app] = (frozenset(topics), sink)


class BatchingConsumer(SeekSafeConsumer):
    """``SeekSafeConsumer`` whose fetch loop gives the attached topics' records to a sink."""

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
            else:
                await self.wait_first(self.callback(message), self.suspend_flow.wait())
            read_offset[tp] = offset
        return batch

    async def _hand_over(self, sink: BatchSink, batch: list[Message]) -> None:
        done = await sink(batch)
        ack = self.ack
        for message in done:
            ack(message)
        if len(done) != len(batch):
            # Not ours any more (a rebalance while it was fetched): let another worker have
            # them; they were never applied here.
            left = set(map(id, done))
            for message in batch:
                if id(message) not in left:
                    self._unacked_messages.discard(message)


class _BatchingTransport(faust_aiokafka.Transport):
    Consumer = BatchingConsumer


def register() -> None:
    """Make ``limitsync-batch://host:port`` a broker URL Faust understands."""
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:_BatchingTransport"
