"""The ledger rules and idempotency (docs/contract.md "Input events", "The expected available
limit", "Envelope": event_id; "The Redis limit cache": version).

Each test replays a few events through the same core the workers use and reads the
account's state, the cache writes it asked for, or the dead letters.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from eventlog import (
    S,
    account_status,
    credit_line,
    displayed,
    drawdown,
    feed,
    ingest,
    line,
    records,
    repayment_initiated,
    repayment_posted,
    repayment_reversed,
    replay,
)

from limitsync.replay import ReplayOptions, run_replay
from streams.core import AccountState, CacheWrite, CoreConfig, Engine, EventTimeClock


def account(events: list[dict[str, Any]], account_id: str = "A") -> AccountState:
    return replay(events).engine.accounts[account_id]


def new_engine() -> Engine:
    return Engine(CoreConfig(), EventTimeClock())


LINE = credit_line("A", 0, 10_000, 1)


# -- each input type's effect -----------------------------------------------------------------


def test_account_starts_active_with_line_zero() -> None:
    acct = account([drawdown("A", 0, 0)])
    assert (acct.credit_line, acct.outstanding, acct.status, acct.expected_available) == (
        0, 0, "active", 0)


def test_drawdown_adds_principal_to_outstanding() -> None:
    acct = account([LINE, drawdown("A", S, 3_000), drawdown("A", 2 * S, 500, loan_id="L2")])
    assert acct.outstanding == 3_500
    assert acct.expected_available == 6_500


def test_repayment_initiated_changes_nothing() -> None:
    acct = account([LINE, drawdown("A", S, 3_000), repayment_initiated("A", 2 * S, "p1", 3_000)])
    assert (acct.outstanding, acct.expected_available) == (3_000, 7_000)


def test_repayment_posted_restores_principal() -> None:
    acct = account([LINE, drawdown("A", S, 3_000), repayment_posted("A", 2 * S, 1_000)])
    assert (acct.outstanding, acct.expected_available) == (2_000, 8_000)


def test_interest_and_fee_never_restore_the_limit() -> None:
    acct = account([LINE, drawdown("A", S, 3_000),
                    repayment_posted("A", 2 * S, 1_000, interest=400, fee=100)])
    assert (acct.outstanding, acct.expected_available) == (2_000, 8_000)


def test_repayment_of_only_interest_restores_nothing() -> None:
    acct = account([LINE, drawdown("A", S, 3_000),
                    repayment_posted("A", 2 * S, 0, interest=900, fee=100)])
    assert acct.expected_available == 7_000


def test_outstanding_floors_at_zero() -> None:
    acct = account([LINE, drawdown("A", S, 1_000), repayment_posted("A", 2 * S, 4_000)])
    assert acct.outstanding == 0
    assert acct.expected_available == 10_000


def test_expected_floors_at_zero_when_outstanding_exceeds_line() -> None:
    acct = account([LINE, drawdown("A", S, 12_000)])
    assert acct.expected_available == 0


def test_credit_line_changed_sets_the_line() -> None:
    acct = account([LINE, drawdown("A", S, 1_000), credit_line("A", 2 * S, 20_000, 2)])
    assert (acct.credit_line, acct.expected_available) == (20_000, 19_000)


@pytest.mark.parametrize("status", ["frozen", "closed"])
def test_expected_is_zero_when_frozen_or_closed(status: str) -> None:
    acct = account([LINE, account_status("A", S, status, 1)])
    assert acct.status == status
    assert acct.expected_available == 0


def test_unfreeze_restores_the_expected_limit() -> None:
    acct = account([LINE, drawdown("A", S, 1_000), account_status("A", 2 * S, "frozen", 1),
                    account_status("A", 3 * S, "active", 2)])
    assert acct.expected_available == 9_000


def test_limit_displayed_changes_no_ledger_state() -> None:
    before = account([LINE, drawdown("A", S, 1_000)])
    after = account([LINE, drawdown("A", S, 1_000), displayed("A", 2 * S, 123)])
    assert (after.credit_line, after.outstanding, after.status, after.version) == (
        before.credit_line, before.outstanding, before.status, before.version)
    assert after.app.displayed == 123


# -- version rule for credit line and status ------------------------------------------------


def test_first_credit_line_of_any_version_applies() -> None:
    assert account([credit_line("A", 0, 5_000, 41)]).credit_line == 5_000


def test_first_credit_line_of_version_zero_applies() -> None:
    assert account([credit_line("A", 0, 5_000, 0)]).credit_line == 5_000


def test_older_credit_line_arriving_late_is_ignored() -> None:
    acct = account([credit_line("A", 0, 8_000, 5), credit_line("A", S, 3_000, 4)])
    assert acct.credit_line == 8_000


def test_credit_line_of_the_same_version_is_ignored() -> None:
    acct = account([credit_line("A", 0, 8_000, 5), credit_line("A", S, 3_000, 5)])
    assert acct.credit_line == 8_000


def test_first_status_of_any_version_applies() -> None:
    assert account([LINE, account_status("A", S, "frozen", 9)]).status == "frozen"


def test_older_status_arriving_late_is_ignored() -> None:
    acct = account([LINE, account_status("A", S, "active", 3),
                    account_status("A", 2 * S, "frozen", 2)])
    assert acct.status == "active"
    assert acct.expected_available == 10_000


def test_line_and_status_versions_are_independent() -> None:
    acct = account([credit_line("A", 0, 8_000, 7), account_status("A", S, "frozen", 1)])
    assert acct.status == "frozen"


# -- reversals --------------------------------------------------------------------------------


def test_reversal_after_its_repayment_undoes_it() -> None:
    acct = account([LINE, drawdown("A", S, 3_000),
                    repayment_posted("A", 2 * S, 1_000, event_id="r1"),
                    repayment_reversed("A", 3 * S, "r1")])
    assert (acct.outstanding, acct.expected_available) == (3_000, 7_000)


def test_reversal_before_its_repayment_undoes_it() -> None:
    acct = account([LINE, drawdown("A", S, 3_000), repayment_reversed("A", 3 * S, "r1"),
                    repayment_posted("A", 2 * S, 1_000, event_id="r1")])
    assert (acct.outstanding, acct.expected_available) == (3_000, 7_000)


def test_second_reversal_of_the_same_repayment_changes_nothing() -> None:
    acct = account([LINE, drawdown("A", S, 3_000),
                    repayment_posted("A", 2 * S, 1_000, event_id="r1"),
                    repayment_posted("A", 2 * S, 1_000, event_id="r2"),
                    repayment_reversed("A", 3 * S, "r1"), repayment_reversed("A", 4 * S, "r1")])
    assert acct.outstanding == 2_000


def test_second_reversal_before_the_repayment_changes_nothing() -> None:
    acct = account([LINE, drawdown("A", S, 3_000), repayment_reversed("A", S, "r1"),
                    repayment_reversed("A", 2 * S, "r1"),
                    repayment_posted("A", 3 * S, 1_000, event_id="r1")])
    assert acct.outstanding == 3_000


def test_reversal_only_undoes_a_repayment_of_its_own_account() -> None:
    result = replay([LINE, drawdown("A", S, 3_000), drawdown("B", S, 3_000),
                     repayment_posted("B", 2 * S, 1_000, event_id="r1"),
                     repayment_reversed("A", 3 * S, "r1")])
    assert result.engine.accounts["B"].outstanding == 2_000
    assert result.engine.accounts["A"].outstanding == 3_000


def test_orphan_reversal_changes_nothing_and_is_not_dead_lettered() -> None:
    with_orphan = replay([LINE, drawdown("A", S, 3_000), repayment_reversed("A", 2 * S, "never")])
    without = replay([LINE, drawdown("A", S, 3_000)])
    assert with_orphan.dead_letters == []
    assert with_orphan.account_lines() == without.account_lines()
    assert with_orphan.engine.accounts["A"].version == without.engine.accounts["A"].version


def test_orphan_reversal_is_counted() -> None:
    result = replay([LINE, repayment_reversed("A", S, "never")])
    assert result.counts["applied"] == 2
    assert result.engine.counters["events.repayment.reversed"] == 1


# -- cache version ----------------------------------------------------------------------------


def cache_writes(events: list[dict[str, Any]]) -> list[CacheWrite]:
    return [e for e in feed(new_engine(), events) if isinstance(e, CacheWrite)]


def test_every_applied_change_writes_the_cache_with_a_higher_version() -> None:
    writes = cache_writes([LINE, drawdown("A", S, 3_000), repayment_posted("A", 2 * S, 1_000),
                           account_status("A", 3 * S, "frozen", 1)])
    assert [w.version for w in writes] == [1, 2, 3, 4]
    assert [w.available for w in writes] == [10_000, 7_000, 8_000, 0]


def test_cache_write_carries_the_contract_hash_fields() -> None:
    (write,) = cache_writes([credit_line("A", 0, 10_000, 1)])[-1:]
    assert (write.account_id, write.available, write.credit_line, write.outstanding,
            write.status) == ("A", 10_000, 10_000, 0, "active")


@pytest.mark.parametrize(
    "ignored",
    [credit_line("A", 5 * S, 1, 1), account_status("A", 5 * S, "closed", 1),
     repayment_reversed("A", 5 * S, "nothing"), displayed("A", 5 * S, 10_000),
     repayment_initiated("A", 5 * S, "p9", 100)],
    ids=["older-line", "older-status", "orphan-reversal", "observation", "initiated"],
)
def test_cache_version_does_not_grow_for_what_changes_nothing(ignored: dict[str, Any]) -> None:
    engine = new_engine()
    feed(engine, [credit_line("A", 0, 10_000, 2), account_status("A", S, "active", 2)])
    version = engine.accounts["A"].version
    effects = ingest(engine, ignored)
    assert engine.accounts["A"].version == version
    assert not [e for e in effects if isinstance(e, CacheWrite)]


# -- idempotency -------------------------------------------------------------------------------


def test_duplicate_changes_nothing() -> None:
    dd = drawdown("A", S, 3_000)
    once = replay([LINE, dd])
    twice = replay([LINE, dd, dd])
    assert twice.account_lines() == once.account_lines()
    assert twice.engine.accounts["A"].version == once.engine.accounts["A"].version
    assert twice.counts["duplicate"] == 1
    assert twice.dead_letters == []


def test_duplicate_with_other_key_order_and_whitespace_is_a_duplicate() -> None:
    dd = drawdown("A", S, 3_000, note="x")
    respelled = json.dumps(dict(reversed(list(dd.items()))), indent=2).encode()
    result = run_replay(records([LINE, dd, respelled]), ReplayOptions())
    assert result.counts["duplicate"] == 1
    assert result.engine.accounts["A"].outstanding == 3_000


def test_duplicate_returns_no_effects() -> None:
    engine = new_engine()
    dd = drawdown("A", S, 3_000)
    feed(engine, [LINE, dd])
    assert ingest(engine, dd) == []


def test_conflict_changes_nothing_and_is_dead_lettered() -> None:
    dd = drawdown("A", S, 3_000, event_id="d1")
    clash = drawdown("A", S, 9_999, event_id="d1")
    result = replay([LINE, dd, clash])
    assert result.engine.accounts["A"].outstanding == 3_000
    (dead,) = result.dead_letters
    assert dead["reason"] == "conflict"
    assert "d1" in dead["error"]
    assert dead["offset"] == 2
    assert dead["event_id"] == "d1"
    assert dead["account_id"] == "A"


def test_conflict_in_an_extra_field_only_is_a_conflict() -> None:
    dd = drawdown("A", S, 3_000, event_id="d1", source="core-1")
    result = replay([LINE, dd, {**dd, "source": "core-2"}])
    assert [d["reason"] for d in result.dead_letters] == ["conflict"]


def test_conflict_keeps_its_original_bytes() -> None:
    dd = drawdown("A", S, 3_000, event_id="d1")
    clash = orjson.dumps({**dd, "principal": 1})
    result = run_replay(records([LINE, dd, clash]), ReplayOptions())
    assert result.dead_letters[0]["original"] == clash.decode()


def test_duplicate_and_conflict_do_not_advance_the_clock() -> None:
    dd = drawdown("A", S, 3_000, event_id="d1")
    engine = new_engine()
    feed(engine, [LINE, dd])
    now = engine.clock.now()
    ingest(engine, dd)
    ingest(engine, {**dd, "occurred_at": "2030-01-01T00:00:00Z"})
    assert engine.clock.now() == now


def test_a_conflict_far_in_the_future_fires_no_breach() -> None:
    # A drifts at 1 s; a conflict at +1 h must not move the clock past A's SLA.
    dd = drawdown("A", S, 3_000, event_id="d1")
    result = replay([LINE, displayed("A", 0, 10_000), dd,
                     {**dd, "occurred_at": "2026-11-29T11:00:00.000Z"}])
    assert result.alerts == []


def test_dead_lettered_invalid_record_does_not_advance_the_clock() -> None:
    late = drawdown("A", 3600 * S, -1)  # invalid: negative amount
    result = replay([LINE, displayed("A", 0, 10_000), drawdown("A", S, 3_000), late])
    assert [d["reason"] for d in result.dead_letters] == ["invalid"]
    assert result.alerts == []


def test_duplicate_of_the_original_bytes_is_detected_through_the_file_path() -> None:
    dd = drawdown("A", S, 3_000)
    result = run_replay(records([LINE, line(dd), line(dd)]), ReplayOptions())
    assert (result.counts["applied"], result.counts["duplicate"]) == (2, 1)
