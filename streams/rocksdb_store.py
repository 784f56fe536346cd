"""Faust's RocksDB store, with a changelog batch and its offset written in one write.

Faust's own ``apply_changelog_batch`` writes a batch's records to a partition's database,
then the partition's offset with a second write. A worker killed between the two leaves a
store holding records after the offset it records (the state table's saves, a standby's or a
recovery's records): a restart then reads those records again, which is harmless, but the
store is no longer what the changelog holds up to its recorded offset, the invariant the
crash tests check (``ChangelogTable``'s ``durable_first``). Here the offset goes into each
partition's write batch, so a crash leaves the records and their offset together or neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.stores import rocksdb as faust_rocksdb
from faust.types import EventT

__all__ = ["AtomicOffsetStore"]


class AtomicOffsetStore(faust_rocksdb.Store):
    """``faust.stores.rocksdb.Store`` whose changelog batches carry their offsets."""

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        writes: dict[int, Any] = {}
        offsets: dict[int, int] = {}
        for event in batch:
            message = event.message
            partition = message.partition
            write = writes.get(partition)
            if write is None:
                write = writes[partition] = self._new_write_batch()
            if message.value is None:
                write.delete(message.key)
            else:
                write.put(message.key, message.value)
            offsets[partition] = max(message.offset, offsets.get(partition, message.offset))
        for partition, write in writes.items():
            write.put(self.offset_key, str(offsets[partition]).encode())
            self._db_for_partition(partition).write(write)

    def _new_write_batch(self) -> Any:
        if self.use_rocksdict:
            return faust_rocksdb.rocksdict.WriteBatch(raw_mode=True)
        return faust_rocksdb.rocksdb.WriteBatch()
