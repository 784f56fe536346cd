"""The order rule shared by Kafka replay and archive replay, and the Kafka read loop on a
fake consumer.

Both replays must put the same records in the same order, or a replay from the archive would
judge a different log than a replay from Kafka; and the loop's start, pausing, end-offset and
idle rules must never end a partition early, whatever order the broker serves partitions in.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import TopicPartition
from kafka.structs import OffsetAndTimestamp

from consumers.kafka_replay import KafkaReadOptions, KafkaReadStats, StartMode, _WindowReader
from consumers.merge import LogRecord, PartitionMerger, dedupe_offsets, merge_partitions


def rec(topic: str, partition: int, offset: int, ts: int) -> LogRecord:
    return LogRecord(topic, partition, offset, ts, None, f"{topic}/{partition}@{offset}".encode())


def test_merge_orders_by_timestamp_then_partition_then_offset_then_topic() -> None:
    a0 = [rec("a", 0, 0, 10), rec("a", 0, 1, 20), rec("a", 0, 2, 20)]
    a1 = [rec("a", 1, 0, 10), rec("a", 1, 1, 15)]
    b0 = [rec("b", 0, 0, 10), rec("b", 0, 1, 20)]
    merged = list(merge_partitions([b0, a1, a0]))
    assert [r.merge_key for r in merged] == [
        (10, 0, 0, "a"), (10, 0, 0, "b"), (10, 1, 0, "a"), (15, 1, 1, "a"),
        (20, 0, 1, "a"), (20, 0, 1, "b"), (20, 0, 2, "a"),
    ]


def test_merge_keeps_each_partition_in_offset_order_even_when_timestamps_go_back() -> None:
    p0 = [rec("a", 0, 0, 50), rec("a", 0, 1, 10)]  # a late-stamped record after an early one
    p1 = [rec("a", 1, 0, 20)]
    merged = [(r.partition, r.offset) for r in merge_partitions([p0, p1])]
    assert merged == [(1, 0), (0, 0), (0, 1)]


def test_dedupe_offsets_drops_records_rewritten_after_a_crash() -> None:
    stream = [rec("a", 0, o, o) for o in (0, 1, 2, 1, 2, 3, 3, 4)]
    assert [r.offset for r in dedupe_offsets(stream)] == [0, 1, 2, 3, 4]


def test_merger_waits_for_an_empty_partition_that_is_not_finished() -> None:
    merger = PartitionMerger([("a", 0), ("a", 1)])
    merger.push(("a", 0), [rec("a", 0, 0, 5), rec("a", 0, 1, 30)])
    assert list(merger.pop_ready()) == []  # ("a", 1) may still send something earlier
    assert merger.waiting == {("a", 1)}
    merger.push(("a", 1), [rec("a", 1, 0, 10)])
    assert [r.timestamp_ms for r in merger.pop_ready()] == [5, 10]
    assert merger.waiting == {("a", 1)}
    merger.finish(("a", 1))
    assert [r.timestamp_ms for r in merger.pop_ready()] == [30]
    assert not merger.done  # ("a", 0) is drained but not finished
    merger.finish(("a", 0))
    assert merger.done
    with pytest.raises(ValueError):
        merger.push(("a", 1), [rec("a", 1, 1, 40)])


def _streams(draw: st.DrawFn) -> list[list[LogRecord]]:
    streams = []
    for index in range(draw(st.integers(1, 5))):
        topic, partition = ("a", "b")[index % 2], index // 2
        times = draw(st.lists(st.integers(0, 30), max_size=12))
        streams.append([rec(topic, partition, o, t) for o, t in enumerate(times)])
    return streams


@settings(max_examples=200, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_merger_fed_in_any_batches_gives_the_heap_merge(data: st.DataObject, seed: int) -> None:
    streams = data.draw(st.composite(_streams)())
    expected = list(heapq.merge(*streams, key=lambda r: r.merge_key))
    rng = random.Random(seed)
    merger = PartitionMerger([(s[0].topic, s[0].partition) if s else ("a", -i)
                              for i, s in enumerate(streams)])
    queues = {
        (s[0].topic, s[0].partition) if s else ("a", -i): list(s) for i, s in enumerate(streams)
    }
    out: list[LogRecord] = []
    while not merger.done:
        tp = rng.choice(sorted(queues))
        rest = queues[tp]
        if merger.is_finished(tp):
            continue
        take = rng.randint(0, min(3, len(rest)))
        merger.push(tp, rest[:take])
        del rest[:take]
        if not rest:
            merger.finish(tp)
        out.extend(merger.pop_ready())
    assert out == expected


# -- the read loop, on a fake consumer ---------------------------------------------------------


class FakeRecord:
    def __init__(self, offset: int, timestamp: int) -> None:
        self.offset, self.timestamp = offset, timestamp
        self.key, self.value = None, f"{offset}@{timestamp}".encode()


class FakeConsumer:
    """Serves one partition per poll, chosen at random, as a fetch bounded in bytes may; an
    empty poll takes its whole timeout. Answers offsets_for_times and end offsets as Apache
    Kafka does."""

    def __init__(self, logs: dict[TopicPartition, list[int]], rng: random.Random) -> None:
        self.logs, self.rng = logs, rng
        self.position = dict.fromkeys(logs, 0)
        self.paused: set[TopicPartition] = set()
        self.pauses = 0

    def assign(self, tps: list[TopicPartition]) -> None:
        assert set(tps) == set(self.logs)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position[tp] = offset

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.position[tp] = 0

    def pause(self, tp: TopicPartition) -> None:
        self.paused.add(tp)
        self.pauses += 1

    def resume(self, tp: TopicPartition) -> None:
        self.paused.discard(tp)

    def offsets_for_times(
        self, query: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        answers: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for tp, start in query.items():
            found = [(o, t) for o, t in enumerate(self.logs[tp]) if t >= start]
            answers[tp] = OffsetAndTimestamp(*found[0], -1) if found else None
        return answers

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.logs[tp]) for tp in tps}

    def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[FakeRecord]]:
        ready = [tp for tp in self.logs
                 if tp not in self.paused and self.position[tp] < len(self.logs[tp])]
        if not ready:
            time.sleep(timeout_ms / 1000)
            return {}
        tp = self.rng.choice(ready)
        start = self.position[tp]
        take = self.rng.randint(1, max_records)
        times = self.logs[tp][start:start + take]
        self.position[tp] = start + len(times)
        return {tp: [FakeRecord(start + i, t) for i, t in enumerate(times)]}


def read_fake(
    logs: dict[TopicPartition, list[int]], seed: int, start: int | None, end: int | None,
    trust_end_offsets: bool,
) -> tuple[list[bytes], FakeConsumer, KafkaReadStats]:
    consumer = FakeConsumer(logs, random.Random(seed))
    options = KafkaReadOptions(poll_timeout_ms=2, idle_timeout_s=0.02, buffer_records_max=4,
                               poll_records_max=3, trust_end_offsets=trust_end_offsets)
    stats = KafkaReadStats()
    reader = _WindowReader(consumer, list(logs), start, end, options, stats)
    reader.locate(trust_end_offsets)
    return [r.value for r in reader], consumer, stats


def fake_logs(rng: random.Random) -> dict[TopicPartition, list[int]]:
    logs = {}
    for p in range(rng.randint(1, 4)):
        n = rng.randint(0, 30)
        logs[TopicPartition("t", p)] = sorted(rng.randint(0, 100) for _ in range(n))
    return logs


def expected_window(logs: dict[TopicPartition, list[int]], start: int | None,
                    end: int | None) -> list[bytes]:
    streams = [
        [rec("t", tp.partition, o, t) for o, t in enumerate(times)
         if (start is None or t >= start) and (end is None or t <= end)]
        for tp, times in logs.items()
    ]
    return [f"{r.offset}@{r.timestamp_ms}".encode() for r in merge_partitions(streams)]


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("trust_end_offsets", [True, False])
def test_the_read_loop_merges_windows_with_tiny_buffers(
    seed: int, trust_end_offsets: bool
) -> None:
    rng = random.Random(seed)
    logs = fake_logs(rng)
    start = rng.choice([None, rng.randint(0, 100)])
    end = rng.choice([None, rng.randint(start or 0, 100)])
    got, consumer, stats = read_fake(logs, seed, start, end, trust_end_offsets)
    assert consumer.pauses >= len(logs)  # tiny buffers: partitions were paused
    assert got == expected_window(logs, start, end)
    assert all(p.ended_by for p in stats.partitions.values())
    for tp, times in logs.items():
        partition = stats.partitions[(tp.topic, tp.partition)]
        if start is None:
            assert partition.start_mode is StartMode.BEGINNING
        elif any(t >= start for t in times):
            # read from the first record at or after start, never from the beginning
            first = next(o for o, t in enumerate(times) if t >= start)
            assert (partition.start_mode, partition.answer) == (StartMode.AT_TIME, first)
            assert partition.records_read <= len(times) - first
        else:
            assert (partition.start_mode, partition.records_read) == (StartMode.EMPTY, 0)

