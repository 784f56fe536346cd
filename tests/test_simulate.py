"""The traffic simulator: contract-shaped, deterministic, and honest about its faults."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from limitsync.simulate import (
    BAD_KINDS,
    DEFAULT_START,
    DISPLAY_FAULTS,
    FAULT_KINDS,
    Simulation,
    SimulationStats,
    main,
    simulate,
    write_simulation,
)

TYPES = {
    "drawdown.booked",
    "repayment.initiated",
    "repayment.posted",
    "repayment.reversed",
    "credit_line.changed",
    "account.status_changed",
    "limit.displayed",
}
MONEY = {
    "drawdown.booked": ("principal",),
    "repayment.initiated": ("amount",),
    "repayment.posted": ("principal", "interest", "fee"),
    "credit_line.changed": ("credit_line",),
    "limit.displayed": ("displayed_available",),
}
REQUIRED = {
    "drawdown.booked": ("loan_id", "principal"),
    "repayment.initiated": ("payment_id", "amount", "channel"),
    "repayment.posted": ("loan_id", "principal", "interest", "fee"),
    "repayment.reversed": ("reverses_event_id",),
    "credit_line.changed": ("credit_line", "version", "cause"),
    "account.status_changed": ("status", "version"),
    "limit.displayed": (),
}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|\+08:00)$")
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
SLA_MS = 60_000


def _lines(**kwargs: Any) -> tuple[list[bytes], SimulationStats]:
    sim = Simulation(**kwargs)
    lines = list(sim)
    return lines, sim.stats


def _load(line: bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_records(lines: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        obj = _load(line)
        if obj is not None and "sim_bad" not in obj:
            out.append(obj)
    return out


def _tagged(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("sim_fault") == kind]


@pytest.fixture(scope="module")
def run() -> tuple[list[bytes], SimulationStats]:
    return _lines(accounts=150, hours=4, seed=7, faults=0.05, bad=0.005)


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    a = write_simulation(tmp_path / "a.jsonl", accounts=60, hours=3, seed=11)
    b = write_simulation(tmp_path / "b.jsonl", accounts=60, hours=3, seed=11)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert a.summary() == b.summary()
    assert a.injected == b.injected


def test_another_seed_gives_other_traffic() -> None:
    a = b"\n".join(simulate(60, 3, seed=11))
    b = b"\n".join(simulate(60, 3, seed=12))
    assert a != b


def test_file_matches_the_lines_and_stats(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    stats = write_simulation(path, accounts=40, hours=2, seed=5)
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    assert lines == list(simulate(40, 2, seed=5))
    assert len(lines) == stats.lines
    assert sum(stats.by_type.values()) + stats.bad_total == stats.lines
    assert len(stats.accounts) == 40


def test_every_valid_line_follows_the_envelope_with_integer_money(
    run: tuple[list[bytes], SimulationStats],
) -> None:
    lines, _ = run
    records = _valid_records(lines)
    assert len(records) > 5_000
    for rec in records:
        for key in ("event_id", "type", "account_id", "occurred_at", "schema_version"):
            assert key in rec, rec
        assert isinstance(rec["event_id"], str) and 1 <= len(rec["event_id"]) <= 128
        assert rec["type"] in TYPES
        assert ACCOUNT_ID.match(rec["account_id"])
        assert TIMESTAMP.match(rec["occurred_at"]), rec["occurred_at"]
        assert datetime.fromisoformat(rec["occurred_at"]).tzinfo is not None
        assert _is_int(rec["schema_version"]) and rec["schema_version"] == 1
        for key in REQUIRED[rec["type"]]:
            assert key in rec, rec
        for key in MONEY.get(rec["type"], ()):
            value = rec.get(key)
            if rec["type"] == "limit.displayed" and value is None:
                continue
            assert isinstance(value, int) and not isinstance(value, bool) and value >= 0, rec
        if "version" in rec:
            assert _is_int(rec["version"]) and rec["version"] >= 1


def test_no_float_anywhere_in_valid_records(run: tuple[list[bytes], SimulationStats]) -> None:
    lines, _ = run

    def walk(value: object) -> None:
        assert not isinstance(value, float), value
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for rec in _valid_records(lines):
        walk(rec)


def test_contract_details(run: tuple[list[bytes], SimulationStats]) -> None:
    lines, _ = run
    records = _valid_records(lines)
    initial = [r for r in records if r.get("cause") == "initial"]
    assert len({r["account_id"] for r in initial}) == 150
    assert all(r["version"] == 1 for r in initial)
    rescores = [r for r in records if r.get("cause") == "rescore"]
    assert rescores and all("model_version" in r and _is_int(r["score"]) for r in rescores)
    assert all(1 <= len(r.get("reasons", [""])) <= 4 for r in rescores)
    assert any(r.get("reasons") for r in rescores)
    assert {r["channel"] for r in records if r["type"] == "repayment.initiated"} <= {
        "balance",
        "bank_card",
        "auto_debit",
        "transfer",
    }
    assert {r["occurred_at"][-1] for r in records} == {"Z", "0"}  # both offset styles
    posted = {r["payment_id"]: r for r in records if r["type"] == "repayment.posted"}
    initiated = [r for r in records if r["type"] == "repayment.initiated"]
    delays = []
    for r in initiated:
        p = posted.get(r["payment_id"])
        if p is not None and "sim_fault" not in r and "sim_fault" not in p:
            assert r["amount"] == p["principal"] + p["interest"] + p["fee"]
            delays.append(_ms(p["occurred_at"]) - _ms(r["occurred_at"]))
    assert delays and min(delays) >= 60_000 and max(delays) <= 2 * 3_600_000


def test_versions_increase_per_account_in_log_order() -> None:
    lines, _ = _lines(accounts=80, hours=6, seed=3, faults=0.0, bad=0.0)
    last: dict[tuple[str, str], int] = {}
    for rec in _valid_records(lines):
        if rec["type"] in ("credit_line.changed", "account.status_changed"):
            key = (rec["account_id"], rec["type"])
            assert rec["version"] > last.get(key, 0)
            last[key] = rec["version"]
    assert any(k[1] == "account.status_changed" for k in last)


def test_clean_traffic_is_in_time_order_with_unique_ids_and_no_drift() -> None:
    lines, stats = _lines(accounts=120, hours=6, seed=9, faults=0.0, bad=0.0)
    records = [orjson.loads(line) for line in lines]
    assert not any("sim_fault" in r or "sim_bad" in r for r in records)
    ids = [r["event_id"] for r in records]
    assert len(ids) == len(set(ids))
    times = [_ms(r["occurred_at"]) for r in records]
    assert times == sorted(times)
    assert stats.faults == {} and stats.bad == {}
    assert stats.drifts_over_sla_ms == {}  # a correct display never lags past the SLA
    assert stats.first_occurred_at is not None
    assert _ms(stats.first_occurred_at) >= _ms("2026-11-29T00:00:00Z")


def test_start_can_be_moved() -> None:
    start = datetime(2027, 3, 1, 12, tzinfo=UTC)
    records = _valid_records(list(simulate(10, 1, seed=1, start=start)))
    first = min(_ms(r["occurred_at"]) for r in records)
    assert first >= int(start.timestamp() * 1000)
    assert first < int((start + timedelta(minutes=15)).timestamp() * 1000)
    assert datetime(2026, 11, 29, tzinfo=UTC) == DEFAULT_START


def _expected_state(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The contract's formula, folded independently over the file (first id wins)."""
    seen: set[str] = set()
    acc: dict[str, dict[str, Any]] = {}
    for rec in records:
        if rec["event_id"] in seen:
            continue
        seen.add(rec["event_id"])
        a = acc.setdefault(
            rec["account_id"],
            {
                "line": 0,
                "lv": 0,
                "status": "active",
                "sv": 0,
                "drawn": 0,
                "posted": {},
                "rev": set(),
            },
        )
        typ = rec["type"]
        if typ == "drawdown.booked":
            a["drawn"] += rec["principal"]
        elif typ == "repayment.posted":
            a["posted"][rec["event_id"]] = rec["principal"]
        elif typ == "repayment.reversed":
            a["rev"].add(rec["reverses_event_id"])
        elif typ == "credit_line.changed" and rec["version"] > a["lv"]:
            a["line"], a["lv"] = rec["credit_line"], rec["version"]
        elif typ == "account.status_changed" and rec["version"] > a["sv"]:
            a["status"], a["sv"] = rec["status"], rec["version"]
    out = {}
    for account_id, a in acc.items():
        repaid = sum(p for eid, p in a["posted"].items() if eid not in a["rev"])
        outstanding = max(0, a["drawn"] - repaid)
        available = max(0, a["line"] - outstanding) if a["status"] == "active" else 0
        out[account_id] = {
            "credit_line": a["line"],
            "outstanding": outstanding,
            "status": a["status"],
            "expected_available": available,
        }
    return out


def test_simulator_model_matches_the_file_and_never_goes_negative(
    run: tuple[list[bytes], SimulationStats],
) -> None:
    lines, stats = run
    assert stats.min_expected_available is not None and stats.min_expected_available >= 0
    folded = _expected_state(_valid_records(lines))
    assert set(folded) == set(stats.accounts)
    for account_id, want in folded.items():
        got = stats.accounts[account_id].as_dict()
        assert {k: got[k] for k in want} == want, account_id
        assert got["outstanding"] >= 0 and got["expected_available"] >= 0
    assert any(a.outstanding > 0 for a in stats.accounts.values())
    assert (
        any(a.status == "frozen" for a in stats.accounts.values())
        or stats.by_type.get("account.status_changed", 0) > 0
    )


@pytest.mark.parametrize("kind", sorted(FAULT_KINDS))
def test_each_fault_kind_appears_alone_when_enabled(kind: str) -> None:
    lines, stats = _lines(
        accounts=200, hours=4, seed=21, faults=0.2, bad=0.0, fault_kinds=frozenset({kind})
    )
    records = _valid_records(lines)
    tagged = _tagged(records, kind)
    assert tagged, kind
    assert set(stats.faults) == {kind}
    assert {r.get("sim_fault") for r in records} <= {None, kind}
    truth = stats.fault_accounts[kind]
    assert {r["account_id"] for r in tagged} <= truth
    _check_fault(kind, records, lines, stats)
    if kind in DISPLAY_FAULTS:
        # Each such fault shows a drift past the SLA, and only these accounts drift.
        assert set(stats.drifts_over_sla_ms) == truth
    else:
        assert stats.drifts_over_sla_ms == {}


def _check_fault(
    kind: str, records: list[dict[str, Any]], lines: list[bytes], stats: SimulationStats
) -> None:
    tagged = _tagged(records, kind)
    if kind == "duplicate":
        counts = Counter(lines)
        for rec in tagged:
            assert counts[orjson.dumps(rec)] == 2
    elif kind == "conflict":
        by_id: dict[str, list[dict[str, Any]]] = {}
        for rec in records:
            by_id.setdefault(rec["event_id"], []).append(rec)
        for rec in tagged:
            first, *rest = by_id[rec["event_id"]]
            assert "sim_fault" not in first and rest and first != rec
    elif kind == "out_of_order":
        high = 0
        for rec in records:
            at = _ms(rec["occurred_at"])
            if rec.get("sim_fault") == kind:
                assert 0 < high - at <= 5 * 60_000
            high = max(high, at)
    elif kind == "not_posted":
        posted = {r.get("payment_id") for r in records if r["type"] == "repayment.posted"}
        payments = {f.payment_id for f in stats.injected if f.kind == kind}
        assert payments == {r["payment_id"] for r in tagged}
        assert not payments & posted
        assert all(r["type"] == "repayment.initiated" for r in tagged)
    elif kind == "cache_missing":
        assert all(r["displayed_available"] is None for r in tagged)
    elif kind == "freeze_not_applied":
        assert all(r["type"] == "limit.displayed" and r["displayed_available"] > 0 for r in tagged)
    elif kind == "slow_sync":
        assert all(r["type"] == "limit.displayed" for r in tagged)
    elif kind in ("lost_sync", "app_stale"):  # tagged on the change that was not displayed
        assert all(r["type"] != "limit.displayed" for r in tagged)
    elif kind == "diverged":
        assert all(_is_int(r["displayed_available"]) for r in tagged)


def test_all_clean_when_each_initiation_has_a_posting() -> None:
    lines, _ = _lines(
        accounts=100, hours=4, seed=4, faults=0.2, bad=0.0,
        fault_kinds=FAULT_KINDS - {"not_posted"},
    )  # fmt: skip
    records = _valid_records(lines)
    posted = {r.get("payment_id") for r in records if r["type"] == "repayment.posted"}
    end = max(_ms(r["occurred_at"]) for r in records)
    for rec in records:
        if rec["type"] == "repayment.initiated" and _ms(rec["occurred_at"]) < end - 2 * 3_600_000:
            assert rec["payment_id"] in posted


@pytest.mark.parametrize("kind", sorted(FAULT_KINDS))
def test_an_excluded_fault_kind_never_appears(kind: str) -> None:
    lines, stats = _lines(
        accounts=120, hours=4, seed=8, faults=0.2, bad=0.0, fault_kinds=FAULT_KINDS - {kind}
    )
    assert kind not in stats.faults
    assert kind not in stats.fault_accounts
    assert not _tagged(_valid_records(lines), kind)
    assert len(stats.faults) >= 6  # the others still fire


def test_fault_rate_is_a_share_of_opportunities(run: tuple[list[bytes], SimulationStats]) -> None:
    _, stats = run
    valid = sum(stats.by_type.values())
    for kind in ("duplicate", "conflict"):
        assert 0.03 * valid < stats.faults[kind] < 0.07 * valid


def _bad_reason(line: bytes) -> str | None:
    """Why a line breaks the contract (None if it does not)."""
    obj = _load(line)
    if obj is None:
        return "not_json"
    if "schema_version" not in obj:
        return "missing_schema_version"
    if "type" not in obj:
        return "missing_field"
    if obj["type"] not in TYPES:
        return "unknown_type"
    for key in ("event_id", "account_id", "occurred_at", *REQUIRED[obj["type"]]):
        if key not in obj:
            return "missing_field"
    stamp = obj["occurred_at"]
    if not isinstance(stamp, str) or not TIMESTAMP.match(stamp):
        return "bad_timestamp"
    try:
        datetime.fromisoformat(stamp)
    except ValueError:
        return "bad_timestamp"
    for key in MONEY.get(obj["type"], ()):
        value = obj.get(key)
        if isinstance(value, bool):
            return "bool_as_int"
        if isinstance(value, float):
            return "float_amount"
        if isinstance(value, int) and value < 0:
            return "negative_amount"
    return None


def test_bad_records_come_at_the_asked_rate_and_are_all_invalid() -> None:
    lines, stats = _lines(accounts=200, hours=6, seed=2, faults=0.02, bad=0.01)
    reasons = Counter(r for r in map(_bad_reason, lines) if r is not None)
    assert sum(reasons.values()) == stats.bad_total
    assert reasons == Counter(stats.bad)
    assert set(stats.bad) == BAD_KINDS
    share = stats.bad_total / stats.lines
    assert 0.006 < share < 0.014, share
    for line in lines:
        obj = _load(line)
        if obj is not None and "sim_bad" in obj:
            assert _bad_reason(line) == obj["sim_bad"]


def test_bad_records_do_not_change_the_valid_traffic() -> None:
    with_bad, _ = _lines(accounts=50, hours=3, seed=6, bad=0.05)
    without, stats = _lines(accounts=50, hours=3, seed=6, bad=0.0)
    assert stats.bad == {}
    assert [line for line in with_bad if _bad_reason(line) is None] == without


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        Simulation(10, 1, 1, fault_kinds=frozenset({"gremlins"}))
    with pytest.raises(ValueError):
        Simulation(10, 0, 1)
    with pytest.raises(ValueError):
        Simulation(10, 1, 1, faults=0.9)
    with pytest.raises(ValueError):
        Simulation(10, 1, 1, start=datetime(2026, 11, 29))  # no offset


def test_command_line_writes_file_and_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, truth = tmp_path / "e.jsonl", tmp_path / "truth.json"
    code = main(
        [
            "--accounts", "30", "--hours", "3", "--seed", "4", "--faults", "0.1",
            "--fault-kinds", "not_posted,duplicate", "--start", "2026-12-01T00:00:00+08:00",
            "--out", str(out), "--truth", str(truth),
        ]
    )  # fmt: skip
    assert code == 0
    assert "lines" in capsys.readouterr().out
    data = orjson.loads(truth.read_bytes())
    assert data["lines"] == len(out.read_bytes().splitlines())
    assert {f["kind"] for f in data["injected"]} <= {"not_posted", "duplicate"}
    assert len(data["expected_accounts"]) == 30


@pytest.mark.slow
def test_half_a_million_events_well_under_a_minute() -> None:
    began = time.perf_counter()
    count = sum(1 for _ in simulate(3_300, 24, seed=1))
    elapsed = time.perf_counter() - began
    assert count >= 500_000
    assert elapsed < 60, f"{count} events took {elapsed:.1f} s"
