"""The live pipeline's floors (issue "Live pipeline v2"), judged on a pipeline bench result,
printed beside the transport ceiling and recorded in ``bench/RESULTS.md``."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results_file import record_run

__all__ = ["Floor", "judge", "median_rate", "print_floors", "record", "round_ratios"]

LEDGER_FLOOR_EVENTS_PER_S = 5_000
LEDGER_AIM_EVENTS_PER_S = 20_000
LATENCY_RATE_EVENTS_PER_S = 2_000
LATENCY_FLOOR_P99_MS = 250
LATENCY_AIM_P99_MS = 100
SCALE_OUT_FLOOR = 1.6
E2E_FLOOR_EVENTS_PER_S = 5_000


@dataclass(frozen=True)
class Floor:
    what: str
    floor: str
    measured: str
    met: bool | None  # None: not measured in this run


def median_rate(runs: list[dict[str, Any]], workers: int) -> float | None:
    """The median events/s of the complete throughput runs with ``workers`` workers."""
    rates = [tp["events_per_s"] for tp in runs if tp["workers"] == workers and tp["complete"]]
    return statistics.median(rates) if rates else None


def round_ratios(runs: list[dict[str, Any]]) -> list[float]:
    """Two workers' events/s over one worker's, per round in which both runs completed: the
    runs of a round are a minute apart at most, so the VM's drift in speed between them is
    smaller than between rounds."""
    by_round: dict[int, dict[int, float]] = {}
    for tp in runs:
        if tp["complete"]:
            by_round.setdefault(tp.get("round", 1), {})[tp["workers"]] = tp["events_per_s"]
    return [r[2] / r[1] for _, r in sorted(by_round.items()) if 1 in r and 2 in r]


def judge(result: dict[str, Any]) -> list[Floor]:
    runs = result.get("throughput", [])
    one, ratios = median_rate(runs, 1), round_ratios(runs)
    ones = sum(1 for tp in runs if tp["workers"] == 1 and tp["complete"])
    ratio = statistics.median(ratios) if ratios else None
    floors = [
        Floor(
            "ledger bench, 1 worker",
            f">= {LEDGER_FLOOR_EVENTS_PER_S:,} events/s (aim {LEDGER_AIM_EVENTS_PER_S:,})",
            f"{one:,.0f} events/s" + (f" (median of {ones})" if ones > 1 else "") if one else "-",
            one >= LEDGER_FLOOR_EVENTS_PER_S if one else None,
        ),
        _latency_floor(result.get("latency", [])),
        Floor(
            "2 workers against 1",
            f">= {SCALE_OUT_FLOOR}x",
            _ratio_text(ratio, ratios),
            ratio >= SCALE_OUT_FLOOR if ratio is not None else None,
        ),
    ]
    e2e = result.get("e2e")
    floors.append(
        Floor(
            f"simulated log ({e2e['events']:,} events) produced -> exact cache, 1 worker"
            if e2e
            else "simulated log produced -> exact cache, 1 worker",
            f">= {E2E_FLOOR_EVENTS_PER_S:,} events/s",
            f"{e2e['events_per_s']:,} events/s" if e2e and e2e["complete"] else "-",
            (e2e["complete"] and e2e["events_per_s"] >= E2E_FLOOR_EVENTS_PER_S) if e2e else None,
        )
    )
    return floors


def _ratio_text(ratio: float | None, ratios: list[float]) -> str:
    if ratio is None:
        return "-"
    if len(ratios) == 1:
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x (median; {', '.join(f'{r:.2f}' for r in ratios)})"


def _latency_floor(runs: list[dict[str, Any]]) -> Floor:
    at_rate = next((r for r in runs if r["target_events_per_s"] == LATENCY_RATE_EVENTS_PER_S), None)
    what = f"p99 produce -> readable in Redis at {LATENCY_RATE_EVENTS_PER_S:,} events/s"
    floor = f"<= {LATENCY_FLOOR_P99_MS} ms (aim {LATENCY_AIM_P99_MS})"
    p99 = (at_rate or {}).get("direct", {}).get("after_warmup", {}).get("p99_ms")
    if at_rate is None or p99 is None:
        return Floor(what, floor, "-", None)
    met = p99 <= LATENCY_FLOOR_P99_MS and not at_rate["accounts_behind_at_end"]
    return Floor(what, floor, f"{p99:,.0f} ms", met)


def _verdict(floor: Floor) -> str:
    return "not run" if floor.met is None else ("met" if floor.met else "MISSED")


def print_floors(floors: list[Floor], result: dict[str, Any]) -> None:
    print("\nFLOORS  (this machine, one local Apache Kafka broker, one Redis)")
    for f in floors:
        print(f"  {f.what:<62}{f.floor:<36}{f.measured:>18}   {_verdict(f)}")
    if "ceiling" in result:
        print(
            f"  {'beside it: a bare aiokafka consumer on the same topic':<62}{'':<36}"
            f"{result['ceiling']['events_per_s']:>11,} ev/s"
        )


def record(floors: list[Floor], info: dict[str, Any], result: dict[str, Any]) -> Path:
    """Put this run's floors, with the date and machine, in ``bench/RESULTS.md``."""
    lines = [
        "",
        f"### {info['date']} · {info['nproc']} cores, {info['cpu']} · code {info['git']}",
        "",
        f"Python {info['python']}, Kafka {info['kafka']}, redis-server {info['redis_server']}, "
        f"faust-streaming {info['faust-streaming']}, aiokafka {info['aiokafka']}; load average "
        f"at start {info['loadavg']}.",
        "",
        "| measure | floor | measured | |",
        "|---|---|---|---|",
        *(f"| {f.what} | {f.floor} | {f.measured} | {_verdict(f)} |" for f in floors),
    ]
    if "ceiling" in result:
        lines.append(
            f"| beside it: bare aiokafka consumer | | "
            f"{result['ceiling']['events_per_s']:,} events/s | |"
        )
    if "core" in result:
        # This VM's speed drifts over hours: the pure core's rate in the same run
        # says how fast the machine was.
        lines.append(
            f"| beside it: core only (parse + ingest, no I/O) | | "
            f"{result['core']['parse_ingest_events_per_s']:,} events/s | |"
        )
    lines.extend(_cores_used(result))
    return record_run(_SECTION, _INTRO, "\n".join(lines))


def _cores_used(result: dict[str, Any]) -> list[str]:
    """Where the machine's cores went in each throughput run: on two cores, the broker's share
    bounds what a second worker can add."""
    rows = []
    for tp in result.get("throughput", []):
        seconds = tp.get("cpu_window_s") or 0
        if not seconds:
            continue
        cpu = tp.get("cpu_s", {})
        workers = sum(v for k, v in cpu.items() if k.startswith("worker")) / seconds
        kafka, others, steal = (cpu.get(k, 0) / seconds for k in ("kafka", "others", "steal"))
        idle_waiting = (
            f", idle {cpu['idle'] / seconds:.2f}, workers waiting for a core "
            f"{cpu['waiting'] / seconds:.2f}"
            if "idle" in cpu and "waiting" in cpu
            else ""
        )
        rows.append(
            f"| cores used, {tp['workers']} worker(s), round {tp.get('round', 1)} | | "
            f"workers {workers:.2f}, "
            f"kafka {kafka:.2f}, others {others:.2f}, steal {steal:.2f}{idle_waiting} | |"
        )
    return rows


_SECTION = "## Live pipeline floors"
_INTRO = f"""{_SECTION}

What `python -m bench.pipeline_bench` measured against the live pipeline's floors (this module
says what each one is). The latest runs, newest last.
"""
