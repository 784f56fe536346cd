"""``limitsync up``: the embedded local stack, for development and demos.

Starts (or reuses, when ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` are set) an Apache Kafka
broker and Redis on free loopback ports, creates the topics, runs N worker processes (one
that dies is started again: :mod:`limitsync.worker_pool`), and optionally feeds simulator
traffic. Everything it started, it stops on Ctrl-C, SIGTERM (systemd,
a container runtime, ``timeout``) or SIGHUP (its terminal closed) alike, within
:data:`STACK_STOP_BUDGET_S`; and its workers die with it even when it is killed outright
(:mod:`limitsync.supervision`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import Settings, load_settings, redact_url
from limitsync.local_services import LocalKafka, LocalRedis, create_topics
from limitsync.supervision import UP_STOP_SIGNALS, WORKER_EXIT_DEADLINE_S
from limitsync.worker_metrics import CounterTotals, Snapshot, scrape
from limitsync.worker_pool import WorkerPool

__all__ = ["STACK_STOP_BUDGET_S", "StackOptions", "run_stack"]

# Everything `up` started is gone this long after it is told to stop (issue 13): the workers,
# then Redis and the broker, each bounded below.
STACK_STOP_BUDGET_S = 20.0
# Workers stop by themselves within WORKER_EXIT_DEADLINE_S of SIGTERM; the margin is for a
# worker whose interpreter is wedged: it is killed.
WORKER_STOP_TIMEOUT_S = WORKER_EXIT_DEADLINE_S + 1.0
# The broker's orderly stop takes 1-3 s once its clients are gone; past this it is killed
# (its data is removed on the way out anyway).
BROKER_STOP_TIMEOUT_S = 6.0
REDIS_STOP_TIMEOUT_S = 2.0
FEEDER_JOIN_TIMEOUT_S = 1.0  # a daemon thread: what it has not flushed by then is dropped


@dataclass(frozen=True)
class StackOptions:
    workers: int = 1
    simulate: bool = False
    rate_per_s: float = 200.0
    accounts: int = 1000
    seed: int = 1
    state_file: str | None = None
    run_dir: str = ".limitsync"
    rescore: bool = True
    duration_s: float | None = None  # stop by itself after this long (tests, demos)


def start_services(stack: ExitStack, run_dir: Path) -> tuple[str, str]:
    """Broker and Redis: the configured ones, or local processes that ``stack`` stops."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = LocalKafka(run_dir / "logs", stop_timeout_s=BROKER_STOP_TIMEOUT_S)
        bootstrap = stack.enter_context(broker).bootstrap_servers
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        redis = LocalRedis(run_dir / "logs", stop_timeout_s=REDIS_STOP_TIMEOUT_S)
        redis_url = stack.enter_context(redis).url
    return bootstrap, redis_url


def _stop_on_signal(signum: int, frame: object) -> None:
    """The first SIGTERM or SIGHUP unwinds `up` as Ctrl-C does; later ones must not interrupt
    the stop it started (that would skip the rest of it)."""
    for sig in UP_STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _stop_workers(pool: WorkerPool, feeder: Any) -> None:
    if feeder is not None:
        feeder.stop()
    pool.stop(WORKER_STOP_TIMEOUT_S)
    if feeder is not None:
        feeder.join(FEEDER_JOIN_TIMEOUT_S)


def run_stack(options: StackOptions) -> int:
    if threading.current_thread() is threading.main_thread():
        for sig in UP_STOP_SIGNALS:
            signal.signal(sig, _stop_on_signal)
    run_dir = Path(options.run_dir).resolve()
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        bootstrap, redis_url = start_services(stack, run_dir)
        settings = load_settings(
            bootstrap_servers=bootstrap,
            redis_url=redis_url,
            rescore_enabled=options.rescore,
        )
        create_topics(
            bootstrap,
            list(settings.topics.values()),
            settings.partitions,
            settings.replication_factor,
        )
        pool = WorkerPool(settings, run_dir, options.rescore, options.workers)
        feeder = None
        # One callback for workers and feeder, registered before any starts: all stop at once.
        stack.callback(lambda: _stop_workers(pool, feeder))
        pool.start()
        urls = pool.urls
        # The stack's counter totals, for its whole life: the dashboard and the stop line read
        # them, and the state file holds what they carried for `limitsync status`.
        totals = CounterTotals()
        state_file = options.state_file

        def save_state() -> None:
            if state_file:
                _write_state(Path(state_file), settings, urls, totals.carried())

        save_state()
        if options.simulate:
            feeder = _start_feeder(settings, options)
        print(
            f"limitsync up: broker {bootstrap}, redis {redact_url(redis_url)}, "
            f"{options.workers} worker(s) at {', '.join(urls)}; logs in {run_dir / 'logs'}. "
            "Ctrl-C stops everything.",
            flush=True,
        )
        last = _watch(urls, options, feeder, pool, totals, save_state)
        print(_summary(last, feeder), flush=True)
    return 0


def _start_feeder(settings: Settings, options: StackOptions) -> Any:
    from limitsync.feeder import Feeder
    from limitsync.simulate import simulate

    lines = simulate(accounts=options.accounts, hours=24 * 365, seed=options.seed)
    feeder = Feeder(settings, lines, options.rate_per_s)
    feeder.start()
    return feeder


def _write_state(
    path: Path,
    settings: Settings,
    urls: list[str],
    counter_base: list[dict[str, Any]] | None = None,
) -> None:
    """The state file ``status`` and the other commands read; ``counter_base``: the counter
    values of restarted workers' earlier processes (:meth:`CounterTotals.carried`)."""
    state = {
        "bootstrap_servers": settings.bootstrap_servers,
        "redis_url": settings.redis_url,
        "topics": settings.topics,
        "pid": os.getpid(),
        "topic_prefix": settings.topic_prefix,
        "web_urls": urls,
        "counter_base": counter_base or [],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # 0600 from creation, not chmod after: the Redis URL may carry a password.
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(state, indent=2))
    tmp.replace(path)


def _watch(
    urls: list[str],
    options: StackOptions,
    feeder: Any,
    pool: WorkerPool,
    totals: CounterTotals,
    save_state: Callable[[], None],
) -> Snapshot:
    """Refresh the dashboard until told to stop; the final scrape, through ``totals``.
    ``save_state`` runs whenever ``totals`` carried a restarted worker's counters."""
    from limitsync.dashboard import Dashboard

    deadline = None if options.duration_s is None else time.monotonic() + options.duration_s
    dashboard = Dashboard(urls, feeder, totals)
    saved = totals.resets
    try:
        with dashboard:
            while deadline is None or time.monotonic() < deadline:
                if not pool.check():
                    print("limitsync up: every worker is down; see the logs", file=sys.stderr)
                    break
                dashboard.refresh()
                if totals.resets != saved:
                    saved = totals.resets
                    save_state()
                time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    return scrape(urls, totals=totals)


def _summary(snap: Snapshot, feeder: Any) -> str:
    sent = feeder.sent if feeder is not None else 0
    reasons = ", ".join(f"{r} {int(n)}" for r, n in sorted(snap.alerts_by_reason.items())) or "none"
    return (
        f"limitsync stopped: {int(snap.events)} events processed, {sent} fed, "
        f"{int(snap.rescore_decisions)} rescore decisions published (processed too), "
        f"{int(snap.dead_letters)} dead letters, breaches: {reasons}"
    )
