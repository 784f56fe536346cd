"""Remembered ids in a flat table: what a replay keeps of each id inside the dedupe horizon.

A replay remembers every id of a day (the horizon is a week), and an id kept as its string in a
per-account dict, with its digest and keep time as a Python int and an entry in an expiry
queue, cost several Python objects an id. Here an id is four machine words in one array: its
account's and its own hash, the low bits of its content's digest (a replay parses with a
fingerprint that lives as long as the process: ``schemas.parse.parse_event_for_replay``), and
the time it may be forgotten. No Python object is kept an id, so a day's ids cost tens of
bytes each.

What it gives up, and why that is safe:
- An id is known by its hash, not its text: two ids of one account with the same 62-bit hash,
  and accounts with the same 62-bit hash, would be taken for one. The chance over a day of
  millions of ids is below one in a billion; the live shell, whose state outlives a process,
  keeps the ids themselves (``AccountState.seen``).
- Python's string hash is seeded per process, so which ids would collide changes between runs;
  nothing else does.
- The fingerprint is compared on its low 62 bits: a conflicting record (same id, other content)
  is taken for a duplicate only if those bits agree, the same kind of chance.
- Expiry is lazy: an entry past the horizon is treated as absent when it is looked up, and its
  slot is taken by the next id that probes it or dropped when the table grows. The engine's
  outcomes are those of eager expiry; only when the memory is reclaimed differs.
"""

from __future__ import annotations

import struct
from array import array
from typing import Final

__all__ = ["CONFLICT_AT", "DUPLICATE_AT", "PRESIZE_MAX_IDS", "IdTable", "digest_word", "id_hash"]

DUPLICATE_AT: Final = -1  # what ``find`` says of a remembered id
CONFLICT_AT: Final = -2

_WORDS: Final = 4  # keep_us, account hash, id hash, digest word
_FREE: Final = -(2**63)  # keep_us of a slot that never held an id
_MIN_SLOTS: Final = 1 << 10
# At most four fifths of the slots are used (expired entries included), and a growth makes
# half again as many as the entries still inside the horizon need: a doubling table that has
# just grown is mostly empty, and the memory it holds is what a day's replay is measured by.
_QUADRUPLE_BELOW: Final = 1 << 20  # slots (32 MiB)
PRESIZE_MAX_IDS: Final = 1 << 22  # ids a table is sized for at once, at most (160 MiB)
_LOAD_NUM: Final = 4
_LOAD_DEN: Final = 5
_LOW_BITS: Final = (1 << 62) - 1
# A slot written in one pack into the array's buffer: an array's item assignment parses its
# int with a format string, several times the cost of one pack of the four words.
_SLOT: Final = struct.Struct("=qqqq")
_PACK_SLOT: Final = _SLOT.pack_into  # bound once: no method lookup a call
_WORD_BYTES: Final = 8


def id_hash(text: str) -> int:
    """A string's hash cut to 62 bits: compiled, such numbers stay machine ints."""
    return hash(text) >> 2


def digest_word(digest: str | int) -> int:
    """The low 62 bits of a content digest, given as its number or in hex."""
    number = int(digest, 16) if isinstance(digest, str) else digest
    return number & _LOW_BITS


class IdTable:
    """Open addressing with linear probing over one array of ``_WORDS`` words a slot; a growth
    keeps only the entries still inside the horizon."""

    __slots__ = ("_limit", "_size", "_slots", "_used")

    def __init__(self, expected: int = 0) -> None:
        """``expected``: how many ids the table will likely hold (0: unknown), at most
        PRESIZE_MAX_IDS taken: sized for them at once, it need not grow, and a growth moves
        every entry."""
        self._slots = array("q")
        self._size = 0
        self._used = 0
        self._limit = 0
        wanted = min(expected, PRESIZE_MAX_IDS) * _LOAD_DEN // _LOAD_NUM + 1
        self._resize(max(_MIN_SLOTS, wanted))

    def __len__(self) -> int:
        """Entries held, expired ones not yet reclaimed included."""
        return self._used

    def capacity(self) -> int:
        return self._size

    def _resize(self, slots: int) -> None:
        self._slots = array("q", (_FREE, 0, 0, 0)) * slots
        self._size = slots
        self._used = 0
        self._limit = slots * _LOAD_NUM // _LOAD_DEN

    def find(self, account: int, event: int, digest: int, horizon_us: int) -> int:
        """DUPLICATE_AT (same digest) or CONFLICT_AT when the id is remembered; otherwise where
        ``put`` remembers it. An entry whose keep time is before ``horizon_us`` has expired and
        counts as absent. An absent id goes to the first slot along its probe that is free,
        expired, or its own expired entry, so a key's newest entry is always the first of that
        key a probe meets."""
        slots, size = self._slots, self._size
        i = (account ^ event) % size
        reuse = -1
        while True:
            at = i * _WORDS
            keep = slots[at]
            if keep == _FREE:
                return at if reuse < 0 else reuse
            if slots[at + 2] == event and slots[at + 1] == account:
                if keep >= horizon_us:
                    return DUPLICATE_AT if slots[at + 3] == digest else CONFLICT_AT
                return at if reuse < 0 else reuse
            if reuse < 0 and keep < horizon_us:
                reuse = at
            i += 1
            if i == size:
                i = 0

    def put(
        self, at: int, account: int, event: int, digest: int, keep_us: int, horizon_us: int
    ) -> None:
        """Remember an id where ``find`` said, before anything else changed the table."""
        slots = self._slots
        if slots[at] == _FREE:
            self._used += 1
        _PACK_SLOT(slots, at * _WORD_BYTES, keep_us, account, event, digest)
        if self._used > self._limit:
            self._grow(horizon_us)

    def _grow(self, horizon_us: int) -> None:
        old = self._slots
        live = 0
        for at in range(0, len(old), _WORDS):
            if old[at] >= horizon_us:
                live += 1
        # A growth moves every entry kept: a small table quadruples (few moves, little memory
        # either way); a large one grows by half again what its entries need.
        factor_x2 = 8 if self._size < _QUADRUPLE_BELOW else 3
        self._resize(max(_MIN_SLOTS, live * factor_x2 // 2 * _LOAD_DEN // _LOAD_NUM))
        # Each entry kept goes to the first free slot of its probe: a key has one entry inside
        # the horizon (a second is added only once the first has expired), so none is looked
        # for. Written out here, not as a method per entry: a growth moves every entry.
        slots, size = self._slots, self._size
        for at in range(0, len(old), _WORDS):
            keep = old[at]
            if keep < horizon_us:
                continue
            account, event = old[at + 1], old[at + 2]
            i = (account ^ event) % size
            while slots[i * _WORDS] != _FREE:
                i += 1
                if i == size:
                    i = 0
            _PACK_SLOT(slots, i * _WORDS * _WORD_BYTES, keep, account, event, old[at + 3])
        self._used = live

    def clear(self) -> None:
        """Forget everything and give the memory back."""
        self._resize(_MIN_SLOTS)
