"""The RocksDB store writes a changelog batch's records and the partition's offset in one
write (streams/rocksdb_store.py): a crash between two writes left records after the offset
the store records."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import rocksdict

from streams.rocksdb_store import AtomicOffsetStore

OFFSET_KEY = b"__faust\0offset__"


class _Recorded:
    """A partition's database, counting the writes that reach it."""

    def __init__(self, path: Path) -> None:
        self.db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
        self.writes = 0

    def write(self, batch: Any) -> None:
        self.writes += 1
        self.db.write(batch)

    def put(self, key: bytes, value: bytes) -> None:  # Faust's offset write, a second write
        self.writes += 1
        self.db.put(key, value)


def _store(dbs: dict[int, _Recorded]) -> AtomicOffsetStore:
    store = object.__new__(AtomicOffsetStore)  # no app: only the batch path is exercised
    store.use_rocksdict = True
    store._db_for_partition = dbs.__getitem__  # type: ignore[method-assign]
    return store


def _event(partition: int, offset: int, key: bytes, value: bytes | None) -> Any:
    return SimpleNamespace(
        message=SimpleNamespace(partition=partition, offset=offset, key=key, value=value)
    )


def test_a_batch_and_its_offset_reach_each_partition_in_one_write(tmp_path: Path) -> None:
    dbs = {0: _Recorded(tmp_path / "p0"), 1: _Recorded(tmp_path / "p1")}
    batch = [_event(0, 7, b"a", b"1"), _event(1, 3, b"b", b"2"), _event(0, 8, b"a", b"3")]
    _store(dbs).apply_changelog_batch(batch, lambda k: k, lambda v: v)
    assert [d.writes for d in dbs.values()] == [1, 1]


def test_the_store_holds_the_newest_values_and_the_highest_offset(tmp_path: Path) -> None:
    dbs = {0: _Recorded(tmp_path / "p0")}
    batch = [_event(0, 7, b"a", b"1"), _event(0, 8, b"b", b"2"), _event(0, 9, b"a", None)]
    _store(dbs).apply_changelog_batch(batch, lambda k: k, lambda v: v)
    db = dbs[0].db
    assert (db.get(b"a"), db.get(b"b"), db.get(OFFSET_KEY)) == (None, b"2", b"9")
