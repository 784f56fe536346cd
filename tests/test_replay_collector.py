"""Replay runs without the cyclic collector and leaves it as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from limitsync.replay import InputRecord, ReplayOptions, run_replay

_LINE = (
    b'{"event_id":"e1","type":"credit_line.changed","account_id":"a1",'
    b'"occurred_at":"2026-11-29T00:00:00.000Z","schema_version":1,'
    b'"credit_line":1000,"version":1,"cause":"initial"}'
)


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_left_as_it_was(enabled: bool) -> None:
    gc.enable() if enabled else gc.disable()
    run_replay([InputRecord(_LINE)], ReplayOptions())
    assert gc.isenabled() is enabled


def test_the_collector_is_off_during_the_run() -> None:
    seen: list[bool] = []

    def records() -> Iterator[InputRecord]:
        seen.append(gc.isenabled())
        yield InputRecord(_LINE)

    gc.enable()
    run_replay(records(), ReplayOptions())
    assert seen == [False]


def test_what_replay_keeps_is_frozen_out_of_later_collections() -> None:
    gc.unfreeze()
    result = run_replay([InputRecord(_LINE)], ReplayOptions())
    acct = result.engine.accounts["a1"]
    assert gc.is_tracked(acct)
    assert not any(o is acct for o in gc.get_objects())  # the collector's generations
