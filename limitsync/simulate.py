"""Traffic simulator: realistic limitsync input in the contract's JSON Lines format.

``simulate(...)`` yields one contract record per line (bytes, no newline) in log order;
``write_simulation(path, ...)`` writes them to a file and returns ``SimulationStats``: the
counts, the ground truth of every injected fault, and the simulator's own model of each
account's end state (the contract's formula applied in log order).

How the traffic is made. A discrete-event simulation over one heap keyed by *log time*
(when a record reaches the log). Each account wakes up now and then (more often during the
Beijing day) to draw down, repay, be rescored, be frozen, or open the app. A repayment is
``repayment.initiated`` and, minutes to about an hour later, ``repayment.posted``; some
postings are later ``repayment.reversed``. Risk changes the credit line (``rescore`` with model
version, score and up to four reasons on cuts; ``policy`` waves; rare ``manual`` raises).
Every record that changes an account's state is applied to the model when it is emitted and
the cache syncs after a short delay: a ``limit.displayed`` (``source: cache``) with the value
the model expects. App views (``source: app``) show what the cache holds, and once a user has
opened the app it refreshes 0.1-2 s after each cache write (another ``source: app`` record), so
the app's display follows the cache and each source is in drift only while a change is on its
way (docs/contract.md tracks drift per source).

Injected faults (each at ``faults`` of its opportunities; the faulty record carries
``"sim_fault": KIND``, an extra field the contract keeps and ignores):

- ``slow_sync``: the cache sync of a change arrives 90-300 s late (tag on that display).
- ``lost_sync``: a change's sync never happens; the cache keeps the old value until a later
  change (tag on the change whose sync was lost).
- ``diverged``: the sync writes a value the account never had (tag on that display).
- ``freeze_not_applied``: after a freeze the cache keeps showing the old value > 0.
- ``cache_missing``: the cache entry vanishes: a cache read and an app view show
  ``displayed_available: null`` (tag on the app view).
- ``app_stale``: the display layer is behind: the cache is written, but the app misses the
  refresh and shows the old value for minutes (tag on the change it missed).
- ``not_posted``: a ``repayment.initiated`` that is never posted (only where the clearing SLA
  of 2 h ends before the simulated window does).
- ``duplicate``: the same record re-sent byte-identical 1 s to 5 min later (both copies tagged).
- ``conflict``: the same ``event_id`` re-sent with different content (tag on the copy).
- ``out_of_order``: a record that reaches the log 5 s to 4 min after records that occurred
  later. Only records that change nothing when they arrive are delayed, so the fault tests
  order-independence without causing a drift: an initiation arriving after its posting, a
  posting arriving after its reversal, an older credit-line version arriving after a newer one.

Each display fault shows in the sources the simulator records (``InjectedFault.sources``): the
cache faults and ``cache_missing`` in the cache and in the app (it shows what the cache holds;
they are injected only where a user has opened the app before), ``app_stale`` in the app alone.

The six display faults keep the account quiet (no state change) for a few minutes so that
their drift outlives the 60 s SLA and has the reason the contract assigns to it.

Invalid records (``bad``, a share of all lines, each tagged ``"sim_bad": KIND`` when it is
JSON at all) come right after a valid record and never change the model: not JSON, a missing
field, a float amount, a negative amount, an unknown type, a bad timestamp, no
``schema_version``, a boolean where an int belongs.

The same arguments give a byte-identical file: everything comes from ``random.Random`` seeded
from ``seed``; no wall clock is read.

The code is in the ``limitsync.simulation`` package, one module per concern (its docstring is
the map); this module is the public face that callers import from.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from limitsync.simulation.command import add_arguments, run
from limitsync.simulation.engine import Simulation
from limitsync.simulation.faults import DISPLAY_FAULTS, FAULT_KINDS
from limitsync.simulation.invalid import BAD_KINDS
from limitsync.simulation.options import DEFAULT_START
from limitsync.simulation.truth import (
    ExpectedAccount,
    InjectedFault,
    SimulationError,
    SimulationStats,
)
from limitsync.simulation.writer import simulate, write_simulation

__all__ = [
    "BAD_KINDS",
    "DEFAULT_START",
    "DISPLAY_FAULTS",
    "FAULT_KINDS",
    "ExpectedAccount",
    "InjectedFault",
    "Simulation",
    "SimulationError",
    "SimulationStats",
    "add_arguments",
    "main",
    "run",
    "simulate",
    "write_simulation",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="limitsync simulate", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
