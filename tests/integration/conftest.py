"""Fixtures of the live-pipeline tests: a system of topics, settings and workers per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.live_harness import LiveSystem, make_live_system


@pytest.fixture
def system(
    kafka_bootstrap: str, redis_url: str, unique_id: str, tmp_path: Path
) -> Iterator[LiveSystem]:
    """Topics with this test's own prefix on the session's broker; its workers stop after."""
    s = make_live_system(kafka_bootstrap, redis_url, unique_id, tmp_path)
    yield s
    s.stop_all()


@pytest.fixture
def rocksdb_system(
    kafka_bootstrap: str, redis_url: str, unique_id: str, tmp_path: Path
) -> Iterator[LiveSystem]:
    """The same, with workers on the RocksDB store (each worker on its own data dir)."""
    s = make_live_system(kafka_bootstrap, redis_url, unique_id, tmp_path, store="rocksdb://")
    yield s
    s.stop_all()
