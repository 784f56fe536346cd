"""Issue 15, scorecard backtests: at every rescore point of a log, what the candidate decides."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from eventlog import S, credit_line, displayed, drawdown, records

from limitsync.backtest import BacktestResult, run_backtest, write_outputs
from limitsync.cli import main
from streams.scorer import Decision, Features
from tests.test_report_browser import CHROMIUM, _chromium, _console_errors

LINE = 1_000_000  # 10,000.00 yuan


class Halver:
    """A candidate that halves every line, with the reasons it is given."""

    model_version = "halver-1"
    declared_reasons = (r"Utilisation above \d+%",)

    def __init__(self, reasons: list[str] | None = None) -> None:
        self.reasons = ["Utilisation above 50%"] if reasons is None else reasons

    def score(self, f: Features) -> Decision:
        return Decision(f.credit_line // 2, 400, self.reasons, self.model_version)


class Keeper:
    """A candidate that keeps every line (and declares no reasons)."""

    model_version = "keeper-1"

    def score(self, f: Features) -> Decision:
        return Decision(f.credit_line, 600, [], self.model_version)


def rescore(account: str, at: int, amount: int, version: int) -> dict[str, Any]:
    return credit_line(account, at, amount, version, cause="rescore", score=500,
                       reasons=["incumbent reason"])


LOG = [
    credit_line("a1", 0, LINE, 1),
    credit_line("a2", 0, LINE, 1),
    drawdown("a1", 1 * S, 600_000),
    rescore("a1", 2 * S, 900_000, 2),
    rescore("a2", 3 * S, 1_100_000, 2),
]


def backtest(log: list[dict[str, Any]], scorer: Any) -> tuple[BacktestResult, list[Any]]:
    out = io.BytesIO()
    result = run_backtest(records(log), scorer, "tests:candidate", out)
    return result, [json.loads(x) for x in out.getvalue().splitlines()]


def test_every_rescore_point_of_the_log_is_asked() -> None:
    assert backtest(LOG, Keeper())[0].rescore_points == 2


def test_the_candidates_cuts_are_named_by_account() -> None:
    assert backtest(LOG, Halver())[0].accounts_cut == {"a1", "a2"}


def test_a_decision_row_sets_the_candidate_beside_the_incumbent() -> None:
    row = backtest(LOG, Halver())[1][0]
    assert (row["line_before"], row["incumbent"]["credit_line"], row["candidate"]["credit_line"],
            row["change"]) == (LINE, 900_000, LINE // 2, -LINE // 2)


def test_a_candidate_keeping_every_line_changes_none() -> None:
    assert backtest(LOG, Keeper())[0].lines_changed == 0


def test_a_cut_with_more_than_four_reasons_is_a_problem() -> None:
    five = [f"Utilisation above {n}%" for n in range(5)]
    assert backtest(LOG, Halver(five))[0].reason_problems == 2


def test_a_cut_with_a_reason_the_scorer_did_not_declare_is_a_problem() -> None:
    row = backtest(LOG, Halver(["Your face"]))[1][0]
    assert row["reason_problems"] == ["undeclared reason: Your face"]


def test_the_change_distribution_counts_halved_lines_below_minus_twenty_percent() -> None:
    assert backtest(LOG, Halver())[0].summary()["change_buckets"]["< -20%"] == 2


def test_a_candidate_line_the_display_never_showed_adds_an_alert() -> None:
    shown = [*LOG, displayed("a2", 4 * S, 1_100_000, source="app"),
             displayed("a2", 200 * S, 1_100_000, source="app")]
    result = backtest(shown, Halver())[0]
    assert (result.alerts_incumbent, result.alerts_candidate) == (0, 1)


def test_the_same_log_gives_the_same_decisions() -> None:
    assert backtest(LOG, Halver())[1] == backtest(LOG, Halver())[1]


def test_the_cli_writes_decisions_a_summary_and_html(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in LOG))
    out = tmp_path / "out"
    main(["backtest", "--input", str(log), "--scorer", "tests.test_backtest:Halver",
          "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == [
        "backtest.html", "decisions.jsonl", "summary.json"
    ]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found")
def test_the_html_section_shows_the_numbers_in_chromium(tmp_path: Path) -> None:
    result, _ = backtest(LOG, Halver(["<script>alert(1)</script>"]))
    write_outputs(result, tmp_path)
    page = tmp_path / "backtest.html"
    shown = _chromium(tmp_path, page, "--dump-dom")
    ids = dict(re.findall(r'id="(bt-[a-z-]+)">([^<]*)<', shown.stdout))
    assert (ids["bt-rescore-points"], ids["bt-cuts"], ids["bt-reason-problems"],
            "<script>" in shown.stdout, _console_errors(shown.stderr, page)) == (
        "2", "2", "2", False, []
    )


def test_the_default_scorecard_declares_every_reason_it_gives() -> None:
    from streams.scorer import BehaviourScorecard

    worst = Features(100_000, 99_000, 500_000, 10_000, 12, 1, 3, 2)
    decision = BehaviourScorecard().score(worst)
    patterns = [re.compile(p) for p in BehaviourScorecard.declared_reasons]
    assert all(any(p.fullmatch(r) for p in patterns) for r in decision.reasons)
