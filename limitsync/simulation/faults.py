"""Fault injection: the kinds, the dice, and the ground truth of each fault (the catalogue is in
``limitsync.simulate``).

Fault decisions are drawn from a ``random.Random`` of their own, apart from the traffic's. The
order of the draws is part of the output: a call site that draws before asking whether its kind
is on must keep doing so, and one that asks first (``strikes``) must not start drawing.
"""

from __future__ import annotations

import random
from typing import Any

from limitsync.simulation.account import Account
from limitsync.simulation.contract import APP, CACHE
from limitsync.simulation.truth import InjectedFault, SimulationStats

FAULT_KINDS: frozenset[str] = frozenset(
    {
        "slow_sync",
        "lost_sync",
        "diverged",
        "freeze_not_applied",
        "not_posted",
        "cache_missing",
        "app_stale",
        "duplicate",
        "conflict",
        "out_of_order",
    }
)
DISPLAY_FAULTS: frozenset[str] = frozenset(
    {"slow_sync", "lost_sync", "diverged", "freeze_not_applied", "cache_missing", "app_stale"}
)
# A display fault needs this long without other drift to show and be alerted on cleanly.
DISPLAY_FAULT_WINDOW_MS = 900_000


class Faults:
    """The fault decisions of one run: ``rate`` per opportunity, for the ``kinds`` that are on."""

    __slots__ = ("end", "kinds", "rate", "rng")

    def __init__(self, rate: float, kinds: frozenset[str], seed: int, end: int) -> None:
        self.rate = rate
        self.kinds = kinds
        self.rng = random.Random(f"limitsync-faults-{seed}")
        self.end = end

    def strikes(self, kind: str) -> bool:
        """Does ``kind`` strike at this opportunity? Draws only when the kind is on."""
        return self.rate > 0.0 and kind in self.kinds and self.rng.random() < self.rate

    def room(self, a: Account, t: int) -> bool:
        """Can a display fault start now and show cleanly for its whole window?"""
        return (
            a.cache_observed
            and a.app_observed
            and a.clean
            and t >= a.hold_until
            and t >= a.pin_until
            and a.last_sync <= t
            and t + DISPLAY_FAULT_WINDOW_MS <= self.end
        )

    def quiet_until(self, t: int) -> int:
        """When an account showing a display fault may change again (3 to 15 minutes on): long
        enough for the drift to outlive the SLA with the reason the contract gives it."""
        return t + self.rng.randint(180_000, 900_000)

    def divergent(self, a: Account, value: int) -> int:
        """A value near ``value`` that the account never had (a ``diverged`` cache write)."""
        rng = self.rng
        while True:
            delta = rng.randint(1, 400) * 1_000 + rng.randint(1, 99)
            wrong = value + delta if value < delta or rng.random() < 0.7 else value - delta
            if wrong not in a.seen:
                return wrong


def note(stats: SimulationStats, kind: str, a: Account, rec: dict[str, Any]) -> None:
    """Count a fault tagged on ``rec`` and keep its ground truth, with the sources its drift
    shows in."""
    stats.faults[kind] = stats.faults.get(kind, 0) + 1
    payment = rec.get("payment_id") if kind == "not_posted" else None
    sources: tuple[str, ...] = ()
    if kind == "app_stale":
        sources = (APP,)
    elif kind in DISPLAY_FAULTS:
        sources = (APP, CACHE)
    stats.injected.append(
        InjectedFault(kind, a.id, rec["event_id"], rec["occurred_at"], payment, sources)
    )
