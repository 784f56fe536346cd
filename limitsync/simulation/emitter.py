"""Emitting a record: the oracle applies it, its cache sync is scheduled, and its line is written
to the run's output, with the delivery faults (``duplicate``, ``conflict``, and the late arrival
of ``out_of_order``) and the invalid record that may come with it.

``emit`` runs for every record: its fault and invalid-record draws are inline, not calls.
"""

from __future__ import annotations

from typing import Any

import orjson

from limitsync.simulation.account import Account
from limitsync.simulation.agenda import Action, Agenda
from limitsync.simulation.contract import MONEY_FIELD, STATUS
from limitsync.simulation.faults import Faults, note
from limitsync.simulation.invalid import InvalidRecords
from limitsync.simulation.oracle import Oracle
from limitsync.simulation.syncs import Syncs
from limitsync.simulation.truth import SimulationStats

# A record built now to reach the log later: (record, its occurred time, its fault tag).
Prebuilt = tuple[dict[str, Any], int, str | None]


class Emitter:
    """``out``: the lines written since the driver last took them."""

    __slots__ = (
        "_accounts",
        "_agenda",
        "_fault_rate",
        "_fault_rng",
        "_invalid",
        "_invalid_rate",
        "_invalid_rng",
        "_kinds",
        "_oracle",
        "_stats",
        "_syncs",
        "out",
    )

    def __init__(
        self,
        agenda: Agenda,
        oracle: Oracle,
        syncs: Syncs,
        faults: Faults,
        invalid: InvalidRecords,
        stats: SimulationStats,
        accounts: list[Account],
    ) -> None:
        self.out: list[bytes] = []
        self._agenda = agenda
        self._oracle = oracle
        self._syncs = syncs
        self._fault_rate = faults.rate
        self._fault_rng = faults.rng
        self._kinds = faults.kinds
        self._invalid = invalid
        self._invalid_rate = invalid.rate
        self._invalid_rng = invalid.rng
        self._stats = stats
        self._accounts = accounts

    def emit(
        self,
        a: Account,
        rec: dict[str, Any],
        t: int,
        tag: str | None = None,
        freeze: bool = False,
    ) -> None:
        """Apply a new record to the model, schedule its cache sync, and write it out.
        ``tag``: the fault it carries; ``freeze``: it freezes the account."""
        was_clean = a.clean
        if self._oracle.apply(a, rec):
            tag = self._syncs.schedule(a, t, was_clean, freeze, tag)
        copy: str | None = None
        # A record with no fault of its own may be sent twice: one draw, a band per kind.
        if tag is None and self._fault_rate > 0.0:
            u = self._fault_rng.random()
            if u < self._fault_rate:
                if "duplicate" in self._kinds:
                    tag = copy = "duplicate"
            elif u < 2 * self._fault_rate and "conflict" in self._kinds:
                copy = "conflict"
        if tag is not None:
            rec["sim_fault"] = tag
            note(self._stats, tag, a, rec)
        line = orjson.dumps(rec)
        self.write(line, rec["type"])
        if copy is not None:
            self._send_again(a, rec, line, copy)
        if self._invalid_rate > 0.0 and self._invalid_rng.random() < self._invalid_rate:
            self._write_invalid(rec, t)
        self._oracle.track(a, t, rec["occurred_at"])

    def late(self, a: Account, rec: dict[str, Any], t: int, arrive: int) -> None:
        """``rec`` (occurred at ``t``) reaches the log at ``arrive``, after records that occurred
        later: an ``out_of_order`` fault. No display fault starts on ``a`` until then."""
        self._agenda.push(arrive, Action.EMIT, a.idx, (rec, t, "out_of_order"))
        a.pin_until = max(a.pin_until, arrive)

    def on_emit(self, idx: int, t: int, data: Prebuilt) -> None:
        rec, occurred, tag = data
        self.emit(self._accounts[idx], rec, occurred, tag)

    def on_raw(self, idx: int, t: int, data: tuple[bytes, str]) -> None:
        self.write(*data)

    def write(self, line: bytes, typ: str) -> None:
        self.out.append(line)
        st = self._stats
        st.lines += 1
        st.by_type[typ] = st.by_type.get(typ, 0) + 1

    def _send_again(self, a: Account, rec: dict[str, Any], line: bytes, copy: str) -> None:
        """The record is sent again 1 s to 5 min later: the same bytes, or a conflicting copy."""
        later = self._agenda.now + self._fault_rng.randint(1_000, 300_000)
        if copy == "conflict":
            note(self._stats, copy, a, rec)
            line = orjson.dumps(_conflicting(rec))
        self._agenda.push(later, Action.RAW, a.idx, (line, rec["type"]))

    def _write_invalid(self, rec: dict[str, Any], t: int) -> None:
        line, kind = self._invalid.make(rec, t)
        self.out.append(line)
        st = self._stats
        st.lines += 1
        st.bad[kind] = st.bad.get(kind, 0) + 1


def _conflicting(rec: dict[str, Any]) -> dict[str, Any]:
    """Same event_id, different content: a producer bug, not a retry."""
    other = dict(rec)
    money = MONEY_FIELD.get(rec["type"])
    if money is not None and isinstance(other.get(money), int):
        other[money] += 10_000
    elif rec["type"] == STATUS:
        other["reason"] = "manual_override"
    other["sim_fault"] = "conflict"
    return other
