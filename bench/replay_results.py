"""The replay floors (issue 14, "Incident analysis at day scale"), judged on a replay bench
result and recorded in ``bench/RESULTS.md`` in a section of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.results_file import code_state, record_run

__all__ = ["DAY_RSS_FLOOR_MB", "WHOLE_COMMAND_FLOOR", "record_replay", "rows"]

WHOLE_COMMAND_FLOOR = 0.35  # `limitsync replay` end to end against plain json.loads
WHOLE_COMMAND_AIM = 1.0
DAY_RSS_FLOOR_MB = 600  # peak RSS of `limitsync replay` on the day log
DAY_RSS_AIM_MB = 300
_SECTION = "## Replay floors"
_INTRO = f"""{_SECTION}

What `python -m bench.replay_bench` measured against the replay floors of issue 14: the whole
command (`limitsync replay --input F --out D`, start-up, outputs and report included) against
the rate at which plain `json.loads` parses the same lines in the same run, on a simulated log
with 10% faults; and the command's peak RSS on a simulated day of the issue's size (20,000
accounts, 1.6M events, 349 MB). The command runs as it does by default: pipelined over two
processes on two cores or more (its peak RSS is that of both added up). Beside each, the same
in one process (`--no-pipeline`) and with `--shards 2` (the RSS of all its processes added
up). The latest runs, newest last.
"""


def _verdict(met: bool | None) -> str:
    return "not run" if met is None else ("met" if met else "MISSED")


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, floor, measured, verdict) for each floor, and the in-process figure beside."""
    faulty, day, main = result.get("faulty"), result.get("day"), result["main"]
    out = []
    if faulty is not None:
        out.append(
            (
                f"`limitsync replay` end to end, {faulty['events']:,}-event log, 10% faults",
                f">= {WHOLE_COMMAND_FLOOR}x json.loads (aim {WHOLE_COMMAND_AIM}x)",
                f"{faulty['cli_ratio']:.2f}x ({faulty['cli_s']:.1f} s; json.loads "
                f"{faulty['json_loads_per_s']:,}/s)",
                _verdict(faulty["cli_ratio"] >= WHOLE_COMMAND_FLOOR),
            )
        )
        if "one_process_ratio" in faulty:
            out.append(
                (
                    "beside it, the same in one process (`--no-pipeline`)",
                    "",
                    f"{faulty['one_process_ratio']:.2f}x ({faulty['one_process_s']:.1f} s)",
                    "",
                )
            )
        if "shards_ratio" in faulty:
            out.append(
                (
                    f"beside it, the same with `--shards {faulty['shards']}`",
                    "",
                    f"{faulty['shards_ratio']:.2f}x ({faulty['shards_s']:.1f} s)",
                    "",
                )
            )
    if day is not None:
        out.append(
            (
                f"peak RSS of `limitsync replay`, {day['events']:,}-event day "
                f"({day['accounts']:,} accounts, {day['mb']:,} MB)",
                f"<= {DAY_RSS_FLOOR_MB} MB (aim {DAY_RSS_AIM_MB})",
                f"{day['peak_rss_mb']:,} MB ({day['cli_s']:.1f} s)",
                _verdict(day["peak_rss_mb"] <= DAY_RSS_FLOOR_MB),
            )
        )
        if "one_process_rss_mb" in day:
            out.append(
                (
                    "beside it, the same in one process (`--no-pipeline`)",
                    "",
                    f"{day['one_process_rss_mb']:,} MB ({day['one_process_s']:.1f} s)",
                    "",
                )
            )
        if "shards_rss_mb" in day:
            out.append(
                (
                    f"beside it, the same with `--shards {day['shards']}` (RSS of all its "
                    "processes added up)",
                    "",
                    f"{day['shards_rss_mb']:,} MB ({day['shards_s']:.1f} s)",
                    "",
                )
            )
    out.append(
        (
            f"beside them, {main['events']:,}-event bench log: in-process `run_replay`; "
            "whole command",
            "",
            f"{main['ratio']:.2f}x; {main['cli_ratio']:.2f}x json.loads",
            "",
        )
    )
    return out


def record_replay(result: dict[str, Any], info: dict[str, str]) -> Path:
    """Put this run's table in the replay section of ``bench/RESULTS.md``."""
    entry = "\n".join(
        [
            f"### {info['date']} · {info['cores']} cores, {info['cpu']} · code {code_state()}",
            "",
            f"Python {info['python']}; {info['code']}; load average at start {info['loadavg']}.",
            "",
            "| measure | floor | measured | |",
            "|---|---|---|---|",
            *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(result)),
            "",
        ]
    )
    return record_run(_SECTION, _INTRO, entry)
