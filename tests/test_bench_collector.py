"""The pipeline bench's measured windows run with the collector off, and leave it as they found
it: a caller that had turned it off (as replay's readers do) does not get it back on."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bench.pipeline_bench import collector_off
from limitsync.outputs import collector_paused


@pytest.fixture
def collector_disabled() -> Iterator[None]:
    with collector_paused():
        yield


def test_a_measured_window_leaves_a_disabled_collector_disabled(collector_disabled: None) -> None:
    with collector_off():
        pass
    assert not gc.isenabled()
