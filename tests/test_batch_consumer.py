"""The standby replicas' changelog records, applied by the batch consumer's fetch loop
(``streams.batch_consumer._StandbyApplier``) instead of Faust's queue and recovery service:
the same writes reach the table's store, in the partition's order, once each, and the
recovery service's offsets move as its own loop moves them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import faust
import pytest
from faust.types import TP

from streams.batch_consumer import _StandbyApplier

TOPIC = "app-state-changelog"


@dataclass(frozen=True)
class Record:
    """What the client fetches: the fields the applier reads."""

    partition: int
    offset: int
    key: bytes
    value: bytes | None


@dataclass
class Recovery:
    """The parts of Faust's recovery service the applier reads and moves."""

    standby_tps: set[TP] = field(default_factory=set)
    active_tps: set[TP] = field(default_factory=set)
    tp_to_table: dict[TP, Any] = field(default_factory=dict)
    standby_offsets: Counter[TP] = field(default_factory=Counter)


def tp(partition: int) -> TP:
    return TP(TOPIC, partition)


@pytest.fixture
def table() -> Any:
    app = faust.App("standby-applier-test", store="memory://", autodiscover=False)
    return app.Table("state", default=None, partitions=4, key_type=bytes, value_type=bytes)


@pytest.fixture
def recovery(table: Any) -> Recovery:
    rec = Recovery(standby_tps={tp(1), tp(3)}, active_tps={tp(0)})
    rec.tp_to_table = {tp(p): table for p in range(4)}
    rec.standby_offsets.update({tp(1): None, tp(3): 4})  # type: ignore[dict-item]
    return rec


def test_standby_records_reach_the_store_in_order_and_move_the_offsets(
    table: Any, recovery: Recovery
) -> None:
    applier = _StandbyApplier(recovery)
    records = [
        Record(1, 0, b"a|x", b"1"),
        Record(1, 1, b"a|x", b"2"),
        Record(1, 2, b"i|x|e1", b"3"),
        Record(1, 3, b"i|x|e1", None),  # a tombstone
        Record(3, 5, b"a|y", b"4"),
    ]
    assert all(applier.take(tp(r.partition), r) for r in records)
    assert table.data.get(b"a|x") is None  # nothing applied before ``apply``
    applier.apply()
    assert table.data[b"a|x"] == b"2"
    assert b"i|x|e1" not in table.data
    assert table.data[b"a|y"] == b"4"
    assert table.data._key_partition[b"a|y"] == 3  # the store drops it with its partition
    assert recovery.standby_offsets[tp(1)] == 3
    assert recovery.standby_offsets[tp(3)] == 5


def test_a_record_applied_already_is_skipped(table: Any, recovery: Recovery) -> None:
    applier = _StandbyApplier(recovery)
    assert applier.take(tp(3), Record(3, 4, b"a|y", b"old"))  # at the recovery's offset
    assert applier.take(tp(3), Record(3, 2, b"a|y", b"older"))
    applier.apply()
    assert b"a|y" not in table.data
    assert recovery.standby_offsets[tp(3)] == 4


def test_active_and_unassigned_partitions_take_fausts_path(
    table: Any, recovery: Recovery
) -> None:
    applier = _StandbyApplier(recovery)
    assert not applier.take(tp(0), Record(0, 0, b"a|z", b"1"))  # active: Faust's recovery
    assert not applier.take(tp(2), Record(2, 0, b"a|w", b"1"))  # neither
    recovery.active_tps.add(tp(1))  # both at once (a promotion under way): Faust's
    assert not applier.take(tp(1), Record(1, 0, b"a|x", b"1"))
    applier.apply()
    assert len(table.data) == 0


def test_a_table_with_a_changelog_callback_takes_fausts_path(recovery: Recovery) -> None:
    app = faust.App("standby-applier-callback", store="memory://", autodiscover=False)

    async def seen(event: Any) -> None:
        pass

    watched = app.Table("watched", default=None, partitions=4, on_changelog_event=seen)
    recovery.tp_to_table[tp(1)] = watched
    assert not _StandbyApplier(recovery).take(tp(1), Record(1, 0, b"a|x", b"1"))
