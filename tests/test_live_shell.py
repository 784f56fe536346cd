"""The live shell's handling of a batch, with no broker and no Redis (docs/contract.md "Bad input":
one record never stops the batch; "Idempotency horizon": own observations are not ids).

The shell is given a dict for its state table and a publisher that keeps what it is sent;
the cache writer is not run, so no Redis is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from eventlog import credit_line, drawdown, line

from config.settings import Settings
from schemas.parse import Parsed, parse_event
from schemas.timefmt import format_us
from streams.cache import CachedLimit, MemoryLimitCache
from streams.core.engine import Engine
from streams.live import LiveShell, RawRecord, wall_us
from streams.metrics import Metrics

TOPIC = "limit.account-events"


class Kept:
    """A publisher that keeps every record it is given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Sequence[tuple[str, bytes]] | None = None
    ) -> None:
        self.sent.append((topic, key, orjson.loads(value)))

    def dead_letters(self) -> list[dict[str, Any]]:
        return [v for t, _, v in self.sent if t.endswith("dead-letters")]


def shell() -> tuple[LiveShell, Kept]:
    kept = Kept()
    s = LiveShell(Settings(), kept, object(), {}, Metrics())  # type: ignore[arg-type]
    s.rebuild(range(8))
    return s, kept


def records(*events: dict[str, Any], own: bool = False) -> list[RawRecord]:
    return [RawRecord(line(e), TOPIC, 0, i, own) for i, e in enumerate(events)]


def now_stamp(seconds_ahead: float = 0) -> str:
    return format_us(wall_us() + int(seconds_ahead * 1_000_000))


def recent(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "occurred_at": now_stamp()}


def test_a_record_whose_processing_raises_is_set_aside_and_the_rest_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s, kept = shell()
    ingest = Engine.ingest

    def fragile(self: Engine, event: Any, *args: Any) -> Any:
        if event.event_id == "boom":
            raise RuntimeError("a bug in one record's path")
        return ingest(self, event, *args)

    monkeypatch.setattr(Engine, "ingest", fragile)
    batch = records(
        recent(credit_line("A", 0, 10_000, 1)),
        recent(drawdown("A", 0, 100, event_id="boom")),
        recent(drawdown("A", 0, 300)),
    )
    asyncio.run(s.handle(batch))
    (dead,) = kept.dead_letters()
    assert (dead["reason"], dead["offset"]) == ("internal", 1)
    assert "a bug in one record's path" in dead["error"]
    assert s.engine.accounts["A"].expected_available == 9_700


def test_a_record_stamped_past_the_allowed_skew_is_dead_lettered() -> None:
    s, kept = shell()
    ahead = {**drawdown("A", 0, 100), "occurred_at": now_stamp(seconds_ahead=3600)}
    asyncio.run(s.handle(records(recent(credit_line("A", 0, 10_000, 1)), ahead)))
    (dead,) = kept.dead_letters()
    assert dead["reason"] == "future_timestamp"
    assert s.engine.accounts["A"].outstanding == 0


def test_a_record_within_the_skew_is_applied() -> None:
    s, kept = shell()
    soon = {**drawdown("A", 0, 100), "occurred_at": now_stamp(seconds_ahead=60)}
    asyncio.run(s.handle(records(soon)))
    assert kept.dead_letters() == []
    assert s.engine.accounts["A"].outstanding == 100


def test_a_tombstone_is_an_invalid_dead_letter_with_its_place() -> None:
    s, kept = shell()
    asyncio.run(s.handle([RawRecord(None, TOPIC, 3, 41)]))
    (dead,) = kept.dead_letters()
    assert (dead["reason"], dead["partition"], dead["offset"]) == ("invalid", 3, 41)


def test_an_observation_a_worker_published_of_its_own_write_is_not_applied_again() -> None:
    s, _ = shell()
    shown = {
        "event_id": "obs:cache_write:A:1:1",
        "type": "limit.displayed",
        "account_id": "A",
        "occurred_at": now_stamp(),
        "schema_version": 1,
        "displayed_available": 5,
    }
    asyncio.run(s.handle(records(shown, own=True)))
    assert "A" not in s.engine.accounts


def test_a_batch_saves_each_changed_account_once() -> None:
    s, _ = shell()
    table: dict[bytes, bytes] = s.store._table  # type: ignore[assignment]
    drawdowns = (recent(drawdown("A", 0, 1)) for _ in range(9))
    asyncio.run(s.handle(records(recent(credit_line("A", 0, 10_000, 1)), *drawdowns)))
    assert [k for k in table if k.startswith(b"a|")] == [b"a|A"]
    assert s.metrics.registry.get_sample_value("limitsync_state_rows_total") == 1


# -- own observations and the sampler: what the cache holds is source cache --------------------


class FakeCache:
    """What a client reading the cache would find: account -> (available, version)."""

    def __init__(self, held: dict[str, tuple[int | None, int | None]]) -> None:
        self.held = held

    async def read_many(self, account_ids: Sequence[str]) -> list[CachedLimit]:
        return [CachedLimit(*self.held.get(a, (None, None))) for a in account_ids]


def shell_with_a(cache: object = None) -> tuple[LiveShell, Kept]:
    """A shell owning account A, line 100.00, its cache written (version 1) and observed."""
    kept = Kept()
    s = LiveShell(Settings(), kept, cache or object(), {}, Metrics())  # type: ignore[arg-type]
    s.rebuild(range(8))
    asyncio.run(s.handle(records(recent(credit_line("A", 0, 10_000, 1)))))
    write = s.engine.cache_write_of("A")
    assert write is not None
    asyncio.run(s._on_written([(write, "written")]))
    return s, kept


def displayed_sent(kept: Kept) -> list[dict[str, Any]]:
    return [v for t, _, v in kept.sent if t.endswith("displayed")]


def test_the_shells_own_cache_write_is_published_as_a_valid_cache_observation() -> None:
    _, kept = shell_with_a()
    (published,) = displayed_sent(kept)
    parsed = parse_event(orjson.dumps(published))
    assert isinstance(parsed, Parsed)
    assert (parsed.event.source, parsed.event.extra) == ("cache", {"observer": "cache_write"})


def test_the_shells_own_cache_write_is_the_caches_observation_not_the_apps() -> None:
    s, _ = shell_with_a()
    acct = s.engine.accounts["A"]
    assert (acct.cache.displayed, acct.app.observed) == (10_000, False)


def test_the_sampler_reports_a_tampered_cache_as_a_cache_observation() -> None:
    s, kept = shell_with_a(FakeCache({"A": (99_999, 1)}))
    assert asyncio.run(s.sample()) == 1
    acct = s.engine.accounts["A"]
    assert (displayed_sent(kept)[-1]["observer"], acct.cache.displayed) == ("sampler", 99_999)
    assert (acct.cache.drift is not None, acct.app.drift) == (True, None)


def test_the_sampler_reports_nothing_when_the_cache_holds_what_it_last_saw() -> None:
    s, _ = shell_with_a(FakeCache({"A": (10_000, 1)}))
    assert asyncio.run(s.sample()) == 0


def test_an_app_breach_does_not_rewrite_the_cache() -> None:
    s, _ = shell_with_a()
    version = s.engine.accounts["A"].version
    breach = {
        "type": "mismatch.opened",
        "source": "app",
        "reason": "CACHE_DIVERGED",
        "account_id": "A",
    }
    asyncio.run(s._alert(breach))
    assert s.engine.accounts["A"].version == version


def test_a_cache_breach_rewrites_the_cache() -> None:
    s, _ = shell_with_a()
    version = s.engine.accounts["A"].version
    breach = {
        "type": "mismatch.opened",
        "source": "cache",
        "reason": "CACHE_DIVERGED",
        "account_id": "A",
    }
    asyncio.run(s._alert(breach))
    assert s.engine.accounts["A"].version == version + 1


def test_a_cache_write_reaches_the_writer_only_once_its_change_is_saved() -> None:
    s, _ = shell()
    table: dict[bytes, bytes] = s.store._table  # type: ignore[assignment]
    saved_at_submit: list[tuple[int, int]] = []
    submit = s.writer.submit

    def checked(w: Any, ticket: int = 0) -> None:
        row = orjson.loads(table[b"a|" + w.account_id.encode()])
        saved_at_submit.append((w.version, row["s"]["version"]))
        submit(w, ticket)

    s.writer.submit = checked  # type: ignore[method-assign]
    asyncio.run(s.handle(records(recent(credit_line("A", 0, 10_000, 1)))))
    assert saved_at_submit == [(1, 1)]


def test_a_batch_reaches_the_cache_through_the_writer_with_its_last_version() -> None:
    cache = MemoryLimitCache()
    s = LiveShell(Settings(), Kept(), cache, {}, Metrics())
    s.rebuild(range(8))

    async def scenario() -> tuple[int | None, int | None]:
        running = asyncio.ensure_future(s.writer.run())
        await s.handle(
            records(recent(credit_line("A", 0, 10_000, 1)), recent(drawdown("A", 0, 300)))
        )
        await asyncio.sleep(0.05)
        running.cancel()
        return cache.held["A"]

    assert asyncio.run(scenario()) == (9_700, 2)


# -- records fetched again after a restart: handled once ----------------------------------------


def restarted(table: dict[bytes, bytes]) -> tuple[LiveShell, Kept]:
    """A new worker process on the same state (a restart, or another worker taking over)."""
    kept = Kept()
    s = LiveShell(Settings(), kept, object(), table, Metrics())  # type: ignore[arg-type]
    s.rebuild(range(8))
    return s, kept


def first_batch() -> list[RawRecord]:
    """Offsets 0 to 2 of partition 0: a bad record, a line, a drawdown."""
    good = (recent(credit_line("A", 0, 10_000, 1)), recent(drawdown("A", 0, 300)))
    return [RawRecord(b"not json", TOPIC, 0, 0)] + [
        RawRecord(line(e), TOPIC, 0, offset) for offset, e in enumerate(good, start=1)
    ]


def handled_then_restarted() -> tuple[LiveShell, Kept, list[RawRecord]]:
    s, _ = shell()
    batch = first_batch()
    asyncio.run(s.handle(batch))
    s.persist()  # the next save (a batch or a tick) carries the handled offset
    again, kept = restarted(s.store._table)  # type: ignore[arg-type]
    return again, kept, batch


def test_a_record_dead_lettered_before_a_restart_is_not_dead_lettered_again() -> None:
    s, kept, batch = handled_then_restarted()
    asyncio.run(s.handle(batch))
    assert kept.dead_letters() == []


def test_records_fetched_again_after_a_restart_are_counted_and_not_applied_again() -> None:
    s, _, batch = handled_then_restarted()
    asyncio.run(s.handle(batch))
    handled_before = s.metrics.registry.get_sample_value("limitsync_records_handled_before_total")
    assert (handled_before, s.engine.accounts["A"].expected_available) == (3, 9_700)


def test_a_record_after_the_handled_offset_is_handled_after_a_restart() -> None:
    s, kept, _ = handled_then_restarted()
    asyncio.run(s.handle([RawRecord(b"still not json", TOPIC, 0, 3)]))
    assert [d["offset"] for d in kept.dead_letters()] == [3]


def test_another_partitions_records_are_not_skipped_for_this_ones_offset() -> None:
    s, kept, _ = handled_then_restarted()
    asyncio.run(s.handle([RawRecord(b"not json", TOPIC, 1, 0)]))
    assert [(d["partition"], d["offset"]) for d in kept.dead_letters()] == [(1, 0)]


class HeldFlush:
    """Durability whose flushes are acknowledged only when the test says so."""

    def __init__(self) -> None:
        self.flushes = 0
        self.acked: asyncio.Future[None] | None = None

    def flush_soon(self) -> asyncio.Future[None]:
        if self.acked is None:
            self.flushes += 1
            self.acked = asyncio.get_running_loop().create_future()
        return self.acked

    def ticket(self) -> int:
        return self.flushes + 1

    def durable(self, ticket: int) -> asyncio.Future[None]:
        return self.flush_soon()


def test_the_handled_offset_is_saved_only_once_the_batchs_outputs_are_in_kafka() -> None:
    out = HeldFlush()
    s = LiveShell(Settings(), Kept(), object(), {}, Metrics(), out)  # type: ignore[arg-type]
    s.rebuild(range(8))
    table: dict[bytes, bytes] = s.store._table  # type: ignore[assignment]
    saved: list[bool] = []

    async def scenario() -> None:
        await s.take(first_batch())
        s.persist()
        saved.append(any(k.startswith(b"o||") for k in table))
        assert out.acked is not None
        out.acked.set_result(None)
        await asyncio.sleep(0)
        s.persist()
        saved.append(table.get(f"o||0|{TOPIC}".encode()) == b"2")

    asyncio.run(scenario())
    assert saved == [False, True]
