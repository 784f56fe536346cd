"""Reading a window of the input topics from Kafka, merged into one log, for a replay.

The consumer is isolated: a group id of its own, ``assign()`` instead of ``subscribe()`` (no
group membership, so no rebalance of the live workers), auto-commit off and no commit ever.
Nothing is produced and Redis is never touched. This module reads; `limitsync replay
--from-kafka` (limitsync/kafka_replay_command.py) runs what it reads through the replay.

Finding the start. ``offsets_for_times`` answers, per partition, the earliest offset whose
timestamp is at or after ``start``; the reader seeks there, so every record before it is
older than ``start``. A partition with no answer has no such record: nothing to read. A record
after the answer that is stamped before ``start`` (producers set the timestamps, which need
not grow with offsets) is dropped, as a replay of the same slice of a file would drop it.

Finding the end. A partition is done at its first record after ``end`` (record timestamps
are taken to grow with offsets, as ``limitsync produce`` writes them), at its end offset taken
when the read starts, or when the merge waits for it and no partition has received anything
for ``idle_timeout_s``: a partition whose last offsets hold no record a consumer sees (the
markers that end transactions) never reaches its end offset, and with ``trust_end_offsets``
off a partition is read until it goes quiet.

Partitions are merged into one log by (timestamp, partition, offset) as they arrive
(:class:`consumers.merge.PartitionMerger`), with a bounded buffer per partition: a partition
that runs ahead is paused until the merge catches up.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndTimestamp

from config.settings import Settings
from consumers.kafka_common import (
    make_consumer,
    release_parked_records,
    topic_partitions,
)
from consumers.merge import LogRecord, PartitionMerger, TopicPartitionId

__all__ = [
    "KafkaReadOptions",
    "KafkaReadStats",
    "PartitionStats",
    "StartMode",
    "read_window",
]


class StartMode(enum.StrEnum):
    BEGINNING = "beginning"  # no start given: from the earliest offset
    AT_TIME = "at_time"  # at offsets_for_times' answer for the start
    EMPTY = "empty"  # no record at or after the start: nothing read


@dataclass(frozen=True)
class KafkaReadOptions:
    poll_timeout_ms: int = 200
    # With the merge waiting for a partition and no records for any partition for this long
    # (poll time), the awaited partitions are at their end.
    idle_timeout_s: float = 2.0
    # Records buffered per partition before it is paused; it resumes at half.
    buffer_records_max: int = 20_000
    poll_records_max: int = 5_000
    # kafka-python checks CRC32C in pure Python (a large share of the read time) unless the
    # ``crc32c`` package is installed; turning the check off trades corruption detection.
    check_crcs: bool = True
    # A partition ends at its end offset taken when the read starts; False reads each one
    # until it goes quiet (idle_timeout_s) instead, taking in what arrives meanwhile.
    trust_end_offsets: bool = True

    def __post_init__(self) -> None:
        if self.buffer_records_max < 2 or self.poll_records_max < 1:
            raise ValueError("buffer_records_max must be >= 2 and poll_records_max >= 1")
        if self.idle_timeout_s <= 0 or self.poll_timeout_ms <= 0:
            raise ValueError("idle_timeout_s and poll_timeout_ms must be positive")


@dataclass
class PartitionStats:
    start_mode: StartMode
    answer: int | None
    records_read: int = 0
    records_kept: int = 0
    ended_by: str = ""  # "end" (a record after end), "end_offset", "idle" or "empty"


@dataclass
class KafkaReadStats:
    group_id: str = ""
    partitions: dict[TopicPartitionId, PartitionStats] = field(default_factory=dict)

    def modes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.partitions.values():
            counts[p.start_mode.value] = counts.get(p.start_mode.value, 0) + 1
        return counts


def _ceil_ms(us: int) -> int:
    return -(-us // 1000)


class _WindowReader:
    """The read loop of :func:`read_window`; one instance per replay."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        partitions: list[TopicPartition],
        start_ms: int | None,
        end_ms: int | None,
        options: KafkaReadOptions,
        stats: KafkaReadStats,
    ) -> None:
        self._consumer = consumer
        self._tps = {(tp.topic, tp.partition): tp for tp in partitions}
        self._start_ms = start_ms
        self._end_ms = end_ms
        self._options = options
        self._stats = stats
        self._end_hints: dict[TopicPartitionId, int] = {}
        self._merger = PartitionMerger(self._tps)
        self._paused: set[TopicPartitionId] = set()
        self._quiet_s = 0.0  # poll time since any record arrived

    # -- start and end ------------------------------------------------------------------

    def locate(self, trust_end_offsets: bool) -> None:
        consumer = self._consumer
        consumer.assign(list(self._tps.values()))
        answers: Mapping[TopicPartition, OffsetAndTimestamp | None] = {}
        if self._start_ms is not None:
            answers = consumer.offsets_for_times(dict.fromkeys(self._tps.values(), self._start_ms))
        for tpid, tp in self._tps.items():
            if self._start_ms is None:
                self._stats.partitions[tpid] = PartitionStats(StartMode.BEGINNING, None)
                consumer.seek_to_beginning(tp)
                continue
            found = answers.get(tp)
            if found is None:
                self._stats.partitions[tpid] = PartitionStats(StartMode.EMPTY, None)
                self._finish(tpid, "empty")
            else:
                self._stats.partitions[tpid] = PartitionStats(StartMode.AT_TIME, found.offset)
                consumer.seek(tp, found.offset)
        if trust_end_offsets:
            self._use_end_offsets()

    def _use_end_offsets(self) -> None:
        """On a broker whose end offsets are right, a partition ends at its snapshot end."""
        tps = list(self._tps.values())
        ends = self._consumer.end_offsets(tps)
        beginnings = self._consumer.beginning_offsets(tps)
        for tpid, tp in self._tps.items():
            self._end_hints[tpid] = ends[tp]
            if ends[tp] <= beginnings[tp]:
                self._finish(tpid, "end_offset")

    def _finish(self, tpid: TopicPartitionId, why: str) -> None:
        if self._merger.is_finished(tpid):
            return
        self._merger.finish(tpid)
        self._stats.partitions[tpid].ended_by = why
        if tpid not in self._paused:
            self._consumer.pause(self._tps[tpid])
            self._paused.add(tpid)

    # -- the loop -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[LogRecord]:
        merger = self._merger
        while True:
            yield from merger.pop_ready()
            if merger.done:
                return
            # Resume first: a partition drained while paused must get a fetch of its own
            # before its silence can mean anything (resuming restarts the quiet spell).
            self._resume_drained()
            if self._finish_idle():  # already quiet long enough: no need to poll for it
                continue
            release_parked_records(self._consumer)
            began = time.monotonic()
            batch = self._consumer.poll(
                timeout_ms=self._options.poll_timeout_ms,
                max_records=self._options.poll_records_max,
            )
            self._count_quiet(time.monotonic() - began, any(batch.values()))
            for tp, records in batch.items():
                self._take((tp.topic, tp.partition), records)
            self._finish_idle()

    def _take(self, tpid: TopicPartitionId, records: Sequence[ConsumerRecord]) -> None:
        if self._merger.is_finished(tpid):
            return
        stats = self._stats.partitions[tpid]
        kept: list[LogRecord] = []
        end_hint = self._end_hints.get(tpid)
        ended = ""
        for raw in records:
            offset, timestamp_ms = raw.offset, raw.timestamp
            stats.records_read += 1
            if self._end_ms is not None and timestamp_ms > self._end_ms:
                ended = "end"
                break
            if self._start_ms is None or timestamp_ms >= self._start_ms:
                kept.append(LogRecord(tpid[0], tpid[1], offset, timestamp_ms, raw.key, raw.value))
            if end_hint is not None and offset + 1 >= end_hint:
                ended = "end_offset"
                break
        stats.records_kept += len(kept)
        self._merger.push(tpid, kept)
        if ended:
            self._finish(tpid, ended)
        elif self._merger.buffered(tpid) >= self._options.buffer_records_max:
            self._consumer.pause(self._tps[tpid])
            self._paused.add(tpid)

    def _resume_drained(self) -> None:
        low = self._options.buffer_records_max // 2
        for tpid in list(self._paused):
            if not self._merger.is_finished(tpid) and self._merger.buffered(tpid) < low:
                self._consumer.resume(self._tps[tpid])
                self._paused.discard(tpid)
                self._quiet_s = 0.0

    def _count_quiet(self, polled_s: float, delivered: bool) -> None:
        """Adds the poll's time to the quiet spell, or ends it when any records came.

        Quiet is counted for the consumer as a whole, not per partition: a fetch answer is
        bounded in bytes (``fetch_max_bytes``), so a broker may serve partitions one after
        another, and one can wait longer than the idle bound while others get data. Only
        when no fetchable partition gets anything is an awaited one at its end. Only time
        inside ``poll`` counts, so a slow consumer of the merged log changes nothing.
        """
        self._quiet_s = 0.0 if delivered else self._quiet_s + polled_s

    def _finish_idle(self) -> bool:
        """Finish the awaited partitions that stayed quiet; True if any did."""
        if self._quiet_s < self._options.idle_timeout_s:
            return False
        idle = [tpid for tpid in self._merger.waiting if tpid not in self._paused]
        for tpid in idle:
            self._finish(tpid, "idle")
        return bool(idle)


def read_window(
    settings: Settings,
    start_us: int | None,
    end_us: int | None,
    options: KafkaReadOptions | None = None,
    *,
    stats: KafkaReadStats | None = None,
    topics: Sequence[str] | None = None,
) -> Iterator[LogRecord]:
    """The input topics' records with start <= timestamp <= end, merged into one log.

    ``stats`` is filled in as the records are read.
    """
    options = options or KafkaReadOptions()
    stats = stats if stats is not None else KafkaReadStats()
    stats.group_id = f"{settings.app_id}-replay-{uuid.uuid4().hex[:12]}"
    names = (
        list(topics)
        if topics is not None
        else [
            settings.topics["account_events"],
            settings.topics["displayed"],
        ]
    )
    consumer = make_consumer(
        settings,
        client_id=stats.group_id,
        group_id=stats.group_id,
        max_poll_records=options.poll_records_max,
        check_crcs=options.check_crcs,
    )
    try:
        reader = _WindowReader(
            consumer,
            topic_partitions(consumer, names),
            None if start_us is None else _ceil_ms(start_us),
            None if end_us is None else end_us // 1000,
            options,
            stats,
        )
        reader.locate(options.trust_end_offsets)
        yield from reader
    finally:
        consumer.close(autocommit=False)
