"""Secrets stay secret (issue 13): passwords are SecretStr, a URL with credentials is shown
redacted, and the state file of `limitsync up` (it may hold a Redis password) is private."""

from __future__ import annotations

import stat
from pathlib import Path

from config.settings import Settings, load_settings, redact_url
from limitsync.stack import _write_state

PASSWORD = "s3cret-pass"


def test_settings_never_show_a_password() -> None:
    settings = Settings(kafka_sasl_password=PASSWORD, redis_password=PASSWORD,
                        alert_webhook_url=f"https://hooks.example/{PASSWORD}")  # fmt: skip
    assert PASSWORD not in repr(settings) + str(settings.model_dump())


def test_a_password_given_as_an_override_is_a_secret_too() -> None:
    assert PASSWORD not in repr(load_settings(redis_password=PASSWORD))


def test_a_redis_url_is_shown_without_its_password() -> None:
    assert PASSWORD not in redact_url(f"redis://default:{PASSWORD}@redis:6379/0")


def test_a_url_without_credentials_is_shown_as_it_is() -> None:
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_the_state_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _write_state(path, Settings(redis_url=f"redis://:{PASSWORD}@127.0.0.1:1/0"), [])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
