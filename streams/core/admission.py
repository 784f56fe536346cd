"""Which records of a replay are new: the dedupe step of ``Engine.ingest`` with compact ids.

A replay's engine (streams.core.ids) decides a record's outcome from the ids it remembers and
the event-time clock, and the clock moves only with the records found new. Neither depends on
any account's state, so this step is the engine's own (it holds one, on its clock) and can also
run ahead of an engine in another process (``limitsync.replay_pipeline``): there it sees every
valid record, the engine behind it only the new ones (``Engine.ingest_admitted``), and both
clocks then show the same times.
"""

from __future__ import annotations

from typing import Final

from streams.core.clock import Clock, EventTimeClock
from streams.core.ids import DUPLICATE_AT, IdTable, digest_word, id_hash

__all__ = ["ADMITTED", "CONFLICT", "DUPLICATE", "Admission"]

ADMITTED: Final = 0
DUPLICATE: Final = 1
CONFLICT: Final = 2


class Admission:
    """The ids inside the dedupe horizon and the clock they expire by: ``Engine.ingest``'s
    outcome of each record, in log order, in one flat table (``IdTable``)."""

    __slots__ = ("_clock", "_dedupe_horizon_us", "_horizon_us", "_table")

    def __init__(
        self, dedupe_horizon_us: int, expected_ids: int = 0, clock: Clock | None = None
    ) -> None:
        """``clock``: the engine's, when it is the engine's own step; else one of its own."""
        self._table = IdTable(expected_ids)
        self._clock: Clock = EventTimeClock() if clock is None else clock
        self._dedupe_horizon_us = dedupe_horizon_us
        # Ids kept until before this have expired: it moves with the clock, after each new
        # record (and when an engine holding some accounts is told the clock moved).
        self._horizon_us = -(2**62)

    def admit(self, account_id: str, event_id: str, digest: str | int, occurred_us: int) -> int:
        """ADMITTED (remembered now, the clock moved to its time), DUPLICATE or CONFLICT (nothing
        changed, clock included)."""
        account, id_key = id_hash(account_id), id_hash(event_id)
        word = digest_word(digest)
        horizon = self._horizon_us
        table = self._table
        at = table.find(account, id_key, word, horizon)
        if at < 0:
            return DUPLICATE if at == DUPLICATE_AT else CONFLICT
        now = self._clock.observe(occurred_us)
        # Remembered until both its time and its arrival are past the horizon.
        table.put(at, account, id_key, word, occurred_us if occurred_us > now else now, horizon)
        self._horizon_us = now - self._dedupe_horizon_us
        return ADMITTED

    def predict(self, account: int, event: int, word: int) -> int:
        """What ``admit`` would say now of the id with these hashes (``id_hash`` of its account
        and of itself) and content (``digest_word``), without remembering it."""
        at = self._table.find(account, event, word, self._horizon_us)
        if at >= 0:
            return ADMITTED
        return DUPLICATE if at == DUPLICATE_AT else CONFLICT

    def expire(self, now_us: int) -> None:
        """The clock moved to ``now_us`` with a record held elsewhere (a sharded replay): the
        ids before its horizon expire as they are looked up."""
        self._horizon_us = now_us - self._dedupe_horizon_us

    def release(self) -> None:
        """Forget every id (a replay done with its records)."""
        self._table.clear()
