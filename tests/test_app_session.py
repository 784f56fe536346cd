"""A worker that stops answering loses its partitions well inside the SLA
(``streams.app.SESSION_TIMEOUT_S``), and the documented Faust environment still overrides it."""

from __future__ import annotations

import faust
import pytest

from config.settings import Settings
from streams.app import _app_settings


def _conf() -> faust.Settings:
    return faust.App("session-test", **_app_settings(Settings())).conf


def test_the_group_gives_a_silent_worker_ten_seconds() -> None:
    conf = _conf()
    assert (conf.broker_session_timeout, conf.broker_heartbeat_interval) == (10.0, 3.0)


def test_the_session_is_shorter_than_the_default_sla() -> None:
    assert _conf().broker_session_timeout < Settings().sla_s


def test_faust_environment_overrides_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_SESSION_TIMEOUT", "6")
    monkeypatch.setenv("BROKER_HEARTBEAT_INTERVAL", "1")
    conf = _conf()
    assert (conf.broker_session_timeout, conf.broker_heartbeat_interval) == (6.0, 1.0)
