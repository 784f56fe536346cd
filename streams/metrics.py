"""The worker's Prometheus metrics (names are part of deploy/monitoring's contract)."""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from schemas.events import EVENT_TYPES
from schemas.records import DeadLetterReason

__all__ = ["Metrics"]

_REASONS = (
    "REPAYMENT_NOT_POSTED",
    "SYNC_DELAY",
    "FREEZE_NOT_APPLIED",
    "CACHE_MISSING",
    "CACHE_DIVERGED",
)
# The observation sources (docs/contract.md, "Drift, SLA and alerts"): drifts, breaches, alerts and
# changes displayed are counted per source; a REPAYMENT_NOT_POSTED alert has none ("").
SOURCES = ("app", "cache")
_LATENCY_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class Metrics:
    """One registry per worker (no global state: tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._add_input_metrics(self.registry)
        self._add_drift_metrics(self.registry)
        self._add_output_metrics(self.registry)
        self._zero_known_series()

    def _add_input_metrics(self, r: CollectorRegistry) -> None:
        """What the worker took in: events, dead letters, batches, its own observations."""
        self.events = Counter(
            "limitsync_events", "Valid input events processed", ["type"], registry=r
        )
        self.dead_letters = Counter(
            "limitsync_dead_letters",
            "Records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.batches = Counter(
            "limitsync_batches",
            "Fetched batches of input records taken together (records per batch: "
            "limitsync_events_total and dead letters over this)",
            registry=r,
        )
        self.own_observations = Counter(
            "limitsync_own_observations",
            "Observations of the worker's own cache writes and reads, applied directly",
            registry=r,
        )
        self.records_handled_before = Counter(
            "limitsync_records_handled_before",
            "Records skipped because they were handled before a restart or takeover (at or "
            "below their partition's saved handled offset): not applied or dead-lettered twice",
            registry=r,
        )
        self.reversals_unmatched = Counter(
            "limitsync_reversals_unmatched",
            "Reversals that found no repayment of that id to undo (logged with both ids)",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "limitsync_consumer_lag",
            "Records behind the log end",
            ["topic", "partition"],
            registry=r,
        )

    def _add_drift_metrics(self, r: CollectorRegistry) -> None:
        """Drifts, breaches, alerts and how soon changes were displayed, per observation source."""
        self.open_drifts = Gauge(
            "limitsync_open_drifts",
            "Open drifts, per observation source (app, cache)",
            ["source"],
            registry=r,
        )
        self.breaches = Counter(
            "limitsync_breaches",
            "Drifts (per source) and clearing watches (source empty) past their SLA",
            ["reason", "source"],
            registry=r,
        )
        self.alerts = Counter(
            "limitsync_alerts",
            "Alert records published",
            ["type", "reason", "source"],
            registry=r,
        )
        self.changes_displayed = Counter(
            "limitsync_changes_displayed",
            "Ledger changes by how soon each observation source showed them",
            ["within", "source"],
            registry=r,
        )

    def _add_output_metrics(self, r: CollectorRegistry) -> None:
        """What the worker wrote: cache writes and their latency, heals, rescores, state rows."""
        self.sync_latency = Histogram(
            "limitsync_sync_latency_seconds",
            "From a ledger change's occurred_at to its cache write",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.cache_writes = Counter(
            "limitsync_cache_writes", "Cache compare-and-set writes", ["outcome"], registry=r
        )
        self.auto_heals = Counter(
            "limitsync_auto_heals", "Cache rewrites by auto-heal", ["reason"], registry=r
        )
        self.rescores = Counter("limitsync_rescores", "Rescore attempts", ["outcome"], registry=r)
        self.state_rows = Counter(
            "limitsync_state_rows", "Account rows saved to the state changelog", registry=r
        )
        self.state_bytes = Counter(
            "limitsync_state_bytes",
            "Bytes of keys and values saved to the state changelog",
            registry=r,
        )
        self.state_rows_large = Counter(
            "limitsync_state_rows_large",
            "Account rows over 64 KB saved (each is logged; none may pass 512 KB)",
            registry=r,
        )

    def _zero_known_series(self) -> None:
        """Create every known label set at 0, so alert rules see the first increase."""
        for reason in _REASONS:
            self.auto_heals.labels(reason=reason)
            for source in SOURCES if reason != "REPAYMENT_NOT_POSTED" else ("",):
                self.breaches.labels(reason=reason, source=source)
                for kind in ("mismatch.opened", "mismatch.escalated", "mismatch.resolved"):
                    self.alerts.labels(type=kind, reason=reason, source=source)
        for kind in EVENT_TYPES:
            self.events.labels(type=kind)
        for reason in get_args(DeadLetterReason):
            self.dead_letters.labels(reason=reason)
        for source in SOURCES:
            self.open_drifts.labels(source=source)
        # Resolved once: labels() looks its child up by name, and this one is counted per change.
        self._displayed_within = {
            (source, within): self.changes_displayed.labels(within=within, source=source)
            for source in SOURCES
            for within in ("1s", "10s", "sla", "late")
        }
        for outcome in ("ok", "failed", "retried"):
            self.rescores.labels(outcome=outcome)
        for outcome in ("written", "stale", "refused", "error"):
            self.cache_writes.labels(outcome=outcome)

    def observe_display_latency(self, latency_us: int | None, sla_us: int, source: str) -> None:
        if latency_us is None or latency_us > sla_us:
            bucket = "late"
        elif latency_us <= 1_000_000:
            bucket = "1s"
        elif latency_us <= 10_000_000:
            bucket = "10s"
        else:
            bucket = "sla"
        self._displayed_within[(source, bucket)].inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
