"""The oracle: the contract's model of each account (docs/contract.md, "The expected available
limit"), applied to every record as it is emitted, and the drifts a replay would measure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from limitsync.simulation.account import Account
from limitsync.simulation.contract import (
    ACTIVE,
    CACHE,
    DISPLAY,
    DRAWDOWN,
    LINE,
    POSTED,
    REVERSED,
    SLA_MS,
    STATUS,
)
from limitsync.simulation.truth import ExpectedAccount, SimulationError, SimulationStats


class Oracle:
    """Keeps each account's expected value and the replay clock (the latest occurred_at seen)
    and reports into ``stats``."""

    __slots__ = ("_clock", "_stats")

    def __init__(self, stats: SimulationStats) -> None:
        self._stats = stats
        self._clock = 0

    def apply(self, a: Account, rec: dict[str, Any]) -> bool:
        """Apply one new record; True when the account's ledger state changed."""
        typ = rec["type"]
        if typ == DISPLAY:
            if rec["source"] == CACHE:
                a.cache_shown = rec["displayed_available"]
                a.cache_observed = True
            else:
                a.app_shown = rec["displayed_available"]
                a.app_observed = True
            return False
        if typ == DRAWDOWN:
            a.drawn += rec["principal"]
        elif typ == POSTED:
            eid = rec["event_id"]
            a.posted[eid] = rec["principal"]
            if eid in a.reversed:
                return False
            a.repaid += rec["principal"]
        elif typ == REVERSED:
            rid = rec["reverses_event_id"]
            if rid in a.reversed:
                return False
            a.reversed.add(rid)
            if rid not in a.posted:
                return False
            a.repaid -= a.posted[rid]
        elif typ == LINE:
            if rec["version"] <= a.line_version:
                return False
            a.line = rec["credit_line"]
            a.line_version = rec["version"]
        elif typ == STATUS:
            if rec["version"] <= a.status_version:
                return False
            a.status = rec["status"]
            a.status_version = rec["version"]
        else:  # repayment.initiated changes nothing
            return False
        outstanding = a.drawn - a.repaid
        if outstanding < 0:
            raise SimulationError(f"{a.id}: repaid more principal than was drawn")
        expected = max(0, a.line - outstanding) if a.status == ACTIVE else 0
        a.expected = expected
        low = self._stats.min_expected_available
        if low is None or expected < low:
            self._stats.min_expected_available = expected
        return True

    def track(self, a: Account, t: int, occurred_at: str) -> None:
        """Follow drifts the way the contract's replay clock sees them."""
        st = self._stats
        if t > self._clock:
            self._clock = t
            st.last_occurred_at = occurred_at
            if st.first_occurred_at is None:
                st.first_occurred_at = occurred_at
        if a.app_observed:
            a.app_drift_since = self._drift_since(a, a.app_shown, a.app_drift_since, t)
        if a.cache_observed:
            a.cache_drift_since = self._drift_since(a, a.cache_shown, a.cache_drift_since, t)

    def _drift_since(self, a: Account, shown: int | None, since: int, t: int) -> int:
        """One source's drift start after a record at t (-1: not in drift)."""
        if shown != a.expected:
            return t if since < 0 else since
        if since >= 0:
            self._note_drift(a, self._clock - since)
        return -1

    def _note_drift(self, a: Account, age_ms: int) -> None:
        if age_ms > SLA_MS:
            worst = self._stats.drifts_over_sla_ms
            worst[a.id] = max(age_ms, worst.get(a.id, 0))

    def finish(self, accounts: Iterable[Account]) -> None:
        """After the last record: close the drifts still open at the end of the log and record
        each account's end state."""
        st = self._stats
        for a in accounts:
            for since in (a.app_drift_since, a.cache_drift_since):
                if since >= 0:
                    self._note_drift(a, self._clock - since)
            st.accounts[a.id] = ExpectedAccount(
                account_id=a.id,
                credit_line=a.line,
                outstanding=max(0, a.drawn - a.repaid),
                status=a.status,
                expected_available=a.expected,
                displayed_available=a.app_shown if a.app_observed else None,
                cache_available=a.cache_shown if a.cache_observed else None,
            )
