"""The consumers' holes that an operator hits (issue 13), without a broker.

- The archiver, killed mid-write, leaves a torn gzip member; the next run must not append
  after it (a reader would stop at the tear).
- A webhook is http or https only, a redirect is a failed delivery (never followed), and a
  batch spends a bounded time on it whatever it answers.
- ``alerts redeliver`` and a running router share the undelivered log without losing rows.
- A webhook URL's secret (path, query, password) is never written to an undelivered row.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_consumers_alerts import FakeEndpoint, FakeTime, alert

from consumers.alert_sinks import (
    Delivery,
    UndeliveredLog,
    WebhookSink,
    redeliver,
    urllib_post,
)
from consumers.archive import SegmentWriter
from consumers.merge import LogRecord
from consumers.segments import iter_segment
from limitsync.cli import main

HOUR_MS = 1_796_000_000_000 // 3_600_000 * 3_600_000


def records(first: int, count: int) -> list[LogRecord]:
    return [LogRecord("limit.account-events", 0, n, HOUR_MS + n, b"A1", b'{"n": %d}' % n)
            for n in range(first, first + count)]  # fmt: skip


# -- archiver --------------------------------------------------------------------------------


def _crash_mid_member(root: Path, batch: list[LogRecord]) -> Path:
    """A writer that wrote part of a member and died: the bytes reached the file, the end of
    the member never did."""
    writer = SegmentWriter(root)
    for record in batch:
        path = writer.write(record)
    segment = writer._open[path]
    segment.gz.flush()  # compressed data out, no trailer: what a kill leaves
    segment.raw.flush()
    segment.raw.close()
    writer._open.clear()
    return path


def test_a_segment_torn_by_a_crash_reads_whole_after_the_next_run(tmp_path: Path) -> None:
    first = SegmentWriter(tmp_path)
    for record in records(0, 10):
        path = first.write(record)
    first.flush()
    _crash_mid_member(tmp_path, records(10, 500))  # never committed: Kafka sends them again
    again = SegmentWriter(tmp_path)
    for record in records(10, 20):
        again.write(record)
    again.flush()
    assert [r.offset for r in iter_segment(path)] == list(range(30))


# -- webhook: schemes, redirects, time per batch ----------------------------------------------


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://hook.example/x", "hook.example/x"])
def test_a_webhook_that_is_not_http_is_refused_before_routing(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["alerts", "route", "--webhook", url, "--undelivered",
                 str(tmp_path / "u.jsonl")])  # fmt: skip
    assert code == 2


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """POST answers 302 to /landed; anything reaching /landed counts as followed."""

    followed: list[str] = []  # noqa: RUF012 - one server per test, reset by the fixture

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/landed":
            _Redirecting.followed.append("POST")
            self.send_response(200)
        else:
            self.send_response(302)
            self.send_header("Location", "/landed")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        _Redirecting.followed.append("GET")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def redirecting_server() -> Iterator[str]:
    _Redirecting.followed = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_redirect_is_not_followed(redirecting_server: str) -> None:
    urllib_post(redirecting_server, b"{}", {"Content-Type": "application/json"}, 5.0)
    assert _Redirecting.followed == []


def test_a_redirect_is_a_failed_delivery(redirecting_server: str, tmp_path: Path) -> None:
    log = UndeliveredLog(tmp_path / "u.jsonl")
    sink = WebhookSink(redirecting_server, log, retries_max=0)
    try:
        assert sink.deliver(alert(1)) is Delivery.UNDELIVERED
    finally:
        log.close()


class SlowEndpoint(FakeEndpoint):
    """Every request waits out its whole timeout, then fails: a webhook that hangs."""

    def __init__(self, clock: FakeTime) -> None:
        super().__init__([])
        self.clock = clock

    def __call__(self, url: str, body: bytes, headers: Any, timeout_s: float) -> int:
        self.clock.now += timeout_s
        raise TimeoutError("timed out")


BATCH_TIME_MAX_S = 30.0


def test_a_hanging_webhook_holds_a_batch_no_longer_than_its_bound(tmp_path: Path) -> None:
    clock = FakeTime()
    log = UndeliveredLog(tmp_path / "u.jsonl")
    sink = WebhookSink("http://hook.invalid/a", log, retries_max=5, timeout_s=5.0,
                       down_for_s=0.001, batch_time_max_s=BATCH_TIME_MAX_S,
                       post=SlowEndpoint(clock), sleep=clock.sleep, clock=clock.clock)  # fmt: skip
    try:
        for n in range(100):  # RouterOptions.poll_records_max
            sink.deliver(alert(n))
    finally:
        log.close()
    assert clock.now <= BATCH_TIME_MAX_S


# -- undelivered rows: redelivery beside a running router, no secrets --------------------------


def test_rows_a_router_writes_during_redelivery_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "undelivered.jsonl"
    router_log = UndeliveredLog(path)
    router_log.record("webhook", "http://hook.invalid", "HTTP 503", 1, alert(1))
    router_log.flush()

    def endpoint(url: str, body: bytes, headers: Any, timeout_s: float) -> int:
        # The router's next batch fails while redelivery is sending: its row must survive.
        router_log.record("webhook", "http://hook.invalid", "HTTP 503", 1, alert(2))
        router_log.flush()
        return 200

    sink = WebhookSink("http://hook.invalid/a", UndeliveredLog(tmp_path / "unused.jsonl"),
                       post=endpoint)  # fmt: skip
    redeliver(path, sink)
    router_log.close()
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [row["alert"]["alert_id"] for row in rows] == ["al-2"]


def test_redelivery_waits_for_a_router_batch_in_progress(tmp_path: Path) -> None:
    path = tmp_path / "undelivered.jsonl"
    router_log = UndeliveredLog(path)
    router_log.record("webhook", "http://hook.invalid", "HTTP 503", 1, alert(1))  # holds the lock
    done = threading.Event()
    sink = WebhookSink("http://hook.invalid/a", UndeliveredLog(tmp_path / "unused.jsonl"),
                       post=FakeEndpoint([]))  # fmt: skip
    thread = threading.Thread(target=lambda: (redeliver(path, sink), done.set()))
    thread.start()
    waited = not done.wait(0.5)
    router_log.close()
    thread.join(10)
    assert waited


SECRET_URL = "https://user:pa55word@hooks.example.com/services/T000/B000/XXXXSECRET?token=abc"


@pytest.mark.parametrize("secret", ["pa55word", "XXXXSECRET", "token=abc"])
def test_an_undelivered_row_does_not_carry_the_webhook_secret(
    secret: str, tmp_path: Path
) -> None:
    log = UndeliveredLog(tmp_path / "u.jsonl")
    sink = WebhookSink(SECRET_URL, log, retries_max=0, post=FakeEndpoint([503]))
    sink.deliver(alert(1))
    log.close()
    assert secret not in (tmp_path / "u.jsonl").read_text()
