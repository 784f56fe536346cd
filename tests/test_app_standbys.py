"""Standby replicas are kept only with a store that lets them shorten a takeover
(``streams.app.standby_replicas``): Faust's in-memory store reads a partition that moves to
its standby from the changelog's start anyway, so there a standby only costs CPU."""

from __future__ import annotations

from config.settings import Settings
from streams.app import standby_replicas


def test_the_in_memory_store_keeps_no_standbys() -> None:
    assert standby_replicas(Settings(store="memory://", standby_replicas=1)) == 0


def test_rocksdb_keeps_the_standbys_asked_for() -> None:
    assert standby_replicas(Settings(store="rocksdb://", standby_replicas=2)) == 2
    assert standby_replicas(Settings(store="rocksdb://", standby_replicas=0)) == 0
