"""What a process forked by a replay (a shard, a pipelined replay's first stage) does first."""

from __future__ import annotations

import contextlib
import os
import signal

__all__ = ["become_child", "die_with_parent", "stop_child"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """A child whose parent is gone (killed mid-replay) is stopped by the kernel, not left
    to finish a replay nobody will read (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def become_child(parent: int) -> None:
    """What a forked child does first: SIGINT and SIGTERM back to their defaults (the parent's
    handlers would raise into code the child must never run), and dying with its parent."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent)


def stop_child(pid: int) -> None:
    """A child stopped (SIGTERM) if it still runs, and reaped."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
