"""What a simulation run reports besides its lines: counts, the ground truth of every injected
fault, and the oracle's end state of each account. Golden tests check alerts and replays
against these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SimulationError(RuntimeError):
    """The simulator broke one of its own invariants (a bug, never bad input)."""


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One injected fault: the ground truth a golden test checks alerts against. ``sources``:
    the observation sources whose drift it shows in (none for the ledger and delivery faults)."""

    kind: str
    account_id: str
    event_id: str
    occurred_at: str
    payment_id: str | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExpectedAccount:
    """The simulator's model of one account after the last record (as in ``accounts.jsonl``)."""

    account_id: str
    credit_line: int
    outstanding: int
    status: str
    expected_available: int
    displayed_available: int | None  # the app's latest
    cache_available: int | None = None  # the cache's latest

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "credit_line": self.credit_line,
            "outstanding": self.outstanding,
            "status": self.status,
            "expected_available": self.expected_available,
            "displayed_available": self.displayed_available,
            "cache_available": self.cache_available,
        }


@dataclass
class SimulationStats:
    """Counts and ground truth of one simulation (filled while the lines are produced)."""

    lines: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    bad: dict[str, int] = field(default_factory=dict)
    injected: list[InjectedFault] = field(default_factory=list, repr=False)
    accounts: dict[str, ExpectedAccount] = field(default_factory=dict, repr=False)
    # Drifts (a source's display != expected, measured as the contract's replay clock would)
    # that lasted longer than the 60 s SLA: account id -> longest such drift of either source in
    # ms. Only display faults should put an account here.
    drifts_over_sla_ms: dict[str, int] = field(default_factory=dict, repr=False)
    min_expected_available: int | None = None
    first_occurred_at: str | None = None
    last_occurred_at: str | None = None

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    @property
    def fault_accounts(self) -> dict[str, frozenset[str]]:
        """Per fault kind, the accounts it was injected into."""
        found: dict[str, set[str]] = {}
        for f in self.injected:
            found.setdefault(f.kind, set()).add(f.account_id)
        return {kind: frozenset(ids) for kind, ids in found.items()}

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly digest (no per-account data)."""
        return {
            "lines": self.lines,
            "by_type": dict(sorted(self.by_type.items())),
            "faults": dict(sorted(self.faults.items())),
            "bad": dict(sorted(self.bad.items())),
            "accounts": len(self.accounts),
            "first_occurred_at": self.first_occurred_at,
            "last_occurred_at": self.last_occurred_at,
        }

    def __str__(self) -> str:
        faults = ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"
        return (
            f"{self.lines} lines, {len(self.accounts)} accounts, "
            f"faults: {faults}; bad: {self.bad_total}"
        )
