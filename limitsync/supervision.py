"""Process supervision: children that die with their parent, and stops that end in bounded time.

``limitsync up`` runs its workers as child processes. Two things must hold whatever the state
of the broker and Redis (a SIGTERM from systemd, a container runtime or ``timeout`` is how an
operator stops things, and it comes exactly when something is already wrong):

- a worker exits within :data:`WORKER_EXIT_DEADLINE_S` of a SIGTERM: Faust's orderly stop
  waits on commits and flushes that a dead broker never answers (far longer than a stop may take),
  so a deadline armed at the signal ends the process however far the stop got;
- a worker dies with its parent: the kernel sends it SIGTERM when ``up`` dies, even by
  SIGKILL (``prctl(PR_SET_PDEATHSIG)``), which then takes the same bounded path.

The signal is taken by a thread of its own (:class:`StopGuard`), not by the event loop: a
loop blocked in a synchronous call would never run its handler.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Self

__all__ = [
    "PARENT_PID_ENV",
    "UP_STOP_SIGNALS",
    "WORKER_EXIT_DEADLINE_S",
    "StopGuard",
    "die_with_parent",
    "stop_processes",
]

# Below the 10 s an operator's stop gets before SIGKILL (issue 13) with room for the exit.
WORKER_EXIT_DEADLINE_S = 8.0
# Set by `limitsync up` for its workers: the pid whose death must end them.
PARENT_PID_ENV = "LIMITSYNC_PARENT_PID"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_EXIT_CODE_DEADLINE = 1
_EXIT_CODE_SIGTERM = 128 + signal.SIGTERM
# What stops `limitsync up` besides Ctrl-C (SIGINT): systemd, a container runtime or `timeout`
# (SIGTERM), its terminal closed (SIGHUP).
UP_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when our parent dies; exit now if it already has.

    The check after the call closes the race of a parent that died before it: we were then
    re-parented and the death signal will never come.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent_pid:
        print(f"limitsync: parent {parent_pid} is gone; exiting", file=sys.stderr, flush=True)
        os._exit(_EXIT_CODE_SIGTERM)


class StopGuard:
    """Takes SIGTERM in a thread of its own: asks for an orderly stop, and ends the process
    ``deadline_s`` later if that stop has not finished by then.

    Use it from the main thread before any other thread starts: SIGTERM is blocked in the
    calling thread, and threads started later inherit that, so only the guard receives it.
    ``request_stop`` is called on the guard's thread; ``None`` (nothing to stop yet, e.g.
    while topics are being created) means exit at once.
    """

    def __init__(self, deadline_s: float = WORKER_EXIT_DEADLINE_S) -> None:
        if deadline_s <= 0:
            raise ValueError("deadline_s must be positive")
        self._deadline_s = deadline_s
        self._signals = {signal.SIGTERM}
        self.request_stop: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._wait, name="limitsync-stop-guard",
                                        daemon=True)

    def __enter__(self) -> Self:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("StopGuard must be entered from the main thread")
        signal.pthread_sigmask(signal.SIG_BLOCK, self._signals)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The guard thread stays (a daemon blocked in sigwait): unblocking here would let a
        # late SIGTERM kill the process mid-cleanup with the default action, which is fine too.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, self._signals)

    def _wait(self) -> None:
        signal.sigwait(self._signals)
        request = self.request_stop
        if request is None:
            os._exit(_EXIT_CODE_SIGTERM)
        timer = threading.Timer(self._deadline_s, self._expire)
        timer.daemon = True
        timer.start()
        request()

    def _expire(self) -> None:
        print(
            f"limitsync: not stopped {self._deadline_s:g} s after SIGTERM (broker or Redis "
            "unreachable?); exiting without an orderly stop",
            file=sys.stderr,
            flush=True,
        )
        os._exit(_EXIT_CODE_DEADLINE)


def stop_processes(procs: Iterable[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """SIGTERM to each at once, wait for all within one shared ``timeout_s``, SIGKILL the rest.

    One deadline for all, not one each: N workers stop in the time of one.
    """
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
