"""The report's alert digest (limitsync/report/alerts.py) and its fast paths: the alerts read
back from a streamed replay's alerts.jsonl give the very report the records in memory give,
and each shortcut (latency counts, escaping, amounts written once) writes what the plain
way writes."""

from __future__ import annotations

import html
import math
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from eventlog import S, credit_line, displayed, drawdown, line
from test_report import EVIL, alert, sample

from limitsync.cli import main
from limitsync.outputs import AlertTap, read_alerts_for_report, write_outputs
from limitsync.replay import InputRecord, OutputFiles, ReplayOptions, run_replay
from limitsync.report import TIMELINES_MAX, digest_alerts, render_report
from limitsync.report.latency import _counts_one_by_one, _counts_sorted
from limitsync.report.text import Memo, esc, money_html, plain_money

T = "2026-11-29T10:{}+08:00"


def stale_apps(accounts: int) -> list[dict[str, Any]]:
    """Each account's app shows a stale value past the SLA: a drift an account."""
    events: list[dict[str, Any]] = []
    for i in range(accounts):
        account = f"A{i:03d}"
        events += [credit_line(account, 0, 10_000, 1), displayed(account, 0, 10_000)]
        events.append(drawdown(account, S, 1_000 + i))
    return [*events, displayed("Z", 10 * 3600 * S, 0)]


@pytest.mark.parametrize("account", [None, "A007"])
def test_a_streamed_replay_reports_as_the_report_command_does(
    tmp_path: Path, account: str | None
) -> None:
    # More alerted accounts than timelines: the streamed replay reads back only theirs.
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"\n".join(line(e) for e in stale_apps(TIMELINES_MAX + 5)) + b"\n")
    focus = [] if account is None else ["--account", account]
    main(["replay", "--input", str(log), "--out", str(tmp_path / "out"), *focus])
    main(["report", "--input", str(log), "--out", str(tmp_path / "report.html"), *focus])
    streamed = (tmp_path / "out" / "report.html").read_bytes()
    assert streamed == (tmp_path / "report.html").read_bytes()
    assert streamed.count(b'<section class="timeline"') == (TIMELINES_MAX if account is None else 1)


def write_alerts(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def many_alerts() -> list[dict[str, Any]]:
    records = []
    for i in range(TIMELINES_MAX + 10):
        account, opened = f"acct-{i:03d}", T.format(f"{i % 60:02d}:00")
        records.append(alert("mismatch.opened", f"a{i}", account, "SYNC_DELAY", "critical",
                             opened, T.format(f"{i % 60:02d}:01")))  # fmt: skip
        if i % 3:
            records.append(alert("mismatch.resolved", f"a{i}", account, "SYNC_DELAY",
                                 "critical", opened, T.format(f"{i % 60:02d}:01"),
                                 resolved_at=T.format(f"{i % 60:02d}:{i % 50 + 2:02d}"),
                                 resolution="synced"))  # fmt: skip
    return records


@pytest.mark.parametrize("account", [None, "acct-004"])
def test_alerts_read_back_render_as_the_records_in_memory(
    tmp_path: Path, account: str | None
) -> None:
    records = many_alerts() + sample().alerts  # type: ignore[operator]
    path = tmp_path / "alerts.jsonl"
    write_alerts(path, records)
    mine = records if account is None else [r for r in records if r["account_id"] == account]
    data = replace(sample(), timelines={}, focus_account=account)
    read_back = render_report(replace(data, alerts=read_alerts_for_report(path, account)))
    assert read_back == render_report(replace(data, alerts=mine))


def test_a_digest_read_back_holds_only_the_records_of_the_accounts_shown(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    write_alerts(path, many_alerts())
    digest = read_alerts_for_report(path)
    assert len(digest.kept) == TIMELINES_MAX
    assert digest.records_of("nobody") == []
    unshown = next(a for a in digest.where if a not in digest.kept)
    with pytest.raises(LookupError):
        digest.records_of(unshown)


def test_a_digest_for_another_focus_is_refused() -> None:
    data = sample()
    with pytest.raises(ValueError, match="focus"):
        render_report(replace(data, alerts=digest_alerts(data.alerts, "acct-1")))  # type: ignore[arg-type]


def test_a_drift_takes_its_fields_from_its_first_opened_record_and_ends_at_its_first_resolution(
) -> None:
    escalated = alert("mismatch.escalated", "a1", "acct-1", "CACHE_MISSING", "major", "",
                      T.format("01:00"))  # fmt: skip
    opened = alert("mismatch.opened", "a1", "acct-1", "SYNC_DELAY", "critical",
                   T.format("00:30"), T.format("01:00"))  # fmt: skip
    resolved = [
        alert("mismatch.resolved", "a1", "acct-1", "SYNC_DELAY", "critical", T.format("00:30"),
              T.format("01:00"), resolved_at=T.format(f"0{m}:00"), resolution=f"r{m}")
        for m in (2, 3)
    ]  # fmt: skip
    (drift,) = digest_alerts([escalated, opened, *resolved]).all_drifts
    assert (drift.reason, drift.severity, drift.escalated) == ("SYNC_DELAY", "critical", True)
    assert (drift.opened_at, drift.resolution, drift.duration_s) == (T.format("00:30"), "r2", 90.0)


def test_an_open_drift_lasts_to_the_last_time_in_the_data() -> None:
    records = [
        alert("mismatch.opened", "a1", "acct-1", "SYNC_DELAY", "critical", T.format("00:00"),
              T.format("01:00")),
        alert("mismatch.opened", "a2", "acct-2", "SYNC_DELAY", "critical", T.format("00:00"),
              T.format("01:00"), resolved_at=T.format("09:00")),
    ]  # fmt: skip
    assert [d.duration_s for d in digest_alerts(records).all_drifts] == [540.0, 540.0]


def odd_latencies(rng: random.Random) -> list[float]:
    values = [0.0, 0.5, 1.0, 1.000001, 9.99, 10.0, 10.5, 60.0, 61.0, -1.0, 7200.5]
    return [rng.choice([*values, math.inf, -math.inf, rng.uniform(-5, 100)]) for _ in range(30)]


@pytest.mark.parametrize("sla_s", [0, 1, 5, 10, 11, 60])
def test_latencies_counted_sorted_as_one_by_one(sla_s: int) -> None:
    rng = random.Random(sla_s)
    for _ in range(200):
        values = odd_latencies(rng)
        sorted_counts = Counter(_counts_sorted(sorted(values), sla_s))
        assert sorted_counts == _counts_one_by_one(values, sla_s)  # zero if missing


@pytest.mark.parametrize(
    "value", ["", "plain", "a&b", "<b>", 'say "x"', "it's", EVIL, None, 5, 2.5, True, ["<"]]
)
def test_text_is_escaped_as_html_escape_does(value: object) -> None:
    expected = html.escape("" if value is None else str(value), quote=True)
    assert esc(value) == Memo().text(value) == expected


@pytest.mark.parametrize("value", [0, 5, -5, 123_456, 2**70, None, True, "12", 1.5])
def test_amounts_written_once_read_as_written_each_time(value: object) -> None:
    memo = Memo()
    for _ in range(2):
        assert memo.money(value) == money_html(value)
        assert memo.plain_money(value) == plain_money(value)


@pytest.mark.parametrize("account", [None, "A007"])
def test_alerts_tapped_as_written_report_as_alerts_read_back(
    tmp_path: Path, account: str | None
) -> None:
    records = stale_apps(TIMELINES_MAX + 5)
    outputs = {}
    for name, tap in (("read-back", None), ("tapped", AlertTap(account))):
        out = tmp_path / name
        with OutputFiles(out, on_alert=None if tap is None else tap.add) as files:
            result = run_replay(
                (InputRecord(line(r)) for r in records), ReplayOptions(), None, files
            )
        write_outputs(result, out, ReplayOptions(), "events.jsonl", account, None, tap)
        outputs[name] = (out / "report.html").read_bytes()
    assert outputs["tapped"] == outputs["read-back"]


def test_the_tap_is_told_each_alert_with_the_length_of_its_line(tmp_path: Path) -> None:
    told: list[tuple[dict[str, Any], int]] = []
    with OutputFiles(tmp_path, on_alert=lambda r, n: told.append((r, n))) as files:
        run_replay((InputRecord(line(r)) for r in stale_apps(3)), ReplayOptions(), None, files)
    written = (tmp_path / "alerts.jsonl").read_bytes().splitlines(keepends=True)
    assert told == [(orjson.loads(w), len(w)) for w in written]


@pytest.mark.parametrize("account", [None, "A007"])
def test_the_replay_command_does_not_read_its_alerts_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, account: str | None
) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("alerts.jsonl read back")

    monkeypatch.setattr("limitsync.outputs.read_alerts_for_report", refuse)
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"\n".join(line(e) for e in stale_apps(TIMELINES_MAX + 5)) + b"\n")
    focus = [] if account is None else ["--account", account]
    assert main(["replay", "--input", str(log), "--out", str(tmp_path / "out"), *focus]) == 0


def test_alerts_tapped_for_another_focus_are_refused(tmp_path: Path) -> None:
    with OutputFiles(tmp_path) as files:
        result = run_replay(iter([]), ReplayOptions(), None, files)
    with pytest.raises(ValueError, match="focus"):
        write_outputs(result, tmp_path, ReplayOptions(), "x", "A001", None, AlertTap())
