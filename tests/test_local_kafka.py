"""LocalKafka without its parts: it says what is missing and how to get it, and starts nothing.

The broker itself is tested against the real thing in tests/integration/test_local_services.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from limitsync.local_services import (
    KAFKA_LIBS_ENV,
    LocalKafka,
    LocalServiceError,
    java_binary,
    kafka_libs,
)


def test_without_the_jars_it_says_to_run_make_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(KAFKA_LIBS_ENV, str(tmp_path / "empty"))
    broker = LocalKafka(tmp_path / "logs")
    with pytest.raises(LocalServiceError, match=r"no Apache Kafka jars in .*`make install`"):
        broker.start()
    assert not broker.running


def test_the_jars_are_taken_from_the_environment_when_it_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kafka_2.13-4.1.2.jar").touch()
    monkeypatch.setenv(KAFKA_LIBS_ENV, str(tmp_path))
    assert kafka_libs() == tmp_path


def _fake_java(directory: Path) -> Path:
    directory.mkdir(parents=True)
    java = directory / "java"
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    return java


def test_java_home_wins_over_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home_java = _fake_java(tmp_path / "home" / "bin")
    _fake_java(tmp_path / "path")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    assert java_binary() == home_java


def test_a_java_home_without_java_is_an_error_not_a_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_java(tmp_path / "path")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    with pytest.raises(LocalServiceError, match="JAVA_HOME"):
        java_binary()


def test_java_from_path_and_none_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    java = _fake_java(tmp_path / "path")
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    assert java_binary() == java
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LocalServiceError, match="no java found"):
        java_binary()
