"""The arguments of one simulation run, checked once, and the values derived from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from limitsync.simulation.faults import FAULT_KINDS

DEFAULT_START = datetime(2026, 11, 29, tzinfo=UTC)
# Above this a run would be mostly faults, and the fault windows of one account would overlap.
FAULT_RATE_MAX = 0.25


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """``faults``: the share of each fault kind's opportunities it is injected at;
    ``bad``: the share of lines followed by an invalid record; ``fault_kinds``: the kinds to
    inject (all by default)."""

    accounts: int
    hours: float
    seed: int
    faults: float = 0.02
    bad: float = 0.001
    start: datetime | None = None
    fault_kinds: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.accounts < 0:
            raise ValueError("accounts must be >= 0")
        if not self.hours > 0:
            raise ValueError("hours must be > 0")
        if not 0 <= self.faults <= FAULT_RATE_MAX:
            raise ValueError(f"faults must be within [0, {FAULT_RATE_MAX}]")
        if not 0 <= self.bad < 1:
            raise ValueError("bad must be within [0, 1)")
        unknown = self.kinds - FAULT_KINDS
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start must carry a UTC offset")

    @property
    def kinds(self) -> frozenset[str]:
        return FAULT_KINDS if self.fault_kinds is None else frozenset(self.fault_kinds)

    @property
    def fault_rate(self) -> float:
        """0 when no kind is on, so that no fault decision is even drawn."""
        return self.faults if self.kinds else 0.0

    @property
    def start_ms(self) -> int:
        return round((self.start or DEFAULT_START).timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.hours * 3_600_000)
