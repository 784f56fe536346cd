"""Drifts counted by what the overview shows of them: source group, reason, severity, whether
escalated and whether still open. One pass at C speed (a day has many drifts); every count the
overview writes is read from the few kinds that pass finds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter

from limitsync.report.alerts import Drift
from limitsync.report.vocabulary import EXPLAINED_REASONS

__all__ = ["DriftTally", "GroupCounts"]

_KIND = attrgetter("group", "reason", "severity", "escalated", "resolution")
_Kind = tuple[str, str, str, bool, str | None]


@dataclass(slots=True)
class GroupCounts:
    drifts: int = 0
    critical: int = 0
    escalated: int = 0
    open: int = 0


@dataclass(slots=True)
class DriftTally:
    total: int
    kinds: Counter[_Kind]  # (group, reason, severity, escalated, resolution) -> drifts

    @classmethod
    def of(cls, drifts: Sequence[Drift]) -> DriftTally:
        return cls(len(drifts), Counter(map(_KIND, drifts)))

    def groups(self) -> dict[str, GroupCounts]:
        counts: dict[str, GroupCounts] = {}
        for (group, _, severity, escalated, resolution), n in self.kinds.items():
            mine = counts.setdefault(group, GroupCounts())
            mine.drifts += n
            mine.critical += n if severity == "critical" else 0
            mine.escalated += n if escalated else 0
            mine.open += n if resolution is None else 0
        return counts

    def by_reason_and_severity(self) -> Counter[tuple[str, str]]:
        counts = Counter[tuple[str, str]]()
        for (_, reason, severity, _, _), n in self.kinds.items():
            counts[(reason, severity)] += n
        return counts

    def open(self) -> int:
        return sum(n for (_, _, _, _, resolution), n in self.kinds.items() if resolution is None)

    def unexplained(self) -> tuple[int, int]:
        """Drifts whose reason names no cause, of all."""
        kinds = self.kinds.items()
        part = sum(n for (_, reason, *_), n in kinds if reason not in EXPLAINED_REASONS)
        return part, self.total
