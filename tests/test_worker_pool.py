"""The workers of ``limitsync up``: a dead one is started again, within a budget."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Any

from config.settings import Settings
from limitsync.worker_pool import (
    RESTART_WINDOW_S,
    RESTARTS_MAX,
    RestartBudget,
    WorkerPool,
    exit_reason,
)

_pids = itertools.count(1000)


class FakeProc:
    def __init__(self) -> None:
        self.pid = next(_pids)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class FakePool(WorkerPool):
    def _spawn(self, index: int) -> Any:
        return FakeProc()


def _pool(tmp_path: Path, count: int = 2) -> FakePool:
    pool = FakePool(Settings(), tmp_path, rescore=False, count=count)
    pool.start()
    return pool


def _die(proc: subprocess.Popen[bytes], returncode: int = -9) -> None:
    proc.returncode = returncode


def test_a_worker_may_restart_three_times_within_a_minute_then_not() -> None:
    budget = RestartBudget()
    assert [budget.allow(0, t) for t in (0.0, 1.0, 2.0, 3.0)] == [True, True, True, False]


def test_the_restart_budget_renews_as_the_window_moves() -> None:
    budget = RestartBudget()
    for t in range(RESTARTS_MAX):
        budget.allow(0, float(t))
    assert budget.allow(0, RESTART_WINDOW_S + 0.5)


def test_the_restart_budget_is_per_worker() -> None:
    budget = RestartBudget()
    for t in range(RESTARTS_MAX):
        budget.allow(0, float(t))
    assert budget.allow(1, 3.0)


def test_an_exit_by_signal_is_named() -> None:
    assert exit_reason(-9) == "signal SIGKILL"


def test_an_exit_code_is_given() -> None:
    assert exit_reason(1) == "exit code 1"


def test_a_dead_worker_is_started_again_on_its_port(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    ports, dead = list(pool.ports), pool.procs[0]
    _die(dead)
    assert pool.check(now=0.0)
    assert (pool.procs[0] is not dead, pool.procs[0].poll(), pool.ports) == (True, None, ports)


def test_a_restart_is_said_with_how_the_worker_ended(tmp_path: Path, capsys: Any) -> None:
    pool = _pool(tmp_path)
    _die(pool.procs[1], -9)
    pool.check(now=0.0)
    said = capsys.readouterr().err
    assert "worker 1" in said and "(signal SIGKILL); started again" in said


def test_a_worker_that_keeps_dying_is_left_down(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    for t in range(RESTARTS_MAX + 1):
        _die(pool.procs[0])
        pool.check(now=float(t))
    assert (pool.restarts, pool.procs[0].poll()) == (RESTARTS_MAX, -9)


def test_the_pool_is_down_when_every_worker_is(tmp_path: Path) -> None:
    pool = _pool(tmp_path, count=1)
    for t in range(RESTARTS_MAX + 1):
        _die(pool.procs[0])
        running = pool.check(now=float(t))
    assert not running
