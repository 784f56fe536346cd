"""Reading the workers' ``/metrics`` (for ``up``'s dashboard and ``status``)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "COUNTER_SAMPLES",
    "SOURCES",
    "CounterTotals",
    "Snapshot",
    "add_carried",
    "add_metrics",
    "scrape",
]


SOURCES = ("app", "cache")  # the observation sources, each with its own drifts

# The samples read into `Snapshot` that are counters: they only rise within one worker process
# and start again from zero when it is restarted. The others (open drifts, lag) are gauges.
COUNTER_SAMPLES = frozenset(
    {
        "limitsync_events_total",
        "limitsync_dead_letters_total",
        "limitsync_breaches_total",
        "limitsync_changes_displayed_total",
        "limitsync_sync_latency_seconds_bucket",
        "limitsync_rescores_total",
    }
)

# One series: its sample name and its labels, sorted.
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Snapshot:
    events: float = 0.0
    dead_letters: float = 0.0
    # Rescore decisions the workers published: events on the input topic that nobody fed,
    # so processed events may exceed fed ones by up to this many.
    rescore_decisions: float = 0.0
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


class CounterTotals:
    """Counter totals across worker restarts, as Prometheus's ``rate()`` reads a counter reset.

    Keeps, per worker URL, the last scraped value of every counter series of :class:`Snapshot`
    and a carried base. When a scrape of a URL finds any counter series below its last value,
    the worker behind it was restarted (a process's counters never fall, and restart together):
    every last value of that URL goes into its base, so the totals never go down. A worker that
    cannot be reached keeps its last values counted, and that is no reset. Gauges are not kept.

    Not counted: what a worker did after its last scrape before it died (at most a scrape
    interval's events, about 1 s under ``up``). One entry per series per URL: the label sets
    are fixed, so this stays small for the stack's whole life.
    """

    def __init__(self) -> None:
        self._last: dict[str, dict[SeriesKey, float]] = {}
        self._base: dict[str, dict[SeriesKey, float]] = {}
        self.resets = 0  # restarts seen, for a caller that saves carried() when it changes

    def add(self, snap: Snapshot, url: str, text: str | None) -> None:
        """Add one worker's ``/metrics`` page (None: unreachable) to ``snap``, its counters
        with the worker's earlier processes' values carried."""
        if text is not None:
            counters: dict[SeriesKey, float] = {}
            for name, labels, value in _samples(text):
                if name in COUNTER_SAMPLES:
                    counters[(name, tuple(sorted(labels.items())))] = value
                else:
                    _add_sample(snap, name, labels, value)
            self._observe(url, counters)
        last = self._last.get(url, {})
        base = self._base.get(url, {})
        for key in sorted(last.keys() | base.keys()):
            _add_sample(snap, key[0], dict(key[1]), last.get(key, 0.0) + base.get(key, 0.0))

    def carried(self) -> list[dict[str, Any]]:
        """The carried base summed over the workers, as JSON for ``up``'s state file
        (:func:`add_carried` adds it to a scrape)."""
        total: dict[SeriesKey, float] = defaultdict(float)
        for base in self._base.values():
            for key, value in base.items():
                total[key] += value
        return [
            {"name": name, "labels": dict(labels), "value": value}
            for (name, labels), value in sorted(total.items())
        ]

    def _observe(self, url: str, counters: dict[SeriesKey, float]) -> None:
        last = self._last.get(url, {})
        # A series missing from a page that is up counts as 0: its process has not created it.
        if any(counters.get(key, 0.0) < value for key, value in last.items()):
            base = self._base.setdefault(url, {})
            for key, value in last.items():
                base[key] = base.get(key, 0.0) + value
            self.resets += 1
        self._last[url] = counters


def add_carried(snap: Snapshot, carried: Iterable[Mapping[str, Any]]) -> None:
    """Add counter values carried over worker restarts (:meth:`CounterTotals.carried`)."""
    for series in carried:
        name = str(series["name"])
        if name in COUNTER_SAMPLES:
            labels = {str(k): str(v) for k, v in dict(series.get("labels", {})).items()}
            _add_sample(snap, name, labels, float(series["value"]))


def scrape(
    urls: list[str], timeout_s: float = 1.0, *, totals: CounterTotals | None = None
) -> Snapshot:
    """The workers' metrics summed; with ``totals``, counters carried over worker restarts
    (without, a restarted worker's counters start again from zero)."""
    snap = Snapshot()
    for url in urls:
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=timeout_s) as resp:
                text: str | None = resp.read().decode()
        except (urllib.error.URLError, OSError):
            text = None
        if text is not None:
            snap.workers_up += 1
        if totals is not None:
            totals.add(snap, url, text)
        elif text is not None:
            add_metrics(snap, text)
    return snap


def add_metrics(snap: Snapshot, text: str) -> None:
    """Add one worker's ``/metrics`` page to ``snap``."""
    for name, labels, value in _samples(text):
        _add_sample(snap, name, labels, value)


def _samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            yield s.name, s.labels, s.value


def _add_sample(snap: Snapshot, name: str, labels: dict[str, str], value: float) -> None:
    if name == "limitsync_events_total":
        snap.events += value
    elif name == "limitsync_dead_letters_total":
        snap.dead_letters += value
    elif name == "limitsync_rescores_total" and labels.get("outcome") == "ok":
        snap.rescore_decisions += value
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
