"""The deployment runs as written: the worker and the alert router, started with exactly the
command and environment that ``deploy/compose/compose.yaml`` and the Kubernetes dev overlay give
their containers, against a local broker and Redis.

Changed, and only these: the broker's and Redis' addresses, the worker's port (a free one: the
machine is shared) and the container's mount points (a folder of the test's each). The worker
must answer ``/healthz`` on the machine's own non-loopback address (what a kubelet probe or a
Prometheus scrape uses); the router must stay up and deliver an alert to its file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from kafka import KafkaProducer

from config.settings import Settings
from limitsync.local_services import LocalKafka, LocalRedis, create_topics, free_port
from tests.integration.live_harness import wait_for
from tests.test_deploy import COMPOSE_FILE, _build, _container, _env, _one, _resolve_secrets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_PASSWORD_DEFAULT = "limitsync-dev"  # compose.yaml's ${REDIS_PASSWORD:-limitsync-dev}
WORKER_READY_TIMEOUT_S = 90.0
DELIVERY_TIMEOUT_S = 60.0
ROUTER_STAYS_UP_S = 5.0
STOP_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 2.0
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


@dataclass(frozen=True)
class Spec:
    """A container's command (after the image's ENTRYPOINT, `limitsync`) and environment."""

    args: list[str]
    env: dict[str, str]
    mounts: list[str]


def _own_address() -> str:
    """This machine's first non-loopback IPv4 address."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    raise AssertionError("this machine has no non-loopback IPv4 address")


def _interpolate(value: Any) -> str:
    """Compose's ${VAR:-default}, as on a machine that sets none of them."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


def _compose_spec(service_name: str) -> Spec:
    service = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"][service_name]
    mounts = [str(t) for t in service.get("tmpfs", [])]
    mounts += [str(v).split(":")[1] for v in service.get("volumes", [])]
    env = {k: _interpolate(v) for k, v in service["environment"].items()}
    return Spec([_interpolate(a) for a in service["command"]], env, mounts)


def _kubernetes_spec(kind: str, name: str) -> Spec:
    resources = _build("overlays/dev")
    workload = _one(resources, kind, name)
    container = _container(workload)
    env = _resolve_secrets(_env(container, resources), resources)
    mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
    return Spec(list(container["args"]), env, mounts)


@pytest.fixture(scope="module")
def stack(local_services_dir: Path) -> Iterator[tuple[str, str]]:
    """A broker of this module's own (the deploy files use the contract's topic names and group
    ids, which no other test may share) and a Redis with the deploy files' password."""
    with (
        LocalKafka(local_services_dir) as broker,
        LocalRedis(local_services_dir, password=REDIS_PASSWORD_DEFAULT) as redis_server,
    ):
        yield broker.bootstrap_servers, redis_server.url.replace(
            f":{REDIS_PASSWORD_DEFAULT}@", ""
        )  # the password comes from the deploy files' LIMITSYNC_REDIS_PASSWORD


def _localised(spec: Spec, bootstrap: str, redis_url: str, root: Path) -> Spec:
    """Only the addresses and the mount points changed."""

    def moved(text: str) -> str:
        for mount in sorted(spec.mounts, key=len, reverse=True):
            if text == mount or text.startswith(mount + "/"):
                return str(root / mount.strip("/")) + text[len(mount):]
        return text

    env = {k: moved(v) for k, v in spec.env.items()}
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    env["REDIS_URL"] = redis_url
    if "LIMITSYNC_WEB_PORT" in env:
        env["LIMITSYNC_WEB_PORT"] = str(free_port())
    for mount in spec.mounts:
        (root / mount.strip("/")).mkdir(parents=True, exist_ok=True)
    return Spec([moved(a) for a in spec.args], env, spec.mounts)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Any]:
    """Starts ``limitsync ARGS`` with only the spec's environment (and PATH); stops them all."""
    started: list[subprocess.Popen[bytes]] = []

    def start(spec: Spec, name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "limitsync.cli", *spec.args],
            env={"PATH": os.environ.get("PATH", ""), **spec.env}, cwd=tmp_path,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthz(address: str, port: str) -> int | None:
    try:
        with urllib.request.urlopen(
            f"http://{address}:{port}/healthz", timeout=HTTP_TIMEOUT_S
        ) as resp:
            return int(resp.status)
    except (urllib.error.URLError, OSError):
        return None


def _worker_answers_on_own_address(spec: Spec, run: Any, tmp_path: Path) -> int | None:
    proc = run(spec, "worker")
    address, port = _own_address(), spec.env["LIMITSYNC_WEB_PORT"]
    wait_for(lambda: proc.poll() is not None or _healthz("127.0.0.1", port),
             WORKER_READY_TIMEOUT_S, "the worker's web server")  # fmt: skip
    assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
    return _healthz(address, port)


def _router_delivers(spec: Spec, run: Any, tmp_path: Path, bootstrap: str) -> bool:
    """The router stays up, and an alert put on the alert topic reaches its file."""
    topics = Settings().topics  # what compose.yaml's kafka-init creates: the contract's names
    create_topics(bootstrap, list(topics.values()), Settings().partitions)
    router = run(spec, "router")
    alert = {"type": "mismatch.opened", "alert_id": "al-deploy", "account_id": "A1",
             "reason": "SYNC_DELAY", "severity": "critical"}  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(topics["alerts"], json.dumps(alert).encode(), key=b"A1").get(30)
    finally:
        producer.close()
    file = Path(spec.args[spec.args.index("--file") + 1])

    def delivered() -> bool:
        return file.exists() and "al-deploy" in file.read_text()

    wait_for(lambda: router.poll() is not None or delivered(), DELIVERY_TIMEOUT_S,
             "the alert in the router's file")  # fmt: skip
    time.sleep(ROUTER_STAYS_UP_S)
    if router.poll() is not None or not delivered():
        pytest.fail((tmp_path / "router.log").read_text()[-3000:])
    return True


# -- Compose -----------------------------------------------------------------------------------


def test_the_compose_worker_serves_healthz_on_a_non_loopback_address(
    stack: tuple[str, str], run: Any, tmp_path: Path
) -> None:
    spec = _localised(_compose_spec("worker"), *stack, tmp_path)
    assert _worker_answers_on_own_address(spec, run, tmp_path) == 200


def test_the_compose_alert_router_stays_up_and_delivers_to_its_file(
    stack: tuple[str, str], run: Any, tmp_path: Path
) -> None:
    spec = _localised(_compose_spec("alert-router"), *stack, tmp_path)
    assert _router_delivers(spec, run, tmp_path, stack[0])


# -- Kubernetes (dev overlay: plaintext Kafka, Redis with AUTH) --------------------------------


def test_the_kubernetes_worker_serves_healthz_on_a_non_loopback_address(
    stack: tuple[str, str], run: Any, tmp_path: Path
) -> None:
    spec = _localised(_kubernetes_spec("StatefulSet", "limitsync-worker"), *stack, tmp_path)
    assert _worker_answers_on_own_address(spec, run, tmp_path) == 200


def test_the_kubernetes_alert_router_stays_up_and_delivers_to_its_file(
    stack: tuple[str, str], run: Any, tmp_path: Path
) -> None:
    spec = _localised(
        _kubernetes_spec("Deployment", "limitsync-alert-router"), *stack, tmp_path
    )
    assert _router_delivers(spec, run, tmp_path, stack[0])
