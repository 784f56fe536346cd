"""A restarted worker does not make ``up``'s counts fall (``CounterTotals``).

``limitsync up`` starts a killed worker again on the same URL, and its counters start again
from zero. The dashboard, the stop line and ``status`` carry the counter values the earlier
process had reached (its last scrape), as Prometheus's ``rate()`` reads a counter reset; gauges
are read as they are now.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from copy import deepcopy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from config.settings import Settings
from limitsync.stack import _summary, _write_state
from limitsync.worker_metrics import CounterTotals, Snapshot, add_carried, add_metrics, scrape

URL = "http://127.0.0.1:1"
OTHER = "http://127.0.0.1:2"


def page(
    events: float = 0,
    dead_letters: float = 0,
    sync_delay_breaches: float = 0,
    open_drifts: float = 0,
    lag: float = 0,
    latency: tuple[float, float] = (0, 0),
    rescores: float = 0,
) -> str:
    """A worker's ``/metrics`` page; ``latency``: the counts of the 0.01 s and +Inf buckets."""
    return f"""\
# TYPE limitsync_events counter
limitsync_events_total{{type="repayment"}} {events}
# TYPE limitsync_dead_letters counter
limitsync_dead_letters_total{{reason="unparseable"}} {dead_letters}
# TYPE limitsync_breaches counter
limitsync_breaches_total{{reason="SYNC_DELAY",source="cache"}} {sync_delay_breaches}
# TYPE limitsync_open_drifts gauge
limitsync_open_drifts{{source="app"}} {open_drifts}
# TYPE limitsync_consumer_lag gauge
limitsync_consumer_lag{{topic="limit.account-events",partition="0"}} {lag}
# TYPE limitsync_sync_latency_seconds histogram
limitsync_sync_latency_seconds_bucket{{le="0.01"}} {latency[0]}
limitsync_sync_latency_seconds_bucket{{le="+Inf"}} {latency[1]}
limitsync_sync_latency_seconds_count {latency[1]}
limitsync_sync_latency_seconds_sum 0.0
# TYPE limitsync_rescores counter
limitsync_rescores_total{{outcome="ok"}} {rescores}
limitsync_rescores_total{{outcome="failed"}} 0.0
"""


def totals_after(*scrapes: dict[str, str | None]) -> Snapshot:
    """The snapshot of the last of ``scrapes`` (each: URL -> page, None if unreachable)."""
    totals = CounterTotals()
    snap = Snapshot()
    for pages in scrapes:
        snap = Snapshot()
        for url, text in pages.items():
            totals.add(snap, url, text)
    return snap


def test_a_restarted_worker_adds_its_last_values_to_the_totals() -> None:
    snap = totals_after({URL: page(events=100, dead_letters=2)}, {URL: page(events=5)})
    assert (snap.events, snap.dead_letters) == (105, 2)


def test_a_worker_that_was_not_restarted_carries_nothing() -> None:
    snap = totals_after({URL: page(events=100)}, {URL: page(events=150)})
    assert snap.events == 150


def test_an_unreachable_worker_keeps_counting_its_last_values() -> None:
    snap = totals_after(
        {URL: page(events=100), OTHER: page(events=40)},
        {URL: None, OTHER: page(events=50)},
    )
    assert snap.events == 150


def test_a_worker_unreachable_while_it_restarts_is_carried_once() -> None:
    snap = totals_after({URL: page(events=100)}, {URL: None}, {URL: page(events=5)})
    assert snap.events == 105


def test_gauges_are_read_as_they_are_now_after_a_restart() -> None:
    snap = totals_after(
        {URL: page(events=100, open_drifts=3, lag=40)}, {URL: page(events=5, open_drifts=1, lag=7)}
    )
    assert (snap.open_drifts, snap.lag) == (1, 7)


def test_a_restarted_latency_histogram_is_carried_bucket_by_bucket() -> None:
    snap = totals_after(
        {URL: page(events=10, latency=(4, 10))}, {URL: page(events=2, latency=(1, 2))}
    )
    assert dict(snap.latency_buckets) == {0.01: 5, float("inf"): 12}


def test_a_series_already_past_its_old_value_is_carried_when_its_worker_restarted() -> None:
    # A process's counters restart together: the fall of one says the other was reset too.
    snap = totals_after(
        {URL: page(events=100, sync_delay_breaches=1)}, {URL: page(events=3, sync_delay_breaches=2)}
    )
    assert dict(snap.alerts_by_reason) == {"SYNC_DELAY": 3}


def test_status_adding_the_state_files_base_agrees_with_the_dashboard(tmp_path: Path) -> None:
    totals = CounterTotals()
    totals.add(Snapshot(), URL, page(events=100, sync_delay_breaches=1, latency=(4, 10)))
    dashboard = Snapshot()
    totals.add(dashboard, URL, page(events=5, latency=(1, 2)))
    state = tmp_path / "state.json"
    _write_state(state, Settings(), [URL], totals.carried())
    bare = Snapshot()  # `limitsync status` scrapes by itself, then adds the state file's base
    add_metrics(bare, page(events=5, latency=(1, 2)))
    status = deepcopy(bare)
    add_carried(status, json.loads(state.read_text())["counter_base"])
    assert status == dashboard != bare  # and the restart made a difference


class _Worker(BaseHTTPRequestHandler):
    text = ""

    def do_GET(self) -> None:
        body = type(self).text.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def worker_url() -> Iterator[str]:
    """A worker's web server on loopback, serving ``_Worker.text`` as its ``/metrics``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Worker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_stop_line_counts_a_killed_and_restarted_worker_s_events(worker_url: str) -> None:
    url = worker_url
    totals = CounterTotals()  # up's, fed by each dashboard refresh and the final scrape
    _Worker.text = page(events=20_000)
    scrape([url], totals=totals)
    _Worker.text = page(events=13_000)  # killed, started again, caught up
    assert _summary(scrape([url], totals=totals), None).startswith(
        "limitsync stopped: 33000 events processed, 0 fed"
    )


def test_the_stop_line_says_how_many_processed_events_were_rescore_decisions(
    worker_url: str,
) -> None:
    """A worker's rescore decisions are events it publishes and then processes: without them
    in the line, more events processed than fed looked like records applied twice."""
    totals = CounterTotals()
    _Worker.text = page(events=2_000, rescores=150)
    scrape([worker_url], totals=totals)
    _Worker.text = page(events=1_000, rescores=60)  # killed, started again
    line = _summary(scrape([worker_url], totals=totals), None)
    assert "3000 events processed, 0 fed, 210 rescore decisions published (processed too)" in line
