"""Replay throughput from a simulated file of at least 500k events (``make bench``).

Prints, from one run on one machine: whether the hot modules ran mypyc-compiled (it moves the
replay rate by about 1.5x), the rate at which plain ``json.loads`` merely parses the file's
lines (the faster of a pass before and one after), the replay's rate (``run_replay``: parse,
dedupe, core, alerts; the faster of two runs, each in a fresh process) with its peak RSS, and
the end-to-end time of ``limitsync replay`` (outputs and report included) as a ratio beside.

Then the floors of issue 14, recorded in bench/RESULTS.md (``--no-record`` for a trial): the
whole command against ``json.loads`` on a log with 10% faults (the slower case: many alerts),
each timed paired in the same run; and the whole command's peak RSS on a simulated day
(20,000 accounts, the issue's 1.57M-event size; ``--no-day`` skips it, a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from limitsync import compiled

FLOOR = 0.35
ACCOUNTS, HOURS, SEED = 3300, 24.0, 5  # 637,339 lines (505,523 before the app refreshes)
# 10% of each fault kind, 1% bad records: 231,544 lines, 55,542 alerts.
FAULTY_ACCOUNTS, FAULTY_HOURS, FAULTY_SEED, FAULTY_SHARE, FAULTY_BAD = 2000, 10.0, 8, 0.1, 0.01
# The day of issue 14 (1.57M events, 340 MB, 20,000 accounts, default faults and bad records):
# today's simulator writes more events an hour than when it was measured, so 7.3 h gives its
# size (1,607,839 lines, 349 MB); 10 h now gives 2,154,430 lines, 468 MB.
DAY_ACCOUNTS, DAY_HOURS, DAY_SEED = 20_000, 7.3, 7
SHARDS = 2  # `limitsync replay --shards`, timed beside the default (one process)


def _json_rate(path: Path) -> tuple[int, float]:
    n = 0
    started = time.perf_counter()
    with path.open("rb") as fh:
        for line in fh:
            try:  # noqa: SIM105
                json.loads(line)
            except ValueError:  # suppress() would slow the baseline we compare to
                pass
            n += 1
    return n, n / (time.perf_counter() - started)


def _child(path: Path) -> None:
    from limitsync.compiled import running_compiled
    from limitsync.replay import ReplayOptions, iter_file_records, run_replay

    started = time.perf_counter()
    result = run_replay(iter_file_records(path), ReplayOptions())
    elapsed = time.perf_counter() - started
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "records": result.counts["records"],
                "elapsed_s": elapsed,
                "alerts": len(result.alerts),
                "accounts": len(result.engine.accounts),
                "peak_rss_mb": rss_kb / 1024,
                "compiled": len(running_compiled()),
                "hot_imported": sum(1 for m in compiled.HOT_MODULES if m in sys.modules),
            }
        )
    )


def _replay_child(path: Path) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, "-m", "bench.replay_bench", "--child", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def _run_cli(path: Path, out: Path, *extra: str) -> tuple[float, float, int]:
    """``limitsync replay`` as a user runs it: (seconds, peak RSS in MB, shards). The peak RSS
    is what the command says of itself: its own and each shard's added up (``wait4`` would
    give the largest process's alone)."""
    command = [sys.executable, "-m", "limitsync.cli", "replay", "--input", str(path)]
    started = time.perf_counter()
    child = subprocess.run(
        [*command, "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"limitsync replay failed on {path} ({child.returncode})")
    said = child.stdout
    rss = re.search(r"peak RSS ([\d,]+) MB", said)
    shards = re.search(r"on (\d+) shards", said)
    if rss is None:
        raise SystemExit(f"limitsync replay said no peak RSS: {said!r}")
    return took, float(rss.group(1).replace(",", "")), int(shards.group(1)) if shards else 1


def _paired_cli(path: Path, out: Path) -> dict[str, Any]:
    """The whole command as it runs by default (pipelined over two processes on two cores or
    more), in one process (``--no-pipeline``) and in SHARDS shards, against json.loads on the
    same file, each twice, interleaved, the faster of each compared (this VM's speed drifts
    within minutes)."""
    json_rates, cli_times, one_times, shard_times = [], [], [], []
    for _ in range(2):
        lines, rate = _json_rate(path)
        json_rates.append(rate)
        cli_times.append(_run_cli(path, out)[0])
        one_times.append(_run_cli(path, out, "--no-pipeline")[0])
        shard_times.append(_run_cli(path, out, "--shards", str(SHARDS))[0])
    json_rate, cli_s = max(json_rates), min(cli_times)
    one_s, shard_s = min(one_times), min(shard_times)
    return {
        "events": lines,
        "json_loads_per_s": round(json_rate),
        "cli_s": round(cli_s, 2),
        "cli_runs_s": [round(t, 2) for t in cli_times],
        "cli_ratio": round(lines / cli_s / json_rate, 3),
        "one_process_s": round(one_s, 2),
        "one_process_ratio": round(lines / one_s / json_rate, 3),
        "shards": SHARDS,
        "shards_s": round(shard_s, 2),
        "shards_ratio": round(lines / shard_s / json_rate, 3),
    }


def _faulty(tmp: Path) -> dict[str, Any]:
    from limitsync.simulate import write_simulation

    path = tmp / "faulty.jsonl"
    write_simulation(
        path,
        accounts=FAULTY_ACCOUNTS,
        hours=FAULTY_HOURS,
        seed=FAULTY_SEED,
        faults=FAULTY_SHARE,
        bad=FAULTY_BAD,
    )
    return _paired_cli(path, tmp / "out-faulty")


def _day(tmp: Path) -> dict[str, Any]:
    from limitsync.simulate import write_simulation

    path = tmp / "day.jsonl"
    write_simulation(path, accounts=DAY_ACCOUNTS, hours=DAY_HOURS, seed=DAY_SEED)
    cli_s, rss_mb, _ = _run_cli(path, tmp / "out-day")
    one_s, one_rss_mb, _ = _run_cli(path, tmp / "out-day", "--no-pipeline")
    shards_s, shards_rss_mb, _ = _run_cli(path, tmp / "out-day", "--shards", str(SHARDS))
    with path.open("rb") as fh:
        events = sum(1 for _ in fh)
    size_mb = path.stat().st_size // 1_000_000
    path.unlink()
    return {
        "events": events,
        "accounts": DAY_ACCOUNTS,
        "mb": size_mb,
        "cli_s": round(cli_s, 1),
        "peak_rss_mb": round(rss_mb),
        "one_process_s": round(one_s, 1),
        "one_process_rss_mb": round(one_rss_mb),
        "shards": SHARDS,
        "shards_s": round(shards_s, 1),
        "shards_rss_mb": round(shards_rss_mb),
    }


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _main_log(path: Path, tmp: Path, loadavg: str) -> tuple[dict[str, Any], str]:
    """The bench log: json.loads before and after, two in-process replays, the whole command
    (a shared VM's speed drifts over minutes: the faster of each pair is compared)."""
    lines, json_before = _json_rate(path)
    runs = [_replay_child(path) for _ in range(2)]
    replay = min(runs, key=lambda r: float(r["elapsed_s"]))
    replay_rate = replay["records"] / replay["elapsed_s"]
    rates = [r["records"] / r["elapsed_s"] for r in runs]
    cli_s, cli_rss_mb, _ = _run_cli(path, tmp / "out")
    _, json_after = _json_rate(path)
    json_rate = max(json_before, json_after)
    ratio = replay_rate / json_rate
    cli_ratio = lines / cli_s / json_rate
    print(
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {_cpu()}, "
        f"Python {platform.python_version()}, load average at start {loadavg}"
    )
    # Compiled or not changes the replay rate a lot: say which code ran, and warn
    # when that code is older than its source (limitsync/compiled.py).
    found = compiled.status()
    code = (
        f"{replay['compiled']} of the {replay.get('hot_imported', len(compiled.HOT_MODULES))} "
        "hot modules it imported compiled (mypyc)"
        if replay["compiled"]
        else "pure Python (LIMITSYNC_COMPILE=0 or no compiler)"
    )
    print(f"{'code':<40}{code}" + (f"; STALE: {', '.join(found.stale)}" if found.stale else ""))
    print(f"{'events in file':<40}{lines:>14,}")
    print(
        f"{'json.loads only (lines/s)':<40}{json_rate:>14,.0f}   "
        f"(before {json_before:,.0f}, after {json_after:,.0f}: the faster is used)"
    )
    print(
        f"{'replay, run_replay (events/s)':<40}{replay_rate:>14,.0f}   {ratio:.2f}x json.loads"
        f"   (runs {rates[0]:,.0f} and {rates[1]:,.0f}: the faster is used)"
    )
    print(
        f"{'limitsync replay, whole command (s)':<40}{cli_s:>14.1f}   {cli_ratio:.2f}x "
        f"json.loads (start-up, outputs and report included; peak RSS {cli_rss_mb:,.0f} MB)"
    )
    print(f"{'replay peak RSS (MB)':<40}{replay['peak_rss_mb']:>14,.0f}")
    print(f"{'alerts / accounts':<40}{replay['alerts']:>7,} / {replay['accounts']:,}")
    print(f"floor {FLOOR}x (in process): {'met' if ratio >= FLOOR else 'NOT met'}")
    return {
        "events": lines,
        "json_loads_per_s": round(json_rate),
        "replay_per_s": round(replay_rate),
        "replay_runs_per_s": [round(r) for r in rates],
        "ratio": round(ratio, 3),
        "peak_rss_mb": round(replay["peak_rss_mb"]),
        "cli_s": round(cli_s, 1),
        "cli_ratio": round(cli_ratio, 3),
        "compiled": replay["compiled"],
    }, code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--file", help="replay this file instead of a fresh simulation")
    parser.add_argument("--no-day", action="store_true", help="skip the day log (RSS floor)")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/RESULTS.md")
    args = parser.parse_args()
    if args.child:
        _child(Path(args.child))
        return
    loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="limitsync-bench-") as tmp:
        path = Path(args.file) if args.file else Path(tmp) / "events.jsonl"
        if not args.file:
            from limitsync.simulate import write_simulation

            started = time.perf_counter()
            write_simulation(path, accounts=ACCOUNTS, hours=HOURS, seed=SEED)
            took = time.perf_counter() - started
            print(f"simulated {path.stat().st_size / 1e6:.0f} MB in {took:.1f} s")
        main_log, code = _main_log(path, Path(tmp), loadavg)
        result: dict[str, Any] = {"bench": "replay", "main": main_log}
        if not args.file:
            path.unlink()
        result["faulty"] = _faulty(Path(tmp))
        if not args.no_day:
            result["day"] = _day(Path(tmp))
    _print_floors(result)
    print(json.dumps(result))
    if not args.no_record and not args.file:
        from bench.replay_results import record_replay

        info = {
            "date": f"{now:%Y-%m-%d %H:%M} UTC",
            "cores": str(os.cpu_count()),
            "cpu": _cpu(),
            "python": platform.python_version(),
            "code": code,
            "loadavg": loadavg,
        }
        print(f"recorded in {record_replay(result, info)}")


def _print_floors(result: dict[str, Any]) -> None:
    from bench.replay_results import rows

    print("\nREPLAY FLOORS  (issue 14; this machine, figures of this run)")
    for measure, floor, measured, verdict in rows(result):
        print(f"  {measure:<78}{floor:<36}{measured:>40}   {verdict}")


if __name__ == "__main__":
    main()
