"""Records a worker writes to Kafka, gathered per partition and sent as whole batches.

Faust's own send path builds several objects and a future per record and hands records to
the client one by one from a buffer; a worker writing a few records per input event spent
more time there than on the events. Here records are appended to one batch per partition
and the batches go to the client together; ``flush`` returns once the broker has them, so a
shell can hold its commits until its state changes are durable. One producer, and every
flush submits its batches to the client only after the flushes before it did: the order of
a partition's records is kept across flushes, which the state store's crash consistency
needs (a save's items land before its row, and one save before the next).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any

from kafka.partitioner.default import murmur2

__all__ = ["ChangelogTable", "KafkaOut", "PartitionMemo", "key_partition"]

Headers = Sequence[tuple[str, bytes]]


# Shared by every record without headers: the client only reads it (a list: its C batch
# builder takes nothing else), and a new one per record was a cost per record.
_NO_HEADERS: list[tuple[str, bytes]] = []
PARTITION_MEMO_MAX = 200_000  # keys whose partition is remembered (murmur2 is pure Python)


def key_partition(key: bytes, partitions: int) -> int:
    """The default Kafka partitioner (murmur2 of the key), as producers use it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class PartitionMemo:
    """``key_partition`` remembered per key: kafka-python's murmur2 is Python code, a few
    microseconds a call, and a worker asks for the same few accounts again and again."""

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self._known: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        partition = self._known.get(key)
        if partition is None:
            if len(self._known) >= PARTITION_MEMO_MAX:
                self._known.clear()
            partition = self._known[key] = key_partition(key, self._partitions)
        return partition


class KafkaOut:
    """Gathers records per (topic, partition) until ``flush``.

    ``producer`` gives the client (an ``AIOKafkaProducer``: Faust's own, started with the
    app); ``partitions`` is the partition count of the contract's keyed topics.
    """

    def __init__(self, producer: Callable[[], Any], partitions: int) -> None:
        self._producer = producer
        self._partition_of = PartitionMemo(partitions)
        self._pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Any]]] = {}
        self._submitting = asyncio.Lock()  # FIFO: flushes reach the client in their order
        self._tail: asyncio.Future[None] | None = None  # the newest flush (done after all)
        self._flushes = 0  # flushes taken so far: flush n carries ticket n (``ticket``)
        self._in_flight: dict[int, asyncio.Future[None]] = {}  # flushes not acknowledged yet
        self._failure: BaseException | None = None  # a flush failed: nothing is durable since
        self.records = 0  # records sent so far (metrics)
        self.bytes = 0

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        records = self._pending.get((topic, partition))
        if records is None:
            records = self._pending[(topic, partition)] = []
        records.append((key, value, list(headers) if headers else _NO_HEADERS))

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> None:
        """A keyed record on a contract topic (partitioned as producers do); sent at the
        next ``flush``."""
        raw_key = key.encode()
        self.add(topic, self._partition_of(raw_key), raw_key, value, headers)

    @property
    def pending(self) -> int:
        return sum(len(records) for records in self._pending.values())

    async def flush(self) -> None:
        """Send everything gathered so far; return when the broker has acknowledged it."""
        await self.flush_soon()

    def flush_soon(self) -> Awaitable[None]:
        """Take everything gathered so far now, and send it; the result is done when the
        broker has acknowledged it and everything flushed before it (a flush's batches can
        be acknowledged before an earlier flush's on another partition, and a caller asks
        "is all I saved so far in Kafka?"). Later records wait for the next flush."""
        if self._pending:
            pending, self._pending = self._pending, {}
            self._flushes += 1
            flush = self._flushes
            tail = self._tail = asyncio.ensure_future(self._send(pending, self._tail))
            self._in_flight[flush] = tail
            tail.add_done_callback(lambda done: self._settled(flush, done))
        if self._tail is None:
            return _done()
        return self._tail

    def ticket(self) -> int:
        """The flush that takes what is gathered now: a record added before this call is
        durable once ``durable`` of the ticket is done."""
        return self._flushes + 1

    def durable(self, ticket: int) -> Awaitable[None]:
        """Done when flush ``ticket`` and every flush before it are acknowledged; if that
        flush is not taken yet, everything gathered so far is flushed now. Unlike
        ``flush_soon`` it does not wait for flushes after the ticket's (a writer of the
        cache need not wait for records added after the state it shows)."""
        if self._failure is not None:
            return _failed(self._failure)
        if ticket > self._flushes:
            return self.flush_soon()
        in_flight = self._in_flight.get(ticket)
        return _done() if in_flight is None else in_flight

    def _settled(self, flush: int, done: asyncio.Future[None]) -> None:
        self._in_flight.pop(flush, None)
        if self._failure is None and (done.cancelled() or done.exception() is not None):
            self._failure = (
                asyncio.CancelledError() if done.cancelled() else done.exception()
            )

    async def _send(
        self,
        pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Any]]],
        before: asyncio.Future[None] | None,
    ) -> None:
        async with self._submitting:
            deliveries = await self._submit(pending)
        await asyncio.gather(*deliveries)
        if before is not None:
            await before  # its failure is this flush's too: not everything is in Kafka

    async def _submit(
        self, pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Any]]]
    ) -> list[Any]:
        """Every partition's records in batches, handed to the client in rounds: the first
        batch of every partition, then the second, and so on. The client takes a partition's
        next batch only once the one before it has gone out, one batch per partition in each
        produce request; a partition's batches handed over in turn would hold the other
        partitions' back for a round trip each."""
        producer = self._producer()
        parts: list[tuple[str, int, list[Any]]] = []
        for (topic, partition), records in pending.items():
            # A batch, or a record larger than a batch may hold (the client sends it alone)
            sends: list[Any] = []
            batch = producer.create_batch()
            for key, value, headers in records:
                self.records += 1
                self.bytes += len(key or b"") + len(value or b"")
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    if batch.record_count():
                        sends.append(batch)
                        batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        sends.append((key, value, headers))
            if batch.record_count():
                sends.append(batch)
            parts.append((topic, partition, sends))
        deliveries = []
        for turn in range(max((len(sends) for _, _, sends in parts), default=0)):
            for topic, partition, sends in parts:
                if turn >= len(sends):
                    continue
                send = sends[turn]
                if isinstance(send, tuple):
                    key, value, headers = send
                    deliveries.append(
                        await producer.send(
                            topic, value, key=key, partition=partition, headers=headers
                        )
                    )
                else:
                    deliveries.append(await producer.send_batch(send, topic, partition=partition))
        return deliveries


def _done() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


def _failed(exc: BaseException) -> asyncio.Future[None]:
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    failed.set_exception(exc)
    return failed


class ChangelogTable(MutableMapping[bytes, bytes]):
    """A Faust table's local store, written through to its changelog by a ``KafkaOut``.

    Faust restores the store from the changelog on assignment (and keeps standbys), so the
    pair stays Faust's; only the writes take the batched path. ``partition_of`` says which
    changelog partition a key belongs to (its owner's).
    """

    def __init__(
        self, table: Any, out: KafkaOut, partition_of: Callable[[bytes], int]
    ) -> None:
        self._table = table
        self._out = out
        self._partition_of = partition_of
        self._topic_name: str | None = None

    def _topic(self) -> str:
        if self._topic_name is None:  # known once Faust has declared the table's topics
            self._topic_name = self._table.changelog_topic.get_topic_name()
        return self._topic_name

    def __getitem__(self, key: bytes) -> bytes:
        value: bytes = self._table.data[key]
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._table.data[key] = value
        self._out.add(self._topic(), self._partition_of(key), key, value)

    def __delitem__(self, key: bytes) -> None:
        del self._table.data[key]
        self._out.add(self._topic(), self._partition_of(key), key, None)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._table.data)

    def __len__(self) -> int:
        return len(self._table.data)
