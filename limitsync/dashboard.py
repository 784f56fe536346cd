"""The live dashboard of ``limitsync up`` (rich on a terminal, a log line otherwise)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

from limitsync.worker_metrics import Snapshot, scrape

__all__ = ["Dashboard"]

LOG_EVERY_S = 10.0


class Dashboard:
    def __init__(self, urls: list[str], feeder: Any) -> None:
        self.urls = urls
        self.feeder = feeder
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
        snap = scrape(self.urls)
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
        p50, p99 = snap.latency_quantile(0.5), snap.latency_quantile(0.99)
        reasons = ", ".join(f"{r}={int(n)}" for r, n in sorted(snap.alerts_by_reason.items()))
        sync = "-" if p50 is None else f"p50 <={p50}s p99 <={p99}s"
        return (
            f"events/s {self.rate:.0f} | lag {int(snap.lag)} | sync {sync} | "
            f"open drifts {int(snap.open_drifts)} | breaches {reasons or 'none'}"
        )

    def _render(self, snap: Snapshot) -> Any:
        from rich.table import Table

        t = Table(title="limitsync", show_header=False)
        p50, p99 = snap.latency_quantile(0.5), snap.latency_quantile(0.99)
        fed = self.feeder.sent if self.feeder is not None else 0
        t.add_row("workers up", f"{snap.workers_up}/{len(self.urls)}")
        t.add_row("events/s", f"{self.rate:,.0f}")
        t.add_row("events processed / fed", f"{int(snap.events):,} / {fed:,}")
        t.add_row("consumer lag", f"{int(snap.lag):,}")
        t.add_row("sync latency p50 / p99", f"≤{p50}s / ≤{p99}s" if p50 is not None else "-")
        t.add_row("open drifts", f"{int(snap.open_drifts)}")
        t.add_row("dead letters", f"{int(snap.dead_letters)}")
        for reason, n in sorted(snap.alerts_by_reason.items()):
            t.add_row(f"breaches {reason}", f"{int(n)}")
        return t
