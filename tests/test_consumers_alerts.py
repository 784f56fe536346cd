"""Alert sinks without a broker: filters, the file sink's dedupe, webhook retries, the CLI.

The router's promises rest on these pieces: an alert reaches each sink that wants it, a
restart writes nothing twice to the file, and a webhook that keeps failing hands its alerts
to the undelivered log instead of losing them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.alert_sinks import (
    AlertFilter,
    DedupeWindow,
    Delivery,
    FileSink,
    StdoutSink,
    UndeliveredLog,
    WebhookSink,
    format_alert_line,
    redeliver,
)
from limitsync.cli import main


def alert(n: int, kind: str = "mismatch.opened", severity: str = "critical",
          reason: str = "SYNC_DELAY") -> dict[str, Any]:
    return {
        "type": kind, "alert_id": f"al-{n}", "account_id": f"A{n}", "reason": reason,
        "severity": severity, "expected_available": 7_000, "displayed_available": 10_000,
        "drift": 3_000, "opened_at": "2026-11-29T10:00:10.000Z",
        "detected_at": "2026-11-29T10:01:10.001Z", "sla_seconds": 60, "age_seconds": 60,
        "evidence_event_ids": ["dd-a"],
    }


# -- filters -----------------------------------------------------------------------------------


def test_min_severity_keeps_that_severity_and_above() -> None:
    critical_only = AlertFilter(min_severity="critical")
    assert critical_only.accepts(alert(1, severity="critical"))
    assert not critical_only.accepts(alert(1, severity="major"))
    assert AlertFilter(min_severity="major").accepts(alert(1, severity="major"))
    assert AlertFilter().accepts(alert(1, severity="major"))


def test_an_unknown_severity_is_shown_rather_than_dropped() -> None:
    assert AlertFilter(min_severity="critical").accepts(alert(1, severity="catastrophic"))


def test_reasons_filter_keeps_only_those_reasons() -> None:
    only = AlertFilter(reasons=frozenset({"REPAYMENT_NOT_POSTED", "FREEZE_NOT_APPLIED"}))
    assert only.accepts(alert(1, reason="FREEZE_NOT_APPLIED"))
    assert not only.accepts(alert(1, reason="SYNC_DELAY"))


def test_an_unknown_min_severity_is_refused() -> None:
    with pytest.raises(ValueError):
        AlertFilter(min_severity="high")


# -- stdout ------------------------------------------------------------------------------------


def test_the_human_line_says_what_who_how_much() -> None:
    text = format_alert_line({**alert(3), "payment_id": "pay-1"})
    assert text.startswith("2026-11-29T10:01:10.001Z CRITICAL mismatch.opened account=A3 ")
    for part in ("SYNC_DELAY", "expected=70.00", "displayed=100.00", "drift=+30.00",
                 "age=60s", "payment=pay-1", "alert=al-3"):
        assert part in text


def test_the_human_line_names_the_source_and_what_the_cache_held() -> None:
    text = format_alert_line({**alert(3), "source": "app", "cache_available": 7_000})
    assert text.startswith(
        "2026-11-29T10:01:10.001Z CRITICAL mismatch.opened source=app account=A3 "
    )
    assert "cache=70.00" in text


def test_stdout_sink_prints_only_what_its_filter_wants() -> None:
    out = io.StringIO()
    sink = StdoutSink(AlertFilter(min_severity="critical"), stream=out)
    assert sink.deliver(alert(1, severity="major")) is Delivery.FILTERED
    assert sink.deliver(alert(2)) is Delivery.DELIVERED
    assert out.getvalue().count("\n") == 1 and "al-2" in out.getvalue()


# -- file --------------------------------------------------------------------------------------


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def test_the_file_sink_writes_each_alert_record_once_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = FileSink(path)
    assert sink.deliver(alert(1)) is Delivery.DELIVERED
    assert sink.deliver(alert(1, kind="mismatch.resolved")) is Delivery.DELIVERED  # same drift
    assert sink.deliver(alert(1)) is Delivery.DUPLICATE
    sink.close()
    again = FileSink(path)  # a restarted router gets the uncommitted records again
    assert again.deliver(alert(1)) is Delivery.DUPLICATE
    assert again.deliver(alert(2)) is Delivery.DELIVERED
    again.close()
    assert [(a["alert_id"], a["type"]) for a in read_lines(path)] == [
        ("al-1", "mismatch.opened"), ("al-1", "mismatch.resolved"), ("al-2", "mismatch.opened"),
    ]


def test_the_file_sink_cuts_a_partial_line_left_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(orjson.dumps(alert(1)) + b"\n" + orjson.dumps(alert(2))[:30])
    sink = FileSink(path)
    assert sink.deliver(alert(1)) is Delivery.DUPLICATE
    assert sink.deliver(alert(2)) is Delivery.DELIVERED  # it was never committed whole
    sink.close()
    assert [a["alert_id"] for a in read_lines(path)] == ["al-1", "al-2"]


def test_the_file_sink_reads_only_a_bounded_tail(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(alert(n)) + b"\n" for n in range(100)))
    sink = FileSink(path, tail_bytes_max=2_000)
    assert sink.deliver(alert(99)) is Delivery.DUPLICATE  # recent: remembered
    assert sink.deliver(alert(0)) is Delivery.DELIVERED  # long ago: out of the window
    sink.close()


def test_the_dedupe_window_forgets_the_oldest_key() -> None:
    window = DedupeWindow(keys_max=2)
    for n in range(3):
        window.add((f"a{n}", "t"))
    assert ("a0", "t") not in window and ("a2", "t") in window and len(window) == 2


# -- webhook -----------------------------------------------------------------------------------


class FakeEndpoint:
    """Answers with the given statuses in turn (an exception is raised), then 200."""

    def __init__(self, answers: list[int | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        self.calls.append((url, orjson.loads(body), dict(headers)))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def logs() -> Iterator[list[UndeliveredLog]]:
    """Undelivered logs the test opened; the router's caller owns and closes them."""
    opened: list[UndeliveredLog] = []
    yield opened
    for log in opened:
        log.close()


def webhook(
    tmp_path: Path, endpoint: FakeEndpoint, clock: FakeTime, logs: list[UndeliveredLog],
    **kw: Any,
) -> WebhookSink:
    options: dict[str, Any] = {
        "retries_max": 4, "backoff_initial_s": 0.5, "backoff_max_s": 2.0, "down_for_s": 10.0,
        **kw,
    }
    log = UndeliveredLog(tmp_path / "undelivered.jsonl")
    logs.append(log)
    return WebhookSink(
        "http://hook.invalid/alerts", log, post=endpoint, sleep=clock.sleep, clock=clock.clock,
        **options,
    )


def test_webhook_retries_with_capped_backoff_until_it_answers(
    tmp_path: Path, logs: list[UndeliveredLog]
) -> None:
    endpoint, clock = FakeEndpoint([ConnectionRefusedError(), 503, 502, 500]), FakeTime()
    sink = webhook(tmp_path, endpoint, clock, logs)
    assert sink.deliver(alert(1)) is Delivery.DELIVERED
    assert clock.sleeps == [0.5, 1.0, 2.0, 2.0]
    _, body, headers = endpoint.calls[-1]
    assert body == alert(1)
    assert headers["Idempotency-Key"] == "al-1:mismatch.opened"
    assert headers["Content-Type"] == "application/json"


def test_a_webhook_that_keeps_failing_sends_the_alert_to_undelivered(
    tmp_path: Path, logs: list[UndeliveredLog]
) -> None:
    endpoint, clock = FakeEndpoint([503] * 5), FakeTime()
    sink = webhook(tmp_path, endpoint, clock, logs)
    assert sink.deliver(alert(1)) is Delivery.UNDELIVERED
    assert len(endpoint.calls) == 5  # the first try and retries_max retries
    # Down now: the next alert does not wait through the retries again.
    assert sink.deliver(alert(2)) is Delivery.UNDELIVERED
    assert len(endpoint.calls) == 5
    sink.flush()
    rows = read_lines(tmp_path / "undelivered.jsonl")
    assert [r["alert"]["alert_id"] for r in rows] == ["al-1", "al-2"]
    assert rows[0]["sink"] == "webhook" and rows[0]["error"] == "HTTP 503"
    assert rows[0]["attempts"] == 5
    clock.now += 10.1  # after down_for_s it is tried again
    assert sink.deliver(alert(3)) is Delivery.DELIVERED


def test_a_client_error_is_not_retried(
    tmp_path: Path, logs: list[UndeliveredLog]
) -> None:
    endpoint, clock = FakeEndpoint([400]), FakeTime()
    assert webhook(tmp_path, endpoint, clock, logs).deliver(alert(1)) is Delivery.UNDELIVERED
    assert len(endpoint.calls) == 1 and clock.sleeps == []


def test_a_filtered_alert_is_not_posted(
    tmp_path: Path, logs: list[UndeliveredLog]
) -> None:
    endpoint, clock = FakeEndpoint([]), FakeTime()
    only_x = AlertFilter(reasons=frozenset({"X"}))
    sink = webhook(tmp_path, endpoint, clock, logs, alert_filter=only_x)
    assert sink.deliver(alert(1)) is Delivery.FILTERED
    assert endpoint.calls == []


def test_redeliver_sends_the_undelivered_again_and_keeps_what_still_fails(
    tmp_path: Path, logs: list[UndeliveredLog]
) -> None:
    endpoint, clock = FakeEndpoint([503] * 10), FakeTime()
    sink = webhook(tmp_path, endpoint, clock, logs, retries_max=0)
    sink.deliver(alert(1))
    sink.deliver(alert(2))
    sink.close()
    path = tmp_path / "undelivered.jsonl"
    retry = webhook(tmp_path, FakeEndpoint([503]), FakeTime(), logs, retries_max=0)
    assert redeliver(path, retry) == (1, 1)  # al-1 fails once more, al-2 goes through
    assert [r["alert"]["alert_id"] for r in read_lines(path)] == ["al-1"]
    assert redeliver(path, webhook(tmp_path, FakeEndpoint([]), FakeTime(), logs)) == (1, 0)
    assert path.read_bytes() == b""


# -- CLI ---------------------------------------------------------------------------------------


def test_alerts_route_without_a_sink_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "route"]) == 2
    assert "at least one sink" in capsys.readouterr().err


def test_the_consumer_commands_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["alerts", "route", "--help"], ["alerts", "tail", "--help"],
                 ["alerts", "redeliver", "--help"], ["archive", "--help"], ["report", "--help"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
    assert "--min-severity" in capsys.readouterr().out


def test_report_writes_only_the_report(tmp_path: Path) -> None:
    from limitsync.simulate import simulate

    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(x + b"\n" for x in simulate(accounts=10, hours=1, seed=2)))
    out = tmp_path / "rep" / "report.html"
    assert main(["report", "--input", str(log), "--out", str(out)]) == 0
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]


def test_report_of_a_missing_input_exits_2(tmp_path: Path) -> None:
    assert main(["report", "--input", str(tmp_path / "x.jsonl"), "--out",
                 str(tmp_path / "r.html")]) == 2
    assert not (tmp_path / "r.html").exists()
