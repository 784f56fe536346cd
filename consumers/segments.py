"""Archive segments: the on-disk form of the input topics, and how to read them back as a log.

A segment holds the records of one topic partition whose timestamps fall in one UTC hour:
``<dir>/<topic>/p<partition>/<YYYYMMDDTHH>.jsonl.gz``, one JSON object per line, in offset
order. Hour files keep the archive easy to prune and to pick from by time with a glob; the
partition directory keeps each file in offset order, which the merge needs.

Each line keeps the record's coordinates, its timestamp and its bytes: ``value`` is the
original UTF-8 text, so the file reads in ``zcat``, and a value that is not UTF-8 (a bad
record that must still reach the dead letters unchanged) goes in ``value_b64`` instead, with
``value`` null. Keys follow the same rule. A Kafka tombstone (a null value) is archived with
``value`` null and no ``value_b64``, and read back as one: replay dead-letters it.

A segment is a series of complete gzip members (the archiver closes one at every commit), so
a crash can only leave a truncated last member: the reader keeps its complete lines and
warns. Records written twice by an archiver that crashed between writing and committing are
dropped while merging (:func:`consumers.merge.dedupe_offsets`).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import logging
import re
import zlib
from collections import defaultdict
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from consumers.merge import LogRecord, TopicPartitionId, dedupe_offsets, merge_partitions

__all__ = [
    "SEGMENT_SUFFIX",
    "SegmentError",
    "decode_line",
    "encode_line",
    "hour_of",
    "iter_archive",
    "iter_segment",
    "parse_segment_path",
    "segment_path",
]

SEGMENT_SUFFIX = ".jsonl.gz"
READ_CHUNK_BYTES = 256 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_HOUR_FORMAT = "%Y%m%dT%H"
_SEGMENT_NAME = re.compile(r"\A(\d{8}T\d{2})\.jsonl\.gz\Z")
_PARTITION_DIR = re.compile(r"\Ap(\d+)\Z")

_log = logging.getLogger(__name__)


class SegmentError(Exception):
    """A segment cannot be read (corrupt data or a line that is not an archive record)."""


def hour_of(timestamp_ms: int) -> str:
    """The UTC hour a record belongs to; records before the epoch (no timestamp) go to 1970."""
    moment = datetime.fromtimestamp(max(0, timestamp_ms) / 1000, UTC)
    return moment.strftime(_HOUR_FORMAT)


def segment_path(root: Path, topic: str, partition: int, timestamp_ms: int) -> Path:
    return root / topic / f"p{partition}" / f"{hour_of(timestamp_ms)}{SEGMENT_SUFFIX}"


def parse_segment_path(path: Path) -> tuple[str, int, str] | None:
    """``(topic, partition, hour)`` of a path laid out by :func:`segment_path`, else None."""
    name = _SEGMENT_NAME.match(path.name)
    part = _PARTITION_DIR.match(path.parent.name)
    if name is None or part is None or not path.parent.parent.name:
        return None
    return path.parent.parent.name, int(part.group(1)), name.group(1)


def _text_or_b64(raw: bytes | None, name: str, row: dict[str, Any]) -> None:
    if raw is None:
        row[name] = None
        return
    try:
        row[name] = raw.decode("utf-8")
    except UnicodeDecodeError:
        row[name] = None
        row[f"{name}_b64"] = base64.b64encode(raw).decode("ascii")


def encode_line(record: LogRecord) -> bytes:
    """One archive line, newline included."""
    row: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
    }
    _text_or_b64(record.key, "key", row)
    _text_or_b64(record.value, "value", row)
    return orjson.dumps(row) + b"\n"


def _bytes_field(row: dict[str, Any], name: str) -> bytes | None:
    encoded = row.get(f"{name}_b64")
    if isinstance(encoded, str):
        return base64.b64decode(encoded, validate=True)
    text = row.get(name)
    if text is None:
        return None
    if not isinstance(text, str):
        raise SegmentError(f"{name} is not a string")
    return text.encode("utf-8")


def decode_line(line: bytes) -> LogRecord:
    try:
        row = orjson.loads(line)
        topic, partition = row["topic"], row["partition"]
        offset, timestamp_ms = row["offset"], row["timestamp_ms"]
        key, value = _bytes_field(row, "key"), _bytes_field(row, "value")
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error) as exc:
        raise SegmentError(f"not an archive record: {exc}") from exc
    if not (isinstance(topic, str) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in (partition, offset, timestamp_ms)
    )):
        raise SegmentError("not an archive record: bad topic, partition, offset or timestamp")
    if value is None and "value" not in row:
        raise SegmentError("not an archive record: no value")
    return LogRecord(topic, partition, offset, timestamp_ms, key, value)


def _iter_gzip_lines(path: Path) -> Generator[bytes, None, None]:
    """Complete lines of a multi-member gzip file; a truncated tail is dropped with a warning."""
    pending = b""
    decoder = zlib.decompressobj(_GZIP_WBITS)
    in_member = False
    with path.open("rb") as fh:
        while chunk := fh.read(READ_CHUNK_BYTES):
            while chunk:
                in_member = True
                try:
                    data = decoder.decompress(chunk)
                except zlib.error as exc:
                    raise SegmentError(f"{path}: corrupt gzip data: {exc}") from exc
                chunk = b""
                if decoder.eof:  # a member ended; the next one starts in unused_data
                    chunk, in_member = decoder.unused_data, False
                    decoder = zlib.decompressobj(_GZIP_WBITS)
                if data:
                    *lines, pending = (pending + data).split(b"\n")
                    yield from lines
    if in_member or pending:
        _log.warning("%s: truncated (a crash while writing?); its incomplete tail is skipped", path)


def iter_segment(path: Path) -> Generator[LogRecord, None, None]:
    """The records of one segment, in the order written."""
    for number, line in enumerate(_iter_gzip_lines(path), 1):
        if not line:
            continue
        try:
            yield decode_line(line)
        except SegmentError as exc:
            raise SegmentError(f"{path}, line {number}: {exc}") from exc


def _first_record(path: Path) -> LogRecord | None:
    with closing(iter_segment(path)) as records:
        return next(records, None)


def _by_partition(paths: Iterable[Path]) -> dict[TopicPartitionId, list[tuple[int, Path]]]:
    """Groups segments by the partition of their records (the path may have been renamed),
    each with its first offset."""
    groups: dict[TopicPartitionId, list[tuple[int, Path]]] = defaultdict(list)
    for path in paths:
        first = _first_record(path)
        if first is not None:
            groups[first.topic_partition].append((first.offset, path))
    return groups


def _offset_merge(segments: list[tuple[int, Path]]) -> Iterator[LogRecord]:
    """One partition's records in offset order, however its hours were split into files.

    A segment is opened only when the merge reaches its first offset, so the open files are
    those whose offset ranges overlap (one, when timestamps grow with offsets) rather than
    every hour of the archive.
    """
    pending = sorted(segments)
    heap: list[tuple[int, int, LogRecord, Generator[LogRecord, None, None]]] = []
    opened = 0
    try:
        while heap or opened < len(pending):
            if opened < len(pending) and (not heap or pending[opened][0] <= heap[0][0]):
                records = iter_segment(pending[opened][1])
                first = next(records, None)
                if first is not None:
                    heapq.heappush(heap, (first.offset, opened, first, records))
                opened += 1
                continue
            _, seq, record, records = heapq.heappop(heap)
            yield record
            following = next(records, None)
            if following is not None:
                heapq.heappush(heap, (following.offset, seq, following, records))
    finally:
        for *_, records in heap:
            records.close()


def iter_archive(paths: Iterable[Path]) -> Iterator[LogRecord]:
    """All records of the given segments as one log, in the same order as a Kafka replay."""
    groups = _by_partition(paths)
    return merge_partitions(dedupe_offsets(_offset_merge(groups[tp])) for tp in sorted(groups))
