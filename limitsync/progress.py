"""A progress bar for long inputs, only on a terminal (logs and CI stay clean)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress_reporter"]

_BYTES_PER_RECORD_GUESS = 250
_SHOW_ABOVE_BYTES = 5_000_000


@contextmanager
def progress_reporter(total_bytes: int) -> Iterator[Callable[[int], None] | None]:
    """Yields a callback taking the record count so far, or None when no bar is shown."""
    if not sys.stderr.isatty() or total_bytes < _SHOW_ABOVE_BYTES:
        yield None
        return
    from rich.progress import Progress

    total = max(1, total_bytes // _BYTES_PER_RECORD_GUESS)
    with Progress(transient=True) as bar:
        task = bar.add_task("replaying", total=total)
        yield lambda n: bar.update(task, completed=min(n, total))
