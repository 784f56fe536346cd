"""Giving memory a replay is done with back to the system, so that what comes after it (the
report) reuses it rather than raising the process's peak."""

from __future__ import annotations

import ctypes

__all__ = ["return_free_memory"]


def return_free_memory() -> None:
    """Ask the C allocator to return its free pages (glibc's ``malloc_trim``): buffers freed
    in the middle of its heap, such as the timelines of accounts a report does not show, are
    otherwise kept by the process. A no-op where there is no such call."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return
    trim(0)
