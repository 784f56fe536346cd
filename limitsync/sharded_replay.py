"""A file replay spread over processes, its outputs byte for byte the one-process replay's.

Each shard is a forked process that holds the accounts whose id hashes to it (one core's
work each, ``limitsync.replay_shard.run_shard``). The shards read every record, tell one another
where the event-time clock moves through pipes, and write their alerts and dead letters,
each with its place in the one order, to files of their own; this process merges those into
``alerts.jsonl`` and ``dead_letters.jsonl``, writes ``accounts.jsonl``, then asks the shards
for the timelines and explanations of the accounts the report shows. A shard that finds its
part cannot be trusted (``ShardMismatch``) fails the sharded run, and the caller replays in
one process.
"""

from __future__ import annotations

import heapq
import os
import shutil
import signal
import tempfile
from array import array
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from limitsync.inputs import input_size, reads_plain_files, resolve_input
from limitsync.progress import peak_rss_mb, progress_reporter
from limitsync.replay import WRITE_BUFFER, ReplayOptions
from limitsync.replay_shard import shard_of
from limitsync.shard_files import read_keyed_lines
from limitsync.shard_processes import CannotSplit, Shards

__all__ = ["SHARDS_LIMIT", "ShardedReplay", "replay_in_shards", "shards_for"]

# What --shards may ask: the pipes between shards grow as its square. One is the default: on
# two cores, two shards save little of the time for much more memory (bench/RESULTS.md,
# "Replay floors"; more cores were not measured).
SHARDS_LIMIT = 16
_WORK_PREFIX = ".shards-"  # the shards' files, in the output directory while they run


def shards_for(requested: int | None, spec: str) -> int:
    """How many shards replay ``spec``: one unless asked (at most SHARDS_LIMIT). Only regular
    files are split: every shard reads the input, and a pipe reads once."""
    if requested is None or requested <= 1:
        return 1
    if not all(path.is_file() for path in resolve_input(spec)):
        return 1
    return min(requested, SHARDS_LIMIT)


@dataclass(frozen=True)
class ShardedReplay:
    """What the summary line says of a sharded replay."""

    counts: Counter[str]
    alert_count: int
    accounts: int
    elapsed_s: float  # the slowest shard's replay
    peak_rss_mb: float  # this process's peak and every shard's, added up
    shards: int


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
    running = Shards()
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
    except CannotSplit as exc:
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
    """Whether a process runs (a zombie, killed and not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _await(running: Shards, total: int | None) -> list[dict[str, Any]] | str:
    """Every shard's summary, in shard order; or why the shards' work cannot be used."""
    summaries: dict[int, dict[str, Any]] = {}
    failures: list[str] = []
    pending = dict(enumerate(running.controls))
    with progress_reporter(total) as progress:
        while pending:
            for ready in wait(list(pending.values())):
                shard = next(i for i, c in pending.items() if c is ready)
                assert isinstance(ready, Connection)
                message = _receive(ready)
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


def _receive(conn: Connection) -> tuple[Any, ...]:
    """A shard's next message; a shard gone without one says so."""
    try:
        message: tuple[Any, ...] = conn.recv()
    except EOFError:
        message = ("error", "it exited without a word")
    return message


def _write_outputs(
    running: Shards,
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
    # Account ids are unique across shards: sorted by id, as one process writes them.
    accounts = sorted(
        (
            (orjson.loads(line), line)
            for shard in range(shards)
            for _, line in read_keyed_lines(work / f"accounts.{shard}")
        ),
        key=_account_id,
    )
    with (out / "accounts.jsonl").open("wb", buffering=WRITE_BUFFER) as fh:
        for _, line in accounts:
            fh.write(line)
            fh.write(b"\n")
    account_lines = [account for account, _ in accounts]
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
        for source, data in summary["latencies"].items():
            latencies.setdefault(source, array("q")).frombytes(data)
    counts["records"] = summaries[0]["counts"]["records"]  # each shard read them all
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


def _account_id(pair: tuple[dict[str, Any], bytes]) -> str:
    account_id: str = pair[0]["account_id"]
    return account_id


def _merge_lines(work: Path, name: str, shards: int, path: Path) -> None:
    """The shards' lines of one output written to ``path`` in the one order (by the key each
    came with)."""
    reads = [read_keyed_lines(work / f"{name}.{i}") for i in range(shards)]
    with path.open("wb", buffering=WRITE_BUFFER) as fh:
        for _, line in heapq.merge(*reads, key=itemgetter(0)):
            fh.write(line)
            fh.write(b"\n")


def _ask_parts(running: Shards, shown: list[str]) -> None:
    """Ask each shard for the timelines, explanations and alert records of the shown
    accounts it holds."""
    shards = len(running.controls)
    wanted: list[list[str]] = [[] for _ in range(shards)]
    for account in shown:
        wanted[shard_of(account, shards)].append(account)
    for conn, accounts in zip(running.controls, wanted, strict=True):
        conn.send(("parts", accounts))


def _receive_parts(
    running: Shards,
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    parts: dict[str, Any] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for shard, conn in enumerate(running.controls):
        message = _receive(conn)
        if message[0] != "parts":
            raise CannotSplit(f"shard {shard}: {message[0]}: {message[1]}")
        _, theirs, their_records = message
        parts.update(theirs)
        records.update(their_records)
    return parts, records
