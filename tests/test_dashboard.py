"""The terminal dashboard of ``limitsync up`` reads the workers' metrics per observation source."""

from __future__ import annotations

from limitsync.dashboard import Dashboard
from limitsync.worker_metrics import Snapshot, add_metrics
from streams.metrics import Metrics


def test_the_dashboard_line_shows_each_source_apart() -> None:
    metrics = Metrics()
    metrics.open_drifts.labels(source="app").set(3)
    metrics.breaches.labels(reason="CACHE_DIVERGED", source="app").inc()
    metrics.breaches.labels(reason="SYNC_DELAY", source="cache").inc(2)
    metrics.breaches.labels(reason="REPAYMENT_NOT_POSTED", source="").inc()
    metrics.changes_displayed.labels(within="1s", source="cache").inc(3)
    metrics.changes_displayed.labels(within="late", source="cache").inc()
    snap = Snapshot()
    add_metrics(snap, metrics.render().decode())
    assert Dashboard([], None)._line(snap) == (
        "events/s 0 | lag 0 | sync - | "
        "app: open 3, in SLA -, breaches CACHE_DIVERGED=1 | "
        "cache: open 0, in SLA 75.00%, breaches SYNC_DELAY=2 | not posted 1"
    )


def test_sync_latency_past_the_largest_bucket_reads_as_more_than_it() -> None:
    metrics = Metrics()
    metrics.sync_latency.observe(30 * 24 * 3600)  # a month-old event, backfilled
    snap = Snapshot()
    add_metrics(snap, metrics.render().decode())
    assert "sync p50 >900s p99 >900s" in Dashboard([], None)._line(snap)
