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
from collections.abc import Awaitable, Callable, ItemsView, Iterator, MutableMapping, Sequence
from typing import Any

from faust.types import TP
from kafka.partitioner.default import murmur2

__all__ = ["ChangelogRecord", "ChangelogTable", "KafkaOut", "PartitionMemo", "key_partition"]

Headers = Sequence[tuple[str, bytes]]
# One flush's records of a watched topic in one partition, with their offsets, in order.
Delivered = Callable[[int, list[tuple[int, bytes | None, bytes | None]]], None]


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
        self._watchers: dict[str, Delivered] = {}
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

    def watch(self, topic: str, delivered: Delivered) -> None:
        """Have ``delivered`` called with every flush's records of ``topic``, partition by
        partition, with the offsets the broker gave them: once that flush and every flush
        before it are acknowledged, and before the flush counts as done. Calls come in the
        order of the flushes, so a key's later value never arrives before an earlier one."""
        self._watchers[topic] = delivered

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
            deliveries, watched = await self._submit(pending)
        acknowledged = await asyncio.gather(*deliveries)
        if before is not None:
            await before  # its failure is this flush's too: not everything is in Kafka
        for delivered, partition, records, sends in watched:
            delivered(partition, _numbered(records, sends, acknowledged))

    async def _submit(
        self, pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Any]]]
    ) -> tuple[list[Any], list[_Watched]]:
        """Every partition's records in batches, handed to the client in rounds: the first
        batch of every partition, then the second, and so on. The client takes a partition's
        next batch only once the one before it has gone out, one batch per partition in each
        produce request; a partition's batches handed over in turn would hold the other
        partitions' back for a round trip each."""
        producer = self._producer()
        parts: list[tuple[str, int, list[Any], list[list[int]] | None]] = []
        watched: list[_Watched] = []
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
            # A watched partition's sends: [records in it, where its delivery is] each
            numbered: list[list[int]] | None = None
            delivered = self._watchers.get(topic)
            if delivered is not None:
                numbered = [[1 if isinstance(s, tuple) else s.record_count(), -1] for s in sends]
                watched.append((delivered, partition, records, numbered))
            parts.append((topic, partition, sends, numbered))
        deliveries: list[Any] = []
        for turn in range(max((len(sends) for _, _, sends, _ in parts), default=0)):
            for topic, partition, sends, numbered in parts:
                if turn >= len(sends):
                    continue
                if numbered is not None:
                    numbered[turn][1] = len(deliveries)
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
        return deliveries, watched


# A watched partition's part of a flush: whom to tell, the partition, its records, and per
# send the number of records it holds and the position of its delivery.
_Watched = tuple[Delivered, int, list[tuple[bytes | None, bytes | None, Any]], list[list[int]]]


def _numbered(
    records: list[tuple[bytes | None, bytes | None, Any]],
    sends: list[list[int]],
    acknowledged: list[Any],
) -> list[tuple[int, bytes | None, bytes | None]]:
    """A partition's records of one flush with their offsets. Its sends hold consecutive
    runs of the records, in order; a send's acknowledgement carries the offset of its first
    record, and the records of a batch follow it one by one."""
    numbered: list[tuple[int, bytes | None, bytes | None]] = []
    for count, delivery in sends:
        metadata = acknowledged[delivery]
        if metadata is None or metadata.offset < 0:  # what a producer without acks reports
            raise RuntimeError("the broker gave no offsets: the changelog needs acks")
        offset = metadata.offset
        for key, value, _ in records[len(numbered) : len(numbered) + count]:
            numbered.append((offset, key, value))
            offset += 1
    return numbered


def _done() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


def _failed(exc: BaseException) -> asyncio.Future[None]:
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    failed.set_exception(exc)
    return failed


class ChangelogRecord:
    """A changelog record as a table's store reads one in ``apply_changelog_batch``: the
    event (``key``, ``value``) and its message (``tp``, ``partition``, ``offset``) at once."""

    __slots__ = ("key", "offset", "partition", "tp", "value")

    def __init__(self, tp: TP, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.tp = tp
        self.partition = tp.partition
        self.offset = offset
        self.key = key
        self.value = value

    @property
    def message(self) -> ChangelogRecord:
        return self


class ChangelogTable(MutableMapping[bytes, bytes]):
    """A Faust table's local store, written through to its changelog by a ``KafkaOut``.

    Faust restores the store from the changelog on assignment (and keeps standbys), so the
    pair stays Faust's; only the writes take the batched path. ``partition_of`` says which
    changelog partition a key belongs to (its owner's).

    With ``durable_first`` (a store that outlives the process, RocksDB), a write reaches the
    store only once the changelog has it, through the store's ``apply_changelog_batch`` with
    its partition and offset, as a standby's or a recovery's records do. Faust's RocksDB
    store takes a plain write's partition from the stream event being processed, and the
    shell writes from its batch loop, outside any event. Writing after the changelog also
    keeps the store a prefix of the changelog up to the offset it records: a store ahead of
    it (writes that never reached Kafka, kept on disk across a crash) would restore saves the
    other workers never see and mark records as seen whose effects were lost. Until then the
    write is held here, and reads see it.

    ``is_active`` says whether a changelog partition is still one this worker writes (Faust's
    recovery's active partitions). A flush acknowledged after its partition moved away in a
    rebalance (a drift monitor's save is not awaited by one) does not reach the store: the
    partition's standby here may already hold newer records of the new owner, and writing
    the older ones after them would leave old values under a recorded offset moved back.
    Whoever reads the partition next, here or elsewhere, reads those records from the
    changelog in order.
    """

    def __init__(
        self,
        table: Any,
        out: KafkaOut,
        partition_of: Callable[[bytes], int],
        *,
        durable_first: bool = False,
        is_active: Callable[[TP], bool] | None = None,
    ) -> None:
        self._table = table
        self._out = out
        self._partition_of = partition_of
        self._topic_name: str | None = None
        self._durable_first = durable_first
        self._is_active = is_active
        # Writes not in the store yet: key -> [its newest value (None: removed), writes of it
        # not in the store yet]. Flushes reach the store in order, so the store holds the
        # newest value once the last of them has.
        self._held: dict[bytes, list[Any]] = {}

    def _topic(self) -> str:
        if self._topic_name is None:  # known once Faust has declared the table's topics
            self._topic_name = self._table.changelog_topic.get_topic_name()
            if self._durable_first:
                self._out.watch(self._topic_name, self._store)
        return self._topic_name

    def __getitem__(self, key: bytes) -> bytes:
        if self._held:
            held = self._held.get(key)
            if held is not None:
                if held[0] is None:
                    raise KeyError(key)
                newest: bytes = held[0]
                return newest
        value: bytes = self._table.data[key]
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        if self._durable_first:
            self._hold(key, value)
        else:
            self._table.data[key] = value
        self._out.add(self._topic(), self._partition_of(key), key, value)

    def __delitem__(self, key: bytes) -> None:
        if self._durable_first:
            self[key]  # raises KeyError, as a mapping's del does
            self._hold(key, None)
        else:
            del self._table.data[key]
        self._out.add(self._topic(), self._partition_of(key), key, None)

    def __iter__(self) -> Iterator[bytes]:
        if not self._held:
            return iter(self._table.data)
        return self._merged_keys()

    def __len__(self) -> int:
        if not self._held:
            return len(self._table.data)
        return sum(1 for _ in self._merged_keys())

    def items(self) -> ItemsView[bytes, bytes]:
        if not self._durable_first:
            return super().items()
        return _MergedItems(self)

    def _merged_keys(self) -> Iterator[bytes]:
        held = self._held
        for key in self._table.data:
            if key not in held:
                yield key
        for key, (value, _) in list(held.items()):
            if value is not None:
                yield key

    def _merged_items(self) -> Iterator[tuple[bytes, bytes]]:
        """The store's items (read in one pass per partition) and the held writes."""
        held = self._held
        for key, value in self._table.data.items():
            if key not in held:
                yield key, value
        for key, (value, _) in list(held.items()):
            if value is not None:
                yield key, value

    def _hold(self, key: bytes, value: bytes | None) -> None:
        held = self._held.get(key)
        if held is None:
            self._held[key] = [value, 1]
        else:
            held[0] = value
            held[1] += 1

    def _store(self, partition: int, records: list[tuple[int, bytes | None, bytes | None]]) -> None:
        """A flush's records of one partition, in the changelog now: into the store, which
        also records the partition's offset (where a restart's recovery reads on from)."""
        tp = TP(self._topic(), partition)
        if self._is_active is None or self._is_active(tp):
            self._table.apply_changelog_batch(
                [ChangelogRecord(tp, offset, key, value) for offset, key, value in records]
            )
        held = self._held
        for _, key, _ in records:
            entry = held.get(key) if key is not None else None
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del held[key]  # type: ignore[arg-type]


class _MergedItems(ItemsView[bytes, bytes]):
    """A durable-first table's items without a store lookup per key."""

    _mapping: ChangelogTable

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return self._mapping._merged_items()
