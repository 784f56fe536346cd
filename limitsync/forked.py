"""What a process forked by a replay (a shard, a pipelined replay's first stage) does first."""

from __future__ import annotations

import os
import signal

__all__ = ["die_with_parent"]

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
