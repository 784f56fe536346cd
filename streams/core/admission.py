"""Which records of a replay are new: the dedupe step of ``Engine.ingest``, on its own.

A replay's engine with compact ids (streams.core.ids) decides a record's outcome from the ids
it remembers and the event-time clock, and the clock moves only with the records found new.
Neither depends on any account's state, so this step can run ahead of the engine in another
process (``limitsync.replay_pipeline``): it sees every valid record, the engine behind it
only the new ones (``Engine.ingest_admitted``), and both clocks then show the same times.
"""

from __future__ import annotations

from typing import Final

from streams.core.clock import EventTimeClock
from streams.core.ids import DUPLICATE_AT, IdTable, digest_word, id_hash

__all__ = ["ADMITTED", "CONFLICT", "DUPLICATE", "Admission"]

ADMITTED: Final = 0
DUPLICATE: Final = 1
CONFLICT: Final = 2


class Admission:
    """The ids inside the dedupe horizon and the clock they expire by: ``Engine.ingest``'s
    outcome of each record, in log order, and the same memory (``IdTable``)."""

    __slots__ = ("_clock", "_dedupe_horizon_us", "_horizon_us", "_table")

    def __init__(self, dedupe_horizon_us: int, expected_ids: int = 0) -> None:
        self._table = IdTable(expected_ids)
        self._clock = EventTimeClock()
        self._dedupe_horizon_us = dedupe_horizon_us
        # Ids kept until before this have expired; it moves after each new record, as the
        # engine's does in its ``_expire``.
        self._horizon_us = -(2**62)

    def admit(self, account_id: str, event_id: str, digest: str | int, occurred_us: int) -> int:
        """ADMITTED (remembered now), DUPLICATE or CONFLICT, as ``Engine.ingest`` would say."""
        account, id_key = id_hash(account_id), id_hash(event_id)
        word = digest_word(digest)
        horizon = self._horizon_us
        table = self._table
        at = table.find(account, id_key, word, horizon)
        if at < 0:
            return DUPLICATE if at == DUPLICATE_AT else CONFLICT
        now = self._clock.observe(occurred_us)
        table.put(at, account, id_key, word, occurred_us if occurred_us > now else now, horizon)
        self._horizon_us = now - self._dedupe_horizon_us
        return ADMITTED

    def release(self) -> None:
        """Forget every id (a replay done with its records)."""
        self._table.clear()
