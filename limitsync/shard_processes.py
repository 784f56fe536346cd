"""The processes of a sharded replay: forking the shards, the pipes between them, and what
a shard does in its process (replay its part, write its files, answer for the report).

Forked, not spawned: the shards share this process's string-hash seed, which says which
shard holds an account and fingerprints the records.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import signal
import traceback
from array import array
from dataclasses import dataclass
from itertools import chain
from multiprocessing.connection import Connection
from pathlib import Path

import orjson

from limitsync.forked import become_child, stop_child
from limitsync.inputs import open_input
from limitsync.progress import peak_rss_mb
from limitsync.replay import ReplayOptions, account_line
from limitsync.replay_shard import ShardMismatch, run_shard
from limitsync.shard_files import KeyedLines, ShardFiles, alert_records

__all__ = ["CannotSplit", "PipeLink", "Shards"]

# A shard's clock moves wait in a pipe until the others read them: up to four blocks of
# 16 bytes a record (limitsync.replay_shard.SHARD_BLOCK), well within this.
_PIPE_BYTES = 1 << 20


class PipeLink:
    """A shard's ``ShardLink``: a pipe to each other shard and one from each."""

    def __init__(self, out: list[Connection], into: list[Connection]) -> None:
        self._out = out
        self._into = into

    def send(self, indices: array[int], times: array[int]) -> None:
        data = indices.tobytes() + times.tobytes()
        for conn in self._out:
            conn.send_bytes(data)

    def close(self) -> None:
        for conn in self._out + self._into:
            conn.close()

    def receive(self) -> tuple[array[int], array[int]]:
        indices, times = array("q"), array("q")
        parts = []
        for conn in self._into:
            data = conn.recv_bytes()
            at, to = array("q"), array("q")
            half = len(data) // 2
            at.frombytes(data[:half])
            to.frombytes(data[half:])
            parts.append((at, to))
        if len(parts) == 1:
            return parts[0]
        pairs = chain.from_iterable(zip(at, to, strict=True) for at, to in parts)
        for index, time_us in sorted(pairs):
            indices.append(index)
            times.append(time_us)
        return indices, times


class CannotSplit(Exception):
    """The shards cannot be started or their work cannot be used: the reason, for a replay
    in one process."""


def _pipe() -> tuple[Connection, Connection]:
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except OSError as exc:  # over the user's pipe memory (fs.pipe-user-pages-soft)
        os.close(read_fd)
        os.close(write_fd)
        raise CannotSplit(f"a {_PIPE_BYTES >> 20} MiB pipe between shards: {exc}") from exc
    return Connection(read_fd, writable=False), Connection(write_fd, readable=False)


@dataclass(frozen=True)
class _Job:
    """What a shard is to replay, and where its files go."""

    shard: int
    shards: int
    spec: str
    options: ReplayOptions
    focus_account: str | None
    work: Path


def _shard_main(job: _Job, control: Connection, link: PipeLink) -> int:
    from limitsync.report_data import account_parts

    shard, work = job.shard, job.work
    files = ShardFiles(work, shard, job.focus_account)

    def progress(records: int, read_bytes: int) -> None:
        control.send(("progress", records, read_bytes))

    try:
        result = run_shard(
            open_input(job.spec),
            job.options,
            shard,
            job.shards,
            link,
            files,
            progress if shard == 0 else None,
        )
    except ShardMismatch as exc:
        control.send(("mismatch", str(exc)))
        return 0
    except _PEER_GONE as exc:  # another shard stopped: it says why
        control.send(("lost", repr(exc)))
        return 0
    finally:
        # A shard that read more records than this one would wait for its blocks for ever:
        # it reads end of file instead (and the parent sees the counts differ).
        link.close()
    files.close()
    accounts = KeyedLines(work / f"accounts.{shard}")  # no key: sorted by account after
    for acct in result.engine.accounts.values():
        accounts.add((), orjson.dumps(account_line(acct)))
    accounts.close()
    result.engine.release_ids()
    control.send(
        (
            "done",
            {
                "counts": dict(result.counts),
                "alerts": result.alert_count,
                "accounts": len(result.engine.accounts),
                "latencies": {k: v.tobytes() for k, v in result.latencies_us.items()},
                "elapsed_s": result.elapsed_s,
                "peak_rss_mb": peak_rss_mb(),
                "digest": files.digest.part(),
            },
        )
    )
    while True:
        message = control.recv()
        if message[0] != "parts":
            return 0
        wanted = message[1]
        records = alert_records(work / f"alerts.{shard}", set(wanted))
        control.send(("parts", account_parts(result, wanted), records))


_PEER_GONE = (EOFError, BrokenPipeError, ConnectionResetError)


def _run_child(parent: int, job: _Job, control: Connection, link: PipeLink) -> None:
    status = 1
    try:
        become_child(parent)
        status = _shard_main(job, control, link)
    except BaseException:
        with contextlib.suppress(OSError):
            control.send(("error", traceback.format_exc()))
    finally:
        os._exit(status)  # no atexit handlers, no flush of buffers copied from the parent


class Shards:
    """The forked shards and their control pipes."""

    def __init__(self) -> None:
        self.controls: list[Connection] = []
        self.pids: list[int] = []

    def start(
        self,
        spec: str,
        options: ReplayOptions,
        focus_account: str | None,
        work: Path,
        shards: int,
    ) -> None:
        """Fork the shards (``stop`` reaps those started, even if this fails part way)."""
        links: dict[tuple[int, int], tuple[Connection, Connection]] = {}
        controls: list[tuple[Connection, Connection]] = []
        parent = os.getpid()
        # No SIGTERM between a fork and the note of its pid: a shard not noted is not stopped.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            for i in range(shards):
                for k in range(shards):
                    if i != k:
                        links[(i, k)] = _pipe()
            controls.extend(_duplex() for _ in range(shards))
            # What exists now is shared with the shards until written: frozen, the collector
            # passes in a shard do not write to it (each pass would copy its pages).
            gc.collect()
            gc.freeze()
            for shard in range(shards):
                mine, theirs = controls[shard]
                out = [links[(shard, k)][1] for k in range(shards) if k != shard]
                into = [links[(k, shard)][0] for k in range(shards) if k != shard]
                try:
                    pid = os.fork()
                except OSError as exc:  # out of processes or memory
                    raise CannotSplit(f"forking shard {shard}: {exc}") from exc
                if pid == 0:  # the shard: it never returns from here
                    try:
                        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                        keep = {theirs.fileno(), *(c.fileno() for c in out + into)}
                        _close_all_but(keep, links, controls)
                        link = PipeLink(out, into)
                        job = _Job(shard, shards, spec, options, focus_account, work)
                        _run_child(parent, job, theirs, link)
                    finally:
                        os._exit(1)
                self.pids.append(pid)
                self.controls.append(mine)
        finally:
            gc.unfreeze()
            for read_end, write_end in links.values():
                read_end.close()
                write_end.close()
            for mine, theirs in controls:
                theirs.close()
                if mine not in self.controls:
                    mine.close()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    def stop(self) -> None:
        """Every shard stopped and reaped (one still replaying, after a failure or a SIGTERM,
        is terminated)."""
        for conn in self.controls:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
            conn.close()
        for pid in self.pids:
            stop_child(pid)


def _duplex() -> tuple[Connection, Connection]:
    from multiprocessing import Pipe

    return Pipe(duplex=True)


def _close_all_but(
    keep: set[int],
    links: dict[tuple[int, int], tuple[Connection, Connection]],
    controls: list[tuple[Connection, Connection]],
) -> None:
    """In a new shard: close the pipe ends that are not its own, so that a shard that stops
    is seen to stop (its pipes' other ends reach end of file)."""
    for conn in chain.from_iterable(chain(links.values(), controls)):
        if not conn.closed and conn.fileno() not in keep:
            conn.close()
