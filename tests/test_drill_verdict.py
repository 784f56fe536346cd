"""A drill's verdict (docs/drills.md): an account whose cache was right again within the SLA
never breached, so nothing had to detect it; every other one must be detected within the SLA
and the tolerance, every one healed, no event lost."""

from __future__ import annotations

from limitsync.drill import render, summarize

SLA_S, TOLERANCE_S = 60.0, 5.0


def test_a_takeover_healed_within_the_sla_passes_without_a_detection() -> None:
    report = summarize("worker-kill", ["a", "b"], {}, {"a": 13.1, "b": 13.2}, SLA_S, TOLERANCE_S, 0)
    assert report["passed"] is True


def test_an_account_healed_after_the_sla_without_a_detection_fails() -> None:
    report = summarize("worker-kill", ["a", "b"], {}, {"a": 13.1, "b": 61.0}, SLA_S, TOLERANCE_S, 0)
    assert report["passed"] is False


def test_an_account_healed_after_the_sla_and_detected_in_time_passes() -> None:
    report = summarize("worker-kill", ["a"], {"a": 60.2}, {"a": 61.0}, SLA_S, TOLERANCE_S, 0)
    assert report["passed"] is True


def test_the_table_says_how_many_healed_before_anything_could_be_detected() -> None:
    report = summarize("worker-kill", ["a", "b"], {}, {"a": 13.1, "b": 13.2}, SLA_S, TOLERANCE_S, 0)
    assert "healed within the SLA (no breach, nothing to detect): 2/2" in render(report)
