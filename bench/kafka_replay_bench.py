"""Replay throughput from Kafka, from the archive and from the plain file, on the same events.

    python -m bench.kafka_replay_bench [--events 100000] [--partitions 8] [--seed 1]

Starts a local Apache Kafka broker, simulates about ``--events`` records, produces them to the input
topics as ``limitsync produce`` does, archives them with the archiver, then replays the same
events three ways in the same run and prints events/s for each. The three replays must give
byte-identical alerts and accounts; the bench says so, or fails.

kafka-python checks record CRCs in pure Python unless the ``crc32c`` package is installed;
the ``check_crcs=False`` line shows roughly what that package would give.

The Kafka figures include finding each partition's end (its end offset, asked once). The
window line replays the middle third by record timestamp, each partition read from the
offset that offsets_for_times answers for the start.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from config.settings import Settings
from consumers.archive import ArchiveOptions, run_archive
from consumers.kafka_replay import KafkaReadOptions, KafkaReadStats, read_window
from limitsync.inputs import open_input
from limitsync.local_services import LocalKafka, create_topics
from limitsync.outputs import write_outputs
from limitsync.producing import RecordRouter, produce_lines
from limitsync.replay import InputRecord, ReplayOptions, ReplayResult, run_replay
from limitsync.simulate import simulate

_EVENTS_PER_ACCOUNT_HOUR = 8.9  # measured on the simulator's defaults; only sizes the run
_ACCOUNTS = 2000


@dataclass
class Timing:
    name: str
    records: int
    seconds: float
    digest: str = ""
    note: str = ""

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _digest(result: ReplayResult, out: Path) -> str:
    write_outputs(result, out, ReplayOptions(), "bench")
    h = hashlib.sha256()
    for name in ("alerts.jsonl", "accounts.jsonl"):
        h.update((out / name).read_bytes())
    return h.hexdigest()[:16]


def _timed(name: str, out: Path, replay: Callable[[], ReplayResult], note: str = "") -> Timing:
    began = time.perf_counter()
    result = replay()
    seconds = time.perf_counter() - began
    return Timing(name, result.counts["records"], seconds, _digest(result, out), note)


def _options() -> ReplayOptions:
    return ReplayOptions(keep_timelines=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kafka_replay_bench")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--idle-timeout-s", type=float, default=2.0)
    args = parser.parse_args(argv)

    hours = args.events / (_EVENTS_PER_ACCOUNT_HOUR * _ACCOUNTS)
    lines = list(simulate(accounts=_ACCOUNTS, hours=hours, seed=args.seed))
    read_options = KafkaReadOptions(idle_timeout_s=args.idle_timeout_s)
    with tempfile.TemporaryDirectory(prefix="kafka-replay-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        log = tmp / "events.jsonl"
        log.write_bytes(b"".join(line + b"\n" for line in lines))
        with LocalKafka(tmp / "broker").start() as broker:
            settings = Settings(
                bootstrap_servers=broker.bootstrap_servers,
                topic_prefix="bench.",
                partitions=args.partitions,
                app_id="bench",
            )
            create_topics(
                broker.bootstrap_servers,
                [settings.topics["account_events"], settings.topics["displayed"]],
                args.partitions,
            )
            print(
                f"{len(lines)} events, {log.stat().st_size / 1e6:.1f} MB, "
                f"{args.partitions} partitions per topic, kafka at {broker.bootstrap_servers}"
            )
            timings = _run(settings, lines, log, tmp, read_options, args.idle_timeout_s)
    _print(timings)
    digests = {
        t.digest for t in timings if t.digest and "window" not in t.name and "slice" not in t.name
    }
    if len(digests) != 1 or any("MISMATCH" in t.note for t in timings):
        print("MISMATCH: the replays did not give the same alerts and accounts", file=sys.stderr)
        return 1
    print("alerts.jsonl and accounts.jsonl: byte-identical across file, archive and Kafka")
    return 0


def _run(
    settings: Settings,
    lines: list[bytes],
    log: Path,
    tmp: Path,
    read_options: KafkaReadOptions,
    idle_timeout_s: float,
) -> list[Timing]:
    timings = []
    began = time.perf_counter()
    produce_lines(settings, lines)
    timings.append(Timing("produce (kafka-python)", len(lines), time.perf_counter() - began))

    archive = tmp / "archive"
    began = time.perf_counter()
    stats = run_archive(settings, ArchiveOptions(root=archive, idle_exit_s=idle_timeout_s))
    timings.append(
        Timing(
            "archive (consume + gzip)",
            stats.records_written,
            time.perf_counter() - began,
            note=f"incl. group join and {idle_timeout_s:.0f} s idle exit; "
            f"{sum(p.stat().st_size for p in archive.rglob('*.jsonl.gz')) / 1e6:.1f} MB gzip",
        )
    )

    timings.append(
        _timed(
            "replay: plain file",
            tmp / "o-file",
            lambda: run_replay(open_input(str(log)), _options()),
        )
    )
    timings.append(
        _timed(
            "replay: archive dir",
            tmp / "o-arch",
            lambda: run_replay(open_input(str(archive)), _options()),
        )
    )
    read_stats = KafkaReadStats()
    timings.append(
        _timed(
            "replay: from Kafka",
            tmp / "o-kafka",
            lambda: run_replay(
                (
                    r.as_input()
                    for r in read_window(
                        settings,
                        None,
                        None,
                        read_options,
                        stats=read_stats,
                    )
                ),
                _options(),
            ),
        )
    )
    timings.append(_read_only(settings, read_options))
    no_crc = replace(read_options, check_crcs=False)
    timings.append(_read_only(settings, no_crc, "read + merge, check_crcs=False"))
    timings.append(_window(settings, lines, tmp, read_options))
    return timings


def _read_only(
    settings: Settings, options: KafkaReadOptions, name: str = "read + merge only, no core"
) -> Timing:
    began = time.perf_counter()
    n = sum(1 for _ in read_window(settings, None, None, options))
    return Timing(name, n, max(1e-9, time.perf_counter() - began))


def _window(settings: Settings, lines: list[bytes], tmp: Path, options: KafkaReadOptions) -> Timing:
    router = RecordRouter(settings)
    stamps = [router.route(line)[2] for line in lines]
    start_ms, end_ms = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    stats = KafkaReadStats()
    window = _timed(
        "replay: Kafka window (middle third)",
        tmp / "o-window",
        lambda: run_replay(
            (
                r.as_input()
                for r in read_window(
                    settings,
                    start_ms * 1000,
                    end_ms * 1000,
                    options,
                    stats=stats,
                )
            ),
            _options(),
        ),
    )
    expected = [x for x, ts in zip(lines, stamps, strict=True) if start_ms <= ts <= end_ms]
    sliced = _timed(
        "(file slice of the same window)",
        tmp / "o-slice",
        lambda: run_replay((InputRecord(x) for x in expected), _options()),
    )
    same = "same outputs as the file slice" if sliced.digest == window.digest else "MISMATCH"
    window.note = f"starts: {stats.modes()}; {same}"
    return window


def _print(timings: list[Timing]) -> None:
    width = max(len(t.name) for t in timings)
    for t in timings:
        note = f"  ({t.note})" if t.note else ""
        print(
            f"{t.name:<{width}}  {t.records:>8} records  {t.seconds:7.2f} s  "
            f"{t.rate:>10,.0f} events/s{note}"
        )


if __name__ == "__main__":
    sys.exit(main())
