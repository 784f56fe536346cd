"""The live state store: accounts saved as a small row plus write-once items, read back
whole, and consistent after a crash that loses the newest writes (docs/design.md "Live state";
docs/contract.md "Idempotency horizon": nothing is ever applied twice).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson
from eventlog import (
    S,
    credit_line,
    displayed,
    drawdown,
    feed,
    ingest,
    repayment_posted,
    repayment_reversed,
    us,
)
from hypothesis import given
from hypothesis import strategies as st
from test_core_properties import PROPS, RICH, event_logs

from streams.core import AccountState, CoreConfig, Engine, EventTimeClock
from streams.core.journal import Journal
from streams.core.state import (
    CLEARING_WATCHES_MAX,
    EVIDENCE_MAX,
    HELD_VALUES_MAX,
    PENDING_CHANGES_MAX,
    TRIGGERS_MAX,
    ClearingWatch,
    Display,
    DriftState,
)
from streams.state_store import (
    ROW_BYTES_WARN,
    StateStore,
    account_bytes_of_key,
    state_key_partition,
)


class LoggedTable(MutableMapping[bytes, bytes]):
    """A dict that remembers the order of its writes, like a changelog partition."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.log: list[tuple[bytes, bytes | None]] = []

    def __getitem__(self, key: bytes) -> bytes:
        return self.data[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self.log.append((key, value))

    def __delitem__(self, key: bytes) -> None:
        del self.data[key]
        self.log.append((key, None))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def replayed_log(writes: list[tuple[bytes, bytes | None]]) -> LoggedTable:
    """The table a worker restores from a changelog holding these writes."""
    table = LoggedTable()
    for key, value in writes:
        if value is None:
            table.data.pop(key, None)
        else:
            table.data[key] = value
    return table


class Worker:
    """An engine with a journal and a store, saving after every batch like the live shell."""

    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self.engine = Engine(CoreConfig(), EventTimeClock(), Journal())
        self.store = StateStore(table)

    def load(self) -> int:
        loaded = self.store.load(lambda _: True)
        self.engine.load(loaded.states)
        return loaded.dropped_items

    def run(self, batch: list[dict[str, Any]]) -> None:
        for event in batch:
            ingest(self.engine, event)
        self.save()

    def save(self) -> None:
        changes = self.engine.drain_journal()
        dirty = [self.engine.accounts[a] for a in sorted(self.engine.dirty)]
        self.engine.dirty.clear()
        self.store.save(dirty, changes)


def ledger_view(engine: Engine) -> dict[str, Any]:
    """What money depends on: the ledger, and what later records will be checked against."""
    view = {}
    for aid, acct in sorted(engine.accounts.items()):
        acct.settle_digests()
        view[aid] = {
            "line": (acct.credit_line, acct.line_version, acct.status, acct.status_version),
            "money": (acct.drawn, acct.repaid, acct.outstanding, acct.expected_available),
            # Without the times they age from: a restarted replay clock starts again.
            "seen": {k: v[0] for k, v in acct.seen.items()},
            "posted": {k: (v[0], v[2], v[3]) for k, v in acct.posted.items()},
            "orphans": {k: v[0] for k, v in acct.orphan_reversals.items()},
            "payments": sorted(acct.posted_payments),
            "clearing": sorted(acct.clearing),
        }
    return view


def batches(events: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


# -- a save reads back whole ------------------------------------------------------------------


def test_a_saved_account_reads_back_equal_to_the_engines() -> None:
    worker = Worker(LoggedTable())
    worker.run(RICH)
    worker.engine.advance(us(3600 * S))
    worker.save()
    reader = Worker(worker.store._table)
    reader.load()
    original = worker.engine.accounts["A"]
    original.settle_digests()
    assert reader.engine.accounts["A"].to_dict() == original.to_dict()


@PROPS
@given(event_logs(), st.integers(1, 8))
def test_any_log_saved_in_batches_reads_back_equal(events: list[dict[str, Any]], size: int) -> None:
    worker = Worker(LoggedTable())
    for batch in batches(events, size):
        worker.run(batch)
    reader = Worker(replayed_log(worker.store._table.log))  # type: ignore[attr-defined]
    reader.load()
    for aid, acct in worker.engine.accounts.items():
        acct.settle_digests()
        assert reader.engine.accounts[aid].to_dict() == acct.to_dict()


def test_a_batch_writes_each_changed_row_once() -> None:
    table = LoggedTable()
    worker = Worker(table)
    worker.run([credit_line("A", 0, 10_000, 1)] + [drawdown("A", i * S, 1) for i in range(1, 40)])
    rows = [k for k, _ in table.log if k.startswith(b"a|")]
    assert rows == [b"a|A"]


def test_no_row_holds_the_history_or_the_ids() -> None:
    table = LoggedTable()
    worker = Worker(table)
    worker.run([credit_line("A", 0, 10**9, 1)])
    worker.run([drawdown("A", i * S, 1, event_id=f"dd-{i}") for i in range(1, 500)])
    row = table.data[b"a|A"]
    assert len(row) < 2_000
    assert b"dd-1" not in row


def test_every_key_names_its_account_for_partitioning() -> None:
    table = LoggedTable()
    Worker(table).run(RICH)
    assert {account_bytes_of_key(k).decode() for k in table.data} == {"A"}


# -- a crash that loses the newest writes ----------------------------------------------------


@PROPS
@given(event_logs(), st.integers(1, 8), st.data())
def test_a_crash_losing_any_suffix_of_a_save_applies_nothing_twice(
    events: list[dict[str, Any]], size: int, data: st.DataObject
) -> None:
    reference = Worker(LoggedTable())
    for batch in batches(events, size):
        reference.run(batch)

    parts = batches(events, size)
    crashed_at = data.draw(st.integers(0, len(parts) - 1))
    table = LoggedTable()
    worker = Worker(table)
    for batch in parts[:crashed_at]:
        worker.run(batch)
    landed = len(table.log)
    worker.run(parts[crashed_at])  # its offsets are not committed: it is read again
    kept = data.draw(st.integers(landed, len(table.log)))

    restarted = Worker(replayed_log(table.log[:kept]))
    restarted.load()
    for batch in parts[crashed_at:]:
        restarted.run(batch)
    assert ledger_view(restarted.engine) == ledger_view(reference.engine)


def test_a_reversal_lost_in_a_crash_is_applied_again_not_forgotten() -> None:
    table = LoggedTable()
    worker = Worker(table)
    worker.run([credit_line("A", 0, 10_000, 1), drawdown("A", S, 5_000),
                repayment_posted("A", 2 * S, 2_000, event_id="rp")])
    landed = len(table.log)
    reversal = [repayment_reversed("A", 3 * S, "rp")]
    worker.run(reversal)
    restarted = Worker(replayed_log(table.log[: landed + 1]))  # the reversal's item, no row
    assert restarted.load() == 1
    restarted.run(reversal)
    assert restarted.engine.accounts["A"].outstanding == 5_000


# -- bounded rows -------------------------------------------------------------------------------


def test_the_largest_row_the_bounds_allow_stays_under_the_warning_size() -> None:
    acct = AccountState("a" * 64)
    long_id = "x" * 128
    for i in range(CLEARING_WATCHES_MAX):
        pid = f"{i:03d}" + "p" * 125
        acct.clearing[pid] = ClearingWatch(pid, long_id, 10**15, 2**62, "f" * 20, True, True, 2**62)
    held = dict.fromkeys(range(10**15, 10**15 + HELD_VALUES_MAX))
    for display in (acct.app, acct.cache):  # both sources at their bounds
        display.seq = 2**62
        display.observed = True
        display.displayed = 10**15
        display.drift = DriftState("f" * 20, 2**62, dict(held), [long_id] * EVIDENCE_MAX, 2**62,
                                   True, True, "CACHE_DIVERGED", "critical", 2**62, True)
        display.pending_changes = [(2**62, 10**15)] * PENDING_CHANGES_MAX
        display.since_agree = [long_id] * EVIDENCE_MAX
        display.key = [2**62, 2**62, long_id]
    acct.rescore_triggers = [long_id] * TRIGGERS_MAX
    row = orjson.dumps({"s": acct.hot_dict(), "q": 2**62})
    assert len(row) < ROW_BYTES_WARN


def test_a_row_saved_before_sources_loads_its_display_as_the_caches() -> None:
    """A row of the release before per-source displays holds one display, nearly always
    limitsync's own cache writes: it becomes the cache's, and the app starts unobserved."""
    engine = Engine(CoreConfig(), EventTimeClock())
    feed(engine, [credit_line("A", 0, 10_000, 1), displayed("A", 0, 9_000, source="cache"),
                  displayed("OTHER", 61 * S, 0)])
    saved = engine.accounts["A"].hot_dict()
    cache = saved.pop("cache")
    saved.pop("app")
    old_row = {**saved, "observed": True, "displayed": 9_000, "display_key": cache["key"],
               "drift": cache["drift"], "drift_seq": cache["seq"],
               "pending_changes": cache["pending_changes"], "since_agree": cache["since_agree"]}
    loaded = AccountState.from_dict(orjson.loads(orjson.dumps(old_row)))
    assert (loaded.cache, loaded.app) == (engine.accounts["A"].cache, Display("app", seq=1))


def test_an_input_partitions_handled_offset_is_saved_after_the_rows_and_read_back() -> None:
    table = LoggedTable()
    store = StateStore(table)
    store.save([AccountState("A")], {}, {("limit.account-events", 5): 41})
    loaded = StateStore(table).load(lambda account_id: False)
    assert (table.log[-1][0], loaded.handled) == (
        b"o||5|limit.account-events",
        {("limit.account-events", 5): 41},
    )


def test_a_handled_offset_lives_in_its_input_partitions_changelog_partition() -> None:
    by_account = {b"A": 2}.__getitem__
    assert (
        state_key_partition(b"o||5|limit.account-events", by_account),
        state_key_partition(b"i|A|e1", by_account),
    ) == (5, 2)
