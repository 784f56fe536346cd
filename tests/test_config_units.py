"""One configuration of the core, one unit convention (docs/design.md "The composition root"):
durations are named with their unit last, ``_s`` in settings and options, ``_us`` in the core,
and the core's config is built from settings by one function, with the contract's defaults."""

from __future__ import annotations

import dataclasses

import pytest

from config.settings import Settings
from limitsync.replay import ReplayOptions
from streams.core import CoreConfig

SPELLED_OUT = ("seconds", "_ms", "millis", "micros")


def test_no_setting_or_option_spells_its_unit_another_way() -> None:
    names = [
        *Settings.model_fields,
        *(f.name for f in dataclasses.fields(ReplayOptions)),
        *(f.name for f in dataclasses.fields(CoreConfig)),
    ]
    assert [n for n in names if any(word in n for word in SPELLED_OUT)] == []


def test_default_settings_give_the_core_its_default_config_but_rescoring() -> None:
    settings = Settings()
    built = CoreConfig.from_seconds(**settings.core_seconds())
    assert built == dataclasses.replace(CoreConfig(), rescore_enabled=settings.rescore_enabled)


def test_the_documented_environment_names_still_set_the_slas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIMITSYNC_SLA_SECONDS", "5")
    monkeypatch.setenv("LIMITSYNC_CLEARING_SLA_SECONDS", "600")
    config = CoreConfig.from_seconds(**Settings().core_seconds())
    assert (config.sla_us, config.clearing_sla_us) == (5_000_000, 600_000_000)
