"""The pipeline bench's floors from several rounds of throughput runs (bench.floors)."""

from __future__ import annotations

from typing import Any

from bench.floors import judge, median_rate, round_ratios


def _run(workers: int, rate: int, round_no: int, complete: bool = True) -> dict[str, Any]:
    return {"workers": workers, "events_per_s": rate, "round": round_no, "complete": complete}


RUNS = [
    _run(1, 10_000, 1),
    _run(2, 13_000, 1),
    _run(1, 20_000, 2),
    _run(2, 34_000, 2),
    _run(1, 12_000, 3),
    _run(2, 20_000, 3),
]


def test_scale_out_is_taken_within_each_round() -> None:
    assert [round(r, 2) for r in round_ratios(RUNS)] == [1.3, 1.7, 1.67]


def test_a_round_with_an_incomplete_run_gives_no_ratio() -> None:
    runs = [*RUNS[:3], _run(2, 90_000, 2, complete=False), *RUNS[4:]]
    assert [round(r, 2) for r in round_ratios(runs)] == [1.3, 1.67]


def test_one_worker_rate_is_the_median_of_complete_runs() -> None:
    assert median_rate([*RUNS, _run(1, 1, 4, complete=False)], 1) == 12_000


def test_scale_out_floor_is_judged_on_the_median_ratio() -> None:
    floor = next(f for f in judge({"throughput": RUNS}) if f.what == "2 workers against 1")
    assert (floor.measured, floor.met) == ("1.67x (median; 1.30, 1.70, 1.67)", True)


def test_a_single_round_is_judged_as_before() -> None:
    floor = next(f for f in judge({"throughput": RUNS[:2]}) if f.what == "2 workers against 1")
    assert (floor.measured, floor.met) == ("1.30x", False)
