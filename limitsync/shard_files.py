"""What a shard of a sharded replay writes, and how the parent reads it back: its alerts and
dead letters, each line with the key of its place in the one order, and its account lines.
Files, not pipes: a shard writes a day of alerts at its own pace, and the parent merges them
once every shard is done."""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from limitsync.replay import WRITE_BUFFER

__all__ = [
    "KeyedLines",
    "ShardFiles",
    "alert_records",
    "read_keyed_lines",
]

_BATCH = 2048  # output records a shard pickles at once


class ShardFiles:
    """A shard's ``ShardOutputs``: its alerts and dead letters with their keys, in files of
    its own; its alerts digested for the report as they come."""

    def __init__(self, work: Path, shard: int, focus_account: str | None) -> None:
        from limitsync.report.shard_digest import KeyedAlertReader

        self._alerts = KeyedLines(work / f"alerts.{shard}")
        self._dead = KeyedLines(work / f"dead_letters.{shard}")
        self.digest = KeyedAlertReader(focus_account)

    def alert(self, key: tuple[int, ...], record: dict[str, Any]) -> None:
        self._alerts.add(key, orjson.dumps(record))
        self.digest.add(key, record)

    def dead_letter(self, index: int, record: dict[str, Any]) -> None:
        self._dead.add((index,), orjson.dumps(record))

    def close(self) -> None:
        self._alerts.close()
        self._dead.close()


class KeyedLines:
    """Lines, each with a key of ints, written a batch at a time: the keys as one array (each
    preceded by its length), the lines joined, pickled together (no object a line)."""

    def __init__(self, path: Path) -> None:
        self._fh: IO[bytes] = path.open("wb", buffering=WRITE_BUFFER)
        self._keys = array("q")
        self._lines: list[bytes] = []

    def add(self, key: tuple[int, ...], line: bytes) -> None:
        keys = self._keys
        keys.append(len(key))
        keys.extend(key)
        self._lines.append(line)
        if len(self._lines) == _BATCH:
            self._flush()

    def _flush(self) -> None:
        batch = (self._keys.tobytes(), b"\n".join(self._lines))
        pickle.dump(batch, self._fh, pickle.HIGHEST_PROTOCOL)
        self._keys, self._lines = array("q"), []

    def close(self) -> None:
        if self._lines:
            self._flush()
        self._fh.close()


def read_keyed_lines(path: Path) -> Iterator[tuple[tuple[int, ...], bytes]]:
    with path.open("rb") as fh:
        while True:
            try:
                key_bytes, joined = pickle.load(fh)
            except EOFError:
                return
            keys = array("q")
            keys.frombytes(key_bytes)
            at = 0
            for line in joined.split(b"\n"):
                end = at + 1 + keys[at]
                yield tuple(keys[at + 1 : end]), line
                at = end


def alert_records(path: Path, accounts: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The alert records of these accounts, in their order, read back from a shard's file."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not accounts:
        return found
    for _, line in read_keyed_lines(path):
        record = orjson.loads(line)
        account = record["account_id"]
        if account in accounts:
            found.setdefault(account, []).append(record)
    return found
