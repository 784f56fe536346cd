"""The simulated log as lines, or written to a file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from limitsync.simulation.engine import Simulation
from limitsync.simulation.truth import SimulationStats

# Lines joined per write: few writes, without holding the whole log in memory.
_CHUNK_LINES = 8_192


def simulate(
    accounts: int,
    hours: float,
    seed: int,
    faults: float = 0.02,
    bad: float = 0.001,
    start: datetime | None = None,
    fault_kinds: frozenset[str] | None = None,
) -> Iterator[bytes]:
    """The simulated log, one JSON line each (no newline), in log order."""
    return iter(Simulation(accounts, hours, seed, faults, bad, start, fault_kinds))


def write_simulation(
    path: Path,
    accounts: int,
    hours: float,
    seed: int,
    faults: float = 0.02,
    bad: float = 0.001,
    start: datetime | None = None,
    fault_kinds: frozenset[str] | None = None,
) -> SimulationStats:
    """Write the simulated log to ``path`` (JSON Lines) and return its stats and ground truth."""
    sim = Simulation(accounts, hours, seed, faults, bad, start, fault_kinds)
    chunk: list[bytes] = []
    with Path(path).open("wb") as f:
        for line in sim:
            chunk.append(line)
            if len(chunk) >= _CHUNK_LINES:
                chunk.append(b"")
                f.write(b"\n".join(chunk))
                chunk.clear()
        if chunk:
            chunk.append(b"")
            f.write(b"\n".join(chunk))
    return sim.stats
