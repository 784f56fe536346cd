"""What changed in the per-id parts of the accounts, for a shell that stores them.

An account's state has a small part that every change rewrites (``AccountState.hot_dict``)
and parts that grow with its events: remembered ids, postings a reversal may still need,
reversals still waiting for their repayment, and the last explained changes. A live shell
stores those per id, so a change writes a few small records instead of the whole history;
the engine notes here which ids changed (a value) or went (None) since the shell last drained
it. Replay keeps no journal.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HISTORY", "ID", "ORPHAN", "POSTING", "REVERSAL", "Journal", "JournalKey"]

# Every kind but HISTORY is written once and removed only when it expires, so a store that
# loses the newest writes in a crash never holds a newer value of an older fact (a posting
# marked reversed by a record that will be processed again).
ID = "i"  # an id remembered for dedupe: (digest, keep_us)
POSTING = "p"  # a posting kept for reversals: [principal, keep_us, payment_id, reversed]
REVERSAL = "x"  # the reversal that undid a kept posting later: the reversal's event_id
ORPHAN = "r"  # a reversal that found no posting (yet): [reversal event_id, keep_us]; stays
# after its posting arrives (a posting of that id is then reversed from the start)
HISTORY = "h"  # one slot of the ring of explained changes: [seq, *ChangeEntry.to_row()]

JournalKey = tuple[str, str, str]  # (kind, account_id, id or slot)


class Journal:
    """Changes since the last drain, coalesced per key (the newest value wins). The engine
    writes ``changes`` directly and drains it (``Engine.drain_journal``)."""

    __slots__ = ("changes",)

    def __init__(self) -> None:
        self.changes: dict[JournalKey, Any] = {}
