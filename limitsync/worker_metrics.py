"""Reading the workers' ``/metrics`` (for ``up``'s dashboard and ``status``)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["SOURCES", "Snapshot", "add_metrics", "scrape"]


SOURCES = ("app", "cache")  # the observation sources, each with its own drifts


@dataclass
class Snapshot:
    events: float = 0.0
    dead_letters: float = 0.0
    open_drifts: float = 0.0
    lag: float = 0.0
    alerts_by_reason: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency_buckets: dict[float, float] = field(default_factory=lambda: defaultdict(float))
    workers_up: int = 0
    # Per observation source: open drifts, breaches by reason (a REPAYMENT_NOT_POSTED breach has
    # no source: ""), and ledger changes by the first bucket the source displayed them in.
    open_drifts_by_source: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    breaches_by_source: dict[tuple[str, str], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    changes_displayed: dict[tuple[str, str], float] = field(
        default_factory=lambda: defaultdict(float)
    )

    def displayed_within_sla(self, source: str) -> float | None:
        """The share of ledger changes ``source`` displayed within the SLA (None: none yet)."""
        counts = {w: n for (s, w), n in self.changes_displayed.items() if s == source}
        total = sum(counts.values())
        return None if total == 0 else 1.0 - counts.get("late", 0.0) / total

    def latency_quantile(self, q: float) -> float | None:
        """A quantile of the sync latency from the summed histogram buckets (upper bound)."""
        items = sorted(self.latency_buckets.items())
        if not items or items[-1][1] == 0:
            return None
        total = items[-1][1]
        for bound, count in items:
            if count >= q * total:
                return bound
        return None


def scrape(urls: list[str], timeout_s: float = 1.0) -> Snapshot:
    snap = Snapshot()
    for url in urls:
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=timeout_s) as resp:
                text = resp.read().decode()
        except (urllib.error.URLError, OSError):
            continue
        snap.workers_up += 1
        add_metrics(snap, text)
    return snap


def add_metrics(snap: Snapshot, text: str) -> None:
    """Add one worker's ``/metrics`` page to ``snap``."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            if name == "limitsync_events_total":
                snap.events += value
            elif name == "limitsync_dead_letters_total":
                snap.dead_letters += value
            elif name == "limitsync_open_drifts":
                snap.open_drifts += value
                snap.open_drifts_by_source[labels.get("source", "")] += value
            elif name == "limitsync_consumer_lag":
                snap.lag += value
            elif name == "limitsync_breaches_total" and value:
                snap.alerts_by_reason[labels["reason"]] += value
                snap.breaches_by_source[(labels.get("source", ""), labels["reason"])] += value
            elif name == "limitsync_changes_displayed_total":
                snap.changes_displayed[(labels.get("source", ""), labels["within"])] += value
            elif name == "limitsync_sync_latency_seconds_bucket":
                snap.latency_buckets[float(labels["le"])] += value
