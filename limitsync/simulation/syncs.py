"""Cache syncs: after each change of an account's expected value, the cache is written a moment
later; the display faults that strike at a sync (``slow_sync``, ``lost_sync``, ``diverged``,
``freeze_not_applied``, ``app_stale``) are decided here."""

from __future__ import annotations

import random

from limitsync.simulation.account import Account
from limitsync.simulation.agenda import Action, Agenda
from limitsync.simulation.contract import ACTIVE
from limitsync.simulation.faults import Faults

# What an Action.SYNC entry carries: the value to write, whether the write happens (False: the
# cache keeps its old value), and the fault to tag the resulting cache display with.
SyncData = tuple[int | None, bool, str | None]


class Syncs:
    __slots__ = ("_agenda", "_faults", "_rng")

    def __init__(self, agenda: Agenda, rng: random.Random, faults: Faults) -> None:
        self._agenda = agenda
        self._rng = rng
        self._faults = faults

    def schedule(
        self, a: Account, t: int, was_clean: bool, freeze: bool, tag: str | None
    ) -> str | None:
        """Schedule the cache sync of a change to ``a`` at ``t`` (``freeze``: the change is a
        freeze); returns the tag for the change's own record (a fault it suffers, or ``tag``).
        A display fault strikes only an account with neither source in drift."""
        value = a.expected
        changed = value != a.last_target
        a.last_target = value
        a.seen.add(value)
        at = max(t + 150 + min(12_000, int(self._rng.expovariate(1.0) * 1_200)), a.last_sync + 1)
        faults = self._faults
        if faults.rate > 0.0 and tag is None and was_clean and faults.room(a, t):
            kind = self._display_fault(a, freeze, changed)
            if kind is not None:
                return self._inject(kind, a, t, at, value)
        a.last_sync = at  # not self._sync: this runs for every change
        self._agenda.push(at, Action.SYNC, a.idx, (value, True, None))
        return tag

    def _display_fault(self, a: Account, freeze: bool, changed: bool) -> str | None:
        """The display fault this sync suffers, if any: one draw, whatever the outcome, and a
        band of it per kind (a kind that is off leaves its band empty)."""
        faults = self._faults
        u = faults.rng.random()
        r = faults.rate
        if freeze:
            if (
                u < r
                and "freeze_not_applied" in faults.kinds
                and a.cache is not None
                and a.cache > 0
            ):
                return "freeze_not_applied"
            return None
        if not changed or a.status != ACTIVE:
            return None
        if u < r:
            kind = "slow_sync"
        elif u < 2 * r:
            kind = "lost_sync"
        elif u < 3 * r:
            kind = "diverged"
        elif u < 4 * r:
            kind = "app_stale"
        else:
            return None
        return kind if kind in faults.kinds else None

    def _inject(self, kind: str, a: Account, t: int, at: int, value: int) -> str | None:
        """Schedule the faulty sync; returns the tag for the change's record (the faults that
        show no display of their own are tagged there)."""
        faults = self._faults
        if kind == "slow_sync":
            at = t + faults.rng.randint(90_000, 300_000)
            a.hold_until = at + 30_000
            self._sync(a, at, value, kind)
            return None
        a.hold_until = faults.quiet_until(t)
        if kind == "lost_sync":
            return kind
        if kind == "freeze_not_applied":
            a.last_sync = at
            self._agenda.push(at, Action.SYNC, a.idx, (None, False, kind))
            return None
        if kind == "diverged":
            self._sync(a, at, faults.divergent(a, value), kind)
            return None
        # app_stale: the cache is written as usual; the app misses the refreshes.
        a.app_stuck_until = a.hold_until
        self._sync(a, at, value, None)
        return kind

    def _sync(self, a: Account, at: int, value: int, tag: str | None) -> None:
        a.last_sync = at
        self._agenda.push(at, Action.SYNC, a.idx, (value, True, tag))
