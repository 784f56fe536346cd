"""The default behaviour scorecard (streams/scorer.py), rule by rule: points a person can
follow, a line that moves at most 10% a rescore in whole 100-yuan steps, and at most four
reasons, heaviest first, each from the scorecard's declared list."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from streams.core.state import AccountState
from streams.scorer import BehaviourScorecard, Features, features_of

LINE = 1_000_000  # 10,000.00 yuan, in fen

# A middling account: 50% used, 40% of principal repaid, 3 drawdowns, 90 days: 600 points,
# inside the band where the line stays.
BASE = Features(
    credit_line=LINE,
    outstanding=500_000,
    drawn_total=600_000,
    repaid_total=240_000,
    drawdowns=3,
    repayments=2,
    failed_debits=0,
    tenure_days=90,
)


def score(**changes: int) -> tuple[int | float, int, list[str]]:
    decision = BehaviourScorecard().score(replace(BASE, **changes))
    return decision.score, decision.credit_line, decision.reasons


@pytest.mark.parametrize(
    ("changes", "points"),
    [
        ({}, 600),
        ({"outstanding": 950_000}, 520),  # utilisation >= 90%: -80
        ({"outstanding": 750_000}, 560),  # utilisation >= 70%: -40
        ({"outstanding": 200_000}, 640),  # utilisation <= 30%: +40
        ({"repaid_total": 300_000}, 650),  # half of principal repaid: +50
        ({"repaid_total": 50_000}, 570),  # under 10% repaid with 2+ drawdowns: -30
        ({"failed_debits": 1}, 540),  # -60 a failed debit
        ({"failed_debits": 5}, 450),  # ... at most -150
        ({"drawdowns": 8}, 560),  # frequent borrowing: -40
        ({"tenure_days": 200}, 630),  # 180+ days: +30
        ({"tenure_days": 10}, 590),  # under 30 days: -10
    ],
)
def test_each_rule_moves_the_points_by_its_weight(changes: dict[str, int], points: int) -> None:
    assert score(**changes)[0] == points


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({}, LINE),  # 600 points: inside 550..680, the line stays
        ({"failed_debits": 1}, 900_000),  # 540 < 550: 10% down
        ({"outstanding": 200_000, "repaid_total": 300_000, "tenure_days": 200}, 1_100_000),
    ],
)
def test_the_line_moves_a_tenth_at_most(changes: dict[str, int], line: int) -> None:
    assert score(**changes)[1] == line


def test_a_lowered_line_is_a_whole_number_of_hundred_yuan() -> None:
    decision = BehaviourScorecard().score(replace(BASE, credit_line=1_234_567, failed_debits=1))
    assert decision.credit_line == 1_110_000  # 1,234,567 - 123,456 = 1,111,111, rounded down


def test_at_most_four_reasons_heaviest_first() -> None:
    reasons = score(
        outstanding=950_000, repaid_total=50_000, failed_debits=3, drawdowns=9, tenure_days=5
    )[2]
    assert [r.split()[0] for r in reasons] == ["3", "Utilisation", "Frequent", "Only"]


def test_every_reason_given_is_a_declared_one() -> None:
    reasons = score(
        outstanding=950_000, repaid_total=50_000, failed_debits=3, drawdowns=9, tenure_days=5
    )[2]
    declared = BehaviourScorecard.declared_reasons
    assert all(any(re.fullmatch(p, r) for p in declared) for r in reasons)


def test_a_rise_gives_no_reasons() -> None:
    assert score(outstanding=200_000, repaid_total=300_000, tenure_days=200)[2] == []


def test_features_read_from_the_live_row_are_those_of_the_whole_state() -> None:
    # A rescore reads the row (hot_dict), not the whole state with every remembered id.
    acct = AccountState("A1")
    acct.credit_line, acct.drawn, acct.repaid = LINE, 600_000, 240_000
    acct.drawdowns, acct.repayments, acct.failed_debits = 3, 2, 1
    acct.first_us = 1_700_000_000_000_000
    acct.seen["e1"] = ("ab" * 16, 1)
    now = acct.first_us + 90 * 86_400_000_000
    assert features_of(acct.hot_dict(), now) == features_of(acct.to_dict(), now)
