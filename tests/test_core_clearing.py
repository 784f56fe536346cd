"""The clearing watch (docs/contract.md "Input events": repayment.initiated; "Drift, SLA and
alerts": payment_id).

A repayment the user made must be posted by core banking within the clearing SLA (default
2 h), else ``REPAYMENT_NOT_POSTED``, one alert per payment. Times are milliseconds after T0.
"""

from __future__ import annotations

from typing import Any

from eventlog import (
    S,
    credit_line,
    displayed,
    drawdown,
    repayment_initiated,
    repayment_posted,
    replay,
    ts,
)

from limitsync.replay import ReplayResult
from schemas.records import AlertRecord

CLEAR = 7200 * S  # the default clearing SLA

OWES = [credit_line("A", 0, 10_000, 1), drawdown("A", 0, 4_000)]
PAID = [*OWES, repayment_initiated("A", S, "pay-1", 1_000, event_id="init-1")]


def tick(at: int) -> dict[str, Any]:
    return displayed("OTHER", at, 0)


def not_posted(result: ReplayResult) -> list[dict[str, Any]]:
    return [a for a in result.alerts if a["reason"] == "REPAYMENT_NOT_POSTED"]


def test_repayment_not_posted_within_the_clearing_sla_alerts() -> None:
    (alert,) = not_posted(replay([*PAID, tick(S + CLEAR + 1)]))
    assert alert["type"] == "mismatch.opened"
    assert alert["payment_id"] == "pay-1"
    assert alert["opened_at"] == ts(S)
    assert alert["detected_at"] == ts(S + CLEAR + 1)
    assert alert["severity"] == "major"
    assert alert["sla_seconds"] == 7200
    assert alert["evidence_event_ids"] == ["init-1"]
    AlertRecord.model_validate(alert)


def test_clearing_watch_exactly_as_old_as_its_sla_does_not_fire() -> None:
    assert not_posted(replay([*PAID, tick(S + CLEAR)])) == []


def test_clearing_sla_is_configurable() -> None:
    result = replay([*PAID, tick(S + 600 * S + 1)], clearing_sla_s=600)
    assert [a["payment_id"] for a in not_posted(result)] == ["pay-1"]


def test_clearing_breach_fires_for_a_silent_account_with_until() -> None:
    result = replay(PAID, until=S + CLEAR + 1)
    assert [a["type"] for a in not_posted(result)] == ["mismatch.opened"]


def test_clearing_watch_needs_no_observation_of_the_display() -> None:
    (alert,) = not_posted(replay([*PAID, tick(S + CLEAR + 1)]))
    assert alert["displayed_available"] is None


def test_clearing_alert_is_major_and_carries_the_values_at_detection() -> None:
    # The display shows more than expected (a critical display drift of its own), yet the
    # clearing alert stays major; its values are the account's when it was detected.
    events = [*PAID, displayed("A", 2 * S, 9_000), tick(S + CLEAR + 1)]
    (alert,) = not_posted(replay(events))
    assert alert["severity"] == "major"
    assert (alert["expected_available"], alert["displayed_available"]) == (6_000, 9_000)


def test_posting_within_the_sla_satisfies_the_watch() -> None:
    events = [*PAID, repayment_posted("A", 60 * S, 1_000, payment_id="pay-1"),
              tick(S + 20 * CLEAR)]
    assert not_posted(replay(events)) == []


def test_late_posting_resolves_the_alert_synced() -> None:
    events = [*PAID, tick(S + CLEAR + 1),
              repayment_posted("A", S + CLEAR + 60 * S, 1_000, payment_id="pay-1")]
    opened, resolved = not_posted(replay(events))
    assert (resolved["type"], resolved["resolution"]) == ("mismatch.resolved", "synced")
    assert resolved["alert_id"] == opened["alert_id"]
    assert resolved["payment_id"] == "pay-1"
    assert resolved["resolved_at"] == ts(S + CLEAR + 60 * S)


def test_posting_before_its_initiation_satisfies_the_watch_in_advance() -> None:
    events = [*OWES, repayment_posted("A", S, 1_000, payment_id="pay-1"),
              repayment_initiated("A", 2 * S, "pay-1", 1_000), tick(2 * S + 20 * CLEAR)]
    assert not_posted(replay(events)) == []


def test_posting_of_another_payment_does_not_satisfy_the_watch() -> None:
    events = [*PAID, repayment_posted("A", 60 * S, 1_000, payment_id="pay-2"),
              tick(S + CLEAR + 1)]
    assert [a["payment_id"] for a in not_posted(replay(events))] == ["pay-1"]


def test_posting_without_payment_id_does_not_satisfy_the_watch() -> None:
    events = [*PAID, repayment_posted("A", 60 * S, 1_000), tick(S + CLEAR + 1)]
    assert len(not_posted(replay(events))) == 1


def test_posting_of_the_same_payment_id_on_another_account_does_not_satisfy_it() -> None:
    events = [*PAID, drawdown("B", 0, 1_000),
              repayment_posted("B", 60 * S, 1_000, payment_id="pay-1"), tick(S + CLEAR + 1)]
    assert [a["account_id"] for a in not_posted(replay(events))] == ["A"]


def test_one_alert_per_payment() -> None:
    events = [*PAID, repayment_initiated("A", 2 * S, "pay-2", 500), tick(2 * S + CLEAR + 1)]
    alerts = not_posted(replay(events))
    assert sorted(a["payment_id"] for a in alerts) == ["pay-1", "pay-2"]
    assert len({a["alert_id"] for a in alerts}) == 2


def test_a_retried_initiation_of_the_same_payment_is_one_watch() -> None:
    events = [*PAID, repayment_initiated("A", 30 * S, "pay-1", 1_000, event_id="init-1b"),
              tick(30 * S + CLEAR + 1)]
    alerts = not_posted(replay(events))
    assert [(a["type"], a["opened_at"]) for a in alerts] == [("mismatch.opened", ts(S))]


def test_clearing_alert_escalates_once_at_ten_times_its_sla() -> None:
    events = [*PAID, tick(S + CLEAR + 1), tick(S + 10 * CLEAR + 1), tick(S + 30 * CLEAR)]
    result = replay(events)
    assert [a["type"] for a in not_posted(result)] == ["mismatch.opened", "mismatch.escalated"]


def test_posting_that_itself_passes_the_deadline_opens_then_resolves() -> None:
    events = [*PAID, repayment_posted("A", S + CLEAR + 1, 1_000, payment_id="pay-1")]
    alerts = not_posted(replay(events))
    assert [(a["type"], a.get("resolution")) for a in alerts] == [
        ("mismatch.opened", None), ("mismatch.resolved", "synced")]
