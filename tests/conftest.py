"""Shared fixtures: one Apache Kafka broker and one Redis for the whole session.

Where they come from, first match wins: ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` (a stack
someone already runs, e.g. ``limitsync up`` or CI services); testcontainers when a Docker
engine answers; else a single-node Kafka (the jars ``make install`` copies) and
redis-server as local child processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from limitsync import compiled
from limitsync.local_services import LocalKafka, LocalRedis, RedisTLS

_DOCKER_INFO_TIMEOUT_S = 5.0
_CONTAINER_START_TIMEOUT_S = 120


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to run tests on compiled hot modules older than their sources: Python imports the
    compiled module first, so the tests would check code that is no longer in the files."""
    problem = compiled.problem(compiled.status())
    if problem is not None:
        raise pytest.UsageError(problem)


def _docker_answers() -> bool:
    """True only when a Docker engine responds; a bare docker client is not enough."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_DOCKER_INFO_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def docker_available() -> bool:
    return _docker_answers()


@pytest.fixture(scope="session")
def local_services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where local brokers and Redis servers write their logs; kept by pytest for a while."""
    return tmp_path_factory.mktemp("local-services")


def _kafka_container(stack: ExitStack) -> str:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # older testcontainers layout
        from testcontainers.kafka import KafkaContainer

    container = KafkaContainer()
    container.start(timeout=_CONTAINER_START_TIMEOUT_S)
    stack.callback(container.stop)
    return str(container.get_bootstrap_server())


def _redis_container(stack: ExitStack) -> str:
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # older testcontainers layout
        from testcontainers.redis import RedisContainer

    container = RedisContainer()
    container.start()
    stack.callback(container.stop)
    host = container.get_container_host_ip()
    return f"redis://{host}:{container.get_exposed_port(6379)}/0"


def _from_container(start: Callable[[ExitStack], str], stack: ExitStack, what: str) -> str | None:
    """Start a container; on failure warn and return None so the local process takes over."""
    try:
        return start(stack)
    except Exception as exc:  # image pull, engine or timeout: many types, same fallback
        warnings.warn(
            f"Docker answers but the {what} container failed ({exc!r}); using the local one",
            stacklevel=1,
        )
        return None


@pytest.fixture(scope="session")
def kafka_bootstrap(local_services_dir: Path, docker_available: bool) -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    with ExitStack() as stack:
        if docker_available:
            bootstrap = _from_container(_kafka_container, stack, "Kafka")
            if bootstrap is not None:
                yield bootstrap
                return
        yield stack.enter_context(LocalKafka(local_services_dir).start()).bootstrap_servers


@pytest.fixture(scope="session")
def redis_url(local_services_dir: Path, docker_available: bool) -> Iterator[str]:
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    with ExitStack() as stack:
        if docker_available:
            url = _from_container(_redis_container, stack, "Redis")
            if url is not None:
                yield url
                return
        yield stack.enter_context(LocalRedis(local_services_dir)).url


@pytest.fixture
def unique_id() -> str:
    """A fresh name part for group ids and topic prefixes.

    Topics, consumer groups and their committed offsets outlive a test on a shared broker
    (and a killed member stays in its group until its session times out), so every test
    names its own.
    """
    return f"t{uuid.uuid4().hex[:16]}"


class LocalRedisFactory:
    """Starts extra Redis servers for one test and stops them when it ends.

    Always local processes, whatever serves ``redis_url``: a test that stops, restarts or
    locks down its Redis must not disturb the shared one.
    """

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._started: list[LocalRedis] = []

    def __call__(
        self,
        *,
        password: str | None = None,
        tls: RedisTLS | None = None,
        port: int | None = None,
        **options: Any,
    ) -> LocalRedis:
        server = LocalRedis(self._log_dir, password=password, tls=tls, port=port, **options)
        self._started.append(server)
        return server.start()

    def stop_all(self) -> None:
        while self._started:
            self._started.pop().stop()


@pytest.fixture
def local_redis_factory(local_services_dir: Path) -> Iterator[LocalRedisFactory]:
    factory = LocalRedisFactory(local_services_dir)
    try:
        yield factory
    finally:
        factory.stop_all()
