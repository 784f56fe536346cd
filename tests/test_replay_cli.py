"""``limitsync replay`` and ``limitsync schema`` on files (docs/contract.md "Replay", "Bad input").

The replay writes alerts.jsonl, dead_letters.jsonl, accounts.jsonl and a report into DIR,
byte-identical for the same input; bad records become dead letters with their original
bytes and offset, and processing goes on.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from eventlog import (
    S,
    credit_line,
    displayed,
    drawdown,
    line,
    repayment_initiated,
    repayment_posted,
    ts,
)

from limitsync.cli import main
from schemas.records import AccountLine, AlertRecord, DeadLetterRecord

ROOT = Path(__file__).resolve().parent.parent
OUTPUTS = ["alerts.jsonl", "dead_letters.jsonl", "accounts.jsonl", "report.html"]
NOT_JSON = b"this is \xff not json"
NEGATIVE = line(drawdown("A", 30 * S, -5, event_id="neg"))
CLASH = line(drawdown("A", 10 * S, 1, event_id="dd-a"))  # same id as A's drawdown

# A: display stale after a drawdown at 10 s (breach at 70.001 s, resolved at 80 s).
# B: a repayment initiated at 0 that core banking never posts (clearing SLA 7200 s); its cache
# is observed (and right), its app never.
GOOD = [
    credit_line("A", 0, 10_000, 1), displayed("A", 0, 10_000),
    drawdown("A", 10 * S, 3_000, event_id="dd-a"),
    credit_line("B", 0, 5_000, 1), drawdown("B", 0, 1_000),
    repayment_initiated("B", 0, "pay-b", 1_000), displayed("B", S, 4_000, source="cache"),
    displayed("C", 70 * S + 1, 0),
    displayed("A", 80 * S, 7_000),
    repayment_posted("C", 90 * S, 0),
]


def write_log(path: Path, rows: list[dict[str, Any] | bytes]) -> Path:
    path.write_bytes(b"".join((r if isinstance(r, bytes) else line(r)) + b"\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_bytes().splitlines()]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    rows: list[dict[str, Any] | bytes] = [*GOOD[:3], NOT_JSON, b"", *GOOD[3:6], NEGATIVE, CLASH,
                                          *GOOD[6:]]
    return write_log(tmp_path / "events.jsonl", rows)


def run(log: Path, out: Path, *extra: str) -> Path:
    assert main(["replay", "--input", str(log), "--out", str(out), *extra]) == 0
    return out


# -- outputs ---------------------------------------------------------------------------------


def test_replay_writes_every_output(log: Path, tmp_path: Path) -> None:
    out = run(log, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir() if p.name in OUTPUTS) == sorted(OUTPUTS)
    assert (out / "report.html").read_text(encoding="utf-8").strip()


def test_output_records_follow_the_contract(log: Path, tmp_path: Path) -> None:
    out = run(log, tmp_path / "out")
    for row in read_jsonl(out / "alerts.jsonl"):
        AlertRecord.model_validate(row)
    for row in read_jsonl(out / "dead_letters.jsonl"):
        DeadLetterRecord.model_validate(row)
    for row in read_jsonl(out / "accounts.jsonl"):
        AccountLine.model_validate(row)


def test_alerts_in_the_order_raised(log: Path, tmp_path: Path) -> None:
    alerts = read_jsonl(run(log, tmp_path / "out") / "alerts.jsonl")
    assert [(a["account_id"], a["type"], a["reason"]) for a in alerts] == [
        ("A", "mismatch.opened", "SYNC_DELAY"), ("A", "mismatch.resolved", "SYNC_DELAY")]


def test_accounts_has_one_line_per_account(log: Path, tmp_path: Path) -> None:
    accounts = read_jsonl(run(log, tmp_path / "out") / "accounts.jsonl")
    assert accounts == [
        {"account_id": "A", "credit_line": 10_000, "outstanding": 3_000, "status": "active",
         "expected_available": 7_000, "displayed_available": 7_000, "cache_available": None},
        {"account_id": "B", "credit_line": 5_000, "outstanding": 1_000, "status": "active",
         "expected_available": 4_000, "displayed_available": None, "cache_available": 4_000},
        {"account_id": "C", "credit_line": 0, "outstanding": 0, "status": "active",
         "expected_available": 0, "displayed_available": 0, "cache_available": None},
    ]


def test_same_input_gives_byte_identical_outputs(log: Path, tmp_path: Path) -> None:
    first, second = run(log, tmp_path / "one"), run(log, tmp_path / "two")
    for name in ("alerts.jsonl", "accounts.jsonl", "dead_letters.jsonl"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_byte_identical_across_processes_with_other_hash_seeds(log: Path, tmp_path: Path) -> None:
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-m", "limitsync.cli", "replay", "--input", str(log),
             "--out", str(out), "--until", ts(10_000 * S)],
            cwd=ROOT, env=env, capture_output=True, timeout=120, check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        outs.append(out)
    for name in ("alerts.jsonl", "accounts.jsonl"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()


# -- clock options ------------------------------------------------------------------------------


def test_without_until_nothing_fires_after_the_last_record(log: Path, tmp_path: Path) -> None:
    alerts = read_jsonl(run(log, tmp_path / "out") / "alerts.jsonl")
    assert "REPAYMENT_NOT_POSTED" not in {a["reason"] for a in alerts}


def test_until_advances_the_clock_after_the_last_record(log: Path, tmp_path: Path) -> None:
    out = run(log, tmp_path / "out", "--until", ts(7200 * S + 1))
    (late,) = [a for a in read_jsonl(out / "alerts.jsonl") if a["reason"] == "REPAYMENT_NOT_POSTED"]
    assert (late["account_id"], late["payment_id"], late["detected_at"]) == (
        "B", "pay-b", ts(7200 * S + 1))


def test_until_exactly_at_the_clearing_sla_fires_nothing(log: Path, tmp_path: Path) -> None:
    out = run(log, tmp_path / "out", "--until", ts(7200 * S))
    assert "REPAYMENT_NOT_POSTED" not in {a["reason"] for a in read_jsonl(out / "alerts.jsonl")}


def test_clearing_sla_option(log: Path, tmp_path: Path) -> None:
    out = run(log, tmp_path / "out", "--clearing-sla-seconds", "60")
    alerts = read_jsonl(out / "alerts.jsonl")
    assert [a["payment_id"] for a in alerts if a["reason"] == "REPAYMENT_NOT_POSTED"] == ["pay-b"]


def test_sla_option(log: Path, tmp_path: Path) -> None:
    out = run(log, tmp_path / "out", "--sla-seconds", "120")
    assert read_jsonl(out / "alerts.jsonl") == []


def test_unparsable_until_is_a_usage_error(log: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay", "--input", str(log), "--out", str(tmp_path / "o"), "--until", "soon"])
    assert exc.value.code == 2


def test_unparsable_now_is_a_usage_error(log: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay", "--input", str(log), "--out", str(tmp_path / "o"), "--now", "soon"])
    assert exc.value.code == 2


def test_a_negative_future_skew_is_a_usage_error(log: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay", "--input", str(log), "--out", str(tmp_path / "o"),
              "--max-future-skew-s", "-1"])
    assert exc.value.code == 2


def test_a_zero_dedupe_horizon_is_a_usage_error(log: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay", "--input", str(log), "--out", str(tmp_path / "o"),
              "--dedupe-horizon-s", "0"])
    assert exc.value.code == 2


# -- the dedupe horizon on the event-time clock ---------------------------------------------------

# An old log sent again after a newer record: A's drawdown, B's line 30 days later, then A's
# drawdown again, byte for byte. On the event-time clock the copy arrives 30 days after the
# first, outside the default 7-day horizon.
DAY_MS = 86_400 * S
OLD_DRAWDOWN = line(drawdown("A", 10 * S, 3_000, event_id="dd-old"))
RESENT = [credit_line("A", 0, 10_000, 1), OLD_DRAWDOWN, credit_line("B", 30 * DAY_MS, 5_000, 1),
          OLD_DRAWDOWN]


def _outstanding_of_a(out: Path) -> int:
    (a,) = [x for x in read_jsonl(out / "accounts.jsonl") if x["account_id"] == "A"]
    return int(a["outstanding"])


def test_a_copy_arriving_past_the_horizon_on_the_replay_clock_is_new(tmp_path: Path) -> None:
    log = write_log(tmp_path / "resent.jsonl", RESENT)
    assert _outstanding_of_a(run(log, tmp_path / "out")) == 6_000


def test_a_longer_dedupe_horizon_takes_the_copy_for_a_duplicate(tmp_path: Path) -> None:
    log = write_log(tmp_path / "resent.jsonl", RESENT)
    out = run(log, tmp_path / "out", "--dedupe-horizon-s", str(60 * 86_400))
    assert _outstanding_of_a(out) == 3_000


# -- the future-timestamp rule: only with --now ---------------------------------------------------

# B's drawdown stamped 301 s after "now" (100 s after T0), and one exactly 300 s after it.
NOW = ts(100 * S)
TOO_EARLY = line(drawdown("B", 401 * S, 1_000, event_id="ahead"))
JUST_IN_TIME = line(drawdown("B", 400 * S, 1_000, event_id="in-time"))


@pytest.fixture
def ahead(tmp_path: Path) -> Path:
    return write_log(tmp_path / "ahead.jsonl", [*GOOD, TOO_EARLY, JUST_IN_TIME])


def test_with_now_a_record_stamped_beyond_the_skew_is_dead_lettered(
    ahead: Path, tmp_path: Path
) -> None:
    dead = read_jsonl(run(ahead, tmp_path / "out", "--now", NOW) / "dead_letters.jsonl")
    assert [(d["reason"], d["event_id"], d["offset"]) for d in dead] == [
        ("future_timestamp", "ahead", len(GOOD))]


def test_a_future_timestamp_error_says_by_how_much(ahead: Path, tmp_path: Path) -> None:
    [dead] = read_jsonl(run(ahead, tmp_path / "out", "--now", NOW) / "dead_letters.jsonl")
    assert "is 301 s ahead of the clock" in dead["error"]


def test_a_record_dead_lettered_for_its_future_timestamp_is_not_applied(
    ahead: Path, tmp_path: Path
) -> None:
    accounts = read_jsonl(run(ahead, tmp_path / "out", "--now", NOW) / "accounts.jsonl")
    [b] = [a for a in accounts if a["account_id"] == "B"]
    assert b["outstanding"] == 1_000 + 1_000  # its drawdown at 0 and the one just in time


def test_the_skew_is_an_option(ahead: Path, tmp_path: Path) -> None:
    out = run(ahead, tmp_path / "out", "--now", NOW, "--max-future-skew-s", "299")
    dead = read_jsonl(out / "dead_letters.jsonl")
    assert [d["event_id"] for d in dead] == ["ahead", "in-time"]


def test_the_report_counts_future_timestamp_dead_letters(ahead: Path, tmp_path: Path) -> None:
    report = (run(ahead, tmp_path / "out", "--now", NOW) / "report.html").read_text()
    assert '<li data-reason="future_timestamp">future_timestamp: <span class="n">1</span>' in report


def test_without_now_the_future_timestamp_rule_does_not_apply(
    ahead: Path, tmp_path: Path
) -> None:
    assert read_jsonl(run(ahead, tmp_path / "out") / "dead_letters.jsonl") == []


# -- bad input ---------------------------------------------------------------------------------


def test_dead_letters_carry_original_bytes_offset_and_error(log: Path, tmp_path: Path) -> None:
    dead = read_jsonl(run(log, tmp_path / "out") / "dead_letters.jsonl")
    assert [(d["offset"], d["reason"]) for d in dead] == [
        (3, "invalid"), (8, "invalid"), (9, "conflict")]
    assert [base64.b64decode(d["original_b64"]) for d in dead] == [NOT_JSON, NEGATIVE, CLASH]
    assert all(d["error"].strip() for d in dead)
    assert "principal" in dead[1]["error"]
    assert (dead[1]["event_id"], dead[1]["account_id"]) == ("neg", "A")


def test_bad_records_do_not_stop_processing(log: Path, tmp_path: Path) -> None:
    accounts = read_jsonl(run(log, tmp_path / "out") / "accounts.jsonl")
    assert [a["account_id"] for a in accounts] == ["A", "B", "C"]


def test_a_file_of_only_bad_records_replays(tmp_path: Path) -> None:
    log = write_log(tmp_path / "bad.jsonl", [b"{", b"[]", orjson.dumps({"type": "x"})])
    out = run(log, tmp_path / "out")
    assert len(read_jsonl(out / "dead_letters.jsonl")) == 3
    assert (out / "accounts.jsonl").read_bytes() == b""


def test_missing_input_exits_2_with_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(["replay", "--input", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(missing) in err
    assert not (tmp_path / "out").exists()


def test_directory_as_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--input", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- schema ------------------------------------------------------------------------------------


def test_schema_command_writes_the_machine_readable_contract(
    tmp_path: Path, log: Path
) -> None:
    assert main(["schema", "--out", str(tmp_path / "schema")]) == 0
    event_schema = json.loads((tmp_path / "schema" / "event.schema.json").read_text())
    for event in GOOD:
        jsonschema.validate(event, event_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**GOOD[2], "principal": 1.5}, event_schema)
    alert_schema = json.loads((tmp_path / "schema" / "alert.schema.json").read_text())
    for alert in read_jsonl(run(log, tmp_path / "out") / "alerts.jsonl"):
        jsonschema.validate(alert, alert_schema)


def test_the_exported_schema_takes_a_decimal_score(tmp_path: Path) -> None:
    assert main(["schema", "--out", str(tmp_path / "schema")]) == 0
    event_schema = json.loads((tmp_path / "schema" / "event.schema.json").read_text())
    jsonschema.validate(credit_line("A", 0, 10_000, 1, score=642.7), event_schema)
