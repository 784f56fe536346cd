"""Account activity: who wakes up when, and what they do.

Each account wakes up now and then (more often during the Beijing day; some accounts are busier
than others) to draw down, repay, be rescored, be frozen, or open the app. Every account gets its
first credit line in the run's first five minutes (its first quarter, if shorter), and a policy
wave comes every 6 h from the third hour.
"""

from __future__ import annotations

import random

from limitsync.simulation.account import Account
from limitsync.simulation.agenda import Action, Agenda
from limitsync.simulation.displays import Displays
from limitsync.simulation.loans import Loans
from limitsync.simulation.risk import Risk

_INITIAL_LINES = (
    500_000,
    1_000_000,
    2_000_000,
    3_000_000,
    5_000_000,
    8_000_000,
    10_000_000,
    20_000_000,
)
_ACT_MEAN_GAP_S = 1_150.0

# Activity multiplier by Beijing hour (UTC+8): quiet at night, busy at lunch and evening.
_DIURNAL = (
    0.35, 0.2, 0.15, 0.12, 0.12, 0.2, 0.4, 0.8, 1.1, 1.3, 1.35, 1.3,
    1.55, 1.4, 1.2, 1.2, 1.2, 1.25, 1.4, 1.55, 1.65, 1.55, 1.2, 0.7,
)  # fmt: skip


class Traffic:
    __slots__ = ("_accounts", "_agenda", "_displays", "_end", "_loans", "_risk", "_rng", "_start")

    def __init__(
        self,
        agenda: Agenda,
        rng: random.Random,
        loans: Loans,
        risk: Risk,
        displays: Displays,
        accounts: list[Account],
        start: int,
        end: int,
    ) -> None:
        self._agenda = agenda
        self._rng = rng
        self._loans = loans
        self._risk = risk
        self._displays = displays
        self._accounts = accounts
        self._start = start
        self._end = end

    def open_accounts(self, n: int) -> None:
        """Create ``n`` accounts, schedule their first lines and wake-ups, and the policy waves."""
        rng = self._rng
        spread = max(1, min(300_000, (self._end - self._start) // 4))
        for i in range(n):
            pace = min(4.0, max(0.25, rng.lognormvariate(0.0, 0.6)))
            a = Account(i, f"acct-{i + 1:06d}", pace)
            self._accounts.append(a)
            t = self._start + rng.randrange(spread)
            self._agenda.push(t, Action.LINE, i, ("initial", rng.choice(_INITIAL_LINES), None))
            self._schedule_act(a, t)
        t = self._start + 3 * 3_600_000
        while t < self._end:
            self._agenda.push(t, Action.POLICY, -1, None)
            t += 6 * 3_600_000

    def _schedule_act(self, a: Account, t: int) -> None:
        hour = ((t // 3_600_000) + 8) % 24
        mean_s = _ACT_MEAN_GAP_S * a.pace / _DIURNAL[hour]
        nxt = t + 1 + int(self._rng.expovariate(1.0) * mean_s * 1000)
        if nxt < self._end:
            self._agenda.push(nxt, Action.ACT, a.idx, None)

    def on_act(self, idx: int, t: int, _: None) -> None:
        """The account wakes up: 40% only look at the app; the rest try to draw down (17%),
        repay (27%, or draw down with nothing to repay), be rescored (12.5%), frozen (1.5%) or
        raised by hand (2%), and look at the app when that changed nothing. While a display
        fault is showing, they only look."""
        a = self._accounts[idx]
        self._schedule_act(a, t)
        if t < a.hold_until:
            self._displays.view(a, t)
            return
        u = self._rng.random()
        done = False
        if u < 0.40:
            done = False
        elif u < 0.57:
            done = self._loans.drawdown(a, t)
        elif u < 0.84:
            done = self._loans.repay(a, t) or self._loans.drawdown(a, t)
        elif u < 0.965:
            done = self._risk.rescore(a, t)
        elif u < 0.98:
            done = self._risk.freeze(a, t)
        else:
            done = self._risk.manual(a, t)
        if not done:
            self._displays.view(a, t)
