"""The ``limitsync`` command line: the composition root's front door.

Nothing is created at import time; each subcommand builds what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limitsync import compiled
from limitsync.cli_args import add_inquiries_argument, add_sla_arguments, replay_options
from limitsync.cli_args import fail as _fail
from limitsync.cli_args import seconds as _seconds
from limitsync.cli_args import time_us as _time_us

if TYPE_CHECKING:
    from limitsync.inquiry_report import InquirySummary
    from limitsync.replay import OutputFiles, ReplayOptions, ReplayResult

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


# -- replay / explain / report ------------------------------------------------------------


def _run_file_replay(
    args: argparse.Namespace, keep_timelines: bool = True, outputs: OutputFiles | None = None
) -> tuple[ReplayOptions, ReplayResult]:
    from dataclasses import replace

    from limitsync.inputs import input_size, open_input, reads_plain_files
    from limitsync.progress import progress_reporter
    from limitsync.replay import run_replay
    from limitsync.replay_pipeline import pipelined

    options = replace(_file_replay_options(args), keep_timelines=keep_timelines)
    # Bytes read measure progress through plain files; an archive's are compressed.
    total = input_size(args.input) if reads_plain_files(args.input) else None
    records = open_input(args.input)
    if outputs is not None and pipelined(getattr(args, "pipeline", None)):
        from limitsync.replay_pipeline import FirstStage, ForkFailed

        first = FirstStage(records, options, outputs)
        try:
            first.start()  # before the progress bar starts its thread
        except ForkFailed as exc:
            print(f"limitsync: {exc}; replaying in one process", file=sys.stderr)
        else:
            with first, progress_reporter(total) as progress:
                return options, first.run(progress)
    with progress_reporter(total) as progress:
        return options, run_replay(records, options, progress, outputs)


def _file_replay_options(args: argparse.Namespace) -> ReplayOptions:
    """``replay_options`` for ``--input``, with the ids' table sized for the records it holds."""
    from dataclasses import replace

    from limitsync.inputs import estimated_records

    return replace(replay_options(args), expected_records=estimated_records(args.input))


def _inquiries(args: argparse.Namespace, account: str | None) -> InquirySummary | None:
    """The records of ``--inquiries``, counted for the report; None when not given."""
    spec = getattr(args, "inquiries", None)
    if spec is None:
        return None
    from limitsync.inquiry_report import load_inquiries

    return load_inquiries(spec, account)


def cmd_replay(args: argparse.Namespace) -> int:
    import time

    from limitsync.inputs import InputError, resolve_input
    from limitsync.outputs import AlertTap, write_outputs
    from limitsync.progress import peak_rss_mb
    from limitsync.replay import OutputFiles
    from limitsync.replay_pipeline import PipelineError

    if args.from_kafka:
        from limitsync.kafka_replay_command import replay_from_kafka_cli

        return replay_from_kafka_cli(args)
    if not args.input:
        return _fail("replay needs --input FILE or --from-kafka")
    started = time.perf_counter()
    out = Path(args.out)
    account = getattr(args, "account", None)
    try:
        resolve_input(args.input)  # a bad input fails before any output is opened
        inquiries = _inquiries(args, account)
        if _replayed_in_shards(args, out, account, inquiries, started):
            return 0
        tap = AlertTap(account)  # the report's digest, taken as the alerts are written
        with OutputFiles(out, on_alert=tap.add) as outputs:
            options, result = _run_file_replay(args, outputs=outputs)
    except InputError as exc:
        return _fail(str(exc))
    except PipelineError as exc:  # a defect, or the child was killed: all it said
        print(f"limitsync: error: the replay's reading process failed: {exc}", file=sys.stderr)
        return 1
    write_outputs(result, out, options, args.input, account, inquiries, tap)
    accounts = len(result.engine.accounts)
    done = f"{result.alert_count} alerts, {accounts} accounts -> {out}"
    rss = f"{peak_rss_mb():,.0f} MB"
    where = ""
    if result.processes > 1:
        where = f" in {result.processes} processes"
        rss = f"{peak_rss_mb() + result.others_peak_rss_mb:,.0f} MB (all processes)"
    print(_summary(result.counts, result.elapsed_s, args.now, where, done, started, rss))
    return 0


def _summary(
    c: Mapping[str, int],
    elapsed_s: float,
    now_us: int | None,
    where: str,
    done: str,
    started: float,
    rss: str,
) -> str:
    """The line a replay ends with (future timestamps are judged only with --now)."""
    import time

    rate = c["records"] / elapsed_s if elapsed_s else 0.0
    future = f", {c.get('future_timestamp', 0)} future_timestamp" if now_us is not None else ""
    return (
        f"replayed {c['records']} records ({c['applied']} applied, {c['duplicate']} duplicates, "
        f"{c['conflict']} conflicts, {c['invalid']} invalid{future}) in {elapsed_s:.1f} s "
        f"({rate:,.0f}/s){where}: {done}; {time.perf_counter() - started:.1f} s in all, "
        f"peak RSS {rss}"
    )


def _replayed_in_shards(
    args: argparse.Namespace,
    out: Path,
    account: str | None,
    inquiries: InquirySummary | None,
    started: float,
) -> bool:
    """Replay in shards when --shards asks for them; False when one process is to replay it
    (also after a sharded run that could not be used, which is said on stderr)."""
    if args.shards is None or args.shards <= 1:  # before importing the shards' machinery
        return False
    from limitsync.sharded_replay import replay_in_shards, shards_for

    shards = shards_for(args.shards, args.input)
    if shards < 2:
        return False
    options = _file_replay_options(args)
    done = replay_in_shards(args.input, options, out, shards, account, inquiries)
    if isinstance(done, str):
        print(
            f"limitsync: the sharded replay was not used ({done}); replaying without shards",
            file=sys.stderr,
        )
        return False
    where = f" on {done.shards} shards"
    said = f"{done.alert_count} alerts, {done.accounts} accounts -> {out}"
    rss = f"{done.peak_rss_mb:,.0f} MB (all processes)"
    print(_summary(done.counts, done.elapsed_s, args.now, where, said, started, rss))
    return True


def cmd_explain(args: argparse.Namespace) -> int:
    from limitsync.inputs import InputError
    from streams.core.explain import explain, render_text

    if not args.input:
        from limitsync.live_commands import explain_live  # ask the running system

        return explain_live(args)
    try:
        _, result = _run_file_replay(args, keep_timelines=False)
    except InputError as exc:
        return _fail(str(exc))
    acct = result.engine.accounts.get(args.account)
    if acct is None:
        return _fail(f"account {args.account!r} does not appear in {args.input}")
    report = explain(acct, args.since)
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from limitsync.simulate import run

    return run(args)


def cmd_schema(args: argparse.Namespace) -> int:
    from schemas.export import write_json_schemas

    written = write_json_schemas(Path(args.out))
    print(f"wrote {len(written)} JSON Schemas to {args.out}")
    return 0


# -- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="limitsync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "replay", help="replay an event log through the core; write alerts and a report"
    )
    p.add_argument("--input", help="JSON Lines file of contract events, in log order")
    p.add_argument("--from-kafka", action="store_true", help="read the input topics instead")
    p.add_argument("--start", type=_time_us, help="with --from-kafka: first record timestamp")
    p.add_argument("--end", type=_time_us, help="with --from-kafka: last record timestamp")
    p.add_argument("--account", help="narrow the report to one account")
    add_inquiries_argument(p)
    p.add_argument("--state-file", help="reach the local stack of `limitsync up`")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--until", type=_time_us, help="advance the clock to TIME after the last record")
    p.add_argument(
        "--now",
        type=_time_us,
        help="the live clock: dead-letter (future_timestamp) a record stamped more than "
        "--max-future-skew-s after TIME instead of applying it",
    )
    p.add_argument("--max-future-skew-s", type=_seconds, help="with --now (default 300)")
    p.add_argument(
        "--shards",
        type=int,
        help="processes to replay a file in, each holding some of the accounts (default 1, at "
        "most 16; about one a core): the same outputs, sooner, for more memory",
    )
    p.add_argument(
        "--pipeline",
        action=argparse.BooleanOptionalAction,
        help="read and parse in a second process while this one applies (default: on when "
        "this process may use two cores or more): the same outputs, sooner",
    )
    add_sla_arguments(p)
    p.set_defaults(handler=cmd_replay)

    p = sub.add_parser("explain", help="why an account's limit is what it is")
    p.add_argument("account")
    p.add_argument("--input", help="event log to explain from (else: the running system)")
    p.add_argument("--since", type=_time_us, help="changes since TIME")
    p.add_argument("--json", action="store_true")
    p.add_argument("--state-file")
    add_sla_arguments(p)
    p.set_defaults(handler=cmd_explain)

    p = sub.add_parser("simulate", help="write realistic traffic with injected faults")
    from limitsync.simulate import add_arguments

    add_arguments(p)
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser("schema", help="write the JSON Schema of every contract record")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_schema)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[Any], None]]:
    """Subcommands of the live system and the consumers, registered by their modules."""
    import importlib

    found = []
    for name in (
        "limitsync.live_commands",
        "limitsync.dev_commands",
        "limitsync.consumer_commands",
        "limitsync.remedy_commands",
    ):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        found.append(module.register)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stale = compiled.problem(compiled.status())
    if stale is not None:  # the run goes on: it is the old code that would be wrong, not this
        print(f"limitsync: warning: {stale}", file=sys.stderr)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
