"""The live state of the owned accounts, in a changelog-backed key-value table.

Per account, one small row (``AccountState.hot_dict``: what every change needs) and one item
per id for what grows with its events (remembered ids, postings a reversal may still need,
reversals waiting for their repayment, the ring of the last explained changes). A batch
writes each changed row once and a few small items per event, never the account's history.

Keys are bytes: ``a|ACCOUNT`` for the row, ``K|ACCOUNT|ID`` for an item of kind K (the
journal's kinds). Account ids cannot hold ``|`` (the contract's charset), so the account is
always the text between the first two bars. Every key of an account lives in the changelog
partition of the account, so the worker that owns the account restores all of it.

Beside them, one key per input partition, ``o||PARTITION|TOPIC`` (no account: an account id
is never empty), in changelog partition PARTITION: the offset up to which that partition's
records are handled and everything they caused is in Kafka (``handled``). A worker that
restarts, or takes the partition over, gets the records after the last committed offset
again; those up to this offset it skips, so a record it dead-lettered is not dead-lettered
twice. It is written only once the flush that carried the records' outputs is acknowledged,
so a crash leaves it behind (records handled again: at least once), never ahead.

Crash consistency. A save writes its items first, then its rows, to the account's changelog
partition, and a crash loses a suffix of those writes, never a middle. Each row carries a
sequence number that grows with every save of its account; each item carries the number of
the save it belongs to. On load, an item newer than its row belongs to a save whose row never
landed: it is dropped, and its records, whose offsets were not committed either, are
processed again and write it again. Items are facts written once (the journal's kinds; only
the explanation ring is overwritten), so dropping a newer item never leaves a newer value of
an older fact behind. A remembered id is saved with the row that applied its record, so a
record processed again after a crash is either new to the loaded state or a duplicate of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from streams.core.journal import HISTORY, ID, ORPHAN, POSTING, REVERSAL, JournalKey
from streams.core.state import HISTORY_MAX, AccountState, ChangeEntry

__all__ = [
    "ROW_BYTES_MAX",
    "ROW_BYTES_WARN",
    "LoadedState",
    "RowTooLarge",
    "StateStore",
    "account_bytes_of_key",
    "state_key_partition",
]

log = logging.getLogger(__name__)

ROW = "a"
HANDLED = "o"  # an input partition's handled offset (``StateStore.save``'s ``handled``)
ROW_BYTES_WARN = 64 * 1024  # a row this large is counted and logged: its bounds are loose
ROW_BYTES_MAX = 512 * 1024  # no row is ever written above this (Kafka's default is 1 MB)
_KINDS = frozenset({ID, POSTING, REVERSAL, ORPHAN, HISTORY})


def _encoded(value: Any) -> bytes:
    """``orjson.dumps``, copied into bytes of their own size. orjson writes into a buffer
    larger than most of these values and shrinks it in place; thousands of those kept alive
    (a batch's records until they are sent, an in-memory table's values for good) leave the
    allocator so that every later dumps is several times slower than the copy made here."""
    return orjson.dumps(value).decode().encode()


class RowTooLarge(RuntimeError):
    """An account row above ``ROW_BYTES_MAX``: a bound in the core is missing."""


def account_bytes_of_key(key: bytes) -> bytes:
    """The account a state key belongs to, as the bytes producers key its records with."""
    return key.split(b"|", 2)[1]


def state_key_partition(key: bytes, account_partition: Callable[[bytes], int]) -> int:
    """The changelog partition of a state key: its account's (``account_partition`` of the
    account's bytes), or for a handled offset, the input partition it is for."""
    if key.startswith(_HANDLED_PREFIX):
        return int(key.split(b"|", 3)[2])
    return account_partition(account_bytes_of_key(key))


_HANDLED_PREFIX = f"{HANDLED}||".encode()


def _handled_key(topic: str, partition: int) -> bytes:
    return _HANDLED_PREFIX + f"{partition}|{topic}".encode()


def _row_key(account_id: str) -> bytes:
    return f"{ROW}|{account_id}".encode()


def _item_key(kind: str, account_id: str, key: str) -> bytes:
    return f"{kind}|{account_id}|{key}".encode()


@dataclass(slots=True)
class LoadedState:
    """Accounts read back from the table."""

    states: list[AccountState]
    dropped_items: int  # items of saves whose row never landed
    # (input topic, partition) -> offset up to which its records are handled (every
    # partition in the table: the caller keeps its own)
    handled: dict[tuple[str, int], int]


class StateStore:
    """Writes and reads the owned accounts' state through a mapping (a Faust table live,
    a dict in tests); knows each account's save sequence."""

    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self._table = table
        self._seq: dict[str, int] = {}
        self.large_rows = 0  # rows above ROW_BYTES_WARN written so far

    def save(
        self,
        accounts: Iterable[AccountState],
        changes: dict[JournalKey, Any],
        handled: dict[tuple[str, int], int] | None = None,
    ) -> int:
        """Write the items of ``changes``, then one row per account, then the ``handled``
        offsets of input partitions; returns bytes written. Every account with an item in
        ``changes`` (other than a removal) must be among ``accounts``: its row is what makes
        the item count on load."""
        table = self._table
        rows: list[tuple[bytes, bytes]] = []
        for acct in accounts:
            seq = self._seq[acct.account_id] = self._seq.get(acct.account_id, 0) + 1
            value = _encoded({"s": acct.hot_dict(), "q": seq})
            rows.append((_row_key(acct.account_id), self._checked(acct.account_id, value)))
        written = 0
        for (kind, account_id, key), item in changes.items():
            item_key = _item_key(kind, account_id, key)
            if item is None:
                table.pop(item_key, None)  # a tombstone in the changelog
                continue
            value = _encoded([self._seq.get(account_id, 0), item])
            table[item_key] = value
            written += len(item_key) + len(value)
        for row_key, row in rows:
            table[row_key] = row
            written += len(row_key) + len(row)
        for (topic, partition), offset in (handled or {}).items():
            handled_key, handled_value = _handled_key(topic, partition), str(offset).encode()
            table[handled_key] = handled_value
            written += len(handled_key) + len(handled_value)
        return written

    def _checked(self, account_id: str, value: bytes) -> bytes:
        if len(value) > ROW_BYTES_MAX:
            raise RowTooLarge(f"{account_id}: state row of {len(value):,} B")
        if len(value) > ROW_BYTES_WARN:
            self.large_rows += 1
            log.warning("state row of %s is %s B (over %s)", account_id, len(value), ROW_BYTES_WARN)
        return value

    def load(self, owns: Any) -> LoadedState:
        """Every account ``owns(account_id)`` says is ours, rebuilt from the table."""
        rows: dict[str, dict[str, Any]] = {}
        items: dict[str, list[tuple[str, str, Any]]] = {}
        handled: dict[tuple[str, int], int] = {}
        for key, value in list(self._table.items()):
            if not value:
                continue
            kind, account_id, rest = _split(key)
            if kind == HANDLED:
                partition, _, topic = rest.partition("|")
                handled[(topic, int(partition))] = int(value)
                continue
            if not owns(account_id):
                continue
            if kind == ROW:
                rows[account_id] = orjson.loads(value)
            elif kind in _KINDS:
                items.setdefault(account_id, []).append((kind, rest, orjson.loads(value)))
        self._seq = {}
        states, dropped = [], 0
        for account_id, row in rows.items():
            acct = AccountState.from_dict(row["s"])
            dropped += _adopt_items(acct, items.get(account_id, ()), row["q"])
            self._seq[account_id] = row["q"]
            states.append(acct)
        for account_id, orphaned in items.items():
            if account_id not in rows:
                dropped += len(orphaned)  # items of an account whose first row never landed
        return LoadedState(states, dropped, handled)

    def keys_of(self, account_id: str) -> Iterator[bytes]:
        """Every key of one account (tests and tools)."""
        for key in list(self._table):
            if _split(key)[1] == account_id:
                yield key


def _split(key: bytes) -> tuple[str, str, str]:
    parts = key.decode().split("|", 2)
    return parts[0], parts[1], parts[2] if len(parts) > 2 else ""


def _adopt_items(acct: AccountState, items: Iterable[tuple[str, str, Any]], row_seq: int) -> int:
    """Put an account's items back into its state; returns how many were dropped."""
    dropped = 0
    history: list[list[Any]] = []
    reversed_later: set[str] = set()
    for kind, key, (seq, value) in items:
        if seq > row_seq:
            dropped += 1
            continue
        if kind == ID:
            acct.seen[key] = (value[0], value[1])
        elif kind == POSTING:
            principal, keep, payment_id, reversed_from_start = value
            acct.posted[key] = [principal, keep, reversed_from_start, payment_id]
            if payment_id:
                acct.posted_payments[payment_id] = keep
        elif kind == REVERSAL:
            reversed_later.add(key)
        elif kind == ORPHAN:
            acct.orphan_reversals[key] = list(value)
        else:
            history.append(value)
    for key in reversed_later:
        if key in acct.posted:
            acct.posted[key][2] = True
    history.sort(key=lambda h: h[0])
    acct.history.extend(ChangeEntry.from_row(h[1:]) for h in history[-HISTORY_MAX:])
    return dropped
