"""``limitsync replay --from-kafka``: a window of the input topics through the file replay.

``consumers.kafka_replay`` reads and merges the partitions; this runs what it reads through
``run_replay`` and writes the same outputs as a file replay of those records.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from kafka.errors import KafkaError

from config.settings import Settings, load_settings
from consumers.kafka_common import ConsumerSetupError
from consumers.kafka_replay import KafkaReadOptions, KafkaReadStats, read_window
from limitsync.cli_args import replay_options
from limitsync.outputs import AlertTap, write_outputs
from limitsync.progress import progress_reporter
from limitsync.replay import OutputFiles, ReplayOptions, ReplayResult, run_replay
from schemas.timefmt import format_us

__all__ = ["replay_from_kafka", "replay_from_kafka_cli"]


def replay_from_kafka(
    settings: Settings,
    start_us: int | None,
    end_us: int | None,
    replay_options: ReplayOptions,
    read_options: KafkaReadOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    outputs: OutputFiles | None = None,
) -> tuple[ReplayResult, KafkaReadStats]:
    """Run the window through ``run_replay``; same result as a file replay of those records."""
    stats = KafkaReadStats()
    records = read_window(
        settings,
        start_us,
        end_us,
        read_options,
        stats=stats,
    )
    result = run_replay((r.as_input() for r in records), replay_options, progress, outputs)
    return result, stats


def _window_text(start_us: int | None, end_us: int | None) -> str:
    start = "earliest" if start_us is None else format_us(start_us)
    end = "latest" if end_us is None else format_us(end_us)
    return f"{start} .. {end}"


def replay_from_kafka_cli(args: argparse.Namespace) -> int:
    """``limitsync replay --from-kafka``: the CLI's entry point (see limitsync/cli.py)."""
    start_us, end_us = args.start, args.end
    if start_us is not None and end_us is not None and start_us > end_us:
        print("limitsync: error: --start is after --end", file=sys.stderr)
        return 2
    settings = load_settings(getattr(args, "state_file", None))
    options = replay_options(args)
    account = getattr(args, "account", None)
    inquiries = None
    spec = getattr(args, "inquiries", None)
    if spec is not None:
        from limitsync.inputs import InputError
        from limitsync.inquiry_report import load_inquiries

        try:
            inquiries = load_inquiries(spec, account)
        except InputError as exc:
            print(f"limitsync: error: {exc}", file=sys.stderr)
            return 2
    try:
        tap = AlertTap(account)  # the report's digest, taken as the alerts are written
        with progress_reporter(None) as progress, OutputFiles(Path(args.out), tap.add) as outputs:
            result, stats = replay_from_kafka(
                settings, start_us, end_us, options, None, progress, outputs
            )
    except (ConsumerSetupError, KafkaError) as exc:
        print(f"limitsync: error: cannot read from Kafka: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    window = _window_text(start_us, end_us)
    source = f"kafka {settings.bootstrap_servers} {settings.topic_prefix}* {window}"
    write_outputs(result, out, options, source, account, inquiries, tap)
    c = result.counts
    modes = ", ".join(f"{n} {mode}" for mode, n in sorted(stats.modes().items()))
    print(
        f"replayed {c['records']} records from Kafka ({window}; partition starts: {modes}) "
        f"in {result.elapsed_s:.1f} s: {result.alert_count} alerts, "
        f"{len(result.engine.accounts)} accounts -> {out}"
    )
    return 0
