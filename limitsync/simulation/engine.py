"""One simulation run: its parts wired together, and the loop that drives them."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from limitsync.simulation.account import Account
from limitsync.simulation.agenda import Action, Agenda
from limitsync.simulation.displays import Displays
from limitsync.simulation.emitter import Emitter
from limitsync.simulation.faults import Faults
from limitsync.simulation.invalid import InvalidRecords
from limitsync.simulation.loans import Loans
from limitsync.simulation.options import SimulationOptions
from limitsync.simulation.oracle import Oracle
from limitsync.simulation.records import Records
from limitsync.simulation.risk import Risk
from limitsync.simulation.syncs import Syncs
from limitsync.simulation.traffic import Traffic
from limitsync.simulation.truth import SimulationStats

Handler = Callable[[int, int, Any], None]  # (account index, log time, the entry's data)


class Simulation:
    """One simulation run: iterate it for the lines; read ``stats`` once it is exhausted."""

    def __init__(
        self,
        accounts: int,
        hours: float,
        seed: int,
        faults: float = 0.02,
        bad: float = 0.001,
        start: datetime | None = None,
        fault_kinds: frozenset[str] | None = None,
    ) -> None:
        self._options = SimulationOptions(accounts, hours, seed, faults, bad, start, fault_kinds)
        self.stats = SimulationStats()
        self._started = False

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a Simulation runs once")
        self._started = True
        agenda = Agenda(self._options.start_ms)
        accounts: list[Account] = []
        oracle = Oracle(self.stats)
        emitter, handlers = self._wire(agenda, oracle, accounts)
        heap = agenda.heap
        pop = heapq.heappop
        out = emitter.out
        while heap:
            t, _, action, idx, data = pop(heap)
            agenda.now = t
            handlers[action](idx, t, data)
            if out:
                yield from out
                out.clear()
        oracle.finish(accounts)

    def _wire(
        self, agenda: Agenda, oracle: Oracle, accounts: list[Account]
    ) -> tuple[Emitter, list[Handler]]:
        """Build the run's parts, open its accounts, and return the emitter (whose ``out`` the
        loop drains) and the handler of each agenda action."""
        o = self._options
        start, end = o.start_ms, o.end_ms
        # The traffic's draws come from one Random that the parts share: the order of their
        # calls is part of the output.
        rng = random.Random(o.seed)
        faults = Faults(o.fault_rate, o.kinds, o.seed, end)
        records = Records(o.seed)
        emitter = Emitter(
            agenda,
            oracle,
            Syncs(agenda, rng, faults),
            faults,
            InvalidRecords(o.bad, o.seed),
            self.stats,
            accounts,
        )
        displays = Displays(agenda, records, emitter, faults, accounts, o.seed)
        loans = Loans(agenda, rng, records, emitter, faults, accounts, o.seed, end)
        risk = Risk(agenda, rng, records, emitter, faults, accounts, start, end)
        traffic = Traffic(agenda, rng, loans, risk, displays, accounts, start, end)
        traffic.open_accounts(o.accounts)
        by_action: dict[int, Handler] = {
            Action.ACT: traffic.on_act,
            Action.SYNC: displays.on_sync,
            Action.POST: loans.on_post,
            Action.REVERSE: loans.on_reverse,
            Action.UNFREEZE: risk.on_unfreeze,
            Action.LINE: risk.on_line,
            Action.EMIT: emitter.on_emit,
            Action.RAW: emitter.on_raw,
            Action.POLICY: risk.on_policy,
            Action.REFRESH: displays.on_refresh,
        }
        return emitter, [by_action[action] for action in range(Action.COUNT)]
