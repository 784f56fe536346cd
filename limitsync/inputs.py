"""Where replay input comes from: a JSONL file, archive segments, a directory or a glob.

Archive segments (``*.jsonl.gz``, written by ``limitsync archive``) hold Kafka records with
their coordinates; several of them are merged into one log by (timestamp, partition,
offset), the order a replay from Kafka uses (``consumers.segments``). Several plain JSONL
files (a glob) are read one after the other in name order.
"""

from __future__ import annotations

import glob
import itertools
from collections.abc import Iterator
from pathlib import Path

from limitsync.replay import InputRecord, iter_file_records

__all__ = [
    "InputError",
    "estimated_records",
    "input_size",
    "open_input",
    "reads_plain_files",
    "resolve_input",
]

_SEGMENT_SUFFIX = ".jsonl.gz"  # consumers.segments.SEGMENT_SUFFIX, without importing it early
_GLOB_CHARS = frozenset("*?[")


class InputError(Exception):
    """The input cannot be read; the message is one line for the user."""


def _is_segment(path: Path) -> bool:
    return path.name.endswith(_SEGMENT_SUFFIX)


def _expand(spec: str) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.rglob(f"*{_SEGMENT_SUFFIX}") if p.is_file())
        if not found:
            raise InputError(f"input is a directory with no archive segments (*.jsonl.gz): {spec}")
        return found
    if path.exists() or not _GLOB_CHARS.intersection(spec):
        if not path.exists():
            raise InputError(f"input not found: {spec}")
        return [path]
    found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
    if not found:
        raise InputError(f"no file matches {spec}")
    return found


def resolve_input(spec: str) -> list[Path]:
    """The files named by ``spec``; raises InputError with a clear message."""
    paths = _expand(spec)
    segments = sum(1 for p in paths if _is_segment(p))
    if 0 < segments < len(paths):
        raise InputError(f"{spec} names both archive segments and JSON Lines files")
    for path in paths:
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise InputError(f"cannot read input {path}: {exc.strerror}") from exc
    return paths


def _archive_records(paths: list[Path]) -> Iterator[InputRecord]:
    from consumers.segments import SegmentError, iter_archive

    try:
        for record in iter_archive(paths):
            yield record.as_input()
    except SegmentError as exc:
        raise InputError(str(exc)) from exc


def open_input(spec: str) -> Iterator[InputRecord]:
    """Records of every file ``spec`` names, in log order (raises InputError at once when
    they cannot be read). Plain files' records come straight from their (compiled) reader:
    a generator of ours around it would resume an interpreted frame a record."""
    paths = resolve_input(spec)
    if _is_segment(paths[0]):
        return _archive_records(paths)
    if len(paths) == 1:
        return iter_file_records(paths[0])
    return itertools.chain.from_iterable(map(iter_file_records, paths))


def reads_plain_files(spec: str) -> bool:
    """Whether ``spec`` names JSON Lines files (not compressed archive segments)."""
    return not _is_segment(resolve_input(spec)[0])


def input_size(spec: str) -> int:
    return _size(resolve_input(spec))


def _size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def estimated_records(spec: str) -> int:
    """About how many records the JSON Lines files of ``spec`` hold: their size over the mean
    length of the first file's first lines (0 for archive segments, or when unknown)."""
    paths = resolve_input(spec)
    if _is_segment(paths[0]):
        return 0
    try:
        with paths[0].open("rb") as fh:
            head = fh.read(_SAMPLE_BYTES)
    except OSError:
        return 0
    whole = head[: head.rfind(b"\n") + 1]  # the lines read whole
    lines = whole.count(b"\n")
    if not lines:
        return 0
    return _size(paths) * lines // len(whole)


_SAMPLE_BYTES = 1 << 16
