"""Rescoring: a transparent behaviour scorecard, and the port any scorer plugs into.

The default scorer uses only what the ledger knows, with integer points a person can
follow, bounded steps (a line moves at most 10% per rescore) and at most four specific
reasons on a decrease, as adverse-action practice asks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["BehaviourScorecard", "Decision", "Features", "Scorer", "load_scorer"]

_DAY_US = 86_400 * 1_000_000
LINE_STEP_BP = 1000  # at most 10% (basis points) per rescore
LINE_ROUND = 10_000  # lines move in whole 100-yuan steps (fen)


@dataclass(frozen=True, slots=True)
class Features:
    """What the ledger knows about an account, as integers."""

    credit_line: int
    outstanding: int
    drawn_total: int
    repaid_total: int
    drawdowns: int
    repayments: int
    failed_debits: int
    tenure_days: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Features:
        return cls(**{k: int(d[k]) for k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Decision:
    credit_line: int
    score: int | float  # the contract's score: any finite number (a scorecard's are integers)
    reasons: list[str]
    model_version: str


class Scorer(Protocol):
    """Any scorer: ``limitsync`` loads one by dotted path (``module:Class``)."""

    def score(self, features: Features) -> Decision: ...


class BehaviourScorecard:
    """Points from utilisation, repayment share, failed debits, drawdown rate and tenure."""

    model_version = "scorecard-1"
    # Every reason it can give, as a pattern a reason matches in full: a backtest checks a
    # candidate's cuts against its own list, as adverse-action notices require.
    declared_reasons = (
        r"Utilisation is \d+% of the credit line \(above (70|90)%\)",
        r"Only \d+% of borrowed principal repaid so far",
        r"\d+ repayment debit\(s\) failed and were reversed",
        r"Frequent borrowing: \d+ drawdowns on record",
        r"Short repayment history: \d+ days",
    )

    def score(self, f: Features) -> Decision:
        points = 600
        reasons: list[tuple[int, str]] = []  # (weight, text): the heaviest are reported
        util_bp = f.outstanding * 10_000 // f.credit_line if f.credit_line else 10_000
        if util_bp >= 9000:
            points -= 80
            reasons.append((80, f"Utilisation is {util_bp // 100}% of the credit line (above 90%)"))
        elif util_bp >= 7000:
            points -= 40
            reasons.append((40, f"Utilisation is {util_bp // 100}% of the credit line (above 70%)"))
        elif util_bp <= 3000:
            points += 40
        repaid_bp = f.repaid_total * 10_000 // f.drawn_total if f.drawn_total else 10_000
        if repaid_bp >= 5000:
            points += 50
        elif f.drawn_total and repaid_bp < 1000 and f.drawdowns >= 2:
            points -= 30
            reasons.append((30, f"Only {repaid_bp // 100}% of borrowed principal repaid so far"))
        if f.failed_debits:
            penalty = min(150, 60 * f.failed_debits)
            points -= penalty
            reasons.append(
                (penalty, f"{f.failed_debits} repayment debit(s) failed and were reversed")
            )
        if f.drawdowns >= 8:
            points -= 40
            reasons.append((40, f"Frequent borrowing: {f.drawdowns} drawdowns on record"))
        if f.tenure_days >= 180:
            points += 30
        elif f.tenure_days < 30:
            points -= 10
            reasons.append((10, f"Short repayment history: {f.tenure_days} days"))
        return Decision(
            credit_line=_new_line(f.credit_line, points),
            score=points,
            reasons=[text for _, text in sorted(reasons, key=lambda r: -r[0])][:4],
            model_version=self.model_version,
        )


def _new_line(line: int, points: int) -> int:
    step = line * LINE_STEP_BP // 10_000
    if points < 550:
        target = line - step
    elif points > 680:
        target = line + step
    else:
        return line
    return max(0, target // LINE_ROUND * LINE_ROUND)


def features_of(state_dict: dict[str, Any], now_us: int) -> Features:
    """Features from an account's state (``AccountState.hot_dict()`` or ``to_dict()`` form:
    only what every change needs is read)."""
    first = state_dict.get("first_us") or now_us
    drawn, repaid = int(state_dict["drawn"]), int(state_dict["repaid"])
    return Features(
        credit_line=int(state_dict["credit_line"]),
        outstanding=max(0, drawn - repaid),
        drawn_total=drawn,
        repaid_total=repaid,
        drawdowns=int(state_dict.get("drawdowns", 0)),
        repayments=int(state_dict.get("repayments", 0)),
        failed_debits=int(state_dict.get("failed_debits", 0)),
        tenure_days=max(0, (now_us - first) // _DAY_US),
    )


def load_scorer(path: str) -> Scorer:
    """``package.module:Name``: a class (instantiated without arguments) or an instance."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"scorer path must look like 'module:Name', got {path!r}")
    obj = getattr(importlib.import_module(module_name), attr)
    scorer = obj() if isinstance(obj, type) else obj
    if not callable(getattr(scorer, "score", None)):
        raise TypeError(f"{path} has no score(features) method")
    return scorer
