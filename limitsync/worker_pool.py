"""The workers of ``limitsync up``: started, started again when one dies, stopped together.

A worker that dies (killed, out of memory, a bug) is started again on the same web port and
data directory, as a container runtime restarts a crashed pod: its partitions come back to it
after a rebalance, restored from the changelog. One that keeps dying (a bad configuration, its
broker gone) is left down after :data:`RESTARTS_MAX` starts within :data:`RESTART_WINDOW_S`,
and ``up`` says so instead of starting it in a loop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import Settings
from limitsync.local_services import free_port
from limitsync.supervision import PARENT_PID_ENV, UP_STOP_SIGNALS, stop_processes

__all__ = ["RESTARTS_MAX", "RESTART_WINDOW_S", "RestartBudget", "WorkerPool", "exit_reason"]

RESTARTS_MAX = 3  # restarts of one worker within RESTART_WINDOW_S before it is left down
RESTART_WINDOW_S = 60.0
# Signals that stop `up`: held back while a worker is started and recorded, so that a stop
# arriving then cannot leave a started worker out of the list that is stopped.
_HELD_SIGNALS = {signal.SIGINT, *UP_STOP_SIGNALS}


@dataclass
class RestartBudget:
    """At most ``limit`` restarts of one worker within any ``window_s``."""

    limit: int = RESTARTS_MAX
    window_s: float = RESTART_WINDOW_S
    _starts: dict[int, list[float]] = field(default_factory=dict)

    def allow(self, index: int, now: float) -> bool:
        """Whether worker ``index`` may be restarted at ``now`` (and, if so, counts it)."""
        recent = [t for t in self._starts.get(index, []) if now - t < self.window_s]
        allowed = len(recent) < self.limit
        if allowed:
            recent.append(now)
        self._starts[index] = recent
        return allowed


def exit_reason(returncode: int) -> str:
    """How a process ended, as an operator reads it: ``signal SIGKILL`` or ``exit code 1``."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


@contextmanager
def _stop_signals_held() -> Iterator[None]:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class WorkerPool:
    """N worker processes of one stack; ``procs`` is what a stop stops (kept current)."""

    def __init__(self, settings: Settings, run_dir: Path, rescore: bool, count: int) -> None:
        self._settings = settings
        self._run_dir = run_dir
        self._rescore = rescore
        self._budget = RestartBudget()
        self._down: set[int] = set()  # left down: restarted too often
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports = [free_port() for _ in range(count)]
        self.restarts = 0

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> None:
        for index in range(len(self.ports)):
            with _stop_signals_held():
                self.procs.append(self._spawn(index))

    def check(self, now: float | None = None) -> bool:
        """Restart the workers that died since the last check, within the budget; whether
        any worker is running."""
        now = time.monotonic() if now is None else now
        for index, proc in enumerate(self.procs):
            if index in self._down or proc.poll() is None:
                continue
            how = exit_reason(proc.returncode)
            log = self._log_path(index)
            if not self._budget.allow(index, now):
                self._down.add(index)
                self._say(f"worker {index} (pid {proc.pid}) exited ({how}) again; restarted "
                          f"{RESTARTS_MAX} times within {RESTART_WINDOW_S:g} s, so it is left "
                          f"down; see {log}")  # fmt: skip
                continue
            with _stop_signals_held():
                self.procs[index] = self._spawn(index)
            self.restarts += 1
            self._say(f"worker {index} (pid {proc.pid}) exited ({how}); started again as pid "
                      f"{self.procs[index].pid}; see {log}")  # fmt: skip
        return any(proc.poll() is None for proc in self.procs)

    def stop(self, timeout_s: float) -> None:
        stop_processes(self.procs, timeout_s)

    def _log_path(self, index: int) -> Path:
        return self._run_dir / "logs" / f"worker-{index}.log"

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        settings = self._settings
        env = {
            **os.environ,
            "LIMITSYNC_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "LIMITSYNC_REDIS_URL": settings.redis_url,
            "LIMITSYNC_WEB_PORT": str(self.ports[index]),
            "LIMITSYNC_DATA_DIR": str(self._run_dir / f"worker-{index}"),
            "LIMITSYNC_RESCORE_ENABLED": "true" if self._rescore else "false",
            "LIMITSYNC_TOPIC_PREFIX": settings.topic_prefix,
            "LIMITSYNC_APP_ID": settings.app_id,
            PARENT_PID_ENV: str(os.getpid()),
        }
        with self._log_path(index).open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "limitsync.cli", "worker"],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    @staticmethod
    def _say(text: str) -> None:
        print(f"limitsync up: {text}", file=sys.stderr, flush=True)
