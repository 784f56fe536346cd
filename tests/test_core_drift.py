"""Drift, SLA and alerts on the replay clock (docs/contract.md "Drift, SLA and alerts" and
"Replay clock, exactly").

Account A has a line of 100.00 and agrees with its display at T0; the tests then move the
ledger or the display and drive the event-time clock with A's own records, other accounts'
records, or ``--until``. SLA is 60 s; times are in milliseconds after T0.
"""

from __future__ import annotations

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
    repayment_posted,
    replay,
    ts,
    us,
)

from limitsync.replay import ReplayResult
from schemas.records import AlertRecord
from streams.core import AlertRaised, CacheWrite, CoreConfig, Engine, EventTimeClock

SLA = 60 * S


def agreeing(at: int = 0) -> list[dict[str, Any]]:
    """A with line 10_000, nothing drawn, display showing 10_000."""
    return [credit_line("A", at, 10_000, 1), displayed("A", at, 10_000)]


def tick(at: int) -> dict[str, Any]:
    """A record of another account that only moves the clock."""
    return displayed("OTHER", at, 0)


def kinds(result: ReplayResult, account: str = "A") -> list[str]:
    return [a["type"] for a in result.alerts if a["account_id"] == account]


def opened(result: ReplayResult) -> dict[str, Any]:
    (alert,) = [a for a in result.alerts if a["type"] == "mismatch.opened"]
    return alert


# stale display: a drawdown at 10 s the display never shows (drift opened at 10 s)
STALE = [*agreeing(), drawdown("A", 10 * S, 3_000, event_id="dd1")]


# -- reason codes and severity ----------------------------------------------------------------


def test_display_showing_the_value_before_a_drawdown_is_sync_delay_critical() -> None:
    alert = opened(replay([*STALE, tick(10 * S + SLA + 1)]))
    assert (alert["reason"], alert["severity"]) == ("SYNC_DELAY", "critical")
    assert (alert["expected_available"], alert["displayed_available"], alert["drift"]) == (
        7_000, 10_000, 3_000)


def test_display_showing_the_value_before_a_repayment_is_sync_delay_major() -> None:
    events = [credit_line("A", 0, 10_000, 1), drawdown("A", 0, 5_000), displayed("A", 0, 5_000),
              repayment_posted("A", 10 * S, 2_000)]
    alert = opened(replay([*events, tick(10 * S + SLA + 1)]))
    assert (alert["reason"], alert["severity"], alert["drift"]) == ("SYNC_DELAY", "major", -2_000)


def test_display_showing_an_intermediate_value_of_the_drift_is_sync_delay() -> None:
    events = [*STALE, drawdown("A", 20 * S, 1_000), displayed("A", 30 * S, 7_000)]
    alert = opened(replay([*events, tick(10 * S + SLA + 1)]))
    assert alert["reason"] == "SYNC_DELAY"
    assert alert["expected_available"] == 6_000


def test_display_showing_a_value_never_held_is_cache_diverged() -> None:
    events = [*agreeing(), displayed("A", 10 * S, 12_345)]
    alert = opened(replay([*events, tick(10 * S + SLA + 1)]))
    assert (alert["reason"], alert["severity"]) == ("CACHE_DIVERGED", "critical")


def test_display_lower_than_expected_and_never_held_is_cache_diverged_major() -> None:
    events = [*agreeing(), displayed("A", 10 * S, 1)]
    alert = opened(replay([*events, tick(10 * S + SLA + 1)]))
    assert (alert["reason"], alert["severity"]) == ("CACHE_DIVERGED", "major")


def test_display_falling_back_to_a_value_held_before_the_drift_is_cache_diverged() -> None:
    # 10_000 was expected before a drawdown the display did catch up with, not since the drift.
    events = [*agreeing(), drawdown("A", 5 * S, 3_000), displayed("A", 6 * S, 7_000),
              displayed("A", 10 * S, 10_000)]
    alert = opened(replay([*events, tick(10 * S + SLA + 1)]))
    assert alert["reason"] == "CACHE_DIVERGED"


@pytest.mark.parametrize("status", ["frozen", "closed"])
def test_frozen_account_showing_more_than_zero_is_freeze_not_applied(status: str) -> None:
    events = [*agreeing(), account_status("A", 10 * S, status, 1)]
    alert = opened(replay([*events, tick(10 * S + SLA + 1)]))
    assert (alert["reason"], alert["severity"]) == ("FREEZE_NOT_APPLIED", "critical")
    assert (alert["expected_available"], alert["displayed_available"]) == (0, 10_000)


def test_no_value_shown_is_cache_missing_major() -> None:
    events = [*agreeing(), displayed("A", 10 * S, None)]
    alert = opened(replay([*events, tick(10 * S + SLA + 1)]))
    assert (alert["reason"], alert["severity"]) == ("CACHE_MISSING", "major")
    assert (alert["displayed_available"], alert["drift"]) == (None, None)


def test_frozen_account_with_no_value_shown_is_cache_missing() -> None:
    events = [*agreeing(), account_status("A", 10 * S, "frozen", 1), displayed("A", 11 * S, None)]
    alert = opened(replay([*events, tick(10 * S + SLA + 1)]))
    assert alert["reason"] == "CACHE_MISSING"


def test_reason_is_fixed_when_the_breach_fires() -> None:
    # SYNC_DELAY at the breach; the display then diverges while still in drift.
    events = [*STALE, tick(10 * S + SLA + 1), displayed("A", 10 * S + SLA + 2 * S, 1)]
    result = replay([*events, tick(10 * S + 10 * SLA + 1)])
    assert {a["reason"] for a in result.alerts if a["account_id"] == "A"} == {"SYNC_DELAY"}


def test_alert_records_follow_the_contract_schema() -> None:
    events = [*STALE, tick(10 * S + 10 * SLA + 1), displayed("A", 10 * S + 10 * SLA + 2, 7_000)]
    result = replay(events)
    assert kinds(result) == ["mismatch.opened", "mismatch.escalated", "mismatch.resolved"]
    for alert in result.alerts:
        AlertRecord.model_validate(alert)


def test_alert_carries_timing_and_evidence() -> None:
    alert = opened(replay([*STALE, tick(10 * S + SLA + 1)]))
    assert alert["opened_at"] == ts(10 * S)
    assert alert["detected_at"] == ts(10 * S + SLA + 1)
    assert (alert["sla_seconds"], alert["age_seconds"]) == (60, 60)
    assert alert["evidence_event_ids"] == ["dd1"]
    assert alert["account_id"] == "A"


# -- the SLA boundary -----------------------------------------------------------------------


def test_drift_exactly_as_old_as_the_sla_does_not_fire() -> None:
    assert replay([*STALE, tick(10 * S + SLA)]).alerts == []


def test_drift_one_millisecond_over_the_sla_fires() -> None:
    assert kinds(replay([*STALE, tick(10 * S + SLA + 1)])) == ["mismatch.opened"]


def test_breach_fires_once_per_drift() -> None:
    ticks = [tick(10 * S + SLA + 1), tick(10 * S + 2 * SLA), tick(10 * S + 3 * SLA)]
    result = replay([*STALE, *ticks])
    assert kinds(result) == ["mismatch.opened"]


def test_sla_is_configurable() -> None:
    result = replay([*STALE, tick(10 * S + 30 * S + 1)], sla_s=30)
    assert kinds(result) == ["mismatch.opened"]


def test_drift_closed_within_the_sla_raises_nothing() -> None:
    result = replay([*STALE, displayed("A", 10 * S + SLA, 7_000), tick(20 * SLA)])
    assert result.alerts == []
    assert result.engine.accounts["A"].app.drift is None


# -- resolutions --------------------------------------------------------------------------------


def test_observation_that_agrees_again_resolves_synced() -> None:
    events = [*STALE, tick(10 * S + SLA + 1), displayed("A", 100 * S, 7_000)]
    resolved = replay(events).alerts[-1]
    assert (resolved["type"], resolved["resolution"]) == ("mismatch.resolved", "synced")
    assert resolved["resolved_at"] == ts(100 * S)


def test_ledger_change_that_makes_them_agree_resolves_superseded() -> None:
    events = [*STALE, tick(10 * S + SLA + 1), repayment_posted("A", 100 * S, 3_000)]
    resolved = replay(events).alerts[-1]
    assert (resolved["type"], resolved["resolution"]) == ("mismatch.resolved", "superseded")


def test_observation_that_still_disagrees_does_not_resolve() -> None:
    events = [*STALE, tick(10 * S + SLA + 1), displayed("A", 100 * S, 8_000)]
    assert kinds(replay(events)) == ["mismatch.opened"]


def test_drift_closed_by_the_record_that_passed_its_deadline_opens_then_resolves() -> None:
    result = replay([*STALE, displayed("A", 10 * S + SLA + 1, 7_000)])
    assert kinds(result) == ["mismatch.opened", "mismatch.resolved"]
    first, last = result.alerts
    assert (first["expected_available"], first["displayed_available"]) == (7_000, 10_000)
    assert last["resolution"] == "synced"


def test_alert_id_is_the_same_on_opened_escalated_and_resolved() -> None:
    events = [*STALE, tick(10 * S + 10 * SLA + 1), displayed("A", 10 * S + 10 * SLA + 2, 7_000)]
    result = replay(events)
    assert kinds(result) == ["mismatch.opened", "mismatch.escalated", "mismatch.resolved"]
    assert len({a["alert_id"] for a in result.alerts}) == 1


def test_a_new_drift_after_one_closed_gets_a_new_alert_id() -> None:
    events = [*STALE, tick(10 * S + SLA + 1), displayed("A", 100 * S, 7_000),
              drawdown("A", 200 * S, 1_000), tick(200 * S + SLA + 1)]
    result = replay(events)
    ids = [a["alert_id"] for a in result.alerts if a["type"] == "mismatch.opened"]
    assert len(ids) == 2 and ids[0] != ids[1]


# -- escalation -----------------------------------------------------------------------------


def test_escalation_fires_once_past_ten_times_the_sla() -> None:
    result = replay([*STALE, tick(10 * S + SLA + 1), tick(10 * S + 10 * SLA + 1),
                     tick(10 * S + 20 * SLA), tick(10 * S + 100 * SLA)])
    assert kinds(result) == ["mismatch.opened", "mismatch.escalated"]


def test_no_escalation_before_ten_times_the_sla() -> None:
    result = replay([*STALE, tick(10 * S + SLA + 1), tick(10 * S + 10 * SLA - 1)])
    assert kinds(result) == ["mismatch.opened"]


def test_escalation_reports_its_age() -> None:
    result = replay([*STALE, tick(10 * S + 10 * SLA + 1)])
    escalated = result.alerts[-1]
    assert escalated["type"] == "mismatch.escalated"
    assert escalated["age_seconds"] == 600


def test_a_drift_that_closed_is_not_escalated() -> None:
    result = replay([*STALE, tick(10 * S + SLA + 1), displayed("A", 100 * S, 7_000),
                     tick(10 * S + 20 * SLA)])
    assert kinds(result) == ["mismatch.opened", "mismatch.resolved"]


# -- which accounts and which clock ------------------------------------------------------


def test_no_drift_is_tracked_for_an_account_never_observed() -> None:
    events = [credit_line("A", 0, 10_000, 1), drawdown("A", 10 * S, 3_000), tick(100 * SLA)]
    result = replay(events)
    assert result.alerts == []
    assert result.engine.accounts["A"].app.drift is None


def test_drift_opens_at_the_first_observation_that_disagrees() -> None:
    events = [credit_line("A", 0, 10_000, 1), drawdown("A", 10 * S, 3_000),
              displayed("A", 20 * S, 10_000), tick(20 * S + SLA + 1)]
    assert opened(replay(events))["opened_at"] == ts(20 * S)


def test_breach_fires_for_a_silent_account_driven_by_other_accounts() -> None:
    result = replay([*STALE, tick(10 * S + SLA + 1)])
    alert = opened(result)
    assert alert["account_id"] == "A"
    assert alert["detected_at"] == ts(10 * S + SLA + 1)


def test_breach_fires_for_a_silent_account_driven_by_until() -> None:
    result = replay(STALE, until=10 * S + SLA + 1)
    assert kinds(result) == ["mismatch.opened"]
    assert opened(result)["detected_at"] == ts(10 * S + SLA + 1)


def test_until_exactly_at_the_sla_fires_nothing() -> None:
    assert replay(STALE, until=10 * S + SLA).alerts == []


def test_at_the_end_of_input_nothing_more_fires_without_until() -> None:
    result = replay([*STALE, tick(10 * S + SLA - 1)])
    assert result.alerts == []
    assert result.engine.accounts["A"].app.drift is not None


def test_until_earlier_than_the_clock_does_not_move_it_back() -> None:
    result = replay([*STALE, tick(10 * S + SLA + 1)], until=0)
    assert kinds(result) == ["mismatch.opened"]


def test_late_record_does_not_move_the_clock_back() -> None:
    result = replay([*STALE, tick(80 * S), displayed("B", 0, 5)])
    assert result.engine.clock.now() == us(80 * S)


def test_drift_opens_at_the_occurred_at_of_the_record_that_made_it() -> None:
    # A late record (occurred before the clock) opens the drift at its own occurred_at.
    events = [*agreeing(), tick(30 * S), drawdown("A", 5 * S, 3_000), tick(5 * S + SLA + 1)]
    alert = opened(replay(events))
    assert alert["opened_at"] == ts(5 * S)


def test_each_drifting_account_alerts_separately() -> None:
    events = [*STALE, credit_line("B", 0, 500, 1), displayed("B", 0, 500),
              drawdown("B", 10 * S, 100), tick(10 * S + SLA + 1)]
    result = replay(events)
    assert sorted(a["account_id"] for a in result.alerts) == ["A", "B"]


def test_late_record_opening_a_drift_older_than_the_sla_breaches_at_once() -> None:
    events = [*agreeing(), tick(100 * S), drawdown("A", 10 * S, 3_000)]
    alert = opened(replay(events))
    assert (alert["opened_at"], alert["detected_at"]) == (ts(10 * S), ts(100 * S))


def test_evidence_lists_the_ledger_events_the_display_missed() -> None:
    events = [*STALE, drawdown("A", 20 * S, 1_000, event_id="dd2"), tick(10 * S + SLA + 1)]
    assert opened(replay(events))["evidence_event_ids"] == ["dd1", "dd2"]


# -- auto-heal (live only: a replay never heals) ----------------------------------------------


def breached_engine() -> Engine:
    """A's cache (not the app) shows the value before the drawdown, past the SLA."""
    engine = Engine(CoreConfig(), EventTimeClock())
    feed(engine, [credit_line("A", 0, 10_000, 1), displayed("A", 0, 10_000, source="cache"),
                  drawdown("A", 10 * S, 3_000), tick(10 * S + SLA + 1)])
    return engine


def test_heal_rewrites_the_cache_with_the_expected_value_and_a_higher_version() -> None:
    engine = breached_engine()
    version = engine.accounts["A"].version
    (write,) = engine.heal("A")
    assert isinstance(write, CacheWrite)
    assert (write.available, write.version, write.heal) == (7_000, version + 1, True)


def test_drift_closed_by_the_healed_cache_resolves_auto_healed() -> None:
    engine = breached_engine()
    engine.heal("A")
    effects = ingest(engine, displayed("A", 80 * S, 7_000, source="cache"))
    (resolved,) = [e.record for e in effects if isinstance(e, AlertRaised)]
    assert (resolved["type"], resolved["source"], resolved["resolution"]) == (
        "mismatch.resolved", "cache", "auto_healed")


def test_a_cache_drift_that_was_not_healed_resolves_synced() -> None:
    engine = breached_engine()
    effects = ingest(engine, displayed("A", 80 * S, 7_000, source="cache"))
    (resolved,) = [e.record for e in effects if isinstance(e, AlertRaised)]
    assert resolved["resolution"] == "synced"


def test_heal_of_an_unknown_account_does_nothing() -> None:
    assert breached_engine().heal("NOPE") == []


def test_breaches_fire_in_deadline_order_when_a_late_record_opens_the_earlier_drift() -> None:
    # A's drift opens at 10 s in time order; B's record at 5 s arrives after it, late
    events = [
        *agreeing(),
        credit_line("B", 0, 10_000, 1),
        displayed("B", 0, 10_000),
        drawdown("A", 10 * S, 1_000, event_id="ddA"),
        drawdown("B", 5 * S, 1_000, event_id="ddB"),
        tick(200 * S),
    ]
    alerts = replay(events).alerts
    opened_order = [a["account_id"] for a in alerts if a["type"] == "mismatch.opened"]
    assert opened_order == ["B", "A"]
