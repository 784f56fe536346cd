"""The discrete-event agenda: one heap of actions keyed by *log time* (when a record reaches the
log), ties broken by the order they were scheduled."""

from __future__ import annotations

import heapq
import random
from typing import Any

from limitsync.simulation.account import Account


class Action:
    """What an agenda entry asks for: an index into the run's handler table (plain ints, not an
    enum, as they sit in every heap entry and index the table)."""

    ACT = 0  # an account wakes up
    SYNC = 1  # a cache sync lands
    POST = 2  # a repayment posts
    REVERSE = 3  # a posting is reversed
    UNFREEZE = 4
    LINE = 5  # a scheduled credit-line change
    EMIT = 6  # a record built earlier reaches the log
    RAW = 7  # a line is sent again (a duplicate or a conflicting copy)
    POLICY = 8  # a policy wave
    REFRESH = 9  # the app refreshes after a cache write
    COUNT = 10


Entry = tuple[int, int, int, int, Any]  # (time, sequence, action, account index, data)


class Agenda:
    """``now``: the log time of the entry being handled."""

    __slots__ = ("_seq", "heap", "now")

    def __init__(self, start: int) -> None:
        self.heap: list[Entry] = []
        self._seq = 0
        self.now = start

    def push(self, t: int, action: int, idx: int, data: Any) -> None:
        """Schedule ``action`` for account ``idx`` (-1: none) at log time ``t``."""
        self._seq += 1
        heapq.heappush(self.heap, (t, self._seq, action, idx, data))


def after_hold(a: Account, rng: random.Random) -> int:
    """When an action that found ``a`` held by a display fault runs again: 1-60 s after the
    hold ends, so that the fault's drift is not cut short by a change."""
    return a.hold_until + rng.randint(1_000, 60_000)
