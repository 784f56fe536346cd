"""Subcommands of the live system: worker, produce, status (and explain's live path).

Production code: nothing here imports the dev stack (``limitsync up`` is in
``limitsync.dev_commands``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from limitsync.supervision import StopGuard

__all__ = ["register"]


def _settings(args: argparse.Namespace, **overrides: object) -> Any:
    from config.settings import load_settings

    return load_settings(getattr(args, "state_file", None), **overrides)


def cmd_worker(args: argparse.Namespace) -> int:
    import os

    from limitsync.supervision import PARENT_PID_ENV, StopGuard, die_with_parent

    parent_pid = os.environ.get(PARENT_PID_ENV)
    if parent_pid:  # started by `limitsync up`: its death must not leave this worker behind
        die_with_parent(int(parent_pid))
    # Entered before any thread starts, so that SIGTERM reaches only the guard.
    with StopGuard() as guard:
        return _run_worker(args, guard)


def _run_worker(args: argparse.Namespace, guard: StopGuard) -> int:
    import faust

    from config.clients import kafka_python_config
    from config.topics import create_topics
    from streams.app import create_app

    overrides: dict[str, object] = {}
    if args.web_port:
        overrides["web_port"] = args.web_port
    if args.no_rescore:
        overrides["rescore_enabled"] = False
    settings = _settings(args, **overrides)
    if not settings.web_host:  # Compose: each replica by its own name, which Docker's DNS knows
        import socket

        settings = settings.model_copy(update={"web_host": socket.gethostname()})
    create_topics(
        settings.bootstrap_servers,
        list(settings.topics.values()),
        settings.partitions,
        settings.replication_factor,
        admin_configs=_admin_security(kafka_python_config(settings)),
    )
    app, _ = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel, override_logging=True)
    worker.spinner = None  # its logging handler sets the root logger to DEBUG: CPU for nothing
    # Faust's own SIGTERM handler, run on its loop; the guard's deadline bounds how long it takes.

    def request_stop() -> None:
        worker.loop.call_soon_threadsafe(worker._on_sigterm)

    guard.request_stop = request_stop
    worker.execute_from_commandline()
    return 0


def _admin_security(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "bootstrap_servers"}


def cmd_produce(args: argparse.Namespace) -> int:
    from limitsync.inputs import InputError, open_input
    from limitsync.producing import ProduceError, produce_lines

    settings = _settings(args)
    tombstones = 0

    def values() -> Iterator[bytes]:
        nonlocal tombstones
        for rec in open_input(args.input):
            if rec.value is None:  # an archived tombstone: its key is not kept to resend it
                tombstones += 1
            else:
                yield rec.value

    try:
        n = produce_lines(settings, values())
    except InputError as exc:
        print(f"limitsync: error: {exc}", file=sys.stderr)
        return 2
    except ProduceError as exc:
        print(f"limitsync: error: {exc}", file=sys.stderr)
        return 1
    skipped = f" ({tombstones} tombstones not sent: no key to send them with)" if tombstones else ""
    print(f"produced {n} records to {settings.bootstrap_servers}{skipped}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from limitsync.status import collect_status

    counter_base = _state(args).get("counter_base", [])
    print(json.dumps(collect_status(_settings(args), _web_urls(args), counter_base), indent=2))
    return 0


def _state(args: argparse.Namespace) -> dict[str, Any]:
    """``up``'s state file (empty without ``--state-file``)."""
    if not getattr(args, "state_file", None):
        return {}
    state: dict[str, Any] = json.loads(Path(args.state_file).read_text())
    return state


def _web_urls(args: argparse.Namespace) -> list[str]:
    if getattr(args, "state_file", None):
        return list(_state(args).get("web_urls", []))
    settings = _settings(args)
    return [f"http://{settings.web_host}:{settings.web_port}"]


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run one stream worker (Faust) against the configured broker")
    p.add_argument("--state-file")
    p.add_argument("--web-port", type=int)
    p.add_argument("--no-rescore", action="store_true")
    p.add_argument("--loglevel", default="info")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("produce", help="publish a contract JSONL file to the input topics")
    p.add_argument("--input", required=True)
    p.add_argument("--state-file")
    p.set_defaults(handler=cmd_produce)

    p = sub.add_parser("status", help="JSON: partition progress, open drifts, alert counts")
    p.add_argument("--state-file")
    p.set_defaults(handler=cmd_status)


def explain_live(args: argparse.Namespace) -> int:
    """``limitsync explain ACCOUNT`` against the running system (routed to the owner)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from streams.core.explain import render_text

    last_error = "no worker URL configured"
    for url in _web_urls(args):
        target = f"{url}/accounts/{urllib.parse.quote(args.account)}/explain"
        try:
            with urllib.request.urlopen(target, timeout=5) as resp:
                report = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                print(f"limitsync: error: unknown account {args.account!r}", file=sys.stderr)
                return 2
            last_error = f"{target}: HTTP {exc.code}"
            continue
        except (urllib.error.URLError, OSError) as exc:
            last_error = f"{target}: {exc}"
            continue
        print(json.dumps(report, indent=2) if args.json else render_text(report))
        return 0
    print(f"limitsync: error: no worker answered ({last_error})", file=sys.stderr)
    return 2
