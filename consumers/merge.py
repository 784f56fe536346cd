"""One order rule for every multi-partition log: (timestamp, partition, offset).

Kafka keeps order only inside a partition, so a replay that reads several partitions (from
the topics or from archive segments) has to pick one total order, and the two must pick the
same one or a replay from the archive would judge a different log than a replay from Kafka.
Both read each partition in offset order and k-way merge the partitions by
``(timestamp_ms, partition, offset, topic)``; the topic is only a final tie-break between
the two input topics, which share partition numbers. With the record timestamps that
``limitsync produce`` writes (event time, strictly increasing in file order) the merge gives
back the file's order exactly.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from schemas.parse import InputRecord

__all__ = [
    "LogRecord",
    "MergeKey",
    "PartitionMerger",
    "TopicPartitionId",
    "dedupe_offsets",
    "merge_partitions",
]

TopicPartitionId = tuple[str, int]
MergeKey = tuple[int, int, int, str]


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A record as Kafka held it: where it was, when, and its raw key and value (None for a
    tombstone, which the replay dead-letters)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None

    @property
    def merge_key(self) -> MergeKey:
        return (self.timestamp_ms, self.partition, self.offset, self.topic)

    @property
    def topic_partition(self) -> TopicPartitionId:
        return (self.topic, self.partition)

    def as_input(self) -> InputRecord:
        return InputRecord(self.value, self.topic, self.partition, self.offset)


def _merge_key(record: LogRecord) -> MergeKey:
    return record.merge_key


def dedupe_offsets(records: Iterable[LogRecord]) -> Iterator[LogRecord]:
    """Drops every record at or below an offset already passed in one partition's stream.

    An archiver that crashed after writing a segment but before committing writes the same
    records again on restart; they are exact copies, so the first one wins.
    """
    last = -1
    for record in records:
        if record.offset > last:
            last = record.offset
            yield record


def merge_partitions(partitions: Iterable[Iterable[LogRecord]]) -> Iterator[LogRecord]:
    """The k-way merge of per-partition streams (each in offset order) into one log."""
    return heapq.merge(*partitions, key=_merge_key)


class PartitionMerger:
    """The same k-way merge as :func:`merge_partitions`, fed batch by batch.

    A consumer gets records partition by partition in whatever batches the broker sends, so
    a record may only leave the merge once every partition that is not finished has a record
    buffered: an empty partition might still deliver an earlier one. The caller bounds the
    buffers (``buffered``) by pausing partitions; this class holds no limit of its own.
    """

    def __init__(self, partitions: Iterable[TopicPartitionId]) -> None:
        self._buffers: dict[TopicPartitionId, deque[LogRecord]] = {
            tp: deque() for tp in partitions
        }
        self._finished: set[TopicPartitionId] = set()
        self._waiting: set[TopicPartitionId] = set(self._buffers)
        self._heads: list[tuple[MergeKey, TopicPartitionId]] = []

    def push(self, tp: TopicPartitionId, records: Iterable[LogRecord]) -> None:
        """Add records of one partition, in offset order."""
        if tp in self._finished:
            raise ValueError(f"partition {tp} is finished; it takes no more records")
        buffer = self._buffers[tp]
        was_empty = not buffer
        buffer.extend(records)
        if was_empty and buffer:
            self._waiting.discard(tp)
            heapq.heappush(self._heads, (buffer[0].merge_key, tp))

    def finish(self, tp: TopicPartitionId) -> None:
        """No more records will come for ``tp``: the merge stops waiting for it."""
        self._finished.add(tp)
        self._waiting.discard(tp)

    def is_finished(self, tp: TopicPartitionId) -> bool:
        return tp in self._finished

    def buffered(self, tp: TopicPartitionId) -> int:
        return len(self._buffers[tp])

    @property
    def waiting(self) -> frozenset[TopicPartitionId]:
        """Unfinished partitions with nothing buffered: the merge cannot go on without them."""
        return frozenset(self._waiting)

    @property
    def done(self) -> bool:
        return not self._heads and len(self._finished) == len(self._buffers)

    def pop_ready(self) -> Iterator[LogRecord]:
        """Every record whose place in the merged log is already certain, in order."""
        heads = self._heads
        while heads and not self._waiting:
            _, tp = heapq.heappop(heads)
            buffer = self._buffers[tp]
            record = buffer.popleft()
            if buffer:
                heapq.heappush(heads, (buffer[0].merge_key, tp))
            elif tp not in self._finished:
                self._waiting.add(tp)
            yield record
