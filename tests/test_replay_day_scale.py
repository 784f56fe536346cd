"""A day-long replay in bounded memory (issue 14): ids expire from compact columns, timelines
keep an account's last TIMELINE_MAX points, the report explains only the accounts it shows,
outputs are streamed, and the summary line tells the peak memory.

Memory and speed themselves are measured by ``make bench`` (bench/replay_bench.py), not here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eventlog import S, credit_line, displayed, drawdown, line, records, replay

from limitsync.cli import main
from limitsync.progress import progress_reporter
from limitsync.replay import TIMELINE_MAX, ReplayOptions, Timeline, run_replay
from limitsync.report import TIMELINES_MAX
from limitsync.report_data import build_report_data
from streams.core import CoreConfig
from streams.core.engine import _FIFO_CUT_MIN

HOUR = 3600 * S


def ids_over_two_horizons() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """More ids than a FIFO cut, a horizon apart, then a copy of the first and of the last."""
    count = 2 * _FIFO_CUT_MIN + 10
    first = [drawdown("A", i, 1, event_id=f"dd-{i}") for i in range(count)]
    late = [drawdown("A", 3 * HOUR + i, 1, event_id=f"late-{i}") for i in range(count)]
    return first, late


def outcomes_after_the_horizon(copy_of: dict[str, object]) -> int:
    first, late = ids_over_two_horizons()
    hour = ReplayOptions(core=CoreConfig.from_seconds(dedupe_horizon_s=3600))
    result = run_replay(records([*first, *late, copy_of]), hour)
    return result.counts["applied"]


def test_an_id_past_the_horizon_is_forgotten_after_the_fifo_cuts_its_front() -> None:
    first, late = ids_over_two_horizons()
    assert outcomes_after_the_horizon(first[0]) == len(first) + len(late) + 1


def test_an_id_inside_the_horizon_is_still_a_duplicate_after_the_fifo_cuts_its_front() -> None:
    first, late = ids_over_two_horizons()
    assert outcomes_after_the_horizon(late[-1]) == len(first) + len(late)


def test_a_timeline_keeps_the_last_points_of_an_account() -> None:
    timeline = Timeline()
    for i in range(2 * TIMELINE_MAX + 50):
        timeline.add(i, f"e-{i}", "limit.displayed", "app", i, None, i)
    assert [p[1] for p in timeline.entries()] == [
        f"e-{i}" for i in range(TIMELINE_MAX + 50, 2 * TIMELINE_MAX + 50)
    ]


def test_a_timeline_keeps_an_amount_beyond_a_machine_int_exactly() -> None:
    timeline = Timeline()
    timeline.add(1, "e-1", "limit.displayed", "app", 5, 7, None)
    timeline.add(2, "e-2", "limit.displayed", "app", 5, 2**70, None)
    assert timeline.entries() == [
        (1, "e-1", "limit.displayed", "app", 5, 7, None),
        (2, "e-2", "limit.displayed", "app", 5, 2**70, None),
    ]


def test_the_report_explains_only_the_accounts_it_shows() -> None:
    events = []
    for i in range(TIMELINES_MAX + 5):  # each app shows a stale value past the SLA
        account = f"A{i:03d}"
        events += [credit_line(account, 0, 10_000, 1), displayed(account, 0, 10_000)]
        events.append(drawdown(account, S, 1_000 + i))
    result = replay([*events, displayed("Z", 10 * HOUR, 0)])
    data = build_report_data(result, ReplayOptions(), "test")
    assert len(data.explanations) == TIMELINES_MAX


def test_replay_writes_its_summary_line_with_the_peak_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(line(drawdown("A", 0, 1)) + b"\n")
    main(["replay", "--input", str(log), "--out", str(tmp_path / "out")])
    assert "peak RSS" in capsys.readouterr().out


def test_no_progress_bar_when_stderr_is_not_a_terminal() -> None:
    with progress_reporter(10**9) as progress:
        assert progress is None
