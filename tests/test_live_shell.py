"""The live shell's handling of a batch, with no broker and no Redis (CONTRACT.md "Bad input":
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

from limitsync.settings import Settings
from schemas.timefmt import format_us
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
        "event_id": "obs:cache_write:A:1:1", "type": "limit.displayed", "account_id": "A",
        "occurred_at": now_stamp(), "schema_version": 1, "displayed_available": 5,
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
