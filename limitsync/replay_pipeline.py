"""A file replay in two processes, pipelined: ``limitsync.replay_stages``' first stage
(read, parse, dedupe, dead letters) in a forked child, its second (the core, alerts,
timelines) here, and a pipe between them carrying the new records in batches.

The stages are about even in work, so on two cores a replay takes a little more than half its
one-process time, for the same outputs. The child is forked before anything large is made
(the replay's ids grow in the child, its accounts here), and before a progress bar starts a
thread.

Frames on the pipe: a header (payload length, kind), then the marshalled payload (a batch
holds plain values only: ``schemas.wire``). The last frame says the first stage's counts and
peak memory, or why it failed; a pipe that ends before it means the child died, and how it
ended is said.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import marshal
import os
import signal
import struct
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from limitsync.forked import become_child, stop_child
from limitsync.inputs import InputError
from limitsync.progress import peak_rss_mb
from limitsync.replay import (
    PROGRESS_EVERY_RECORDS,
    InputRecord,
    OutputFiles,
    ReplayOptions,
    ReplayResult,
    without_collector,
)
from limitsync.replay_stages import Batch, admit_records, apply_admitted

__all__ = ["FirstStage", "ForkFailed", "PipelineError", "pipelined"]

# The pipe's capacity asked for: the first stage runs up to this far ahead (a few batches).
PIPE_BYTES = 1 << 20
_HEADER = struct.Struct("=QB")  # payload bytes, kind
_BATCH, _DONE, _FAILED = range(3)


class PipelineError(Exception):
    """The first stage failed, or its process ended without saying how it went."""


def pipelined(requested: bool | None) -> bool:
    """Whether a file replay runs in two processes: as asked, else when this process may
    use two cores or more (on one, the stages would take turns, and the handing over
    between them would be pure cost)."""
    if requested is not None:
        return requested
    return usable_cores() >= 2


def usable_cores() -> float:
    """The cores this process may run on (its CPU affinity), at most its cgroup's CPU quota
    (a container limited to one CPU has one, whatever the machine has)."""
    cores = float(len(os.sched_getaffinity(0)))
    for path, parse in _CPU_QUOTAS:
        try:
            quota = parse(Path(path))
        except (OSError, ValueError):
            continue
        if quota is not None:
            return min(cores, quota)
    return cores


def _cgroup2_quota(path: Path) -> float | None:
    quota, period = path.read_text().split()[:2]  # "max 100000", or "150000 100000"
    return None if quota == "max" else int(quota) / int(period)


def _cgroup1_quota(path: Path) -> float | None:
    quota = int((path / "cpu.cfs_quota_us").read_text())
    period = int((path / "cpu.cfs_period_us").read_text())
    return None if quota < 0 else quota / period


_CPU_QUOTAS = (
    ("/sys/fs/cgroup/cpu.max", _cgroup2_quota),
    ("/sys/fs/cgroup/cpu", _cgroup1_quota),
)


class ForkFailed(Exception):
    """The first stage's process could not be started (out of processes or memory)."""


class FirstStage:
    """The forked first stage and the pipe it writes. ``start`` forks it; used as a context,
    a child still running on the way out (the second stage failed, or was interrupted) is
    stopped and reaped."""

    def __init__(
        self, records: Iterable[InputRecord], options: ReplayOptions, outputs: OutputFiles
    ) -> None:
        self._records = records
        self._options = options
        self._outputs = outputs
        self._pid = 0
        self._reader: IO[bytes] | None = None
        self._started = 0.0
        self.counts: dict[str, int] = {}
        self.peak_rss_mb = 0.0  # the child's, once it has said

    def start(self) -> None:
        """Fork the first stage; raises ForkFailed (nothing started) when it cannot."""
        self._started = time.perf_counter()
        try:
            read_fd, write_fd = os.pipe()
        except OSError as exc:
            raise ForkFailed(f"no pipe for the first stage: {exc}") from exc
        with contextlib.suppress(OSError):  # over the user's pipe memory: the default size
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        parent = os.getpid()
        # What exists now is shared with the child until written: frozen, this process's
        # collector passes do not write to it (each would copy the pages it touches).
        gc.collect()
        gc.freeze()
        # No SIGTERM between the fork and the note of its pid: a child not noted is not stopped.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            try:
                pid = os.fork()
            except OSError as exc:
                os.close(read_fd)
                raise ForkFailed(f"cannot fork the first stage: {exc}") from exc
            if pid == 0:  # the child: it never returns from here
                status = 1
                try:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                    os.close(read_fd)
                    status = self._first_stage(parent, write_fd)
                finally:
                    os._exit(status)  # no atexit handlers, no flush of the parent's buffers
            self._pid = pid
        finally:
            os.close(write_fd)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        self._reader = os.fdopen(read_fd, "rb", buffering=PIPE_BYTES)

    def __enter__(self) -> FirstStage:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.close()  # a child still writing then stops on a broken pipe
        if self._pid:
            stop_child(self._pid)
            self._pid = 0

    def run(self, progress: Callable[[int, int], None] | None = None) -> ReplayResult:
        """The second stage, here, on what the first sends; ``progress`` is told the records
        and bytes the first has read every PROGRESS_EVERY_RECORDS or so. Raises InputError
        when the input could not be read, PipelineError when the first stage failed."""
        result = without_collector(
            lambda: apply_admitted(self._batches(progress), self._options, self._outputs)
        )
        ended = self._reap()
        if ended:
            raise PipelineError(f"the first stage {ended} after its last batch")
        for key, count in self.counts.items():
            result.counts[key] += count
        result.processes = 2
        result.others_peak_rss_mb = self.peak_rss_mb
        result.elapsed_s = time.perf_counter() - self._started
        return result

    def _batches(
        self, progress: Callable[[int, int], None] | None
    ) -> Iterator[list[tuple[Any, ...]]]:
        told = 0
        while True:
            kind, payload = self._frame()
            if kind == _BATCH:
                records, read_bytes, batch = marshal.loads(payload)
                if progress is not None and records // PROGRESS_EVERY_RECORDS > told:
                    told = records // PROGRESS_EVERY_RECORDS
                    progress(records, read_bytes)
                yield batch
            elif kind == _DONE:
                self.counts, self.peak_rss_mb = marshal.loads(payload)
                return
            else:
                input_error, text = marshal.loads(payload)
                raise (InputError if input_error else PipelineError)(text)

    def _frame(self) -> tuple[int, bytes]:
        reader = self._reader
        if reader is None or not self._pid:
            raise PipelineError("the first stage was not started")
        header = reader.read(_HEADER.size)
        size, kind = _HEADER.unpack(header) if len(header) == _HEADER.size else (0, -1)
        payload = reader.read(size) if kind >= 0 else b""
        if kind < 0 or len(payload) != size:
            ended = self._reap() or "ended"
            raise PipelineError(f"the first stage {ended} without a word")
        return kind, payload

    def _reap(self) -> str:
        """Wait for the child; how it ended, or "" when it exited with status 0."""
        pid, self._pid = self._pid, 0
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            return ""
        if code > 0:
            return f"exited with status {code}"
        name = signal.Signals(-code).name
        return f"was killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")

    # -- in the child ----------------------------------------------------------------------

    def _first_stage(self, parent: int, fd: int) -> int:
        become_child(parent)
        gc.disable()  # what it makes lives to its end, which is near: nothing to collect

        def send(batch: Batch) -> None:
            _write_frame(fd, _BATCH, marshal.dumps(batch))

        try:
            try:
                counts = admit_records(
                    self._records, self._options, self._outputs.dead_letter, send
                )
            finally:  # what was written before an error stays, as in one process
                self._outputs.close_dead_letters()
        except BrokenPipeError:  # the second stage is gone; it says why
            return 1
        except InputError as exc:
            _say_failed(fd, True, str(exc))
            return 1
        except BaseException:
            _say_failed(fd, False, traceback.format_exc())
            return 1
        _write_frame(fd, _DONE, marshal.dumps((dict(counts), peak_rss_mb())))
        return 0


def _say_failed(fd: int, input_error: bool, text: str) -> None:
    with contextlib.suppress(OSError):
        _write_frame(fd, _FAILED, marshal.dumps((input_error, text)))


def _write_frame(fd: int, kind: int, payload: bytes) -> None:
    data = memoryview(_HEADER.pack(len(payload), kind) + payload)
    while data:
        data = data[os.write(fd, data) :]
