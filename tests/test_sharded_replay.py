"""A replay split over processes by account (``limitsync replay --shards N``) writes what the
one-process replay writes, byte for byte; when a shard's part cannot be trusted, the replay
runs again in one process and says so on stderr (docs/operations.md, "Replay in shards").
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from limitsync.cli import main
from limitsync.replay_shard import shard_of
from limitsync.sharded_replay import SHARDS_LIMIT, shards_for
from tests.eventlog import (
    S,
    credit_line,
    displayed,
    drawdown,
    lines,
    repayment_initiated,
)

OUTPUTS = ("alerts.jsonl", "dead_letters.jsonl", "accounts.jsonl", "report.html")


def _replay(log: Path, shards: int, *extra: str) -> tuple[dict[str, bytes], str, str]:
    """The outputs of ``limitsync replay`` of ``log`` in ``shards`` processes, and what it
    said on stdout and stderr."""
    out = log.parent / f"out-{shards}"
    args = ["replay", "--input", str(log), "--out", str(out), "--shards", str(shards), *extra]
    with (
        contextlib.redirect_stdout(io.StringIO()) as said,
        contextlib.redirect_stderr(io.StringIO()) as warned,
    ):
        assert main(args) == 0
    return {n: (out / n).read_bytes() for n in OUTPUTS}, said.getvalue(), warned.getvalue()


def _write(tmp_path: Path, events: list[Any]) -> Path:
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\n".join(lines(events)) + b"\n")
    return log


def _ties() -> list[Any]:
    """Accounts whose drifts and clearing watches open at the same microsecond: their
    deadlines fall due together, and fire in the order they were pushed, across shards."""
    events: list[Any] = []
    accounts = [f"acct-{i:02d}" for i in range(24)]
    for account in accounts:
        events.append(credit_line(account, 0, 50_000, 1))
    for i, account in enumerate(accounts):
        events.append(displayed(account, 1 * S, 40_000 + i))  # all wrong, all at 1 s
        events.append(repayment_initiated(account, 1 * S, f"pay-{account}", 100))
    for i, account in enumerate(accounts):  # some close, some stay open
        if i % 3 == 0:
            events.append(displayed(account, 30 * S, 50_000))
    events.append(drawdown(accounts[5], 200 * S, 10))  # breaches and escalations fire here
    events.append(drawdown(accounts[17], 8_000 * S, 10))  # the clearing watches breach here
    return events


@pytest.mark.parametrize("shards", [2, 3])
def test_deadlines_due_together_fire_in_the_one_order_across_shards(
    tmp_path: Path, shards: int
) -> None:
    log = _write(tmp_path, _ties())
    split, said, _ = _replay(log, shards)
    one, _, _ = _replay(log, 1)
    assert one["alerts.jsonl"].count(b"\n") >= 48  # many alerts share their due time
    assert f"on {shards} shards" in said
    assert split == one


def test_until_fires_the_same_alerts_in_the_same_order_in_shards(tmp_path: Path) -> None:
    log = _write(tmp_path, _ties())
    until = ("--until", "2026-11-29T16:00:00Z")
    assert _replay(log, 2, *until)[0] == _replay(log, 1, *until)[0]


def test_an_id_that_expires_inside_a_block_makes_the_replay_run_in_one_process(
    tmp_path: Path,
) -> None:
    # With a 1 s horizon, the second "x1" of acct-a comes after its first has expired: it is
    # applied, where a shard predicts a conflict from the block's own records.
    events = [
        drawdown("acct-a", 0, 100, event_id="x1"),
        drawdown("acct-b", 10 * S, 5),
        drawdown("acct-a", 11 * S, 999, event_id="x1"),
        displayed("acct-a", 12 * S, 0),
    ]
    log = _write(tmp_path, events)
    split, said, warned = _replay(log, 2, "--dedupe-horizon-s", "1")
    assert "the sharded replay was not used" in warned
    assert "on 2 shards" not in said
    assert split == _replay(log, 1, "--dedupe-horizon-s", "1")[0]


def test_an_account_id_read_two_ways_makes_the_replay_run_in_one_process(
    tmp_path: Path,
) -> None:
    # The shards read a record's account from its first "account_id" key without parsing it;
    # a nested one that comes first sends the record to the wrong shard, which finds out.
    real = "acct-a"
    nested = next(f"acct-{i}" for i in range(100) if shard_of(f"acct-{i}", 2) != shard_of(real, 2))
    record = drawdown(real, 1 * S, 100)
    odd = {"meta": {"account_id": nested}, **record}
    log = _write(tmp_path, [credit_line(real, 0, 1_000, 1), odd, displayed(real, 2 * S, 0)])
    split, _, warned = _replay(log, 2)
    assert "read two ways" in warned
    assert split == _replay(log, 1)[0]


def test_a_replay_runs_in_one_process_unless_asked(tmp_path: Path) -> None:
    log = _write(tmp_path, _ties())
    assert shards_for(None, str(log)) == 1


def test_shards_are_capped_at_the_limit(tmp_path: Path) -> None:
    log = _write(tmp_path, _ties())
    assert shards_for(SHARDS_LIMIT + 5, str(log)) == SHARDS_LIMIT


@pytest.mark.slow
def test_sigterm_stops_every_shard_and_leaves_no_files(tmp_path: Path) -> None:
    from limitsync.simulate import write_simulation

    log = tmp_path / "day.jsonl"
    write_simulation(log, accounts=1500, hours=10.0, seed=3, faults=0.1)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "limitsync.cli", "replay", "--input", str(log)]
    replay = subprocess.Popen(
        [*command, "--out", str(out), "--shards", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    parent = psutil.Process(replay.pid)
    deadline = time.monotonic() + 30
    while len(parent.children()) < 2:
        assert replay.poll() is None, "the replay ended before its shards were seen"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    shards = parent.children()
    replay.send_signal(signal.SIGTERM)
    assert replay.wait(timeout=30) == 128 + signal.SIGTERM
    _, alive = psutil.wait_procs(shards, timeout=10)
    assert not alive
    assert not list(out.glob(".shards-*"))


@pytest.mark.timeout(120)
def test_shards_that_read_different_records_replay_in_one_process_not_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file still being appended to: shard 1 reads records shard 0 never saw.
    import limitsync.shard_processes as processes
    from limitsync.replay import InputRecord

    log = _write(tmp_path, _ties())
    extra = [InputRecord(line, None, None, 0) for line in lines(_ties())]
    run_shard = processes.run_shard

    def longer_for_shard_1(records: Any, options: Any, shard: int, *rest: Any) -> Any:
        return run_shard([*records, *extra] if shard == 1 else records, options, shard, *rest)

    monkeypatch.setattr(processes, "run_shard", longer_for_shard_1)
    split, said, warned = _replay(log, 2)
    assert "the sharded replay was not used" in warned
    assert "on 2 shards" not in said
    assert split == _replay(log, 1)[0]


def test_an_input_changed_while_the_shards_read_it_replays_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import limitsync.sharded_replay as sharded

    log = _write(tmp_path, _ties())
    states = iter([[("a", 1, 1)], [("a", 2, 2)]])
    monkeypatch.setattr(sharded, "_input_state", lambda spec: next(states))
    _, _, warned = _replay(log, 2)
    assert "the input changed while it was read" in warned


def test_pipes_that_cannot_be_enlarged_make_the_replay_run_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import limitsync.shard_processes as processes

    def refused(fd: int, command: int, arg: int = 0) -> int:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(processes.fcntl, "fcntl", refused)
    log = _write(tmp_path, _ties())
    split, _, warned = _replay(log, 2)
    assert "pipe between shards" in warned
    assert split == _replay(log, 1)[0]


def test_an_input_that_is_not_a_regular_file_replays_in_one_process() -> None:
    assert shards_for(4, "/dev/null") == 1


def test_files_left_by_a_killed_replay_are_removed_and_a_running_ones_kept(
    tmp_path: Path,
) -> None:
    log = _write(tmp_path, _ties())
    out = tmp_path / "out-2"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = out / f".shards-{dead.pid}-abc"
    running = out / f".shards-{os.getpid()}-def"
    for folder in (left, running):
        folder.mkdir(parents=True)
    _replay(log, 2)
    assert not left.exists()
    assert running.exists()


def test_a_killed_replay_not_yet_reaped_counts_as_gone(tmp_path: Path) -> None:
    # Its shard files are removed by the next replay even while it is a zombie.
    from limitsync.sharded_replay import _alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not _alive(child.pid)
    assert _alive(os.getpid())
    child.wait()
