"""Explanations and rescore requests (docs/contract.md "Explanations" and "Rescore
requests": coalesced per account).

``explain(state)`` gives the breakdown of the expected limit and the changes since a time,
each with a code; a decrease carries at most four of the model's reasons.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eventlog import (
    S,
    account_status,
    credit_line,
    displayed,
    drawdown,
    feed,
    ingest,
    lines,
    repayment_initiated,
    repayment_posted,
    repayment_reversed,
    replay,
    ts,
    us,
)

from limitsync.cli import main
from streams.core import CoreConfig, Engine, EventTimeClock, RescoreRequested, explain, render_text

LINE = credit_line("A", 0, 10_000, 1, event_id="line-1")
OWES = [LINE, drawdown("A", S, 4_000, event_id="dd-1")]


def report(events: list[dict[str, Any]], since: int | None = None) -> dict[str, Any]:
    acct = replay(events).engine.accounts["A"]
    return explain(acct, None if since is None else us(since))


def change(events: list[dict[str, Any]], event_id: str) -> dict[str, Any]:
    (entry,) = [c for c in report(events)["changes"] if c["event_id"] == event_id]
    return entry


def codes(events: list[dict[str, Any]]) -> list[str]:
    return [c["code"] for c in report(events)["changes"]]


# -- breakdown ---------------------------------------------------------------------------------


def test_breakdown_of_the_expected_limit() -> None:
    r = report([*OWES, displayed("A", 2 * S, 6_000)])
    assert (r["account_id"], r["credit_line"], r["outstanding"], r["status"]) == (
        "A", 10_000, 4_000, "active")
    assert (r["expected_available"], r["displayed_available"], r["in_drift"]) == (
        6_000, 6_000, False)


def test_breakdown_shows_an_open_drift_of_its_source() -> None:
    r = report([*OWES, displayed("A", 2 * S, 10_000)])
    assert r["in_drift"]
    assert (r["sources"]["app"]["in_drift"], r["sources"]["app"]["drift_opened_at"]) == (
        True, ts(2 * S))


def test_breakdown_shows_what_the_app_and_the_cache_show_each() -> None:
    r = report([*OWES, displayed("A", 2 * S, 5_000), displayed("A", 3 * S, 6_000, source="cache")])
    assert (r["displayed_available"], r["cache_available"]) == (5_000, 6_000)
    assert r["sources"] == {
        "app": {"observed": True, "displayed_available": 5_000, "observed_at": ts(2 * S),
                "in_drift": True, "drift_opened_at": ts(2 * S), "drift_reason": None},
        "cache": {"observed": True, "displayed_available": 6_000, "observed_at": ts(3 * S),
                  "in_drift": False, "drift_opened_at": None, "drift_reason": None},
    }


def test_text_says_the_display_layer_is_behind_when_only_the_app_drifts() -> None:
    events = [*OWES, displayed("A", 2 * S, 5_000), displayed("A", 3 * S, 6_000, source="cache"),
              displayed("OTHER", 70 * S, 0)]
    text = render_text(explain(replay(events).engine.accounts["A"]))
    assert "shown in the app    50.00 (observed " in text
    assert f"disagrees since {ts(2 * S)}, CACHE_DIVERGED" in text
    assert "held in the cache   60.00" in text
    assert "the display layer is behind, not the cache" in text


# -- one code per kind of change -----------------------------------------------------------


def test_drawdown_is_explained() -> None:
    entry = change(OWES, "dd-1")
    assert entry["code"] == "DRAWDOWN"
    assert (entry["available_before"], entry["available_after"]) == (10_000, 6_000)
    assert entry["at"] == ts(S)


def test_initiated_repayment_is_in_flight_until_posted() -> None:
    events = [*OWES, repayment_initiated("A", 2 * S, "pay-1", 1_000, event_id="ri-1")]
    entry = change(events, "ri-1")
    assert entry["code"] == "REPAYMENT_IN_FLIGHT"
    assert entry["available_before"] == entry["available_after"] == 6_000
    (pending,) = report(events)["pending"]
    assert (pending["code"], pending["payment_id"], pending["amount"]) == (
        "REPAYMENT_IN_FLIGHT", "pay-1", 1_000)


def test_posted_repayment_is_no_longer_pending() -> None:
    events = [*OWES, repayment_initiated("A", 2 * S, "pay-1", 1_000),
              repayment_posted("A", 3 * S, 1_000, payment_id="pay-1")]
    assert report(events)["pending"] == []


def test_posted_repayment_is_restored() -> None:
    entry = change([*OWES, repayment_posted("A", 2 * S, 1_000, event_id="rp-1")], "rp-1")
    assert entry["code"] == "REPAYMENT_RESTORED"
    assert (entry["available_before"], entry["available_after"]) == (6_000, 7_000)


def test_interest_and_fee_are_explained_as_not_restored() -> None:
    events = [*OWES, repayment_posted("A", 2 * S, 1_000, interest=300, fee=20)]
    assert codes(events)[-2:] == ["REPAYMENT_RESTORED", "INTEREST_NOT_RESTORED"]
    interest = report(events)["changes"][-1]
    assert interest["available_before"] == interest["available_after"] == 7_000


def test_principal_only_repayment_has_no_interest_entry() -> None:
    assert "INTEREST_NOT_RESTORED" not in codes([*OWES, repayment_posted("A", 2 * S, 1_000)])


def test_reversed_repayment_is_explained() -> None:
    events = [*OWES, repayment_posted("A", 2 * S, 1_000, event_id="rp-1"),
              repayment_reversed("A", 3 * S, "rp-1", event_id="rv-1")]
    entry = change(events, "rv-1")
    assert entry["code"] == "REPAYMENT_REVERSED"
    assert (entry["available_before"], entry["available_after"]) == (7_000, 6_000)


def test_rescore_increase_is_explained_without_reasons() -> None:
    events = [*OWES, credit_line("A", 2 * S, 15_000, 2, cause="rescore", event_id="cl-2",
                                 reasons=["on-time payments"])]
    entry = change(events, "cl-2")
    assert entry["code"] == "RESCORE_INCREASE"
    assert "reasons" not in entry


def test_rescore_decrease_carries_at_most_four_reasons() -> None:
    reasons = ["utilisation above 90%", "two late payments", "new debt elsewhere",
               "short history", "fifth", "sixth"]
    events = [*OWES, credit_line("A", 2 * S, 8_000, 2, cause="rescore", event_id="cl-2",
                                 reasons=reasons)]
    entry = change(events, "cl-2")
    assert entry["code"] == "RESCORE_DECREASE"
    assert entry["reasons"] == reasons[:4]
    assert (entry["available_before"], entry["available_after"]) == (6_000, 4_000)


@pytest.mark.parametrize("cause", ["policy", "manual"])
def test_non_rescore_line_change_is_a_policy_change(cause: str) -> None:
    events = [*OWES, credit_line("A", 2 * S, 12_000, 2, cause=cause, event_id="cl-2")]
    assert change(events, "cl-2")["code"] == "POLICY_CHANGE"


def test_policy_decrease_carries_its_reasons() -> None:
    events = [*OWES, credit_line("A", 2 * S, 5_000, 2, cause="policy", event_id="cl-2",
                                 reasons=["product retired"])]
    assert change(events, "cl-2")["reasons"] == ["product retired"]


@pytest.mark.parametrize("status", ["frozen", "closed"])
def test_freeze_is_explained(status: str) -> None:
    events = [*OWES, account_status("A", 2 * S, status, 1, event_id="st-1", reason="fraud")]
    entry = change(events, "st-1")
    assert entry["code"] == "ACCOUNT_FROZEN"
    assert (entry["available_before"], entry["available_after"]) == (6_000, 0)


def test_unfreeze_is_explained() -> None:
    events = [*OWES, account_status("A", 2 * S, "frozen", 1),
              account_status("A", 3 * S, "active", 2, event_id="st-2")]
    entry = change(events, "st-2")
    assert entry["code"] == "ACCOUNT_UNFROZEN"
    assert (entry["available_before"], entry["available_after"]) == (0, 6_000)


def test_ignored_events_are_not_explained_as_changes() -> None:
    events = [*OWES, credit_line("A", 2 * S, 1, 0, event_id="old"),
              repayment_reversed("A", 3 * S, "never", event_id="orphan")]
    ids = [c["event_id"] for c in report(events)["changes"]]
    assert "old" not in ids and "orphan" not in ids


def test_changes_are_in_time_order_whatever_the_arrival_order() -> None:
    events = [LINE, drawdown("A", 5 * S, 1_000), drawdown("A", 3 * S, 1_000)]
    assert [c["at"] for c in report(events)["changes"]] == [ts(0), ts(3 * S), ts(5 * S)]


def test_since_keeps_only_changes_at_or_after_it() -> None:
    events = [*OWES, repayment_posted("A", 10 * S, 1_000), drawdown("A", 20 * S, 500)]
    assert [c["code"] for c in report(events, since=10 * S)["changes"]] == [
        "REPAYMENT_RESTORED", "DRAWDOWN"]


# -- RESCORE_PENDING and coalesced rescore requests (rescore enabled) -----------------------


def rescoring_engine() -> Engine:
    return Engine(CoreConfig(rescore_enabled=True, rescore_window_us=30 * 1_000_000),
                  EventTimeClock())


def rescores(effects: list[Any]) -> list[RescoreRequested]:
    return [e for e in effects if isinstance(e, RescoreRequested)]


def settled_engine() -> Engine:
    """Line and a drawdown at T0; their rescore request has gone out and been answered."""
    engine = rescoring_engine()
    feed(engine, OWES)
    engine.advance(us(60 * S))
    ingest(engine, credit_line("A", 61 * S, 10_000, 2, cause="rescore"))
    engine.advance(us(200 * S))
    return engine


def test_rescore_pending_is_explained_after_activity() -> None:
    engine = rescoring_engine()
    feed(engine, [*OWES, repayment_posted("A", 2 * S, 1_000)])
    (pending,) = explain(engine.accounts["A"])["pending"]
    assert pending["code"] == "RESCORE_PENDING"


def test_rescore_stays_pending_until_a_rescore_answers() -> None:
    engine = rescoring_engine()
    feed(engine, OWES)
    assert rescores(engine.advance(us(60 * S)))
    assert [p["code"] for p in explain(engine.accounts["A"])["pending"]] == ["RESCORE_PENDING"]


def test_no_rescore_pending_without_rescoring() -> None:
    assert report([*OWES, repayment_posted("A", 2 * S, 1_000)])["pending"] == []


def test_repayments_within_the_window_coalesce_into_one_rescore_request() -> None:
    engine = settled_engine()
    feed(engine, [repayment_posted("A", 300 * S, 100, event_id="rp-1"),
                  repayment_posted("A", 310 * S, 100, event_id="rp-2"),
                  repayment_posted("A", 320 * S, 100, event_id="rp-3")])
    (request,) = rescores(engine.advance(us(400 * S)))
    assert request.account_id == "A"
    assert request.trigger_event_ids == ("rp-1", "rp-2", "rp-3")


def test_no_rescore_request_before_the_window_ends() -> None:
    engine = settled_engine()
    effects = feed(engine, [repayment_posted("A", 300 * S, 100),
                            repayment_posted("A", 320 * S, 100)])
    effects += engine.advance(us(330 * S))
    assert rescores(effects) == []


def test_rescore_request_fires_on_the_clock_of_other_accounts() -> None:
    engine = settled_engine()
    ingest(engine, repayment_posted("A", 300 * S, 100, event_id="rp-1"))
    (request,) = rescores(ingest(engine, displayed("OTHER", 331 * S, 0)))
    assert request.trigger_event_ids == ("rp-1",)


def test_no_rescore_request_when_rescoring_is_disabled() -> None:
    engine = Engine(CoreConfig(), EventTimeClock())
    effects = feed(engine, [*OWES, repayment_posted("A", 2 * S, 1_000)])
    assert rescores(effects + engine.advance(us(10_000 * S))) == []


def test_a_rescore_answer_does_not_request_another_rescore() -> None:
    engine = rescoring_engine()
    feed(engine, OWES)
    engine.advance(us(60 * S))
    effects = ingest(engine, credit_line("A", 61 * S, 10_000, 2, cause="rescore"))
    effects += engine.advance(us(1_000 * S))
    assert rescores(effects) == []


def test_rescore_is_no_longer_pending_once_answered() -> None:
    engine = rescoring_engine()
    feed(engine, OWES)
    engine.advance(us(60 * S))
    ingest(engine, credit_line("A", 61 * S, 10_000, 2, cause="rescore"))
    assert explain(engine.accounts["A"])["pending"] == []


# -- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    events = [*OWES, repayment_posted("A", 10 * S, 1_000, interest=50),
              credit_line("A", 20 * S, 8_000, 2, cause="rescore", reasons=["late payment"])]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines(events)) + b"\n")
    return path


def test_cli_explain_json(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "A", "--input", str(log_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["expected_available"], out["credit_line"], out["outstanding"]) == (
        5_000, 8_000, 3_000)
    assert [c["code"] for c in out["changes"]] == [
        "POLICY_CHANGE", "DRAWDOWN", "REPAYMENT_RESTORED", "INTEREST_NOT_RESTORED",
        "RESCORE_DECREASE"]


def test_cli_explain_since(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "A", "--input", str(log_file), "--json", "--since", ts(10 * S)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["code"] for c in out["changes"]] == [
        "REPAYMENT_RESTORED", "INTEREST_NOT_RESTORED", "RESCORE_DECREASE"]


def test_cli_explain_text_shows_the_reasons(
    log_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "A", "--input", str(log_file)]) == 0
    out = capsys.readouterr().out
    assert "RESCORE_DECREASE" in out and "late payment" in out


def test_cli_explain_unknown_account_is_an_error(
    log_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "NOPE", "--input", str(log_file), "--json"]) == 2
    assert "NOPE" in capsys.readouterr().err
