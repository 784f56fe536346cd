"""Risk's traffic: credit-line changes (``rescore`` with model version, score and up to four
reasons on cuts; ``policy`` waves; rare ``manual`` raises) and freezes.

A rescore is where ``out_of_order`` strikes for credit lines: a corrected score follows within a
minute and the first reaches the log after it, an older version that changes nothing.
"""

from __future__ import annotations

import random
from typing import Any

from limitsync.simulation.account import Account
from limitsync.simulation.agenda import Action, Agenda, after_hold
from limitsync.simulation.contract import ACTIVE, FROZEN, LINE, STATUS
from limitsync.simulation.emitter import Emitter
from limitsync.simulation.faults import Faults
from limitsync.simulation.records import Records

_LINE_STEP = 100_000  # credit lines move in steps of 1,000 yuan
_LINE_MIN = 200_000
_LINE_MAX = 50_000_000
_MODEL_VERSIONS = ("bscore-7.2.1", "bscore-7.3.0")
_MODEL_UPGRADE_MS = 43_200_000  # the scoring model is upgraded 12 h into the run
_CUT_REASONS = (
    "Credit line utilisation above 80% for the last 30 days",
    "A repayment failed for insufficient funds in the last 90 days",
    "Three or more drawdowns in the last 7 days",
    "Outstanding balance grew by more than 50% in 30 days",
    "New credit applications at other lenders in the last 30 days",
    "A repayment was more than 5 days late in the last 6 months",
    "Income verification is older than 12 months",
    "Account history shorter than 6 months",
)
_POLICY_REASONS_CUT = ("Portfolio policy: consumer-credit exposure cap lowered for this segment",)
_FREEZE_REASONS = ("suspected_fraud", "overdue_30_days", "customer_request", "kyc_review")
_UNFREEZE_REASONS = ("review_cleared", "overdue_settled", "customer_request", "kyc_completed")

# What an Action.LINE entry carries: the cause, the new line ("initial") or the factor to apply
# to the current one, and the reasons.
LineChange = tuple[str, float, list[str] | None]


def new_line(line: int, factor: float) -> int:
    """``line`` scaled by ``factor``, in whole steps and within the product's bounds."""
    value = round(line * factor / _LINE_STEP) * _LINE_STEP
    return min(_LINE_MAX, max(_LINE_MIN, value))


class Risk:
    __slots__ = (
        "_accounts",
        "_agenda",
        "_emitter",
        "_end",
        "_faults",
        "_records",
        "_rng",
        "_start",
    )

    def __init__(
        self,
        agenda: Agenda,
        rng: random.Random,
        records: Records,
        emitter: Emitter,
        faults: Faults,
        accounts: list[Account],
        start: int,
        end: int,
    ) -> None:
        self._agenda = agenda
        self._rng = rng
        self._records = records
        self._emitter = emitter
        self._faults = faults
        self._accounts = accounts
        self._start = start
        self._end = end

    def rescore(self, a: Account, t: int) -> bool:
        """The risk model moves an active account's line: a cut (40%) or a raise (False: the
        line would not change)."""
        if a.status != ACTIVE or a.line <= 0:
            return False
        rng = self._rng
        cut = rng.random() < 0.4
        line = new_line(a.line, rng.uniform(0.5, 0.9) if cut else rng.uniform(1.1, 1.5))
        if line == a.line:
            return False
        reasons = rng.sample(_CUT_REASONS, rng.randint(1, 4)) if line < a.line else None
        rec = self._line_record(a, t, "rescore", line, reasons)
        if self._faults.strikes("out_of_order"):
            self._corrected(a, rec, t, line, reasons)
            return True
        self._emitter.emit(a, rec, t)
        return True

    def _corrected(
        self, a: Account, rec: dict[str, Any], t: int, line: int, reasons: list[str] | None
    ) -> None:
        """A corrected score follows within a minute; the first arrives after it."""
        frng = self._faults.rng
        fixed_at = t + frng.randint(5_000, 60_000)
        arrive = fixed_at + frng.randint(5_000, 180_000)
        fixed_line = new_line(line, frng.uniform(0.9, 1.1))
        fixed_reasons = reasons if fixed_line < a.line else None
        fixed = self._line_record(a, fixed_at, "rescore", fixed_line, fixed_reasons)
        self._agenda.push(fixed_at, Action.EMIT, a.idx, (fixed, fixed_at, None))
        self._emitter.late(a, rec, t, arrive)

    def manual(self, a: Account, t: int) -> bool:
        """A manual raise of 10-30% (False: the account is not active)."""
        if a.status != ACTIVE or a.line <= 0:
            return False
        line = new_line(a.line, self._rng.uniform(1.1, 1.3))
        self._emitter.emit(a, self._line_record(a, t, "manual", line, None), t)
        return True

    def freeze(self, a: Account, t: int) -> bool:
        """Freeze an active account, and schedule its unfreeze 0.5-8 h later when that falls
        inside the run (False: it is frozen or about to be unfrozen)."""
        if a.status != ACTIVE or a.unfreeze_pending:
            return False
        rng = self._rng
        a.status_alloc += 1
        rec = self._records.new(STATUS, a, t, utc=True)
        rec["status"] = FROZEN
        rec["version"] = a.status_alloc
        rec["reason"] = rng.choice(_FREEZE_REASONS)
        self._emitter.emit(a, rec, t, freeze=True)
        until = t + rng.randint(1_800_000, 28_800_000)
        if until < self._end:
            a.unfreeze_pending = True
            self._agenda.push(until, Action.UNFREEZE, a.idx, None)
        return True

    def on_unfreeze(self, idx: int, t: int, _: None) -> None:
        a = self._accounts[idx]
        if t < a.hold_until:
            self._agenda.push(after_hold(a, self._rng), Action.UNFREEZE, idx, None)
            return
        a.unfreeze_pending = False
        a.status_alloc += 1
        rec = self._records.new(STATUS, a, t, utc=True)
        rec["status"] = ACTIVE
        rec["version"] = a.status_alloc
        rec["reason"] = self._rng.choice(_UNFREEZE_REASONS)
        self._emitter.emit(a, rec, t)

    def on_line(self, idx: int, t: int, data: LineChange) -> None:
        """A scheduled line change: an account's first line, or its share of a policy wave."""
        a = self._accounts[idx]
        cause, value, reasons = data
        if cause == "initial":
            self._emitter.emit(a, self._line_record(a, t, cause, int(value), None), t)
            return
        if t < a.hold_until:
            self._agenda.push(after_hold(a, self._rng), Action.LINE, idx, data)
            return
        line = new_line(a.line, value)
        if line != a.line:
            self._emitter.emit(a, self._line_record(a, t, cause, line, reasons), t)

    def on_policy(self, _: int, t: int, __: None) -> None:
        """A policy wave: 4% of accounts get a 15% cut or raise over the next 10 minutes."""
        rng = self._rng
        cut = rng.random() < 0.5
        factor = 0.85 if cut else 1.15
        reasons = list(_POLICY_REASONS_CUT) if cut else None
        for a in self._accounts:
            if rng.random() < 0.04:
                at = t + rng.randrange(600_000)
                if at < self._end:
                    self._agenda.push(at, Action.LINE, a.idx, ("policy", factor, reasons))

    def _line_record(
        self, a: Account, t: int, cause: str, line: int, reasons: list[str] | None
    ) -> dict[str, Any]:
        rec = self._records.new(LINE, a, t, utc=True)
        a.line_alloc += 1
        rec["credit_line"] = line
        rec["version"] = a.line_alloc
        rec["cause"] = cause
        if cause == "rescore":
            cut = line < a.line
            upgraded = t >= self._start + _MODEL_UPGRADE_MS
            rec["model_version"] = _MODEL_VERSIONS[1 if upgraded else 0]
            rec["score"] = self._rng.randint(380, 600) if cut else self._rng.randint(600, 820)
        if reasons:
            rec["reasons"] = reasons
        return rec
