"""The archiver: the input topics, kept as hourly gzip segments that replay can read.

Kafka's retention is the wrong place to keep months of evidence, and a replay of a past
incident must not depend on the broker still holding it. The archiver is a plain group
consumer (group ``{app_id}-archive``) that appends every record of ``account-events`` and
``displayed`` to ``<dir>/<topic>/p<partition>/<YYYYMMDDTHH>.jsonl.gz`` (format:
:mod:`consumers.segments`), and commits an offset only after the data up to it is flushed and
fsynced, so a crash loses nothing: the uncommitted records come again.

A crash in the middle of a member leaves a torn gzip tail; the next member appended after it
would make everything behind the tear unreadable. So a segment that exists is checked when
this process first opens it, and cut back to the end of its last complete member: the records
of the torn member were never committed, and come again from Kafka.

They must not be archived twice, so each partition directory also holds ``.next_offset``,
written after the data and before the commit: records below it are skipped. A crash
between the data and that marker can still write a record twice; readers drop such copies.

Bounds: at most ``open_files_max`` segments are open (the least recently used is closed
when another is needed), data is flushed at least every ``flush_interval_s`` or
``flush_records_max`` records, and each poll takes at most ``poll_records_max`` records.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from config.settings import Settings
from consumers.kafka_common import make_consumer
from consumers.merge import LogRecord
from consumers.segments import encode_line, segment_path

__all__ = [
    "MARKER_NAME",
    "ArchiveOptions",
    "ArchiveStats",
    "FlushedOffsets",
    "SegmentWriter",
    "run_archive",
]

MARKER_NAME = ".next_offset"
_READ_CHUNK_BYTES = 1 << 16
_CHECKED_PATHS_MAX = 4096  # segments known whole in this process (hours x partitions)
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def complete_members_end(path: Path) -> int:
    """The byte offset just past the last complete gzip member of ``path`` (0 if none).

    Streams the file in chunks with each chunk's output bounded (memory stays small whatever
    the ratio), one decompressor per member; a member that the file ends inside of, or bytes
    that are no gzip at all, end the complete part.
    """
    end = 0
    with path.open("rb") as fh:
        decoder = zlib.decompressobj(_GZIP_WBITS)
        position = 0  # file offset of `chunk`
        chunk = b""
        while True:
            if not chunk:
                chunk = fh.read(_READ_CHUNK_BYTES)
                if not chunk:
                    return end
            data = chunk
            try:
                while data and not decoder.eof:
                    decoder.decompress(data, _READ_CHUNK_BYTES)
                    data = decoder.unconsumed_tail
            except zlib.error:
                return end
            if not decoder.eof:
                position += len(chunk)
                chunk = b""
                continue
            rest = decoder.unused_data
            end = position + len(chunk) - len(rest)
            position, chunk = end, rest
            decoder = zlib.decompressobj(_GZIP_WBITS)


def cut_torn_tail(path: Path) -> int:
    """Truncate ``path`` to its complete gzip members; returns the bytes cut (0: whole)."""
    end = complete_members_end(path)
    size = path.stat().st_size
    if end < size:
        with path.open("r+b") as fh:
            fh.truncate(end)
            os.fsync(fh.fileno())
    return size - end


@dataclass(frozen=True)
class ArchiveOptions:
    root: Path
    group_id: str | None = None  # default: "{app_id}-archive"
    open_files_max: int = 64
    flush_interval_s: float = 5.0
    flush_records_max: int = 50_000
    poll_timeout_ms: int = 500
    poll_records_max: int = 2_000
    compresslevel: int = 6
    max_records: int | None = None  # stop after archiving this many (tests, one-off runs)
    idle_exit_s: float | None = None  # stop after this long with nothing to archive

    def __post_init__(self) -> None:
        if self.open_files_max < 1 or self.flush_records_max < 1 or self.poll_records_max < 1:
            raise ValueError("open_files_max, flush_records_max and poll_records_max must be >= 1")
        if self.flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be positive")


@dataclass
class ArchiveStats:
    records_written: int = 0
    records_skipped: int = 0  # below a partition's .next_offset: archived before
    flushes: int = 0
    segments_created: int = 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _OpenSegment:
    """One gzip member being appended to a segment file."""

    def __init__(self, path: Path, compresslevel: int) -> None:
        self.path = path
        self.raw: BinaryIO = path.open("ab")
        # mtime=0: the same records give the same bytes.
        self.gz = gzip.GzipFile(fileobj=self.raw, mode="wb", compresslevel=compresslevel, mtime=0)

    def close(self) -> None:
        """Ends the member and makes it durable: after this the file is valid gzip."""
        try:
            self.gz.close()
            self.raw.flush()
            os.fsync(self.raw.fileno())
        finally:
            self.raw.close()


class SegmentWriter:
    """Appends records to their hour segments with a bounded number of open files."""

    def __init__(self, root: Path, open_files_max: int = 64, compresslevel: int = 6) -> None:
        if open_files_max < 1:
            raise ValueError("open_files_max must be >= 1")
        self._root = root
        self._open_files_max = open_files_max
        self._compresslevel = compresslevel
        self._open: OrderedDict[Path, _OpenSegment] = OrderedDict()
        self._new_dirs: set[Path] = set()
        self._checked: OrderedDict[Path, None] = OrderedDict()  # whole as of our first open
        self.files_created = 0
        self.bytes_cut = 0  # torn tails cut off segments found on open

    def write(self, record: LogRecord) -> Path:
        path = segment_path(self._root, record.topic, record.partition, record.timestamp_ms)
        segment = self._open.get(path)
        if segment is None:
            segment = self._open_segment(path)
        else:
            self._open.move_to_end(path)
        segment.gz.write(encode_line(record))
        return path

    def _open_segment(self, path: Path) -> _OpenSegment:
        while len(self._open) >= self._open_files_max:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._new_dirs.update((path.parent, path.parent.parent, self._root))
        elif not path.exists():
            self._new_dirs.add(path.parent)
        if not path.exists():
            self.files_created += 1
        elif path not in self._checked:
            self.bytes_cut += cut_torn_tail(path)
        self._checked[path] = None
        self._checked.move_to_end(path)
        while len(self._checked) > _CHECKED_PATHS_MAX:
            self._checked.popitem(last=False)
        segment = self._open[path] = _OpenSegment(path, self._compresslevel)
        return segment

    def flush(self) -> None:
        """Close every open member and fsync, so all data written so far survives a crash."""
        while self._open:
            _, segment = self._open.popitem(last=False)
            segment.close()
        for directory in sorted(self._new_dirs, key=lambda p: len(p.parts), reverse=True):
            _fsync_dir(directory)
        self._new_dirs.clear()

    @property
    def open_files(self) -> int:
        return len(self._open)


class FlushedOffsets:
    """Per partition, the next offset not yet in the archive (``.next_offset``)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._cache: dict[tuple[str, int], int] = {}

    def _path(self, topic: str, partition: int) -> Path:
        return self._root / topic / f"p{partition}" / MARKER_NAME

    def get(self, topic: str, partition: int) -> int:
        key = (topic, partition)
        if key not in self._cache:
            path = self._path(topic, partition)
            try:
                self._cache[key] = int(json.loads(path.read_text())["next_offset"])
            except FileNotFoundError:
                self._cache[key] = 0
        return self._cache[key]

    def store(self, topic: str, partition: int, next_offset: int) -> None:
        path = self._path(topic, partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(MARKER_NAME + ".tmp")
        with tmp.open("w") as fh:
            json.dump({"next_offset": next_offset}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self._cache[(topic, partition)] = next_offset

    def forget(self, partitions: Collection[tuple[str, int]]) -> None:
        """Another archiver may own these now: read their markers again when they return."""
        for key in partitions:
            self._cache.pop(key, None)


class _Archiver:
    def __init__(self, consumer: KafkaConsumer, options: ArchiveOptions) -> None:
        self._consumer = consumer
        self._options = options
        self._writer = SegmentWriter(options.root, options.open_files_max, options.compresslevel)
        self._markers = FlushedOffsets(options.root)
        self._pending: dict[TopicPartition, int] = {}  # next offset, written not committed
        self._unflushed = 0
        self._last_flush = time.monotonic()
        self.stats = ArchiveStats()

    def flush_and_commit(self) -> None:
        """Data, then markers, then offsets: each step only after the one before is durable."""
        self._writer.flush()
        if self._pending:
            for tp, next_offset in self._pending.items():
                self._markers.store(tp.topic, tp.partition, next_offset)
            self._consumer.commit({
                tp: OffsetAndMetadata(next_offset, "", -1)
                for tp, next_offset in self._pending.items()
            })
            self._pending.clear()
        self._unflushed = 0
        self._last_flush = time.monotonic()
        self.stats.flushes += 1
        self.stats.segments_created = self._writer.files_created

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        self.flush_and_commit()
        self._markers.forget([(tp.topic, tp.partition) for tp in partitions])

    def take(self, tp: TopicPartition, records: list[LogRecord], budget: int | None) -> int:
        """Archive up to ``budget`` records of one partition; returns how many it handled."""
        if budget is not None:
            records = records[:budget]
        next_flushed = self._markers.get(tp.topic, tp.partition)
        for record in records:
            if record.offset < next_flushed:
                self.stats.records_skipped += 1
            else:
                self._writer.write(record)
                self.stats.records_written += 1
                self._unflushed += 1
            self._pending[tp] = record.offset + 1
        return len(records)

    def flush_due(self) -> bool:
        return (
            self._unflushed >= self._options.flush_records_max
            or time.monotonic() - self._last_flush >= self._options.flush_interval_s
        )


class _Listener(ConsumerRebalanceListener):
    def __init__(self, archiver: _Archiver) -> None:
        self._archiver = archiver

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        self._archiver.revoked(revoked)

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        pass


def run_archive(
    settings: Settings, options: ArchiveOptions, stop: threading.Event | None = None
) -> ArchiveStats:
    """Archive the input topics until ``stop`` is set, a limit of ``options`` is reached,
    or Ctrl-C; what was written is flushed and committed on the way out."""
    group_id = options.group_id or f"{settings.app_id}-archive"
    consumer = make_consumer(
        settings, client_id=group_id, group_id=group_id,
        max_poll_records=options.poll_records_max,
    )
    archiver = _Archiver(consumer, options)
    clean_exit = False
    try:
        consumer.subscribe(
            [settings.topics["account_events"], settings.topics["displayed"]],
            listener=_Listener(archiver),
        )
        _archive_loop(consumer, archiver, options, stop)
        clean_exit = True
    except KeyboardInterrupt:
        clean_exit = True
        raise
    finally:
        if clean_exit:
            archiver.flush_and_commit()
        consumer.close(autocommit=False)
    return archiver.stats


def _archive_loop(
    consumer: KafkaConsumer,
    archiver: _Archiver,
    options: ArchiveOptions,
    stop: threading.Event | None,
) -> None:
    idle_since: float | None = None
    while stop is None or not stop.is_set():
        batch = consumer.poll(timeout_ms=options.poll_timeout_ms)
        now = time.monotonic()
        for tp, raw in batch.items():
            budget = None
            if options.max_records is not None:
                budget = options.max_records - archiver.stats.records_written
            records = [
                LogRecord(tp.topic, tp.partition, r.offset, r.timestamp, r.key, r.value)
                for r in raw
            ]
            archiver.take(tp, records, budget)
        if archiver.flush_due():
            archiver.flush_and_commit()
        limit = options.max_records
        if limit is not None and archiver.stats.records_written >= limit:
            return
        if batch or not consumer.assignment():
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif options.idle_exit_s is not None and now - idle_since >= options.idle_exit_s:
            return
