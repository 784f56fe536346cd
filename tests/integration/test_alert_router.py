"""The alert router against the real broker: alerts reach the file and a webhook, nothing is
lost while the webhook is down, and a restart writes nothing twice to the file.

The alerts are the real ones a replay of simulated traffic raises, produced to a topic of
the test's own; the webhook is a small ``http.server`` on a free loopback port.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from config.settings import Settings
from consumers.alert_router import RouterOptions, TailOptions, route_alerts, tail_alerts
from consumers.alert_sinks import (
    Delivery,
    FileSink,
    StdoutSink,
    UndeliveredLog,
    WebhookSink,
    alert_key,
    urllib_post,
)
from limitsync.cli import main
from limitsync.local_services import LOOPBACK, create_topics, free_port
from limitsync.replay import InputRecord, ReplayOptions, run_replay
from limitsync.simulate import simulate
from tests.integration.live_harness import write_state_file

pytestmark = pytest.mark.integration

JOIN_DEADLINE_S = 30.0
Key = tuple[str, str]


@pytest.fixture(scope="module")
def alerts() -> list[dict[str, Any]]:
    """Real alert records: a replay of simulated traffic with many faults."""
    lines = simulate(accounts=30, hours=2, seed=5, faults=0.1)
    found = run_replay((InputRecord(x) for x in lines), ReplayOptions()).alerts
    assert len(found) > 20
    assert {a["severity"] for a in found} == {"critical", "major"}
    return found


@pytest.fixture
def settings(kafka_bootstrap: str, unique_id: str) -> Settings:
    # app_id = unique_id gives the router a group id of its own ({app_id}-alert-router).
    s = Settings(
        topic_prefix=f"{unique_id}.", bootstrap_servers=kafka_bootstrap, app_id=unique_id,
    )
    create_topics(kafka_bootstrap, [s.topics["alerts"]], partitions=2)
    return s


def produce(
    settings: Settings, records: list[dict[str, Any]], extra: tuple[bytes, ...] = ()
) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        for record in records:
            producer.send(settings.topics["alerts"], key=record["account_id"].encode(),
                          value=orjson.dumps(record))
        for raw in extra:
            producer.send(settings.topics["alerts"], key=b"x", value=raw)
        producer.flush(timeout=10)
    finally:
        producer.close(timeout=5)


def keys(records: list[dict[str, Any]]) -> list[Key]:
    return sorted(alert_key(a) for a in records)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


class Receiver:
    """A webhook: records each POSTed JSON body and its headers; can start late."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}/alerts"
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def undelivered(tmp_path: Path) -> Iterator[UndeliveredLog]:
    log = UndeliveredLog(tmp_path / "undelivered.jsonl")
    yield log
    log.close()


def route(settings: Settings, sinks: list[Any], undelivered: UndeliveredLog,
          **options: Any) -> Any:
    try:
        return route_alerts(settings, sinks, undelivered, RouterOptions(**options))
    finally:
        for sink in sinks:
            sink.close()


def test_alerts_reach_the_file_the_webhook_and_stdout(
    settings: Settings, alerts: list[dict[str, Any]], receiver: Receiver,
    undelivered: UndeliveredLog, tmp_path: Path,
) -> None:
    receiver.start()
    produce(settings, alerts)
    out = io.StringIO()
    file = tmp_path / "alerts.jsonl"
    sinks = [StdoutSink(stream=out), FileSink(file), WebhookSink(receiver.url, undelivered)]
    stats = route(settings, sinks, undelivered, max_records=len(alerts))
    assert stats.records == len(alerts)
    assert keys(read_jsonl(file)) == keys(alerts)
    assert keys(receiver.bodies) == keys(alerts)
    assert {h["Idempotency-Key"] for h in receiver.headers} == {
        f"{a['alert_id']}:{a['type']}" for a in alerts
    }
    assert len(out.getvalue().splitlines()) == len(alerts)
    assert read_jsonl(undelivered.path) == []
    # Committed: the same group finds nothing left to route.
    again = route(settings, [FileSink(file)], undelivered, idle_exit_s=2.0)
    assert again.records == 0


def test_a_webhook_down_for_a_while_gets_everything_once_it_is_up(
    settings: Settings, alerts: list[dict[str, Any]], receiver: Receiver,
    undelivered: UndeliveredLog, tmp_path: Path,
) -> None:
    produce(settings, alerts)
    refused = []

    def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        try:
            return urllib_post(url, body, headers, timeout_s)
        except OSError:  # nothing listens yet: the receiver comes up after a few refusals
            refused.append(url)
            if len(refused) == 5:
                receiver.start()
            raise

    hook = WebhookSink(receiver.url, undelivered, retries_max=20, backoff_initial_s=0.05,
                       backoff_max_s=0.3, timeout_s=2.0, post=post)
    file = tmp_path / "alerts.jsonl"
    route(settings, [FileSink(file), hook], undelivered, max_records=len(alerts))
    assert len(refused) == 5
    assert keys(receiver.bodies) == keys(alerts)
    assert read_jsonl(undelivered.path) == []
    assert keys(read_jsonl(file)) == keys(alerts)


def test_a_webhook_that_stays_down_loses_nothing_and_redeliver_sends_it_later(
    settings: Settings, alerts: list[dict[str, Any]], receiver: Receiver,
    undelivered: UndeliveredLog, tmp_path: Path,
) -> None:
    produce(settings, alerts)
    hook = WebhookSink(receiver.url, undelivered, retries_max=1, backoff_initial_s=0.05,
                       backoff_max_s=0.05, down_for_s=60.0, timeout_s=1.0)
    file = tmp_path / "alerts.jsonl"
    stats = route(settings, [FileSink(file), hook], undelivered, max_records=len(alerts))
    assert stats.outcomes[("webhook", Delivery.UNDELIVERED.value)] == len(alerts)
    rows = read_jsonl(undelivered.path)
    assert keys([r["alert"] for r in rows]) == keys(alerts)
    assert keys(read_jsonl(file)) == keys(alerts)  # the other sink does not wait for it

    receiver.start()
    argv = ["alerts", "redeliver", "--undelivered", str(undelivered.path),
            "--webhook", receiver.url]
    assert main(argv) == 0
    assert keys(receiver.bodies) == keys(alerts)
    assert read_jsonl(undelivered.path) == []


class CrashAfter:
    """A sink that fails the router after ``n`` alerts, as a crash between writes would."""

    name = "crash"

    def __init__(self, n: int) -> None:
        from consumers.alert_sinks import AlertFilter

        self.filter = AlertFilter()
        self.left = n

    def deliver(self, alert: dict[str, Any]) -> Delivery:
        self.left -= 1
        if self.left < 0:
            raise RuntimeError("crash")
        return Delivery.DELIVERED

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_router_restart_writes_nothing_twice_to_the_file(
    settings: Settings, alerts: list[dict[str, Any]], undelivered: UndeliveredLog,
    tmp_path: Path,
) -> None:
    produce(settings, alerts)
    file = tmp_path / "alerts.jsonl"
    crash_at = len(alerts) // 2 + 3  # in the middle of a batch of 10
    with pytest.raises(RuntimeError, match="crash"):
        route(settings, [FileSink(file), CrashAfter(crash_at)], undelivered,
              poll_records_max=10)
    written = read_jsonl(file)
    assert len(written) == crash_at + 1  # the file got the record the crash interrupted
    stats = route(settings, [FileSink(file)], undelivered, idle_exit_s=3.0)
    assert stats.outcomes[("file", Delivery.DUPLICATE.value)] >= 1  # redelivered, not rewritten
    lines = read_jsonl(file)
    assert len(lines) == len(alerts)
    assert keys(lines) == keys(alerts)


def test_the_cli_routes_with_a_filter_per_sink_and_keeps_bad_records(
    settings: Settings, alerts: list[dict[str, Any]], receiver: Receiver, tmp_path: Path,
    unique_id: str,
) -> None:
    receiver.start()
    produce(settings, alerts, extra=(b"not json \xff",))
    file, missed = tmp_path / "critical.jsonl", tmp_path / "undelivered.jsonl"
    argv = [
        "alerts", "route", "--state-file", str(write_state_file(settings, tmp_path / "s.json")),
        "--group-id", f"{unique_id}-cli", "--file", str(file), "--file-min-severity", "critical",
        "--webhook", receiver.url, "--webhook-reasons", "SYNC_DELAY,CACHE_DIVERGED",
        "--undelivered", str(missed), "--max-records", str(len(alerts) + 1),
    ]
    assert main(argv) == 0
    assert keys(read_jsonl(file)) == keys([a for a in alerts if a["severity"] == "critical"])
    assert keys(receiver.bodies) == keys(
        [a for a in alerts if a["reason"] in ("SYNC_DELAY", "CACHE_DIVERGED")]
    )
    [bad] = read_jsonl(missed)
    assert bad["sink"] == "router" and bad["original"] == "not json \\xff"


def test_tail_shows_history_from_the_beginning_and_then_only_new_alerts(
    settings: Settings, alerts: list[dict[str, Any]],
) -> None:
    old, new = alerts[:10], alerts[10:15]
    produce(settings, old)
    history = io.StringIO()
    shown = tail_alerts(settings, TailOptions(from_beginning=True, max_records=len(old)),
                        out=history, use_rich=False)
    assert shown == len(old)
    assert sorted(line.rsplit("alert=", 1)[1] for line in history.getvalue().splitlines()) == (
        sorted(a["alert_id"] for a in old)
    )

    live, ready = io.StringIO(), threading.Event()
    options = TailOptions(max_records=len(new), idle_exit_s=10.0)
    thread = threading.Thread(
        target=tail_alerts, args=(settings, options, live, False, None, ready)
    )
    thread.start()
    assert ready.wait(JOIN_DEADLINE_S)
    time.sleep(0.5)
    produce(settings, new)
    thread.join(timeout=JOIN_DEADLINE_S + 15)
    shown_ids = sorted(line.rsplit("alert=", 1)[1] for line in live.getvalue().splitlines())
    assert shown_ids == sorted(a["alert_id"] for a in new)
