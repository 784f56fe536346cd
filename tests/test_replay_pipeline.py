"""A file replay pipelined over two processes (``--pipeline``, the default on two cores or
more; limitsync/replay_pipeline.py): the first reads, parses and dedupes, the second applies.
Its outputs are the one-process replay's, byte for byte (also tests/test_replay_golden.py);
a failure of either process fails the replay with its reason, and no process is left behind.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventlog import S, credit_line, displayed, drawdown, line, repayment_initiated

from limitsync import replay_pipeline
from limitsync.cli import main
from limitsync.inputs import InputError
from limitsync.replay import (
    PROGRESS_EVERY_RECORDS,
    InputRecord,
    OutputFiles,
    ReplayOptions,
    run_replay,
)
from limitsync.replay_pipeline import FirstStage, PipelineError, _cgroup2_quota, pipelined
from limitsync.replay_stages import STAGE_BATCH_BYTES, admit_records

ROOT = Path(__file__).resolve().parent.parent
OUTPUTS = ["alerts.jsonl", "dead_letters.jsonl", "accounts.jsonl", "report.html"]
# The contract's last valid instant: the fast path leaves it to pydantic, whose event holds a
# datetime (schemas/native.py); it crosses as its text (schemas/wire.py).
LAST_INSTANT = "2099-12-31T23:59:59.999Z"


def write_log(path: Path, rows: list[bytes]) -> Path:
    path.write_bytes(b"".join(row + b"\n" for row in rows))
    return path


def a_log(accounts: int = 3) -> list[bytes]:
    rows: list[bytes] = []
    for n in range(accounts):
        a = f"A{n}"
        rows += [
            line(credit_line(a, 0, 10_000, 1)),
            line(displayed(a, 0, 10_000)),
            line(drawdown(a, 10 * S, 3_000, event_id=f"dd-{a}")),
            line(drawdown(a, 11 * S, 3_000, event_id=f"dd-{a}")),  # a conflict
            line(repayment_initiated(a, 12 * S, f"pay-{a}", 500)),
            b"not json",
            line(displayed(a, 80 * S, 7_000)),
        ]
    return rows


def replay_command(log: Path, out: Path, *extra: str) -> list[str]:
    cli = [sys.executable, "-m", "limitsync.cli"]
    return [*cli, "replay", "--input", str(log), "--out", str(out), *extra]


def replay(log: Path, out: Path, *extra: str) -> str:
    said = subprocess.run(
        replay_command(log, out, *extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return said.stdout


def test_a_pipelined_replay_writes_the_one_process_outputs(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl", a_log())
    replay(log, tmp_path / "one", "--no-pipeline")
    replay(log, tmp_path / "two", "--pipeline")
    assert [(tmp_path / "two" / f).read_bytes() for f in OUTPUTS] == [
        (tmp_path / "one" / f).read_bytes() for f in OUTPUTS
    ]


def test_a_record_only_pydantic_accepts_is_replayed_pipelined_as_in_one_process(
    tmp_path: Path,
) -> None:
    last = drawdown("A0", 0, 1_000, event_id="last")
    last["occurred_at"] = LAST_INSTANT
    log = write_log(tmp_path / "log.jsonl", [*a_log(), line(last)])
    replay(log, tmp_path / "one", "--no-pipeline")
    replay(log, tmp_path / "two", "--pipeline")
    assert [(tmp_path / "two" / f).read_bytes() for f in OUTPUTS] == [
        (tmp_path / "one" / f).read_bytes() for f in OUTPUTS
    ]


def test_the_summary_says_two_processes_and_their_memory(tmp_path: Path) -> None:
    said = replay(write_log(tmp_path / "log.jsonl", a_log()), tmp_path / "out", "--pipeline")
    assert " in 2 processes: " in said and " MB (all processes)" in said


def test_a_cpu_quota_of_one_core_replays_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(replay_pipeline, "_CPU_QUOTAS", ((tmp_path / "cpu.max", _cgroup2_quota),))
    assert not pipelined(None)


def test_a_failing_first_stage_fails_the_command_with_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a defect in the first stage")

    monkeypatch.setattr(replay_pipeline, "admit_records", broken)
    log = write_log(tmp_path / "log.jsonl", a_log())
    assert main(["replay", "--input", str(log), "--out", str(tmp_path / "out"), "--pipeline"]) == 1
    assert "RuntimeError: a defect in the first stage" in capsys.readouterr().err


def test_the_pipeline_is_the_default_on_two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert pipelined(None)


def test_one_core_replays_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert not pipelined(None)


def test_asked_for_the_pipeline_wins_over_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert (pipelined(True), pipelined(False)) == (True, False)


def records_then(rows: list[bytes], end: str) -> Iterator[InputRecord]:
    """The rows as records, then, in the process that reads them, ``end``: it exits, is
    killed, or the input fails."""
    for i, row in enumerate(rows):
        yield InputRecord(row, None, None, i)
    if end == "exit":
        os._exit(9)
    if end == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if end == "unreadable":
        raise InputError("the input cannot be read any further")
    raise RuntimeError("the input broke")


def started(records: Iterator[InputRecord], outputs: OutputFiles) -> FirstStage:
    first = FirstStage(records, ReplayOptions(), outputs)
    first.start()
    return first


def first_stage_run(tmp_path: Path, records: Iterator[InputRecord]) -> None:
    with OutputFiles(tmp_path / "out") as outputs, started(records, outputs) as first:
        first.run()


def test_a_first_stage_that_exits_fails_the_replay_with_its_status(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="exited with status 9 without a word"):
        first_stage_run(tmp_path, records_then(a_log(), "exit"))


def test_a_killed_first_stage_fails_the_replay_saying_by_what(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="killed by SIGKILL"):
        first_stage_run(tmp_path, records_then(a_log(), "kill"))


def test_an_input_failing_midway_leaves_the_outputs_one_process_leaves(tmp_path: Path) -> None:
    rows = a_log(40)
    with OutputFiles(tmp_path / "one") as outputs, pytest.raises(InputError):
        run_replay(records_then(rows, "unreadable"), ReplayOptions(), outputs=outputs)
    with pytest.raises(InputError):
        first_stage_run(tmp_path, records_then(rows, "unreadable"))
    assert [(tmp_path / "out" / f).read_bytes() for f in OUTPUTS[:2]] == [
        (tmp_path / "one" / f).read_bytes() for f in OUTPUTS[:2]
    ]


def test_a_batch_is_sent_once_its_records_are_big_enough(tmp_path: Path) -> None:
    big = "x" * (STAGE_BATCH_BYTES // 3)
    rows = [line({**displayed(f"A{n}", n, n), "note": big}) for n in range(10)]
    batches: list[int] = []
    with OutputFiles(tmp_path / "out") as outputs:
        records = (InputRecord(r, None, None, i) for i, r in enumerate(rows))
        admit_records(
            records, ReplayOptions(), outputs.dead_letter, lambda b: batches.append(len(b[2]))
        )
    assert max(batches) == 3


def test_an_error_in_the_first_stage_fails_the_replay_with_its_traceback(
    tmp_path: Path,
) -> None:
    with pytest.raises(PipelineError, match="RuntimeError: the input broke"):
        first_stage_run(tmp_path, records_then(a_log(), "raise"))


def test_an_unreadable_archive_fails_the_pipelined_replay_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(gzip.compress(b'{"not": "an archive line"}\n'))
    assert main(["replay", "--input", str(bad), "--out", str(tmp_path / "out"), "--pipeline"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_progress_is_told_as_the_first_stage_reads(tmp_path: Path) -> None:
    rows = [line(displayed(f"A{n % 50}", n, n)) for n in range(2 * PROGRESS_EVERY_RECORDS + 5)]
    log = write_log(tmp_path / "log.jsonl", rows)
    told: list[tuple[int, int]] = []
    records = (InputRecord(r, None, None, i) for i, r in enumerate(rows))
    with OutputFiles(tmp_path / "out") as outputs, started(records, outputs) as first:
        first.run(lambda records, read: told.append((records, read)))
    assert [r // PROGRESS_EVERY_RECORDS for r, _ in told] == [1, 2] and told[-1][1] <= len(
        log.read_bytes()
    )


def children_of(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


def running(pid: int) -> bool:
    """Whether a process runs (a zombie, stopped and not yet reaped by init, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_replay_that_cannot_fork_replays_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    log = write_log(tmp_path / "log.jsonl", a_log())
    monkeypatch.setattr(os, "fork", no_fork)
    assert main(["replay", "--input", str(log), "--out", str(tmp_path / "out"), "--pipeline"]) == 0
    assert "cannot fork the first stage" in capsys.readouterr().err


def test_sigterm_mid_replay_leaves_no_first_stage_behind(tmp_path: Path) -> None:
    rows = [line(displayed(f"A{n % 500}", n, n)) for n in range(400_000)]
    log = write_log(tmp_path / "log.jsonl", rows)
    command = replay_command(log, tmp_path / "out", "--pipeline")
    replaying = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not children_of(replaying.pid):
        assert time.monotonic() < deadline and replaying.poll() is None
        time.sleep(0.05)
    [child] = children_of(replaying.pid)
    replaying.send_signal(signal.SIGTERM)
    replaying.wait(timeout=30)
    while time.monotonic() < deadline and running(child):
        time.sleep(0.05)
    assert not running(child)
