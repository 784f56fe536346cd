"""The traffic simulator's parts; ``limitsync.simulate`` is its public module (and describes the
traffic and the faults).

- ``engine``: ``Simulation``, one run: wires the parts below and drives the agenda.
- ``agenda``: the heap of scheduled actions, in log time.
- ``traffic``: when accounts wake up and what they do; ``loans`` (drawdowns, repayments) and
  ``risk`` (credit lines, freezes) build those records.
- ``syncs`` and ``displays``: cache syncs after each change, and what the cache and the app show.
- ``emitter``: each record's way out: the oracle, its sync, delivery faults, invalid records.
- ``oracle``: the contract's model of each account, and the drifts a replay would measure.
- ``faults``: the fault kinds and their dice; ``invalid``: invalid records.
- ``records``, ``account``, ``contract``: record envelopes, one account's state, the names.
- ``options``: the arguments of a run, checked; ``truth``: what a run reports.
- ``writer``: ``simulate`` and ``write_simulation``; ``command``: ``limitsync simulate``.
"""
