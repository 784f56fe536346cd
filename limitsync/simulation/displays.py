"""The observations: what the cache and the app show (``limit.displayed`` records).

A cache sync lands as a ``source: cache`` display. Once a user has opened the app, it refreshes
0.1-2 s after each cache write (a ``source: app`` display), so the app follows the cache and each
source is in drift only while a change is on its way. App views show what the cache holds; a
view is also where ``cache_missing`` strikes.
"""

from __future__ import annotations

import random
from typing import Any

from limitsync.simulation.account import Account
from limitsync.simulation.agenda import Action, Agenda
from limitsync.simulation.contract import ACTIVE, APP, CACHE, DISPLAY
from limitsync.simulation.emitter import Emitter
from limitsync.simulation.faults import Faults
from limitsync.simulation.records import Records
from limitsync.simulation.syncs import SyncData


class Displays:
    __slots__ = (
        "_accounts",
        "_agenda",
        "_cache_missing_on",
        "_emitter",
        "_faults",
        "_records",
        "_rng",
    )

    def __init__(
        self,
        agenda: Agenda,
        records: Records,
        emitter: Emitter,
        faults: Faults,
        accounts: list[Account],
        seed: int,
    ) -> None:
        self._agenda = agenda
        self._records = records
        self._emitter = emitter
        self._faults = faults
        self._accounts = accounts
        self._rng = random.Random(f"limitsync-app-{seed}")  # app refreshes
        self._cache_missing_on = faults.rate > 0.0 and "cache_missing" in faults.kinds

    def on_sync(self, idx: int, t: int, data: SyncData) -> None:
        """A scheduled cache sync lands: the cache is written (or not) and read back."""
        a = self._accounts[idx]
        value, write, tag = data
        if write:
            a.cache = value
            a.cache_version += 1
            a.cache_written = True
            if a.app_observed:  # the app shows the new value a moment later
                self._agenda.push(t + self._rng.randint(100, 2_000), Action.REFRESH, idx, None)
        else:  # the write did not happen: the display shows what the cache still holds
            value = a.cache
        self._emitter.emit(a, self._display(a, t, value, CACHE), t, tag)

    def on_refresh(self, idx: int, t: int, _: None) -> None:
        a = self._accounts[idx]
        if t >= a.app_stuck_until:
            self._emitter.emit(a, self._display(a, t, a.cache, APP), t)

    def view(self, a: Account, t: int) -> None:
        """The user opens the app (nothing to show before the cache's first write)."""
        if not a.cache_written:
            return
        faults = self._faults
        if (
            self._cache_missing_on
            and a.status == ACTIVE
            and a.cache is not None
            and faults.room(a, t)
            and faults.rng.random() < faults.rate
        ):
            a.cache = None
            a.hold_until = faults.quiet_until(t)
            self._emitter.emit(a, self._display(a, t, None, CACHE), t)  # a cache read finds nothing
            self._emitter.emit(a, self._display(a, t, None, APP), t, "cache_missing")
            return
        shown = a.app_shown if t < a.app_stuck_until else a.cache
        self._emitter.emit(a, self._display(a, t, shown, APP), t)

    def _display(self, a: Account, t: int, value: int | None, source: str) -> dict[str, Any]:
        rec = self._records.new(DISPLAY, a, t, utc=False)
        rec["displayed_available"] = value
        if value is not None:
            rec["cache_version"] = a.cache_version
        rec["source"] = source
        return rec
