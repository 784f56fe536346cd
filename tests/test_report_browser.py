"""The report as a browser sees it: headless Chromium loads it from disk, lays it out, shows
the numbers, raises no console error and paints a screenshot.

Needs Debian's Chromium (`apt-get install -y chromium`); skipped, saying so, without it.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from limitsync.inquiry_report import summarize_inquiries
from limitsync.replay import InputRecord
from limitsync.report import ReportData, TimelinePoint, render_report

CHROMIUM = Path(os.environ.get("LIMITSYNC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_TIMEOUT_S = 120
EVIL = "<script>alert('x')</script>"
VOID_TAGS = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "wbr"}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} not found: install Debian's Chromium with `apt-get install -y chromium`",
)


class _ById(HTMLParser):
    """Text and attributes of every element with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, tuple[dict[str, str], str]] = {}
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._stack: list[tuple[str, dict[str, str], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        self.tags.append((tag, attributes))
        if tag not in VOID_TAGS:
            self._stack.append((tag, attributes, []))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, attributes, texts = self._stack.pop()
            content = "".join(texts)
            if self._stack:
                self._stack[-1][2].append(content)
            if "id" in attributes:
                self.by_id[attributes["id"]] = (attributes, content)
            if open_tag == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._stack:
            self._stack[-1][2].append(data)


def _alert(kind: str, alert_id: str, account: str, reason: str, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": kind,
        "alert_id": alert_id,
        "account_id": account,
        "reason": reason,
        "severity": "critical",
        "expected_available": 700_000,
        "displayed_available": 1_000_000,
        "drift": 300_000,
        "opened_at": "2026-11-29T10:01:00+08:00",
        "detected_at": "2026-11-29T10:02:01+08:00",
        "sla_seconds": 60,
        "age_seconds": 61,
        "evidence_event_ids": ["e3"],
    }
    record.update(extra)
    return record


def _report_data() -> ReportData:
    accounts = ["acct-1", EVIL]
    timeline = [
        ("10:00:00", "credit_line.changed", 1_000_000, None),
        ("10:00:01", "limit.displayed", 1_000_000, 1_000_000),
        ("10:01:00", "drawdown.booked", 712_345, 1_000_000),
        ("10:03:00", "limit.displayed", 712_345, None),
        ("10:04:00", "limit.displayed", 712_345, 712_345),
    ]
    return ReportData(
        title="Browser check",
        generated_from="events.jsonl",
        sla_s=60,
        alerts=[
            _alert("mismatch.opened", "a1", "acct-1", "SYNC_DELAY"),
            _alert(
                "mismatch.resolved",
                "a1",
                "acct-1",
                "SYNC_DELAY",
                resolved_at="2026-11-29T10:04:00+08:00",
                resolution="synced",
            ),
            _alert("mismatch.opened", "a2", EVIL, "CACHE_DIVERGED"),
        ],
        accounts=[
            {
                "account_id": a,
                "credit_line": 1_000_000,
                "outstanding": 287_655,
                "status": "active",
                "expected_available": 712_345,
                "displayed_available": 712_345,
            }
            for a in accounts
        ],
        timelines={
            a: [
                TimelinePoint(f"2026-11-29T{at}+08:00", f"{a}-{i}", kind, exp, shown, kind)
                for i, (at, kind, exp, shown) in enumerate(timeline)
            ]
            for a in accounts
        },
        sync_latencies_s={"app": [0.3] * 999 + [math.inf], "cache": [0.1] * 1000},
        dead_letters_by_reason={"invalid": 2},
        events_total=4_321,
        explanations={},
    )


def _chromium(tmp_path: Path, page: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *mode,
        page.as_uri(),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _console_errors(stderr: str, page: Path) -> list[str]:
    """Console messages (script errors, CSP violations, failed loads) logged for the page."""
    return [
        line
        for line in stderr.splitlines()
        if re.search(r":CONSOLE[:(]|Uncaught|Refused to|net::ERR_", line)
        or (page.as_uri() in line and "ERROR" in line)
    ]


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    path.write_text(render_report(_report_data()), encoding="utf-8")
    return path


def test_dom_shows_the_numbers(tmp_path: Path, report_file: Path) -> None:
    result = _chromium(tmp_path, report_file, "--dump-dom")
    assert _console_errors(result.stderr, report_file) == []
    dom = _ById()
    dom.feed(result.stdout)
    dom.close()

    def text(element_id: str) -> str:
        return dom.by_id[element_id][1].strip()

    assert text("events-total") == "4321"
    assert text("alerts-total") == "3"
    assert text("alerts-opened") == "2"
    assert text("dead-letters-invalid") == "2"
    assert text("slo-app-1s") == "3.0"
    assert text("share-app-1s") == "99.90%"
    assert dom.by_id["unexplained-share"][0]["data-share"] == "0.5"
    assert text("unexplained-share") == "50.00%"
    assert "7,123.45" in result.stdout
    # The hostile account id is text, not an element: the DOM has no script at all.
    assert not any(tag == "script" for tag, _ in dom.tags)
    assert any(attrs.get("data-account") == EVIL for tag, attrs in dom.tags if tag == "section")
    assert "&lt;script&gt;" in result.stdout
    assert sum(1 for tag, _ in dom.tags if tag == "svg") >= 5


def _inquiry(n: int, verdict: str, action: str, answer_ms: float) -> InputRecord:
    record = {
        "inquiry_id": f"inq-{n}",
        "received_at": "2026-11-29T10:05:00+08:00",
        "request": {"account_id": EVIL, "displayed_available": 712_345},
        "answer": {"account_id": EVIL, "verdict": verdict, "action": action},
        "answer_ms": answer_ms,
    }
    return InputRecord(json.dumps(record).encode())


def test_dom_shows_the_inquiries(tmp_path: Path) -> None:
    records = [
        _inquiry(1, "correct", "none", 4.0),
        _inquiry(2, "fault", "cache_rewritten", 12.5),
        _inquiry(3, "fault", "alert_opened", 2_500.0),
        _inquiry(4, "unknown_account", "none", 1.0),
    ]
    data = _report_data()
    data.inquiries = summarize_inquiries(records, EVIL)
    page = tmp_path / "inquiries.html"
    page.write_text(render_report(data), encoding="utf-8")
    result = _chromium(tmp_path, page, "--dump-dom")
    dom = _ById()
    dom.feed(result.stdout)
    dom.close()
    shown = {
        key: dom.by_id[key][1].strip()
        for key in ("inquiries-total", "inquiries-fault", "faults-confirmed", "answer-max")
    }
    assert (_console_errors(result.stderr, page), shown) == (
        [],
        {
            "inquiries-total": "4",
            "inquiries-fault": "2",
            "faults-confirmed": "2",
            "answer-max": "2.50 s",
        },
    )


def test_screenshot_paints(tmp_path: Path, report_file: Path) -> None:
    shot = tmp_path / "report.png"
    result = _chromium(
        tmp_path,
        report_file,
        f"--screenshot={shot}",
        "--window-size=1280,2400",
        "--hide-scrollbars",
    )
    assert _console_errors(result.stderr, report_file) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2400)
    assert len(data) > 60_000  # a blank page of that size compresses to about 15 kB
