"""A progress bar for long replays, only on a terminal (logs and CI stay clean), and the
process's peak memory for the summary line."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["ProgressCallback", "peak_rss_mb", "progress_reporter"]

# Told the records and the bytes of input read so far.
ProgressCallback = Callable[[int, int], None]
_SHOW_ABOVE_BYTES = 5_000_000  # a smaller file replays in about a second: no bar


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports it in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def progress_reporter(total_bytes: int | None) -> Iterator[ProgressCallback | None]:
    """Yields a callback, or None when no bar is shown (stderr is not a terminal, or a small
    file). With ``total_bytes`` (plain files) the bar runs on bytes read and shows an ETA;
    without (archives, Kafka) it counts records and shows their rate."""
    if not sys.stderr.isatty() or (total_bytes is not None and total_bytes < _SHOW_ABOVE_BYTES):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("replaying"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[records]:,} records, {task.fields[rate]:,.0f}/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("replay", total=total_bytes, records=0, rate=0.0)

        def update(records: int, read_bytes: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = records / elapsed if elapsed > 0 else 0.0
            bar.update(task, completed=read_bytes, records=records, rate=rate)

        yield update
