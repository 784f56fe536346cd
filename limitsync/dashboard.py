"""The live dashboard of ``limitsync up`` (rich on a terminal, a log line otherwise)."""

from __future__ import annotations

import math
import sys
import time
from types import TracebackType
from typing import Any

from limitsync.worker_metrics import SOURCES, CounterTotals, Snapshot, scrape

__all__ = ["Dashboard"]

LOG_EVERY_S = 10.0


class Dashboard:
    """Its counters are carried over worker restarts by ``totals`` (shared with ``up``'s stop
    line), so a restarted worker does not make them fall."""

    def __init__(self, urls: list[str], feeder: Any, totals: CounterTotals | None = None) -> None:
        self.urls = urls
        self.feeder = feeder
        self.totals = CounterTotals() if totals is None else totals
        self.tty = sys.stdout.isatty()
        self._live: Any = None
        self._prev: tuple[float, float] | None = None
        self._last_log = 0.0
        self.rate = 0.0

    def __enter__(self) -> Dashboard:
        if self.tty:
            from rich.live import Live

            self._live = Live(self._render(Snapshot()), refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(et, ev, tb)

    def refresh(self) -> Snapshot:
        snap = scrape(self.urls, totals=self.totals)
        now = time.monotonic()
        if self._prev is not None and now > self._prev[0]:
            self.rate = max(0.0, (snap.events - self._prev[1]) / (now - self._prev[0]))
        self._prev = (now, snap.events)
        if self._live is not None:
            self._live.update(self._render(snap))
        elif now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            print(self._line(snap), flush=True)
        return snap

    def _line(self, snap: Snapshot) -> str:
        p50, p99 = _latency(snap, 0.5), _latency(snap, 0.99)
        sync = "-" if p50 is None else f"p50 {p50} p99 {p99}"
        per_source = " | ".join(
            f"{source}: open {int(snap.open_drifts_by_source.get(source, 0))}, "
            f"in SLA {_share(snap.displayed_within_sla(source))}, "
            f"breaches {_breaches(snap, source) or 'none'}"
            for source in SOURCES
        )
        unposted = int(snap.breaches_by_source.get(("", "REPAYMENT_NOT_POSTED"), 0))
        return (
            f"events/s {self.rate:.0f} | lag {int(snap.lag)} | sync {sync} | {per_source} | "
            f"not posted {unposted}"
        )

    def _render(self, snap: Snapshot) -> Any:
        from rich.table import Table

        t = Table(title="limitsync", show_header=False)
        p50, p99 = _latency(snap, 0.5), _latency(snap, 0.99)
        fed = self.feeder.sent if self.feeder is not None else 0
        t.add_row("workers up", f"{snap.workers_up}/{len(self.urls)}")
        t.add_row("events/s", f"{self.rate:,.0f}")
        t.add_row("events processed / fed", f"{int(snap.events):,} / {fed:,}")
        t.add_row("consumer lag", f"{int(snap.lag):,}")
        t.add_row("sync latency p50 / p99", f"{p50} / {p99}" if p50 is not None else "-")
        for source in SOURCES:  # what users saw (app) and what the cache held (cache)
            t.add_row(
                f"{source}: open drifts / shown within SLA",
                f"{int(snap.open_drifts_by_source.get(source, 0))} / "
                f"{_share(snap.displayed_within_sla(source))}",
            )
        t.add_row("dead letters", f"{int(snap.dead_letters)}")
        for (source, reason), n in sorted(snap.breaches_by_source.items()):
            t.add_row(f"breaches {source or 'payments'} {reason}", f"{int(n)}")
        return t


def _share(share: float | None) -> str:
    return "-" if share is None else f"{share:.2%}"


def _breaches(snap: Snapshot, source: str) -> str:
    return ", ".join(
        f"{reason}={int(n)}" for (s, reason), n in sorted(snap.breaches_by_source.items())
        if s == source
    )


def _latency(snap: Snapshot, q: float) -> str | None:
    """A sync-latency quantile as the histogram knows it: at most a bucket's bound, or more
    than the largest finite one (a backfill of old events lands there)."""
    bound = snap.latency_quantile(q)
    if bound is None:
        return None
    if math.isinf(bound):
        finite = [b for b in snap.latency_buckets if not math.isinf(b)]
        return f">{max(finite):g}s" if finite else "-"
    return f"<={bound:g}s"
