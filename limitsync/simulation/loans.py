"""The ledger's traffic: drawdowns, and repayments from initiation to posting and, for some,
reversal.

A repayment is ``repayment.initiated`` and, minutes to about an hour later (by channel),
``repayment.posted``; some postings are later ``repayment.reversed``. The ledger faults strike
here: ``not_posted``, and ``out_of_order`` initiations and postings (each reaching the log only
after the record that supersedes it, so that it changes nothing when it arrives).
"""

from __future__ import annotations

import random
from typing import Any

from limitsync.simulation.account import Account
from limitsync.simulation.agenda import Action, Agenda, after_hold
from limitsync.simulation.contract import (
    ACTIVE,
    CLEARING_SLA_MS,
    DRAWDOWN,
    INITIATED,
    POSTED,
    REVERSED,
)
from limitsync.simulation.emitter import Emitter
from limitsync.simulation.faults import Faults
from limitsync.simulation.records import Records

_MIN_DRAWDOWN = 50_000  # 500 yuan
_CHANNELS = ("balance", "bank_card", "auto_debit", "transfer")
_CHANNEL_CUM = (0.2, 0.55, 0.85, 1.0)
_POSTING_DELAY_MS = {
    "balance": (60_000, 300_000),
    "bank_card": (60_000, 1_200_000),
    "auto_debit": (300_000, 2_700_000),
    "transfer": (600_000, 3_900_000),
}
_REVERSAL_RATE = {"balance": 0.01, "bank_card": 0.04, "auto_debit": 0.08, "transfer": 0.01}

# What an Action.POST entry carries: loan id, principal, interest, fee, payment id, channel.
Posting = tuple[str, int, int, int, str, str]
# What an Action.REVERSE entry carries: the posting's event id, its loan id and principal.
Reversal = tuple[str, str, int]


class Loans:
    __slots__ = (
        "_accounts",
        "_agenda",
        "_emitter",
        "_end",
        "_faults",
        "_n_loan",
        "_n_payment",
        "_records",
        "_rng",
        "_seed",
    )

    def __init__(
        self,
        agenda: Agenda,
        rng: random.Random,
        records: Records,
        emitter: Emitter,
        faults: Faults,
        accounts: list[Account],
        seed: int,
        end: int,
    ) -> None:
        self._agenda = agenda
        self._rng = rng
        self._records = records
        self._emitter = emitter
        self._faults = faults
        self._accounts = accounts
        self._seed = seed
        self._end = end
        self._n_loan = 0
        self._n_payment = 0

    def drawdown(self, a: Account, t: int) -> bool:
        """Borrow 5-60% of what is available (False: too little is)."""
        avail = a.expected
        if a.status != ACTIVE or avail < _MIN_DRAWDOWN:
            return False
        rng = self._rng
        amount = max(_MIN_DRAWDOWN, int(avail * rng.uniform(0.05, 0.6)) // 10_000 * 10_000)
        self._n_loan += 1
        loan_id = f"loan-{self._seed}-{self._n_loan}"
        a.loans[loan_id] = amount
        rec = self._records.new(DRAWDOWN, a, t, utc=False)
        rec["loan_id"] = loan_id
        rec["principal"] = amount
        rec["term_months"] = rng.choice((3, 6, 12, 12, 24))
        self._emitter.emit(a, rec, t)
        return True

    def repay(self, a: Account, t: int) -> bool:
        """Initiate a repayment of one loan and schedule its posting (False: no loan)."""
        if not a.loans:
            return False
        rng = self._rng
        posting = self._terms(a)
        _, principal, interest, fee, payment_id, channel = posting
        rec = self._records.new(INITIATED, a, t, utc=False)
        rec["payment_id"] = payment_id
        rec["amount"] = principal + interest + fee
        rec["channel"] = channel
        if self._faults.rate > 0.0 and self._initiation_fault(a, rec, t, posting):
            return True
        self._emitter.emit(a, rec, t)
        low, high = _POSTING_DELAY_MS[channel]
        self._agenda.push(t + rng.randint(low, high), Action.POST, a.idx, posting)
        return True

    def _terms(self, a: Account) -> Posting:
        """What the next repayment pays: all of a loan or a part, and which channel."""
        rng = self._rng
        loan_id = rng.choice(list(a.loans))
        left = a.loans[loan_id]
        if left <= 100_000 or rng.random() < 0.35:
            principal = left
        else:
            principal = max(10_000, left // rng.choice((2, 3, 6, 12)))
        if principal >= left:
            del a.loans[loan_id]
        else:
            a.loans[loan_id] = left - principal
        interest = int(principal * rng.uniform(0.002, 0.03))
        fee = 0 if rng.random() < 0.85 else rng.choice((500, 1_000, 2_000, 5_000))
        u = rng.random()
        channel = next(c for c, cum in zip(_CHANNELS, _CHANNEL_CUM, strict=True) if u < cum)
        self._n_payment += 1
        payment_id = f"pay-{self._seed}-{self._n_payment}"
        return loan_id, principal, interest, fee, payment_id, channel

    def _initiation_fault(self, a: Account, rec: dict[str, Any], t: int, posting: Posting) -> bool:
        """``not_posted`` (only where the 2 h clearing SLA ends inside the run), or a quick
        posting that reaches the log before its initiation; False: neither struck."""
        faults = self._faults
        # Each draw comes before asking whether its kind is on (see faults: the draws' order is
        # the output's).
        if (
            faults.rng.random() < faults.rate
            and "not_posted" in faults.kinds
            and t + CLEARING_SLA_MS + 300_000 <= self._end
        ):
            self._emitter.emit(a, rec, t, "not_posted")
            return True
        if faults.rng.random() < faults.rate and "out_of_order" in faults.kinds:
            post_at = t + faults.rng.randint(20_000, 90_000)
            arrive = post_at + faults.rng.randint(5_000, 150_000)
            self._agenda.push(post_at, Action.POST, a.idx, posting)
            self._emitter.late(a, rec, t, arrive)
            return True
        return False

    def on_post(self, idx: int, t: int, posting: Posting) -> None:
        """The repayment posts; a few postings (by channel) are reversed later."""
        a = self._accounts[idx]
        if t < a.hold_until:
            self._agenda.push(after_hold(a, self._rng), Action.POST, idx, posting)
            return
        loan_id, principal, interest, fee, payment_id, channel = posting
        rec = self._records.new(POSTED, a, t, utc=False)
        rec["loan_id"] = loan_id
        rec["principal"] = principal
        rec["interest"] = interest
        rec["fee"] = fee
        rec["payment_id"] = payment_id
        rng = self._rng
        if rng.random() >= _REVERSAL_RATE[channel]:
            self._emitter.emit(a, rec, t)
            return
        reversal = (rec["event_id"], loan_id, principal)
        if self._faults.strikes("out_of_order") and self._reversed_first(a, rec, t, reversal):
            return
        self._emitter.emit(a, rec, t)
        reverse_at = t + rng.randint(120_000, 3_600_000)
        if reverse_at <= self._end:
            self._agenda.push(reverse_at, Action.REVERSE, idx, reversal)

    def _reversed_first(self, a: Account, rec: dict[str, Any], t: int, reversal: Reversal) -> bool:
        """A quick failed debit: the posting reaches the log only after its own reversal
        (False: that would be after the run's end, and the posting goes out as usual)."""
        frng = self._faults.rng
        reverse_at = t + frng.randint(20_000, 120_000)
        arrive = reverse_at + frng.randint(5_000, 120_000)
        if arrive > self._end:
            return False
        self._agenda.push(reverse_at, Action.REVERSE, a.idx, reversal)
        self._emitter.late(a, rec, t, arrive)
        return True

    def on_reverse(self, idx: int, t: int, reversal: Reversal) -> None:
        """The posting is reversed: its principal is owed again."""
        a = self._accounts[idx]
        if t < a.hold_until:
            self._agenda.push(after_hold(a, self._rng), Action.REVERSE, idx, reversal)
            return
        posted_id, loan_id, principal = reversal
        a.loans[loan_id] = a.loans.get(loan_id, 0) + principal
        rec = self._records.new(REVERSED, a, t, utc=False)
        rec["reverses_event_id"] = posted_id
        rec["failure"] = "insufficient_funds"
        self._emitter.emit(a, rec, t)
