"""The replay report's inquiries section (issue 15): inquiries by verdict, faults confirmed and
time to answer, from the records of ``limit.inquiries`` given with ``--inquiries FILE``.

A record is what a worker publishes (streams/inquiries.py, docs/support.md):
``{"inquiry_id", "received_at", "request": {...}, "answer": {...}, "answer_ms"}``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from eventlog import S, credit_line, displayed, line
from test_report import attr, empty, parse, text

from limitsync.cli import main
from limitsync.inquiry_report import InquirySummary, summarize_inquiries
from limitsync.replay import InputRecord
from limitsync.report import render_report


def inquiry(
    account: str = "acct-1",
    verdict: str = "correct",
    action: str = "none",
    answer_ms: float | None = 5.0,
    n: int = 0,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "inquiry_id": f"inq-{account}-{n}",
        "received_at": "2026-11-29T10:00:00.000000+08:00",
        "request": {"account_id": account, "displayed_available": 600_00, "channel": "app",
                    "text": None},
        "answer": {"inquiry_id": f"inq-{account}-{n}", "account_id": account,
                   "verdict": verdict, "action": action},
    }  # fmt: skip
    if answer_ms is not None:
        record["answer_ms"] = answer_ms
    return record


def summary_of(records: list[dict[str, Any] | bytes], account: str | None = None) -> InquirySummary:
    return summarize_inquiries(
        (InputRecord(r if isinstance(r, bytes) else orjson.dumps(r)) for r in records),
        "inquiries.jsonl",
        account,
    )


MIXED = [
    inquiry(verdict="correct", n=1),
    inquiry(verdict="correct", n=2),
    inquiry(verdict="fault", action="cache_rewritten", n=3),
    inquiry(verdict="fault", action="alert_opened", n=4),
    inquiry(verdict="fault", action="none", n=5),  # a change still on its way
    inquiry(account="nobody", verdict="unknown_account", n=6),
]


def page_of(summary: InquirySummary) -> Any:
    return parse(render_report(replace(empty(), inquiries=summary)))


# --- the figures ---------------------------------------------------------------------------


def test_inquiries_are_counted_by_verdict() -> None:
    assert dict(summary_of(MIXED).by_verdict) == {"correct": 2, "fault": 3, "unknown_account": 1}


def test_a_fault_is_confirmed_when_the_cache_was_rewritten_or_an_alert_opened() -> None:
    assert summary_of(MIXED).faults_confirmed == 2


def test_a_fault_whose_change_was_on_its_way_is_not_confirmed() -> None:
    records = [inquiry(verdict="fault", action="none")]
    assert summary_of(records).faults_confirmed == 0


def test_time_to_answer_is_p50_p99_and_max_of_answer_ms_by_nearest_rank() -> None:
    records = [inquiry(answer_ms=float(ms), n=ms) for ms in range(1, 201)]
    assert summary_of(records).answer_times_ms() == {"p50": 100.0, "p99": 198.0, "max": 200.0}


def test_an_inquiry_without_answer_ms_is_counted_but_untimed() -> None:
    summary = summary_of([inquiry(answer_ms=None), inquiry(answer_ms=3.0, n=1)])
    assert (summary.inquiries, len(summary.answer_ms), summary.untimed) == (2, 1, 1)


def test_no_timed_inquiry_gives_no_time_to_answer() -> None:
    assert summary_of([inquiry(answer_ms=None)]).answer_times_ms() is None


def test_a_record_that_is_not_an_inquiry_is_unreadable_and_not_counted() -> None:
    summary = summary_of([b"not json", b'{"answer": {}}', b"[1]", inquiry()])
    assert (summary.unreadable, summary.inquiries) == (3, 1)


def test_a_focused_report_counts_only_that_accounts_inquiries() -> None:
    assert summary_of(MIXED, account="nobody").inquiries == 1


# --- the section ---------------------------------------------------------------------------


def test_section_shows_the_counts_by_verdict() -> None:
    page = page_of(summary_of(MIXED))
    shown = [text(page, f"inquiries-{v}") for v in ("correct", "fault", "unknown_account")]
    assert (text(page, "inquiries-total"), shown) == ("6", ["2", "3", "1"])


def test_section_shows_the_faults_confirmed_of_all_faults() -> None:
    page = page_of(summary_of(MIXED))
    assert (text(page, "faults-confirmed"), attr(page, "faults-confirmed", "data-faults")) == (
        "2",
        "3",
    )


def test_section_shows_the_times_to_answer() -> None:
    page = page_of(summary_of([inquiry(answer_ms=float(ms), n=ms) for ms in (4, 8, 1500)]))
    shown = [text(page, f"answer-{k}") for k in ("p50", "p99", "max")]
    assert shown == ["8.0 ms", "1.50 s", "1.50 s"]


def test_section_says_n_a_without_timed_inquiries() -> None:
    page = page_of(summary_of([inquiry(answer_ms=None)]))
    assert text(page, "answer-p50") == "n/a"


def test_report_without_inquiries_has_no_section() -> None:
    assert 'id="inquiries"' not in render_report(empty())


# --- the commands --------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    rows = [credit_line("acct-1", 0, 10_000, 1), displayed("acct-1", S, 10_000)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line(r) + b"\n" for r in rows))
    return path


def test_replay_with_inquiries_writes_the_section(tmp_path: Path, log: Path) -> None:
    inquiries = write_jsonl(tmp_path / "inquiries.jsonl", MIXED)
    out = tmp_path / "out"
    main(["replay", "--input", str(log), "--inquiries", str(inquiries), "--out", str(out)])
    page = parse((out / "report.html").read_text(encoding="utf-8"))
    assert text(page, "inquiries-total") == "6"


def test_report_with_inquiries_writes_the_section(tmp_path: Path, log: Path) -> None:
    inquiries = write_jsonl(tmp_path / "inquiries.jsonl", MIXED)
    out = tmp_path / "report.html"
    main(["report", "--input", str(log), "--inquiries", str(inquiries), "--out", str(out)])
    assert text(parse(out.read_text(encoding="utf-8")), "faults-confirmed") == "2"


def test_replay_with_a_missing_inquiries_file_fails_before_writing(
    tmp_path: Path, log: Path
) -> None:
    out = tmp_path / "out"
    code = main(["replay", "--input", str(log), "--inquiries", str(tmp_path / "no.jsonl"),
                 "--out", str(out)])  # fmt: skip
    assert (code, out.exists()) == (2, False)
