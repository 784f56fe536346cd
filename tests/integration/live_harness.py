"""Worker processes and topic readers for the live-pipeline tests (real broker, real Redis)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from config.settings import Settings
from limitsync.local_services import create_topics, free_port
from limitsync.producing import produce_lines
from limitsync.supervision import PARENT_PID_ENV

WORKER_READY_TIMEOUT_S = 60.0


@dataclass
class WorkerProcess:
    """One ``limitsync worker`` process with its own web port and log file."""

    env: dict[str, str]
    log_path: Path
    web_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> WorkerProcess:
        # The worker ends with this process (``limitsync up``'s rule, ``die_with_parent``):
        # a test or bench that is killed, Ctrl-C'd or timed out leaves no worker running,
        # as its broker and Redis are left none.
        env = {
            **self.env,
            "LIMITSYNC_WEB_PORT": str(self.web_port),
            PARENT_PID_ENV: str(os.getpid()),
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "limitsync.cli",
                    "worker",
                    "--loglevel",
                    os.environ.get("LIMITSYNC_TEST_LOGLEVEL", "warning"),
                ],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                return json.loads(resp.read())  # type: ignore[no-any-return]
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def wait_ready(
        self, partitions: int | None = None, timeout_s: float = WORKER_READY_TIMEOUT_S
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            h = self.health()
            if h and h["ready"] and (partitions is None or len(h["partitions"]) == partitions):
                return h
            time.sleep(0.3)
        raise AssertionError(
            f"worker not ready in {timeout_s}s: {self.health()}\n{self.log_tail()}"
        )

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class LiveSystem:
    """Topics with a unique prefix, settings and env for workers, helpers to observe them."""

    settings: Settings
    env: dict[str, str]
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker(self, data_dir: Path | None = None) -> WorkerProcess:
        """A worker (not started yet); ``data_dir`` gives it its own table directory, as
        workers with a RocksDB store need (each locks its partitions' databases)."""
        env = self.env if data_dir is None else {**self.env, "LIMITSYNC_DATA_DIR": str(data_dir)}
        w = WorkerProcess(env, self.log_dir / f"worker-{len(self.workers)}.log")
        self.workers.append(w)
        return w

    def produce(self, lines: Iterable[bytes]) -> int:
        return produce_lines(self.settings, lines)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url, decode_responses=True)

    def cache(self, account_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        client = self.redis()
        try:
            return {a: client.hgetall(f"{self.settings.cache_prefix}{a}") for a in account_ids}
        finally:
            client.close()

    def read_topic(self, name: str, idle_s: float = 2.0) -> list[dict[str, Any]]:
        """Every record of a topic so far (an isolated reader that commits nothing)."""
        from kafka import KafkaConsumer, TopicPartition

        topic = self.settings.topics[name]
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            enable_auto_commit=False,
            consumer_timeout_ms=int(idle_s * 1000),
        )
        try:
            tps = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
            ]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            return [json.loads(m.value) for m in consumer]
        finally:
            consumer.close()

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()


def make_live_system(
    kafka_bootstrap: str,
    redis_url: str,
    unique_id: str,
    log_dir: Path,
    **overrides: str,
) -> LiveSystem:
    prefix = f"{unique_id}."
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        redis_url=redis_url,
        topic_prefix=prefix,
        app_id=f"limitsync-{unique_id}",
        cache_prefix=f"{unique_id}:limit:",
    )
    create_topics(kafka_bootstrap, list(settings.topics.values()), settings.partitions)
    env = {
        **os.environ,
        "LIMITSYNC_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LIMITSYNC_REDIS_URL": redis_url,
        "LIMITSYNC_TOPIC_PREFIX": prefix,
        "LIMITSYNC_APP_ID": settings.app_id,
        "LIMITSYNC_CACHE_PREFIX": settings.cache_prefix,
        "LIMITSYNC_DATA_DIR": str(log_dir / "data"),
        "LIMITSYNC_RESCORE_ENABLED": "false",
        "LIMITSYNC_SAMPLER_INTERVAL_S": "0.5",
        **{f"LIMITSYNC_{k.upper()}": v for k, v in overrides.items()},
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("REDIS_URL", None)
    return LiveSystem(settings, env, log_dir)


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def write_state_file(settings: Settings, path: Path) -> Path:
    """The state file a CLI command reads to reach these settings' broker and Redis (as
    `limitsync up` writes it, with no stack's pid)."""
    path.write_text(json.dumps({
        "bootstrap_servers": settings.bootstrap_servers,
        "redis_url": settings.redis_url,
        "topics": settings.topics,
        "topic_prefix": settings.topic_prefix,
        "pid": 0,
    }))
    return path
