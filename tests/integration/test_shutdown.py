"""Stopping the live system as an operator does: SIGTERM (systemd, a container runtime,
``timeout``) or SIGHUP (a closed terminal), at the moment something is already wrong.

- ``limitsync up`` told to stop leaves no process of it behind within 20 s, checked over every
  descendant it had, with its broker killed first (what made workers hang).
- A worker exits within 10 s of SIGTERM with its broker, or its Redis, gone.
- A worker dies with its parent, even when the parent is killed outright: ``up``'s workers,
  and the workers a test or bench starts through the harness.
- A worker of ``up`` that is killed is started again, and stopped with the rest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from limitsync.local_services import LocalKafka, LocalRedis
from tests.integration.live_harness import WorkerProcess, make_live_system, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UP_STOP_BUDGET_S = 20.0  # issue 13: every descendant of `up` gone this long after the signal
WORKER_EXIT_BUDGET_S = 10.0  # issue 13: a worker gone this long after SIGTERM
UP_READY_TIMEOUT_S = 120.0
WORKER_READY_TIMEOUT_S = 60.0
POLL_S = 0.1


def _alive(proc: psutil.Process) -> bool:
    """Running, or stopped; a zombie (exited, not yet reaped) holds nothing and counts as gone."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone_within(procs: list[psutil.Process], timeout_s: float) -> list[str]:
    """The processes of ``procs`` still alive after ``timeout_s`` (killed then, so that a
    failing test leaves nothing behind)."""
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    left = []
    for proc in procs:
        if _alive(proc):
            left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
            proc.kill()
    return left


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[psutil.Process]]]:
    """A running ``limitsync up`` with two workers and its own broker and Redis, and every
    descendant it has once ready."""
    state = tmp_path / "state.json"
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    with (tmp_path / "up.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "limitsync.cli", "up", "--workers", "2", "--no-rescore",
             "--run-dir", str(tmp_path / "run"), "--state-file", str(state)],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: state.exists() or proc.poll() is not None, UP_READY_TIMEOUT_S, "up")
        assert proc.poll() is None, (tmp_path / "up.log").read_text()
        assert len(json.loads(state.read_text())["web_urls"]) == 2
        wait_for(lambda: len(psutil.Process(proc.pid).children(recursive=True)) >= 4,
                 UP_READY_TIMEOUT_S, "broker, Redis and two workers")  # fmt: skip
        yield proc, psutil.Process(proc.pid).children(recursive=True)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for child in psutil.Process().children(recursive=True):
            if child.pid != proc.pid and "limitsync.cli" in " ".join(child.cmdline()):
                child.kill()


def _kill_broker(descendants: list[psutil.Process]) -> None:
    broker = [p for p in descendants if "kafka.Kafka" in p.cmdline()]
    assert len(broker) == 1, [p.cmdline() for p in descendants]
    broker[0].kill()  # a child of `up`, which reaps it only when it stops: no wait here


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_up_told_to_stop_leaves_no_descendant_behind_with_its_broker_dead(
    up: tuple[subprocess.Popen[bytes], list[psutil.Process]], signum: signal.Signals
) -> None:
    proc, descendants = up
    _kill_broker(descendants)
    began = time.monotonic()
    proc.send_signal(signum)
    # and any worker started again since, its first having died with the broker
    everything = {*descendants, *psutil.Process(proc.pid).children(recursive=True)}
    left = _gone_within([psutil.Process(proc.pid), *everything], UP_STOP_BUDGET_S)
    assert not left, f"{time.monotonic() - began:.1f} s after {signum.name}: {left}"


def test_workers_die_with_up_when_it_is_killed_outright(
    up: tuple[subprocess.Popen[bytes], list[psutil.Process]],
) -> None:
    proc, descendants = up
    workers = [p for p in descendants if "worker" in p.cmdline()]
    _kill_broker(descendants)  # the state in which a worker ignored SIGTERM for 50 s
    proc.kill()
    assert not _gone_within(workers, WORKER_EXIT_BUDGET_S)


def _workers(up_proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The running workers of ``up`` (one just killed is a zombie until ``up`` reaps it)."""
    workers = []
    for p in psutil.Process(up_proc.pid).children(recursive=True):
        try:
            if "worker" in p.cmdline() and _alive(p):
                workers.append(p)
        except psutil.Error:
            continue
    return workers


def _web_port(proc: psutil.Process) -> str | None:
    """The worker's web port, or None once it has exited (a zombie has no environment)."""
    try:
        return proc.environ().get("LIMITSYNC_WEB_PORT")
    except psutil.Error:
        return None


def test_up_starts_a_killed_worker_again_on_its_port_and_stops_it_with_the_rest(
    up: tuple[subprocess.Popen[bytes], list[psutil.Process]],
) -> None:
    proc, _ = up
    victim = _workers(proc)[0]
    port = _web_port(victim)
    victim.kill()
    wait_for(
        lambda: any(
            w.pid != victim.pid and _web_port(w) == port
            for w in _workers(proc)
        ),
        WORKER_READY_TIMEOUT_S,
        "the killed worker started again",
    )
    (again,) = [w for w in _workers(proc) if w.pid != victim.pid and _web_port(w) == port]
    proc.send_signal(signal.SIGTERM)
    assert not _gone_within([psutil.Process(proc.pid), again], UP_STOP_BUDGET_S)


@pytest.fixture
def own_broker(local_services_dir: Path) -> Iterator[LocalKafka]:
    with LocalKafka(local_services_dir) as broker:
        yield broker


@pytest.fixture
def own_redis(local_services_dir: Path) -> Iterator[LocalRedis]:
    with LocalRedis(local_services_dir) as server:
        yield server


def _ready_worker(bootstrap: str, redis_url: str, unique_id: str, tmp_path: Path) -> WorkerProcess:
    system = make_live_system(bootstrap, redis_url, unique_id, tmp_path)
    worker = system.worker().start()
    worker.wait_ready(timeout_s=WORKER_READY_TIMEOUT_S)
    return worker


def _exits_within(worker: WorkerProcess, timeout_s: float) -> bool:
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    try:
        worker.proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        worker.kill()
        return False
    return True


def test_a_worker_exits_within_10_s_of_sigterm_with_its_broker_gone(
    own_broker: LocalKafka, redis_url: str, unique_id: str, tmp_path: Path
) -> None:
    worker = _ready_worker(own_broker.bootstrap_servers, redis_url, unique_id, tmp_path)
    os.kill(own_broker.pid, signal.SIGKILL)  # gone at once, as a crashed or partitioned broker
    assert _exits_within(worker, WORKER_EXIT_BUDGET_S), worker.log_tail()


def test_a_worker_exits_within_10_s_of_sigterm_with_its_redis_gone(
    kafka_bootstrap: str, own_redis: LocalRedis, unique_id: str, tmp_path: Path
) -> None:
    worker = _ready_worker(kafka_bootstrap, own_redis.url, unique_id, tmp_path)
    os.kill(own_redis.pid, signal.SIGKILL)
    assert _exits_within(worker, WORKER_EXIT_BUDGET_S), worker.log_tail()


# A process that starts a worker through the harness, as a test or a bench does, says the
# worker's pid and waits to be killed.
_HARNESS_PARENT = """
import sys, time
from pathlib import Path
from tests.integration.live_harness import make_live_system
bootstrap, redis_url, unique_id, log_dir = sys.argv[1:]
worker = make_live_system(bootstrap, redis_url, unique_id, Path(log_dir)).worker().start()
worker.wait_ready()
print(worker.proc.pid, flush=True)
time.sleep(600)
"""


def test_a_harness_worker_dies_with_the_test_process_that_is_killed_outright(
    kafka_bootstrap: str, redis_url: str, unique_id: str, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [sys.executable, "-c", _HARNESS_PARENT, kafka_bootstrap, redis_url, unique_id,
         str(tmp_path)],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # once the worker is ready
        assert line.strip().isdigit(), f"the harness process said {line!r}"
        worker = psutil.Process(int(line))
        parent.kill()
        parent.wait()
        assert not _gone_within([worker], WORKER_EXIT_BUDGET_S)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
