"""The HTML incident report: numbers, escaping, money, nines, caps, focus, empty data."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest

from limitsync.report import (
    TIMELINE_ROWS_MAX,
    TIMELINES_MAX,
    ReportData,
    TimelinePoint,
    format_yuan,
    nines,
    render_report,
)

EVIL = "<script>alert('x')</script>"
VOID_TAGS = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "wbr"}


class _Elements(HTMLParser):
    """Every element with an id: its attributes and its text; plus all elements' attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, tuple[dict[str, str], str]] = {}
        self.all: list[tuple[str, dict[str, str]]] = []
        self._stack: list[tuple[str, dict[str, str], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        self.all.append((tag, attributes))
        if tag not in VOID_TAGS:
            self._stack.append((tag, attributes, []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.all.append((tag, {key: value or "" for key, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, attributes, texts = self._stack.pop()
            text = "".join(texts)
            if self._stack:
                self._stack[-1][2].append(text)
            if "id" in attributes:
                self.by_id[attributes["id"]] = (attributes, text)
            if open_tag == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._stack:
            self._stack[-1][2].append(data)


def parse(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    parser.close()
    return parser


def text(page: _Elements, element_id: str) -> str:
    return page.by_id[element_id][1].strip()


def attr(page: _Elements, element_id: str, name: str) -> str:
    return page.by_id[element_id][0][name]


def alert(
    kind: str,
    alert_id: str,
    account: str,
    reason: str,
    severity: str,
    opened_at: str,
    detected_at: str,
    **extra: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": kind,
        "alert_id": alert_id,
        "source": "app",
        "account_id": account,
        "reason": reason,
        "severity": severity,
        "expected_available": 700_000,
        "displayed_available": 1_000_000,
        "drift": 300_000,
        "opened_at": opened_at,
        "detected_at": detected_at,
        "sla_seconds": 60,
        "age_seconds": 61,
        "evidence_event_ids": ["e3"],
    }
    record.update(extra)
    return record


def points(account: str) -> list[TimelinePoint]:
    at = "2026-11-29T10:0{}+08:00"
    return [
        TimelinePoint(
            at.format("0:00"), f"{account}-1", "credit_line.changed", 1_000_000, None, "line"
        ),
        TimelinePoint(
            at.format("0:01"), f"{account}-2", "limit.displayed", 1_000_000, 1_000_000, ""
        ),
        TimelinePoint(
            at.format("1:00"), f"{account}-3", "drawdown.booked", 700_000, 1_000_000, "d"
        ),
        TimelinePoint(at.format("1:30"), f"{account}-4", "limit.displayed", 700_000, 700_000, ""),
        TimelinePoint(at.format("2:00"), f"{account}-5", "repayment.posted", 712_345, 700_000, "r"),
    ]


T = "2026-11-29T10:{}+08:00"


def sample() -> ReportData:
    alerts = [
        alert(
            "mismatch.opened",
            "a1",
            "acct-1",
            "SYNC_DELAY",
            "critical",
            T.format("01:00"),
            T.format("02:00.5"),
        ),
        alert(
            "mismatch.resolved",
            "a1",
            "acct-1",
            "SYNC_DELAY",
            "critical",
            T.format("01:00"),
            T.format("02:00.5"),
            resolved_at=T.format("01:30"),
            resolution="synced",
        ),
        alert(
            "mismatch.opened",
            "a2",
            "acct-1",
            "CACHE_MISSING",
            "major",
            T.format("02:00"),
            T.format("03:01"),
        ),
        alert(
            "mismatch.escalated",
            "a2",
            "acct-1",
            "CACHE_MISSING",
            "major",
            T.format("02:00"),
            T.format("12:01"),
        ),
        alert(
            "mismatch.opened",
            "a3",
            "acct-2",
            "CACHE_DIVERGED",
            "critical",
            T.format("01:00"),
            T.format("02:01"),
        ),
        alert(
            "mismatch.opened",
            "a4",
            EVIL,
            "FREEZE_NOT_APPLIED",
            "critical",
            T.format("00:00"),
            T.format("05:01"),
        ),
        alert(
            "mismatch.resolved",
            "a4",
            EVIL,
            "FREEZE_NOT_APPLIED",
            "critical",
            T.format("00:00"),
            T.format("05:01"),
            resolved_at=T.format("06:00"),
            resolution="auto_healed",
        ),
    ]
    accounts = [
        {
            "account_id": account,
            "credit_line": 1_000_000,
            "outstanding": 287_655,
            "status": "active",
            "expected_available": 712_345,
            "displayed_available": None,
        }
        for account in ("acct-1", "acct-2", EVIL, "quiet")
    ]
    return ReportData(
        title=f"Incident {EVIL}",
        generated_from="events.jsonl",
        sla_s=60,
        alerts=alerts,
        accounts=accounts,
        timelines={account: points(account) for account in ("acct-1", "acct-2", EVIL)},
        sync_latencies_s={
            "app": [0.2] * 996 + [1.0, 10.0, 60.0, 60.5] + [math.inf, math.nan],
            "cache": [0.1] * 9 + [math.inf],
        },
        dead_letters_by_reason={"invalid": 3, "conflict": 1},
        events_total=12_345,
        explanations={
            EVIL: {
                "credit_line": 1_000_000,
                "changes": [{"code": "RESCORE_DECREASE", "delta": -5_050, "reasons": [EVIL]}],
            }
        },
    )


def empty() -> ReportData:
    return ReportData(
        title="Empty",
        generated_from="empty.jsonl",
        sla_s=60,
        alerts=[],
        accounts=[],
        timelines={},
        sync_latencies_s={},
        dead_letters_by_reason={},
        events_total=0,
        explanations={},
    )


# --- money and nines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "shown"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (99, "0.99"),
        (100, "1.00"),
        (123_456, "1,234.56"),
        (-5, "-0.05"),
        (-550, "-5.50"),
        (10**20 + 1, "1,000,000,000,000,000,000.01"),  # exact: no float ever involved
    ],
)
def test_format_yuan(fen: int, shown: str) -> None:
    assert format_yuan(fen) == shown


@pytest.mark.parametrize("bad", [1.5, True, "100", None])
def test_format_yuan_rejects_non_integers(bad: Any) -> None:
    with pytest.raises(TypeError):
        format_yuan(bad)


@pytest.mark.parametrize(
    ("share", "expected"),
    [(0.0, 0.0), (0.9, 1.0), (0.99, 2.0), (0.999, 3.0), (0.99999, 5.0), (0.9999999999, 10.0)],
)
def test_nines_exact_for_round_shares(share: float, expected: float) -> None:
    assert nines(share) == expected


def test_nines_edges() -> None:
    assert nines(1.0) == math.inf
    assert nines(0.5) == pytest.approx(math.log10(2))
    assert 3.0 < nines(0.9995) < 3.31
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError):
            nines(bad)


# --- numbers on the page --------------------------------------------------------------------


def test_header_totals_match_the_data() -> None:
    page = parse(render_report(sample()))
    assert text(page, "events-total") == "12345"
    assert text(page, "alerts-total") == "7"
    assert text(page, "alerts-opened") == "4"
    assert text(page, "alerts-escalated") == "1"
    assert text(page, "alerts-resolved") == "2"
    assert text(page, "mismatches-total") == "4"
    assert text(page, "drifts-open") == "2"
    assert text(page, "dead-letters-total") == "4"
    assert text(page, "dead-letters-invalid") == "3"
    assert text(page, "dead-letters-conflict") == "1"
    assert text(page, "accounts-total") == "4"
    assert text(page, "accounts-alerted") == "3"
    assert text(page, "sla-seconds") == "60"


def test_reasons_and_severities_count_each_drift_once() -> None:
    page = parse(render_report(sample()))
    assert text(page, "severity-critical") == "3"
    assert text(page, "severity-major") == "1"
    assert text(page, "severity-total") == "4"
    rows = [a for tag, a in page.all if tag == "tr" and "data-reason" in a]
    assert [row["data-reason"] for row in rows] == [
        "REPAYMENT_NOT_POSTED",
        "SYNC_DELAY",
        "FREEZE_NOT_APPLIED",
        "CACHE_MISSING",
        "CACHE_DIVERGED",
    ]


def test_unexplained_share_counts_cache_diverged() -> None:
    page = parse(render_report(sample()))
    assert attr(page, "unexplained-share", "data-unexplained") == "1"
    assert attr(page, "unexplained-share", "data-mismatches") == "4"
    assert float(attr(page, "unexplained-share", "data-share")) == 0.25
    assert text(page, "unexplained-share") == "25.00%"
    assert text(page, "unexplained-headline") == "25.00%"


def test_latency_buckets_and_slo() -> None:
    page = parse(render_report(sample()))
    # 996 x 0.2 s and 1.0 s are <= 1 s; 10 s is 1-10 s; 60 s is within the SLA (over = strictly
    # greater); 60.5 s is over; inf and nan never reached the display.
    assert text(page, "latency-app-le_1s") == "997"
    assert text(page, "latency-app-le_10s") == "1"
    assert text(page, "latency-app-le_sla") == "1"
    assert text(page, "latency-app-over_sla") == "1"
    assert text(page, "latency-app-never") == "2"
    assert text(page, "changes-total-app") == "1002"
    assert attr(page, "slo-app-1s", "data-count") == "997"
    assert attr(page, "slo-app-10s", "data-count") == "998"
    assert attr(page, "slo-app-sla", "data-count") == "999"
    assert attr(page, "slo-app-sla", "data-total") == "1002"
    share = 999 / 1002
    assert float(attr(page, "slo-app-sla", "data-share")) == share
    assert float(attr(page, "slo-app-sla", "data-nines")) == pytest.approx(nines(share), abs=1e-6)
    assert text(page, "slo-app-sla") == "2.5"  # 2.52 nines, floored to one decimal
    assert text(page, "share-app-sla") == "99.70%"


def test_slo_three_nines_and_all_displayed() -> None:
    data = empty()
    data.sync_latencies_s = {"app": [0.5] * 999 + [30.0]}
    page = parse(render_report(data))
    assert text(page, "slo-app-1s") == "3.0"
    assert text(page, "share-app-1s") == "99.90%"
    assert text(page, "slo-app-sla") == "∞"
    assert attr(page, "slo-app-sla", "data-nines") == "inf"
    assert text(page, "share-app-sla") == "100.00%"


def test_share_near_one_is_not_rounded_to_100_percent() -> None:
    data = empty()
    data.sync_latencies_s = {"app": [0.5] * 99_999 + [math.inf]}
    assert text(parse(render_report(data)), "share-app-1s") == "99.999%"


def test_longest_drifts_measured_from_pairs_and_to_the_end_of_data() -> None:
    page = parse(render_report(sample()))
    rows = [a for tag, a in page.all if tag == "tr" and "data-alert-id" in a]
    got = [(row["data-alert-id"], float(row["data-seconds"])) for row in rows]
    # The data ends at the last detected/resolved time: 10:12:01.
    assert got == [
        ("a3", 661.0),  # still open: 10:01:00 -> 10:12:01
        ("a2", 601.0),  # still open (escalated): 10:02:00 -> 10:12:01
        ("a4", 360.0),  # resolved: 10:00:00 -> 10:06:00
        ("a1", 30.0),  # resolved: 10:01:00 -> 10:01:30
    ]


def by_source() -> ReportData:
    """An app drift (resolved), a cache drift (escalated, open) and an unposted payment."""
    data = empty()
    opened = "2026-11-29T10:00:00+08:00"
    data.alerts = [
        alert("mismatch.opened", "app-1", "acct-1", "SYNC_DELAY", "major", opened,
              T.format("01:01")),
        alert("mismatch.resolved", "app-1", "acct-1", "SYNC_DELAY", "major", opened,
              T.format("01:01"), resolved_at=T.format("02:00"), resolution="synced"),
        alert("mismatch.opened", "cache-1", "acct-2", "CACHE_DIVERGED", "critical", opened,
              T.format("01:01"), source="cache"),
        alert("mismatch.escalated", "cache-1", "acct-2", "CACHE_DIVERGED", "critical", opened,
              T.format("01:01"), source="cache", age_seconds=600),
        alert("mismatch.opened", "pay-1", "acct-3", "REPAYMENT_NOT_POSTED", "major", opened,
              T.format("30:00"), payment_id="p1"),
    ]
    del data.alerts[-1]["source"]  # a clearing watch's alert has none
    return data


def test_drifts_are_counted_per_source() -> None:
    page = parse(render_report(by_source()))
    counts = {
        (source, key): text(page, f"source-{source}-{key}")
        for source in ("app", "cache", "payments")
        for key in ("drifts", "critical", "escalated", "open")
    }
    assert counts == {
        ("app", "drifts"): "1", ("app", "critical"): "0", ("app", "escalated"): "0",
        ("app", "open"): "0",
        ("cache", "drifts"): "1", ("cache", "critical"): "1", ("cache", "escalated"): "1",
        ("cache", "open"): "1",
        ("payments", "drifts"): "1", ("payments", "critical"): "0",
        ("payments", "escalated"): "0", ("payments", "open"): "1",
    }


def test_longest_drifts_are_listed_per_source() -> None:
    page = parse(render_report(by_source()))
    tables: dict[str, list[str]] = {}
    current = ""
    for tag, attributes in page.all:
        if tag == "div" and attributes.get("id", "").startswith("longest-"):
            current = attributes["id"].removeprefix("longest-")
        elif tag == "tr" and "data-alert-id" in attributes:
            tables.setdefault(current, []).append(attributes["data-alert-id"])
    assert tables == {"app": ["app-1"], "cache": ["cache-1"], "payments": ["pay-1"]}


def test_each_source_has_its_own_consistency_slo() -> None:
    data = empty()
    data.sync_latencies_s = {"app": [0.5] * 999 + [30.0], "cache": [0.5] * 9 + [math.inf]}
    page = parse(render_report(data))
    assert [text(page, f"slo-{source}-1s") for source in ("app", "cache")] == ["3.0", "1.0"]


def test_escalation_is_placed_when_raised_not_at_the_breach() -> None:
    # An escalation keeps the breach's detected_at; it was raised at opened_at + age_seconds.
    data = empty()
    opened, detected = "2026-11-29T10:00:00+08:00", "2026-11-29T10:01:01+08:00"
    data.alerts = [
        alert("mismatch.opened", "a1", "acct-1", "SYNC_DELAY", "major", opened, detected),
        alert(
            "mismatch.escalated",
            "a1",
            "acct-1",
            "SYNC_DELAY",
            "major",
            opened,
            detected,
            age_seconds=600,
        ),
    ]
    data.timelines = {"acct-1": points("acct-1")}
    page = render_report(data)
    assert "mismatch.escalated app SYNC_DELAY (major) alert a1 at 2026-11-29T10:10:00+08:00" in page
    assert "mismatch.opened app SYNC_DELAY (major) alert a1 at 2026-11-29T10:01:01+08:00" in page


def test_money_on_the_page_is_yuan_with_two_decimals() -> None:
    page = render_report(sample())
    assert "7,123.45" in page  # 712_345 fen
    assert "3,000.00" in page  # drift of 300_000 fen
    assert "-50.50" in page  # a delta inside an explanation
    assert "712345" not in page and "7123.45" not in page


def test_alerts_over_time_bucket_width_is_bounded() -> None:
    page = parse(render_report(sample()))
    width = int(attr(page, "time-bucket-seconds", "data-seconds"))
    span_s = 12 * 60 + 1 - 61  # detected_at from 10:02:00.5 to 10:12:01
    assert span_s / width < 48


# --- escaping, determinism, validity -------------------------------------------------------


def test_data_is_escaped_everywhere() -> None:
    page = render_report(sample())
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    parsed = parse(page)
    sections = [a for tag, a in parsed.all if tag == "section" and a.get("data-account") == EVIL]
    assert len(sections) == 1  # the attribute round-trips to the original id


def test_page_is_self_contained_and_svgs_are_well_formed() -> None:
    page = render_report(sample())
    assert "Content-Security-Policy" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL)
    assert len(svgs) >= 5  # reasons, over time, latency, and one timeline per account
    for svg in svgs:
        ET.fromstring(svg)


def test_output_is_deterministic() -> None:
    assert render_report(sample()) == render_report(sample())


def test_empty_data_renders() -> None:
    page_text = render_report(empty())
    page = parse(page_text)
    assert text(page, "alerts-total") == "0"
    assert text(page, "events-total") == "0"
    assert text(page, "dead-letters-total") == "0"
    assert text(page, "unexplained-share") == "n/a"
    assert text(page, "slo-app-sla") == "n/a"
    assert attr(page, "slo-app-sla", "data-share") == ""
    assert "No account alerted." in page_text


# --- caps and focus ----------------------------------------------------------------------


def many_accounts(count: int) -> ReportData:
    data = empty()
    for index in range(count):
        account = f"acct-{index:03d}"
        minutes = index % 59 + 1
        data.alerts.append(
            alert(
                "mismatch.opened",
                f"a{index}",
                account,
                "SYNC_DELAY",
                "major",
                "2026-11-29T10:00:00+08:00",
                f"2026-11-29T10:{minutes:02d}:00+08:00",
            )
        )
        data.alerts.append(
            alert(
                "mismatch.resolved",
                f"a{index}",
                account,
                "SYNC_DELAY",
                "major",
                "2026-11-29T10:00:00+08:00",
                f"2026-11-29T10:{minutes:02d}:00+08:00",
                resolved_at=f"2026-11-29T10:{minutes:02d}:00+08:00",
                resolution="synced",
            )
        )
        data.timelines[account] = points(account)
    return data


def test_timelines_are_capped_to_the_longest_drifts() -> None:
    page = parse(render_report(many_accounts(TIMELINES_MAX + 10)))
    shown = [a["data-account"] for tag, a in page.all if tag == "section" and "data-account" in a]
    assert len(shown) == TIMELINES_MAX
    assert attr(page, "timelines-capped", "data-total") == str(TIMELINES_MAX + 10)
    assert shown[0] == "acct-058"  # 59 minutes, the longest
    assert "acct-059" not in shown  # 1 minute, among the shortest
    assert "drifts-capped-app" in page.by_id


def test_long_timeline_table_is_capped() -> None:
    data = many_accounts(1)
    base = data.timelines["acct-000"][0]
    data.timelines["acct-000"] = [base] * (TIMELINE_ROWS_MAX + 123)
    page = render_report(data)
    assert "… 123 records omitted …" in page


def test_focus_narrows_sections_to_one_account() -> None:
    data = sample()
    data.focus_account = "acct-1"
    page = parse(render_report(data))
    shown = [a["data-account"] for tag, a in page.all if tag == "section" and "data-account" in a]
    assert shown == ["acct-1"]
    assert attr(page, "focus", "data-account") == "acct-1"
    assert text(page, "alerts-total") == "7"  # header totals stay those of the whole input
    assert text(page, "severity-total") == "2"  # alert sections cover the focused account
    assert attr(page, "unexplained-share", "data-mismatches") == "2"


def test_focus_on_an_account_without_alerts() -> None:
    data = sample()
    data.focus_account = "quiet"
    assert "raised no alerts" in render_report(data)
