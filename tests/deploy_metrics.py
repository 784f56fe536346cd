"""The Prometheus metrics limitsync exports: the one list that the alert rules, the Grafana
dashboard and a live ``/metrics`` scrape are checked against. Most come from the workers'
``/metrics``; the drill's come from ``limitsync drill --metrics-file`` (a node-exporter
textfile, issue 15), so a worker's scrape has only the ``worker`` ones.

Names are the exposition names (counters with ``_total``). A histogram ``h`` is exposed as
``h_bucket`` (with ``le``), ``h_sum`` and ``h_count``; prometheus_client also exposes
``<counter>_created`` and ``<histogram>_created`` gauges, which ``exposed_series`` lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = [
    "EXPORTED_METRICS",
    "PROMETHEUS_SYNTHETIC_SERIES",
    "PROMETHEUS_TARGET_LABELS",
    "MetricSpec",
    "exposed_series",
    "metric_for_series",
    "worker_metrics",
]

MetricKind = Literal["counter", "gauge", "histogram"]
Exporter = Literal["worker", "drill"]

ALERT_REASONS = frozenset(
    {
        "REPAYMENT_NOT_POSTED",
        "SYNC_DELAY",
        "FREEZE_NOT_APPLIED",
        "CACHE_MISSING",
        "CACHE_DIVERGED",
    }
)

INQUIRY_VERDICTS = frozenset({"correct", "fault", "unknown_account"})
INQUIRY_ACTIONS = frozenset({"none", "cache_rewritten", "alert_opened"})
DRILL_SCENARIOS = frozenset({"cache-divergence", "cache-loss", "worker-kill", "redis-outage"})

# The observation sources: drifts, breaches, alerts and changes displayed are per source; a
# REPAYMENT_NOT_POSTED breach or alert has none (the empty value, which Prometheus drops).
SOURCES = frozenset({"app", "cache"})


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its kind, its label names, and the values a label may take where
    the contract fixes them (labels absent from ``values`` are open-ended)."""

    kind: MetricKind
    labels: frozenset[str] = frozenset()
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)
    help: str = ""
    exporter: Exporter = "worker"


EXPORTED_METRICS: Mapping[str, MetricSpec] = MappingProxyType(
    {
        "limitsync_events_total": MetricSpec(
            "counter", frozenset({"type"}), help="valid input events processed"
        ),
        "limitsync_dead_letters_total": MetricSpec(
            "counter",
            frozenset({"reason"}),
            {"reason": frozenset(
                {"invalid", "conflict", "internal", "future_timestamp", "rescore_failed"}
            )},
            help="records sent to the dead-letter topic",
        ),
        "limitsync_sync_latency_seconds": MetricSpec(
            "histogram", help="occurred_at of a ledger change to its cache write"
        ),
        "limitsync_open_drifts": MetricSpec(
            "gauge", frozenset({"source"}), {"source": SOURCES}, help="drifts open now"
        ),
        "limitsync_breaches_total": MetricSpec(
            "counter",
            frozenset({"reason", "source"}),
            {"reason": ALERT_REASONS, "source": SOURCES | {""}},
            help="mismatch.opened records",
        ),
        "limitsync_alerts_total": MetricSpec(
            "counter",
            frozenset({"type", "reason", "source"}),
            {
                "type": frozenset({"mismatch.opened", "mismatch.escalated", "mismatch.resolved"}),
                "reason": ALERT_REASONS,
                "source": SOURCES | {""},
            },
            help="alert records published",
        ),
        "limitsync_changes_displayed_total": MetricSpec(
            "counter",
            frozenset({"within", "source"}),
            {"within": frozenset({"1s", "10s", "sla", "late"}), "source": SOURCES},
            help="ledger changes, once per source, in the first bucket that source displayed them",
        ),
        "limitsync_rescores_total": MetricSpec(
            "counter",
            frozenset({"outcome"}),
            {"outcome": frozenset({"ok", "failed", "retried"})},
            help="rescore attempts",
        ),
        "limitsync_cache_writes_total": MetricSpec(
            "counter",
            frozenset({"outcome"}),
            {"outcome": frozenset({"written", "stale", "error"})},
            help="Redis limit cache writes",
        ),
        "limitsync_consumer_lag": MetricSpec(
            "gauge", frozenset({"topic", "partition"}), help="records behind the log end"
        ),
        "limitsync_auto_heals_total": MetricSpec(
            "counter", frozenset({"reason"}), {"reason": ALERT_REASONS}, help="cache rewrites"
        ),
        # Limit inquiries (streams/inquiries.py, docs/support.md).
        "limitsync_inquiries_total": MetricSpec(
            "counter",
            frozenset({"verdict"}),
            {"verdict": INQUIRY_VERDICTS},
            help="limit inquiries answered",
        ),
        "limitsync_inquiry_actions_total": MetricSpec(
            "counter",
            frozenset({"action"}),
            {"action": INQUIRY_ACTIONS},
            help="what limitsync did about an inquiry",
        ),
        "limitsync_inquiries_rejected_total": MetricSpec(
            "counter", help="inquiries refused as bad requests (400)"
        ),
        "limitsync_inquiry_answer_seconds": MetricSpec(
            "histogram", help="from an inquiry's request to its answer"
        ),
        # Contingency drills (limitsync/drill.py metrics_text, docs/drills.md): gauges of the
        # last drill of each scenario.
        **{
            name: MetricSpec(
                "gauge",
                frozenset({"scenario"}),
                {"scenario": DRILL_SCENARIOS},
                help=text,
                exporter="drill",
            )
            for name, text in (
                ("limitsync_drill_passed", "1 when the last drill of the scenario passed"),
                ("limitsync_drill_detect_seconds_max", "slowest detection of the last drill"),
                ("limitsync_drill_heal_seconds_max", "slowest heal of the last drill"),
                ("limitsync_drill_lost_events", "events lost in the last drill"),
                ("limitsync_drill_last_run_timestamp_seconds", "when the last drill ended"),
            )
        },
    }
)


def worker_metrics() -> list[str]:
    """The metrics a worker's ``/metrics`` shows."""
    return [name for name, spec in EXPORTED_METRICS.items() if spec.exporter == "worker"]


# Series Prometheus makes itself, and the labels it attaches to every scraped series
# (``namespace``/``pod`` come from deploy/monitoring/prometheus-kubernetes.yml relabelling).
PROMETHEUS_SYNTHETIC_SERIES = frozenset({"up"})
PROMETHEUS_TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exposed_series(name: str) -> frozenset[str]:
    """The series names a ``/metrics`` page shows for one exported metric."""
    spec = EXPORTED_METRICS[name]
    if spec.kind == "histogram":
        return frozenset({name + s for s in (*_HISTOGRAM_SUFFIXES, "_created")})
    if spec.kind == "counter":
        return frozenset({name, name.removesuffix("_total") + "_created"})
    return frozenset({name})


def metric_for_series(series: str) -> str | None:
    """The exported metric a series name belongs to, or None."""
    if series in EXPORTED_METRICS:
        return series
    for suffix in _HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        spec = EXPORTED_METRICS.get(base)
        if base != series and spec is not None and spec.kind == "histogram":
            return base
    return None
