"""The consumers' subcommands: ``alerts route|tail|redeliver``, ``archive`` and ``report``.

``limitsync.cli`` imports this module when it exists and calls :func:`register`; nothing
connects or opens a file until a subcommand runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from limitsync.cli_args import add_inquiries_argument, add_sla_arguments, replay_options
from limitsync.cli_args import fail as _fail
from limitsync.cli_args import time_us as _time_us

__all__ = ["register"]


def _reasons(text: str) -> frozenset[str]:
    return frozenset(r.strip() for r in text.split(",") if r.strip())


def _settings(args: argparse.Namespace) -> Any:
    from config.settings import load_settings

    return load_settings(getattr(args, "state_file", None))


@contextmanager
def _stop_on_sigterm() -> Iterator[threading.Event]:
    """SIGTERM (a deploy, ``kill``) stops the loop the way Ctrl-C does: commit, then exit."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- alerts route ------------------------------------------------------------------------------


def _sink_filter(args: argparse.Namespace, sink: str) -> Any:
    from consumers.alert_sinks import AlertFilter

    severity = getattr(args, f"{sink}_min_severity") or args.min_severity
    reasons = getattr(args, f"{sink}_reasons") or args.reasons
    return AlertFilter(severity, reasons)


def _webhook(args: argparse.Namespace, settings: Any) -> str:
    """--webhook, else the alert_webhook_url setting (a secret: from the environment)."""
    return str(args.webhook or settings.alert_webhook_url.get_secret_value())


def _build_sinks(
    args: argparse.Namespace, settings: Any, undelivered: Any, batch_time_max_s: float
) -> list[Any]:
    from consumers.alert_sinks import FileSink, StdoutSink, WebhookSink

    webhook = _webhook(args, settings)
    sinks: list[Any] = []
    if args.stdout:
        sinks.append(StdoutSink(_sink_filter(args, "stdout")))
    if args.file:
        sinks.append(FileSink(Path(args.file), _sink_filter(args, "file")))
    if webhook:
        sinks.append(
            WebhookSink(
                webhook,
                undelivered,
                _sink_filter(args, "webhook"),
                retries_max=args.webhook_retries_max,
                backoff_max_s=args.webhook_backoff_max_s,
                timeout_s=args.webhook_timeout_s,
                down_for_s=args.webhook_down_for_s,
                batch_time_max_s=batch_time_max_s,
            )
        )
    return sinks


def cmd_alerts_route(args: argparse.Namespace) -> int:
    from consumers.alert_router import RouterOptions, route_alerts
    from consumers.alert_sinks import UndeliveredLog

    settings = _settings(args)
    if not (args.stdout or args.file or _webhook(args, settings)):
        return _fail(
            "alerts route needs at least one sink: --stdout, --file PATH, --webhook URL "
            "(or LIMITSYNC_ALERT_WEBHOOK_URL)"
        )
    options = RouterOptions(
        group_id=args.group_id,
        max_records=args.max_records,
        idle_exit_s=args.idle_exit_s,
    )
    undelivered = UndeliveredLog(Path(args.undelivered))
    try:
        sinks = _build_sinks(args, settings, undelivered, options.batch_time_max_s)
    except ValueError as exc:  # a webhook URL that is not http(s)
        return _fail(str(exc))
    try:
        with _stop_on_sigterm() as stop:
            stats = route_alerts(settings, sinks, undelivered, options, stop)
    finally:
        for sink in sinks:
            sink.close()
        undelivered.close()
    outcomes = ", ".join(f"{s} {d}: {n}" for (s, d), n in sorted(stats.outcomes.items()))
    print(
        f"routed {stats.records} records ({stats.not_alerts} not alerts; {outcomes}); "
        f"undelivered: {undelivered.count} -> {args.undelivered}",
        file=sys.stderr,
    )
    return 0


def cmd_alerts_tail(args: argparse.Namespace) -> int:
    from consumers.alert_router import TailOptions, tail_alerts

    options = TailOptions(
        from_beginning=args.from_beginning,
        max_records=args.max_records,
        idle_exit_s=args.idle_exit_s,
    )
    use_rich = False if args.plain else None
    with _stop_on_sigterm() as stop:
        tail_alerts(_settings(args), options, use_rich=use_rich, stop=stop)
    return 0


def cmd_alerts_redeliver(args: argparse.Namespace) -> int:
    from consumers.alert_sinks import UndeliveredLog, WebhookSink, redeliver

    path = Path(args.undelivered)
    taken = path.with_name(path.name + ".redelivering")  # left by a redelivery that crashed
    if not (path.is_file() or taken.is_file()):
        return _fail(f"no undelivered log at {path}")
    webhook = _webhook(args, _settings_without_state(args))
    if not webhook:
        return _fail("alerts redeliver needs --webhook URL (or LIMITSYNC_ALERT_WEBHOOK_URL)")
    try:
        sink = WebhookSink(
            webhook,
            UndeliveredLog(path.with_name(path.name + ".unused")),
            retries_max=args.webhook_retries_max,
            backoff_max_s=args.webhook_backoff_max_s,
            timeout_s=args.webhook_timeout_s,
        )
    except ValueError as exc:
        return _fail(str(exc))
    delivered, left = redeliver(path, sink)
    print(f"redelivered {delivered} alerts to {sink.target}; {left} rows left in {path}")
    return 0 if left == 0 else 1


def _settings_without_state(args: argparse.Namespace) -> Any:
    """Settings for a command that has no --state-file (redeliver reaches no broker)."""
    from config.settings import load_settings

    return load_settings()


# -- archive -----------------------------------------------------------------------------------


def cmd_archive(args: argparse.Namespace) -> int:
    from consumers.archive import ArchiveOptions, run_archive

    options = ArchiveOptions(
        root=Path(args.dir),
        group_id=args.group_id,
        open_files_max=args.open_files_max,
        flush_interval_s=args.flush_interval_s,
        max_records=args.max_records,
        idle_exit_s=args.idle_exit_s,
    )
    with _stop_on_sigterm() as stop:
        stats = run_archive(_settings(args), options, stop)
    print(
        f"archived {stats.records_written} records ({stats.records_skipped} already archived) "
        f"({stats.segments_created} new segments) under {args.dir}",
        file=sys.stderr,
    )
    return 0


# -- report ------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from limitsync.inputs import InputError, open_input
    from limitsync.inquiry_report import load_inquiries
    from limitsync.replay import run_replay
    from limitsync.report import render_report
    from limitsync.report_data import build_report_data

    options = replay_options(args)
    inquiries = None
    try:
        if args.inquiries is not None:
            inquiries = load_inquiries(args.inquiries, args.account)
        result = run_replay(open_input(args.input), options)
    except InputError as exc:
        return _fail(str(exc))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = build_report_data(result, options, args.input, args.account, inquiries)
    out.write_text(render_report(data), encoding="utf-8")
    print(f"report of {result.counts['records']} records, {len(result.alerts)} alerts -> {out}")
    return 0


# -- parser ------------------------------------------------------------------------------------


def _add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-records", type=int, help="stop after this many records")
    p.add_argument("--idle-exit-s", type=float, help="stop after this many seconds with none")


def _add_webhook_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--webhook-retries-max", type=int, default=5)
    p.add_argument("--webhook-backoff-max-s", type=float, default=5.0)
    p.add_argument("--webhook-timeout-s", type=float, default=5.0)


def _register_alerts(sub: Any) -> None:
    from consumers.alert_sinks import SEVERITIES

    alerts = sub.add_parser("alerts", help="route or watch the alert topic")
    asub = alerts.add_subparsers(dest="alerts_command", required=True)

    p = asub.add_parser("route", help="deliver alerts to stdout, a JSONL file and a webhook")
    p.add_argument("--stdout", action="store_true", help="one human line per alert")
    p.add_argument("--file", help="append alerts to this JSONL file (each alert once)")
    p.add_argument("--webhook", help="POST each alert as JSON to this URL")
    p.add_argument("--min-severity", choices=SEVERITIES, help="for every sink")
    p.add_argument("--reasons", type=_reasons, help="comma-separated reason codes, every sink")
    for sink in ("stdout", "file", "webhook"):
        p.add_argument(f"--{sink}-min-severity", choices=SEVERITIES, help=f"{sink} only")
        p.add_argument(f"--{sink}-reasons", type=_reasons, help=f"{sink} only")
    p.add_argument(
        "--undelivered",
        default="undelivered.jsonl",
        help="where alerts the webhook could not take go",
    )
    _add_webhook_limits(p)
    p.add_argument(
        "--webhook-down-for-s",
        type=float,
        default=30.0,
        help="after one alert used its retries, skip retrying for this long",
    )
    p.add_argument("--group-id", help="default: {app_id}-alert-router")
    p.add_argument("--state-file")
    _add_limits(p)
    p.set_defaults(handler=cmd_alerts_route)

    p = asub.add_parser("tail", help="show alerts as they arrive")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    p.add_argument("--state-file")
    _add_limits(p)
    p.set_defaults(handler=cmd_alerts_tail)

    p = asub.add_parser("redeliver", help="POST the undelivered webhook alerts again")
    p.add_argument("--undelivered", default="undelivered.jsonl")
    p.add_argument("--webhook", help="default: the alert_webhook_url setting")
    _add_webhook_limits(p)
    p.set_defaults(handler=cmd_alerts_redeliver)


def register(sub: Any) -> None:
    _register_alerts(sub)

    p = sub.add_parser("archive", help="keep the input topics as hourly gzip JSONL segments")
    p.add_argument("--dir", required=True, help="archive root: DIR/<topic>/p<N>/<hour>.jsonl.gz")
    p.add_argument("--group-id", help="default: {app_id}-archive")
    p.add_argument("--open-files-max", type=int, default=64)
    p.add_argument("--flush-interval-s", type=float, default=5.0)
    p.add_argument("--state-file")
    _add_limits(p)
    p.set_defaults(handler=cmd_archive)

    p = sub.add_parser("report", help="replay an input and write only the HTML report")
    p.add_argument("--input", required=True, help="JSONL file, archive segment, dir or glob")
    p.add_argument("--out", required=True, help="the report file, e.g. report.html")
    p.add_argument("--account", help="narrow the report to one account")
    add_inquiries_argument(p)
    p.add_argument("--until", type=_time_us, help="advance the clock to TIME after the last record")
    add_sla_arguments(p)
    p.set_defaults(handler=cmd_report)
