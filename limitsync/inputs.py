"""Where replay input comes from: a JSONL file (later: archive segments, a glob, a dir)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from limitsync.replay import InputRecord, iter_file_records

__all__ = ["InputError", "open_input", "resolve_input"]


class InputError(Exception):
    """The input cannot be read; the message is one line for the user."""


def resolve_input(spec: str) -> list[Path]:
    """The files named by ``spec``, in log order; raises InputError with a clear message."""
    path = Path(spec)
    if not path.exists():
        raise InputError(f"input not found: {spec}")
    if path.is_dir():
        raise InputError(f"input is a directory, not a JSON Lines file: {spec}")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise InputError(f"cannot read input {spec}: {exc.strerror}") from exc
    return [path]


def open_input(spec: str) -> Iterator[InputRecord]:
    """Records of every file ``spec`` names, in log order."""
    for path in resolve_input(spec):
        yield from iter_file_records(path)


def input_size(spec: str) -> int:
    return sum(p.stat().st_size for p in resolve_input(spec))
