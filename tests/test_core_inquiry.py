"""Issue 15, limit inquiries, the pure answer (streams.core.inquiry) and Engine.confirm."""

from __future__ import annotations

from typing import Any

from eventlog import (
    T0_US,
    S,
    account_status,
    credit_line,
    displayed,
    drawdown,
    feed,
    repayment_initiated,
    repayment_posted,
)

from streams.core import AlertRaised, CoreConfig, Engine, InjectedClock
from streams.core.inquiry import InquiryRequest, answer, decide_action, parse_request
from streams.core.state import AccountState

SLA_S = 60


def engine_at(now_ms: int) -> Engine:
    config = CoreConfig.from_seconds(sla_s=SLA_S)
    return Engine(config, InjectedClock(lambda: T0_US + now_ms * 1000))


def state_after(events: list[dict[str, Any]], now_ms: int = 0) -> AccountState:
    engine = engine_at(now_ms)
    feed(engine, events)
    return engine.accounts["a1"]


def ask(state: AccountState | None, sees: int, action: Any = "none") -> dict[str, Any]:
    return answer(InquiryRequest("a1", sees), state, "inq-1", action)


REPAID = [
    credit_line("a1", 0, 100_000, 1),
    drawdown("a1", 1 * S, 60_000),
    repayment_posted("a1", 2 * S, 20_000, interest=1_500, fee=500),
]  # line 1,000.00, owed 400.00: 600.00 available


def test_a_user_seeing_the_expected_limit_is_answered_correct() -> None:
    assert ask(state_after(REPAID), 60_000)["verdict"] == "correct"


def test_a_user_seeing_another_limit_is_a_fault_with_the_expected_value() -> None:
    reply = ask(state_after(REPAID), 80_000)
    assert (reply["verdict"], reply["expected_available"]) == ("fault", 60_000)


def test_an_account_never_seen_is_unknown_account() -> None:
    assert ask(None, 1)["verdict"] == "unknown_account"


def test_interest_and_fees_are_a_reason_of_the_current_limit() -> None:
    assert "INTEREST_NOT_RESTORED" in ask(state_after(REPAID), 60_000)["reasons"]


def test_the_message_reads_the_amounts_in_yuan_in_both_languages() -> None:
    message = ask(state_after(REPAID), 80_000)["message"]
    assert ("¥600.00" in message["en"], "¥800.00" in message["zh"]) == (True, True)


def test_every_answer_carries_the_rescoring_notice() -> None:
    assert "rescore" in ask(state_after(REPAID), 60_000)["message"]["en"]


def test_a_rescore_decrease_is_read_out_with_the_models_reasons() -> None:
    cut = credit_line("a1", 3 * S, 50_000, 2, cause="rescore",
                      reasons=["utilisation above 80%", "two late payments"])
    message = ask(state_after([*REPAID, cut]), 10_000)["message"]["en"]
    assert "two late payments" in message


def test_a_frozen_account_explains_a_zero_limit() -> None:
    frozen = [*REPAID, account_status("a1", 3 * S, "frozen", 1)]
    assert ask(state_after(frozen), 0)["reasons"][0] == "ACCOUNT_FROZEN"


def test_a_frozen_account_still_showing_a_limit_is_freeze_not_applied() -> None:
    frozen = [*REPAID, account_status("a1", 3 * S, "frozen", 1)]
    assert ask(state_after(frozen), 60_000)["reasons"][0] == "FREEZE_NOT_APPLIED"


def test_a_repayment_still_clearing_is_a_reason() -> None:
    paying = [*REPAID, repayment_initiated("a1", 3 * S, "p9", 10_000)]
    assert "REPAYMENT_IN_FLIGHT" in ask(state_after(paying), 60_000)["reasons"]


def test_a_value_the_account_held_before_its_latest_change_is_sync_delay() -> None:
    assert ask(state_after(REPAID), 40_000)["reasons"][0] == "SYNC_DELAY"


def test_a_fault_with_a_wrong_cache_rewrites_the_cache() -> None:
    state = state_after(REPAID)
    assert decide_action(state, 80_000, 80_000, T0_US + 100 * S * 1000, SLA_S * 10**6) == (
        "cache_rewritten"
    )


def test_a_fault_with_a_right_cache_opens_an_alert() -> None:
    state = state_after(REPAID)
    assert decide_action(state, 80_000, 60_000, T0_US + 100 * S * 1000, SLA_S * 10**6) == (
        "alert_opened"
    )


def test_the_value_before_a_change_of_seconds_ago_is_a_change_on_its_way_not_an_alert() -> None:
    state = state_after(REPAID)
    assert decide_action(state, 40_000, 60_000, T0_US + 5 * S * 1000, SLA_S * 10**6) == "none"


def test_a_correct_verdict_never_acts() -> None:
    assert ask(state_after(REPAID), 60_000, "cache_rewritten")["action"] == "none"


def test_the_recent_changes_are_at_most_five() -> None:
    many = [credit_line("a1", 0, 10**9, 1)] + [drawdown("a1", i * S, 1) for i in range(1, 20)]
    assert len(ask(state_after(many), 0)["changes"]) == 5


def test_a_negative_amount_is_refused() -> None:
    assert isinstance(parse_request({"account_id": "a1", "displayed_available": -1}), str)


def test_an_amount_beyond_the_envelope_money_is_refused() -> None:
    # A fault is published as a limit.displayed of this value: the parser must accept it.
    assert isinstance(parse_request({"account_id": "a1", "displayed_available": 10**15 + 1}), str)
    assert isinstance(parse_request({"account_id": "a1", "displayed_available": 10**15}),
                      InquiryRequest)


def test_a_boolean_amount_is_refused() -> None:
    assert isinstance(parse_request({"account_id": "a1", "displayed_available": True}), str)


def test_a_float_amount_is_refused() -> None:
    assert isinstance(parse_request({"account_id": "a1", "displayed_available": 1.5}), str)


def test_an_account_id_outside_the_contract_is_refused() -> None:
    assert isinstance(parse_request({"account_id": "a" * 65, "displayed_available": 1}), str)


def test_a_channel_that_is_not_a_string_is_refused() -> None:
    body = {"account_id": "a1", "displayed_available": 1, "channel": 7}
    assert isinstance(parse_request(body), str)


def test_unknown_extra_fields_are_ignored_as_the_contract_does() -> None:
    body = {"account_id": "a1", "displayed_available": 1, "app_version": "9.1"}
    assert parse_request(body) == InquiryRequest("a1", 1)


def test_confirm_breaches_an_open_drift_before_its_sla() -> None:
    engine = engine_at(10 * S)
    feed(engine, [*REPAID, displayed("a1", 3 * S, 99_000, source="app")])
    opened = [e for e in engine.confirm("a1", "app") if isinstance(e, AlertRaised)]
    assert [(a.record["type"], a.record["source"]) for a in opened] == [
        ("mismatch.opened", "app")
    ]


def test_confirm_joins_a_drift_that_breached_already() -> None:
    engine = engine_at(10 * S)
    feed(engine, [*REPAID, displayed("a1", 3 * S, 99_000, source="app")])
    engine.confirm("a1", "app")
    assert engine.confirm("a1", "app") == []


def test_confirm_without_a_drift_does_nothing() -> None:
    engine = engine_at(10 * S)
    feed(engine, REPAID)
    assert engine.confirm("a1", "cache") == []
