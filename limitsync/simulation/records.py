"""The envelope every simulated record starts from: its event id and timestamp."""

from __future__ import annotations

import time
from typing import Any

from limitsync.simulation.account import Account


class Timestamps:
    """RFC 3339 with milliseconds; the minute's prefix is cached (records come in time order)."""

    __slots__ = ("_cn", "_cn_min", "_in_minute", "_z", "_z_min")

    def __init__(self) -> None:
        self._z_min = -1
        self._z = ""
        self._cn_min = -1
        self._cn = ""
        # "SS.mmm" for every millisecond of a minute: formatting is the hot path.
        self._in_minute = [f"{ms // 1000:02d}.{ms % 1000:03d}" for ms in range(60_000)]

    def utc(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        if minute != self._z_min:
            self._z_min = minute
            self._z = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return self._z + self._in_minute[rest] + "Z"

    def beijing(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        if minute != self._cn_min:
            self._cn_min = minute
            self._cn = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60 + 28_800))
        return self._cn + self._in_minute[rest] + "+08:00"


class Records:
    """Numbers the run's events (``evt-SEED-N``, in the order they are built)."""

    __slots__ = ("_n_event", "_seed", "_ts")

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._n_event = 0
        self._ts = Timestamps()

    def new(self, typ: str, a: Account, t: int, utc: bool) -> dict[str, Any]:
        """A record of ``typ`` for ``a`` at ``t``, its time in UTC (``Z``) or else in Beijing
        time (``+08:00``): the risk records are in UTC and the rest not, so a log mixes both."""
        self._n_event += 1
        return {
            "event_id": f"evt-{self._seed}-{self._n_event}",
            "type": typ,
            "account_id": a.id,
            "occurred_at": self._ts.utc(t) if utc else self._ts.beijing(t),
            "schema_version": 1,
        }
