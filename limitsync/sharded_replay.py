"""A file replay spread over processes, its outputs byte for byte the one-process replay's.

Each shard is a forked process that holds the accounts whose id hashes to it (one core's
work each, ``limitsync.replay.run_shard``). The shards read every record, tell one another
where the event-time clock moves through pipes, and write their alerts and dead letters,
each with its place in the one order, to files of their own; this process merges those into
``alerts.jsonl`` and ``dead_letters.jsonl``, writes ``accounts.jsonl``, then asks the shards
for the timelines and explanations of the accounts the report shows. A shard that finds its
part cannot be trusted (``ShardMismatch``) fails the sharded run, and the caller replays in
one process.

Forked, not spawned: the shards share this process's string-hash seed, which says which
shard holds an account and fingerprints the records.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import heapq
import os
import pickle
import shutil
import signal
import tempfile
import traceback
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from multiprocessing.connection import Connection, wait
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import orjson

from limitsync.inputs import input_size, open_input, reads_plain_files, resolve_input
from limitsync.progress import peak_rss_mb, progress_reporter
from limitsync.replay import (
    WRITE_BUFFER,
    ReplayOptions,
    ShardMismatch,
    account_line,
    run_shard,
    shard_of,
)

__all__ = ["SHARDS_LIMIT", "SHARDS_MAX", "ShardedReplay", "replay_in_shards", "shards_for"]

SHARDS_MAX = 4  # every shard reads and splits every record: more gain less and less
SHARDS_LIMIT = 16  # what --shards may ask: the pipes between shards grow as its square
# A smaller input replays in about a second in one process; forking and merging would be
# most of what a split saves.
SHARD_ABOVE_BYTES = 8 << 20
# A shard's clock moves wait in a pipe until the others read them: up to four blocks of
# 16 bytes a record (limitsync.replay.SHARD_BLOCK), well within this.
_PIPE_BYTES = 1 << 20
_BATCH = 2048  # output records a shard pickles at once
_WORK_PREFIX = ".shards-"  # the shards' files, in the output directory while they run


def shards_for(requested: int | None, spec: str) -> int:
    """How many shards replay ``spec``: as requested (at most SHARDS_LIMIT), or by default
    one a usable core (at most SHARDS_MAX) for JSON Lines of SHARD_ABOVE_BYTES or more, else
    one. Only regular files are split: every shard reads the input, and a pipe reads once."""
    if not all(path.is_file() for path in resolve_input(spec)):
        return 1
    if requested is not None:
        return max(1, min(requested, SHARDS_LIMIT))
    if not reads_plain_files(spec) or input_size(spec) < SHARD_ABOVE_BYTES:
        return 1
    return max(1, min(SHARDS_MAX, len(os.sched_getaffinity(0))))


@dataclass(frozen=True)
class ShardedReplay:
    """What the summary line says of a sharded replay."""

    counts: Counter[str]
    alert_count: int
    accounts: int
    elapsed_s: float  # the slowest shard's replay
    peak_rss_mb: float  # this process's peak and every shard's, added up
    shards: int


class _PipeLink:
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


class _ShardFiles:
    """A shard's ``ShardOutputs``: its alerts and dead letters with their keys, in files of
    its own; its alerts digested for the report as they come."""

    def __init__(self, work: Path, shard: int, focus_account: str | None) -> None:
        from limitsync.report.shard_digest import KeyedAlertReader

        self._alerts = _KeyedLines(work / f"alerts.{shard}")
        self._dead = _KeyedLines(work / f"dead_letters.{shard}")
        self.digest = KeyedAlertReader(focus_account)

    def alert(self, key: tuple[int, ...], record: dict[str, Any]) -> None:
        self._alerts.add(key, orjson.dumps(record))
        self.digest.add(key, record)

    def dead_letter(self, index: int, record: dict[str, Any]) -> None:
        self._dead.add((index,), orjson.dumps(record))

    def close(self) -> None:
        self._alerts.close()
        self._dead.close()


class _KeyedLines:
    """Lines, each with a key of ints, written a batch at a time: the keys as one array (each
    preceded by its length), the lines joined, pickled together (no object a line)."""

    def __init__(self, path: Path) -> None:
        self._fh: IO[bytes] = path.open("wb", buffering=WRITE_BUFFER)
        self._keys = array("q")
        self._lines: list[bytes] = []

    def add(self, key: tuple[int, ...], line: bytes) -> None:
        keys = self._keys
        keys.append(len(key))
        keys.extend(key)
        self._lines.append(line)
        if len(self._lines) == _BATCH:
            self._flush()

    def _flush(self) -> None:
        batch = (self._keys.tobytes(), b"\n".join(self._lines))
        pickle.dump(batch, self._fh, pickle.HIGHEST_PROTOCOL)
        self._keys, self._lines = array("q"), []

    def close(self) -> None:
        if self._lines:
            self._flush()
        self._fh.close()


def _read_keyed_lines(path: Path) -> Iterator[tuple[tuple[int, ...], bytes]]:
    with path.open("rb") as fh:
        while True:
            try:
                key_bytes, joined = pickle.load(fh)
            except EOFError:
                return
            keys = array("q")
            keys.frombytes(key_bytes)
            at = 0
            for line in joined.split(b"\n"):
                end = at + 1 + keys[at]
                yield tuple(keys[at + 1 : end]), line
                at = end


class _Batches:
    """(key, line) pairs of any key, pickled a batch at a time (a shard's account lines)."""

    def __init__(self, path: Path) -> None:
        self._fh: IO[bytes] = path.open("wb", buffering=WRITE_BUFFER)
        self._batch: list[tuple[Any, bytes]] = []

    def add(self, item: tuple[Any, bytes]) -> None:
        self._batch.append(item)
        if len(self._batch) == _BATCH:
            pickle.dump(self._batch, self._fh, pickle.HIGHEST_PROTOCOL)
            self._batch = []

    def close(self) -> None:
        if self._batch:
            pickle.dump(self._batch, self._fh, pickle.HIGHEST_PROTOCOL)
        self._fh.close()


def _read_batches(path: Path) -> Iterator[tuple[Any, bytes]]:
    with path.open("rb") as fh:
        while True:
            try:
                batch = pickle.load(fh)
            except EOFError:
                return
            yield from batch


class _CannotSplit(Exception):
    """The shards cannot be started or their work cannot be used: the reason, for a replay
    in one process."""


def _pipe() -> tuple[Connection, Connection]:
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except OSError as exc:  # over the user's pipe memory (fs.pipe-user-pages-soft)
        os.close(read_fd)
        os.close(write_fd)
        raise _CannotSplit(f"a {_PIPE_BYTES >> 20} MiB pipe between shards: {exc}") from exc
    return Connection(read_fd, writable=False), Connection(write_fd, readable=False)


# -- a shard (in its forked process) -----------------------------------------------------


def _shard_main(
    shard: int,
    shards: int,
    spec: str,
    options: ReplayOptions,
    focus_account: str | None,
    work: Path,
    control: Connection,
    link: _PipeLink,
) -> int:
    from limitsync.report_data import account_parts

    files = _ShardFiles(work, shard, focus_account)

    def progress(records: int, read_bytes: int) -> None:
        control.send(("progress", records, read_bytes))

    try:
        result = run_shard(
            open_input(spec), options, shard, shards, link, files, progress if shard == 0 else None
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
    accounts = _Batches(work / f"accounts.{shard}")
    for account_id, acct in sorted(result.engine.accounts.items()):
        accounts.add((account_id, orjson.dumps(account_line(acct))))
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
        records = _alert_records(work / f"alerts.{shard}", set(wanted))
        control.send(("parts", account_parts(result, wanted), records))


_PEER_GONE = (EOFError, BrokenPipeError, ConnectionResetError)


def _alert_records(path: Path, accounts: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The alert records of these accounts, in their order, read back from a shard's file."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not accounts:
        return found
    for _, line in _read_keyed_lines(path):
        record = orjson.loads(line)
        account = record["account_id"]
        if account in accounts:
            found.setdefault(account, []).append(record)
    return found


def _run_child(
    parent: int,
    shard: int,
    shards: int,
    spec: str,
    options: ReplayOptions,
    focus_account: str | None,
    work: Path,
    control: Connection,
    link: _PipeLink,
) -> None:
    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with_parent(parent)
        status = _shard_main(shard, shards, spec, options, focus_account, work, control, link)
    except BaseException:
        with contextlib.suppress(OSError):
            control.send(("error", traceback.format_exc()))
    finally:
        os._exit(status)  # no atexit handlers, no flush of buffers copied from the parent


def _die_with_parent(parent: int) -> None:
    """A shard whose parent is gone (killed mid-replay) is stopped by the kernel, not left
    to finish a replay nobody will read (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


_PR_SET_PDEATHSIG = 1


# -- this process ------------------------------------------------------------------------


class _Shards:
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
                    raise _CannotSplit(f"forking shard {shard}: {exc}") from exc
                if pid == 0:  # the shard: it never returns from here
                    try:
                        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                        keep = {theirs.fileno(), *(c.fileno() for c in out + into)}
                        _close_all_but(keep, links, controls)
                        link = _PipeLink(out, into)
                        _run_child(
                            parent, shard, shards, spec, options, focus_account, work, theirs, link
                        )
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
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


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


def replay_in_shards(
    spec: str,
    options: ReplayOptions,
    out: Path,
    shards: int,
    focus_account: str | None = None,
    inquiries: Any = None,
) -> ShardedReplay | str:
    """Replay ``spec`` in ``shards`` processes and write every output into ``out``; or say
    why not (a shard's part could not be trusted, or a shard failed), for the caller to
    replay in one process."""
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_work(out)
    work = Path(tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{os.getpid()}-", dir=out))
    running = _Shards()
    # SIGTERM mid-replay: stop the shards and remove their files on the way out.
    previous = signal.signal(signal.SIGTERM, _exit_on_term)
    try:
        total = input_size(spec) if reads_plain_files(spec) else None
        before = _input_state(spec)
        running.start(spec, options, focus_account, work, shards)
        summaries = _await(running, total)
        if isinstance(summaries, str):
            return summaries
        if len({summary["counts"]["records"] for summary in summaries}) > 1:
            return "the shards read different numbers of records"
        if _input_state(spec) != before:
            return "the input changed while it was read"
        return _write_outputs(
            running, summaries, spec, options, out, work, focus_account, inquiries
        )
    except _CannotSplit as exc:
        return str(exc)
    finally:
        running.stop()
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def _input_state(spec: str) -> list[tuple[str, int, int]]:
    """Each input file's size and modification time: the shards each read the input, and
    must read the same."""
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in resolve_input(spec)]


def _remove_stale_work(out: Path) -> None:
    """The shards' files left in ``out`` by a replay killed outright (SIGKILL): those whose
    replay (the pid in their name) is gone."""
    for stale in out.glob(f"{_WORK_PREFIX}*"):
        pid = stale.name.removeprefix(_WORK_PREFIX).split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    return True


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _await(running: _Shards, total: int | None) -> list[dict[str, Any]] | str:
    """Every shard's summary, in shard order; or why the shards' work cannot be used."""
    summaries: dict[int, dict[str, Any]] = {}
    failures: list[str] = []
    pending = dict(enumerate(running.controls))
    with progress_reporter(total) as progress:
        while pending:
            for ready in wait(list(pending.values())):
                shard = next(i for i, c in pending.items() if c is ready)
                assert isinstance(ready, Connection)
                try:
                    message = ready.recv()
                except EOFError:
                    message = ("error", "it exited without a word")
                kind = message[0]
                if kind == "progress":
                    if progress is not None:
                        progress(message[1], message[2])
                    continue
                del pending[shard]
                if kind == "done":
                    summaries[shard] = message[1]
                elif kind != "lost":  # a lost peer: the shard that stopped says why
                    failures.append(f"shard {shard}: {kind}: {message[1]}")
    if failures or len(summaries) < len(running.controls):
        return "; ".join(failures) or "a shard lost its peers"
    return [summaries[i] for i in range(len(running.controls))]


def _write_outputs(
    running: _Shards,
    summaries: list[dict[str, Any]],
    spec: str,
    options: ReplayOptions,
    out: Path,
    work: Path,
    focus_account: str | None,
    inquiries: Any,
) -> ShardedReplay:
    from limitsync.report import render_report
    from limitsync.report.shard_digest import merge_digests
    from limitsync.report_data import assemble_report_data, shown_accounts

    shards = len(summaries)
    lines = _merge_lines(work, "accounts", shards)
    with (out / "accounts.jsonl").open("wb", buffering=WRITE_BUFFER) as fh:
        for line in lines:
            fh.write(line)
            fh.write(b"\n")
    account_lines = [orjson.loads(line) for line in lines]
    digest = merge_digests([summary["digest"] for summary in summaries], focus_account)
    known = {line["account_id"] for line in account_lines}
    shown = shown_accounts(digest, focus_account, known)
    _ask_parts(running, shown)  # the shards gather them while the lines below are merged
    _merge_lines(work, "alerts", shards, out / "alerts.jsonl")
    _merge_lines(work, "dead_letters", shards, out / "dead_letters.jsonl")
    parts, records = _receive_parts(running)
    digest.keep_records({account: records.get(account, []) for account in shown})
    counts: Counter[str] = Counter()
    latencies: dict[str, array[int]] = {}
    for summary in summaries:
        counts.update(summary["counts"])
    counts["records"] = summaries[0]["counts"]["records"]  # each shard read them all
    for summary in summaries:
        for source, data in summary["latencies"].items():
            latencies.setdefault(source, array("q")).frombytes(data)
    data = assemble_report_data(
        options,
        spec,
        digest,
        account_lines,
        {account: parts[account] for account in shown if account in parts},
        latencies,
        counts,
        focus_account,
        inquiries,
    )
    (out / "report.html").write_text(render_report(data), encoding="utf-8")
    return ShardedReplay(
        counts=counts,
        alert_count=sum(s["alerts"] for s in summaries),
        accounts=sum(s["accounts"] for s in summaries),
        elapsed_s=max(s["elapsed_s"] for s in summaries),
        peak_rss_mb=peak_rss_mb() + sum(s["peak_rss_mb"] for s in summaries),
        shards=shards,
    )


def _merge_lines(work: Path, name: str, shards: int, path: Path | None = None) -> list[bytes]:
    """The shards' lines of one output in the one order (by the key each came with): written
    to ``path`` when given, else returned."""
    reads: list[Iterator[tuple[Any, bytes]]] = [
        _read_batches(work / f"{name}.{i}")
        if name == "accounts"
        else _read_keyed_lines(work / f"{name}.{i}")
        for i in range(shards)
    ]
    merged = heapq.merge(*reads, key=itemgetter(0))
    if path is None:
        return [line for _, line in merged]
    with path.open("wb", buffering=WRITE_BUFFER) as fh:
        for _, line in merged:
            fh.write(line)
            fh.write(b"\n")
    return []


def _ask_parts(running: _Shards, shown: list[str]) -> None:
    """Ask each shard for the timelines, explanations and alert records of the shown
    accounts it holds."""
    shards = len(running.controls)
    wanted: list[list[str]] = [[] for _ in range(shards)]
    for account in shown:
        wanted[shard_of(account, shards)].append(account)
    for conn, accounts in zip(running.controls, wanted, strict=True):
        conn.send(("parts", accounts))


def _receive_parts(
    running: _Shards,
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    parts: dict[str, Any] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for shard, conn in enumerate(running.controls):
        try:
            message = conn.recv()
        except EOFError:
            message = ("error", "it exited without a word")
        if message[0] != "parts":
            raise _CannotSplit(f"shard {shard}: {message[0]}: {message[1]}")
        _, theirs, their_records = message
        parts.update(theirs)
        records.update(their_records)
    return parts, records
