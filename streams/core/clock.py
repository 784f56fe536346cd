"""The two clocks of one core: event time in replay, wall time live.

The engine asks the clock for "now" after a new record is accepted; nothing in the core
reads the system time itself, which is what makes a replay deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Clock", "EventTimeClock", "InjectedClock"]


class Clock:
    """Current time in microseconds since the epoch.

    A base class rather than a Protocol: compiled, the engine's call through it (one per
    record) is a direct one instead of a lookup by name.
    """

    def observe(self, occurred_us: int) -> int:
        """Account for a new, valid record that occurred at ``occurred_us``; return now."""
        raise NotImplementedError

    def now(self) -> int:
        """The time the clock last showed (for timers between records)."""
        raise NotImplementedError


class EventTimeClock(Clock):
    """Replay clock: the highest ``occurred_at`` of the valid, new records seen so far."""

    def __init__(self, start_us: int | None = None) -> None:
        self._now = start_us if start_us is not None else -(2**62)

    def observe(self, occurred_us: int) -> int:
        if occurred_us > self._now:
            self._now = occurred_us
        return self._now

    def advance_to(self, us: int) -> int:
        """Move forward (``--until``); never back."""
        if us > self._now:
            self._now = us
        return self._now

    def now(self) -> int:
        return self._now


class InjectedClock(Clock):
    """Live clock: the shell injects the wall clock as a function (kept out of the core)."""

    def __init__(self, time_us: Callable[[], int]) -> None:
        self._time_us = time_us

    def observe(self, occurred_us: int) -> int:
        return self._time_us()

    def now(self) -> int:
        return self._time_us()
