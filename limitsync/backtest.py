"""Scorecard backtests (issue 15): what a candidate scorecard would have decided on history.

    limitsync backtest --input LOG --scorer module:callable [--out DIR]
    limitsync backtest --from-kafka --start T --end T --scorer module:callable [--out DIR]

The log runs through the core in log order, as a replay does. At every rescore point the log
holds (a ``credit_line.changed`` with cause ``rescore``), the candidate is asked with the
features the account had just before it (the incumbent history: what really happened), and
its decision is set beside the incumbent's: how the line would change, which accounts would
be cut, and its reasons, checked as adverse-action notices require (at most four, each one of
the scorer's ``declared_reasons``, regular expressions a reason must match in full).

Alerts: a second core runs the same log with the candidate's lines in place of the
incumbent's rescores. Its observations of the display are the log's, which followed the
incumbent: so its extra alerts count the accounts whose shown limit would have had to change
and did not within the SLA, an upper bound on what the candidate's changes cost the display.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from limitsync.replay import InputRecord
from schemas.contract import SLA_S
from schemas.native import CreditLineChanged
from schemas.parse import Parsed, parse_event
from schemas.timefmt import format_us
from streams.core import AlertRaised, CoreConfig, Effect, Engine, EventTimeClock
from streams.scorer import Decision, Scorer, features_of

__all__ = ["BacktestResult", "declared_patterns", "run_backtest", "write_outputs"]

NOTICE_REASONS_MAX = 4  # reasons an adverse-action notice gives (Reg B; CFPB Circular 2023-03)
SAMPLE_MAX = 100_000  # line changes kept for the distribution's quantiles (reservoir)
CUT_ACCOUNTS_SHOWN_MAX = 50  # in the HTML; decisions.jsonl has every one
# Line change as a share of the line before, in basis points: the distribution's buckets.
BUCKETS_BP = ((-10**9, -2000), (-2000, -1000), (-1000, 0), (0, 1), (1, 1001), (1001, 2001),
              (2001, 10**9))
BUCKET_NAMES = ("< -20%", "-20% .. -10%", "-10% .. 0", "unchanged", "0 .. +10%", "+10% .. +20%",
                "> +20%")


@dataclass
class BacktestResult:
    scorer: str
    model_version: str
    records: int = 0
    invalid: int = 0
    rescore_points: int = 0
    lines_changed: int = 0  # the candidate's line differs from the line before
    differs_from_incumbent: int = 0
    cuts: int = 0
    accounts_cut: set[str] = field(default_factory=set)
    reason_problems: int = 0  # decisions whose reasons break the notice rules
    reasons_used: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS_BP))
    change_sample: list[int] = field(default_factory=list)
    change_min: int | None = None
    change_max: int | None = None
    alerts_incumbent: int = 0
    alerts_candidate: int = 0
    declared_reasons: bool = False

    def quantile(self, q: float) -> int | None:
        if not self.change_sample:
            return None
        ordered = sorted(self.change_sample)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "model_version": self.model_version,
            "records": self.records,
            "invalid": self.invalid,
            "rescore_points": self.rescore_points,
            "lines_changed": self.lines_changed,
            "differs_from_incumbent": self.differs_from_incumbent,
            "cuts": self.cuts,
            "accounts_cut": len(self.accounts_cut),
            "change_fen": {
                "min": self.change_min, "p10": self.quantile(0.1), "p50": self.quantile(0.5),
                "p90": self.quantile(0.9), "max": self.change_max,
            },
            "change_buckets": dict(zip(BUCKET_NAMES, self.buckets, strict=True)),
            "reasons_declared": self.declared_reasons,
            "reason_problems": self.reason_problems,
            "reasons_used": dict(sorted(self.reasons_used.items(), key=lambda kv: -kv[1])),
            "alerts_incumbent": self.alerts_incumbent,
            "alerts_candidate": self.alerts_candidate,
            "alerts_added": self.alerts_candidate - self.alerts_incumbent,
        }


def declared_patterns(scorer: Scorer) -> list[re.Pattern[str]] | None:
    """The scorer's declared reasons (``declared_reasons``: regular expressions), or None."""
    declared = getattr(scorer, "declared_reasons", None)
    if declared is None:
        return None
    return [re.compile(p) for p in declared]


def reason_problems(reasons: Sequence[str], patterns: list[re.Pattern[str]] | None) -> list[str]:
    """What an adverse-action notice could not carry: too many reasons, undeclared ones."""
    problems = []
    if len(reasons) > NOTICE_REASONS_MAX:
        problems.append(f"{len(reasons)} reasons (at most {NOTICE_REASONS_MAX})")
    for r in reasons:
        if patterns is None or not any(p.fullmatch(r) for p in patterns):
            problems.append(f"undeclared reason: {r[:200]}")
    return problems


def run_backtest(
    records: Iterable[InputRecord],
    scorer: Scorer,
    scorer_path: str,
    decisions_out: Any,
    sla_s: int = SLA_S,
) -> BacktestResult:
    """Run the log; write one JSON line per rescore point to ``decisions_out`` (binary)."""
    config = CoreConfig.from_seconds(sla_s=sla_s)
    incumbent = Engine(config, EventTimeClock())
    candidate = Engine(config, EventTimeClock())
    patterns = declared_patterns(scorer)
    result = BacktestResult(scorer_path, str(getattr(scorer, "model_version", "")),
                            declared_reasons=patterns is not None)
    reservoir = random.Random(0)  # deterministic: the same log gives the same report
    for rec in records:
        result.records += 1
        parsed = parse_event(rec.value)
        if not isinstance(parsed, Parsed):
            result.invalid += 1
            continue
        event = parsed.event
        other = parsed
        if isinstance(event, CreditLineChanged) and event.cause == "rescore":
            acct = incumbent.accounts.get(event.account_id)
            if acct is not None and event.event_id not in acct.seen:
                decision = scorer.score(features_of(acct.hot_dict(), parsed.occurred_us))
                line_before = acct.credit_line
                row = _decision_row(event, parsed.occurred_us, line_before, decision, patterns)
                _count(result, row, reservoir)
                decisions_out.write(orjson.dumps(row) + b"\n")
                other = _with_decision(rec.value, decision)
        result.alerts_incumbent += _opened(
            incumbent.ingest(event, parsed.digest, parsed.occurred_us)[1]
        )
        result.alerts_candidate += _opened(
            candidate.ingest(other.event, other.digest, other.occurred_us)[1]
        )
    return result


def _opened(effects: list[Effect]) -> int:
    return sum(
        1 for e in effects
        if type(e) is AlertRaised and e.record["type"] == "mismatch.opened"
    )


def _with_decision(raw: bytes | None, decision: Decision) -> Parsed:
    """The rescore record as the candidate would have written it."""
    obj = orjson.loads(raw or b"{}")
    obj.update(credit_line=decision.credit_line, score=decision.score,
               model_version=decision.model_version or None, reasons=decision.reasons[:16])
    parsed = parse_event(orjson.dumps(obj))
    if not isinstance(parsed, Parsed):
        raise ValueError(f"the candidate's decision makes an invalid record: {parsed.error}")
    return parsed


def _decision_row(
    event: CreditLineChanged,
    at_us: int,
    line_before: int,
    decision: Decision,
    patterns: list[re.Pattern[str]] | None,
) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "account_id": event.account_id,
        "at": format_us(at_us),
        "line_before": line_before,
        "incumbent": {
            "credit_line": event.credit_line,
            "score": event.score,
            "model_version": event.model_version,
            "reasons": list(event.reasons or []),
        },
        "candidate": {
            "credit_line": decision.credit_line,
            "score": decision.score,
            "model_version": decision.model_version,
            "reasons": list(decision.reasons),
        },
        "change": decision.credit_line - line_before,
        "vs_incumbent": decision.credit_line - event.credit_line,
        "cut": decision.credit_line < line_before,
        "reason_problems": reason_problems(decision.reasons, patterns)
        if decision.credit_line < line_before else [],
    }


def _count(result: BacktestResult, row: dict[str, Any], reservoir: random.Random) -> None:
    result.rescore_points += 1
    change, before = row["change"], row["line_before"]
    if change:
        result.lines_changed += 1
    if row["vs_incumbent"]:
        result.differs_from_incumbent += 1
    if row["cut"]:
        result.cuts += 1
        result.accounts_cut.add(row["account_id"])
        for r in row["candidate"]["reasons"]:
            result.reasons_used[r] = result.reasons_used.get(r, 0) + 1
    if row["reason_problems"]:
        result.reason_problems += 1
    share_bp = change * 10_000 // before if before else (0 if change == 0 else 10**8)
    for i, (lo, hi) in enumerate(BUCKETS_BP):
        if lo <= share_bp < hi:
            result.buckets[i] += 1
            break
    result.change_min = change if result.change_min is None else min(result.change_min, change)
    result.change_max = change if result.change_max is None else max(result.change_max, change)
    sample = result.change_sample
    if len(sample) < SAMPLE_MAX:
        sample.append(change)
    else:  # reservoir sampling: every change equally likely to be kept
        j = reservoir.randrange(result.rescore_points)
        if j < SAMPLE_MAX:
            sample[j] = change


def write_outputs(result: BacktestResult, out: Path) -> None:
    """``summary.json`` and ``backtest.html`` beside ``decisions.jsonl``."""
    from limitsync.backtest_html import render_backtest

    summary = result.summary()
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    (out / "backtest.html").write_text(
        render_backtest(summary, sorted(result.accounts_cut)[:CUT_ACCOUNTS_SHOWN_MAX]),
        encoding="utf-8",
    )
