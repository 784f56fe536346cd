"""Contingency drills (issue 15, 应急预案 / 定期演练): rehearse a fault on a running system and
report whether monitoring caught it and the system healed, against the SLA.

    limitsync drill SCENARIO [--accounts N] [--state-file F] [--json] [--metrics-file F]

A drill never touches a real user's limit: it creates its own accounts (``drill-...``, a
credit line each), waits until their cache entries are written, then injects the fault:

- ``cache-divergence``: a wrong ``available`` written into each account's cache hash, under
  the version it had (so only a reader of the cache can find it: the sampler);
- ``cache-loss``: each account's cache key deleted;
- ``worker-kill``: one worker of the stack SIGKILLed (the accounts are made on its partitions),
  and a drawdown sent for each account right after;
- ``redis-outage``: the local Redis stopped (SIGSTOP: it holds every connection and answers
  nothing) for ``--outage-s``, a drawdown sent for each account meanwhile.

Detected: a ``mismatch.opened`` alert of the account, detected after the injection (its
``detected_at``). Healed: the account's cache hash holds the drill's expected available limit
(polled every ``POLL_S``). Lost events: drill events the account's owner does not list among
its applied changes (explain). Passed: every account detected within SLA + tolerance, every
account healed, nothing lost.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from schemas.timefmt import format_us, parse_rfc3339, to_us

if TYPE_CHECKING:  # pydantic-settings is start-up weight for every other subcommand
    from config.settings import Settings

__all__ = [
    "SCENARIOS", "DrillError", "DrillOptions", "metrics_text", "render", "run_drill", "summarize"
]

SCENARIOS = ("cache-divergence", "cache-loss", "worker-kill", "redis-outage")
ACCOUNTS_MAX = 1000  # a drill is a rehearsal, not a load test
LINE = 100_000  # each drill account's credit line: 1,000.00 yuan in fen
DRAWDOWN = 12_345  # the change sent during worker-kill and redis-outage: 123.45 yuan
WRONG_BY = 77_700  # what cache-divergence adds to the available limit: 777.00 yuan
POLL_S = 0.1  # how often the cache is read for healing
BASELINE_TIMEOUT_S = 60.0  # for the drill accounts' first cache writes
HTTP_TIMEOUT_S = 5.0
ACCOUNT_SEARCH_MAX = 100_000  # ids tried to find N on the victim worker's partitions


class DrillError(RuntimeError):
    """The drill could not run (no stack, no second worker, Redis not local...)."""


@dataclass(frozen=True)
class DrillOptions:
    scenario: str
    accounts: int = 20
    sla_s: float = 60.0
    tolerance_s: float = 5.0
    outage_s: float | None = None  # redis-outage: default twice the SLA, so it must be caught
    timeout_s: float | None = None  # default: enough for the SLA, tolerance and outage


@dataclass
class _Target:
    account_id: str
    expected: int
    events: list[str] = field(default_factory=list)


@dataclass
class _Progress:
    detect_s: dict[str, float] = field(default_factory=dict)
    heal_s: dict[str, float] = field(default_factory=dict)


# -- the report (pure) -------------------------------------------------------------------


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "max": None}
    return {"p50": round(statistics.median(values), 3), "max": round(max(values), 3)}


def summarize(
    scenario: str,
    accounts: list[str],
    detect_s: dict[str, float],
    heal_s: dict[str, float],
    sla_s: float,
    tolerance_s: float,
    lost_events: int,
) -> dict[str, Any]:
    """The drill's JSON report from what was measured per account. An account whose cache
    held the right value again within the SLA never breached, so there was nothing to detect
    (a killed worker's partitions taken over well inside the SLA); every other one must be
    detected within the SLA and the tolerance."""
    bound = sla_s + tolerance_s
    in_time = {a for a in accounts if a in detect_s and detect_s[a] <= bound}
    quiet = [a for a in accounts if a in heal_s and heal_s[a] <= sla_s]
    passed = (
        all(a in in_time for a in accounts if a not in quiet)
        and all(a in heal_s for a in accounts)
        and lost_events == 0
    )
    return {
        "scenario": scenario,
        "accounts": len(accounts),
        "healed_within_sla": len(quiet),
        "detected": sum(a in detect_s for a in accounts),
        "detected_within_sla": len(in_time),
        "healed": sum(a in heal_s for a in accounts),
        "detect_s": _spread([detect_s[a] for a in accounts if a in detect_s]),
        "heal_s": _spread([heal_s[a] for a in accounts if a in heal_s]),
        "sla_s": sla_s,
        "tolerance_s": tolerance_s,
        "lost_events": lost_events,
        "passed": passed,
        "per_account": [
            {"account_id": a, "detect_s": detect_s.get(a), "heal_s": heal_s.get(a)}
            for a in accounts
        ],
    }


def render(report: dict[str, Any]) -> str:
    """The human summary table."""
    n = report["accounts"]
    verdict = "PASSED" if report["passed"] else "FAILED"

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    d, h = report["detect_s"], report["heal_s"]
    return "\n".join([
        f"drill {report['scenario']}: {verdict}  ({n} accounts, SLA {report['sla_s']:g} s "
        f"+ tolerance {report['tolerance_s']:g} s)",
        f"  {'':10}{'done':>10}{'in time':>10}{'p50 s':>10}{'max s':>10}",
        f"  {'detected':10}{report['detected']:>7}/{n:<2}{report['detected_within_sla']:>10}"
        f"{cell(d['p50']):>10}{cell(d['max']):>10}",
        f"  {'healed':10}{report['healed']:>7}/{n:<2}{'':>10}"
        f"{cell(h['p50']):>10}{cell(h['max']):>10}",
        f"  lost events: {report['lost_events']}",
        *(
            [f"  healed within the SLA (no breach, nothing to detect): {quiet}/{n}"]
            if (quiet := report["healed_within_sla"])
            else []
        ),
    ])


def metrics_text(report: dict[str, Any], now_s: float) -> str:
    """The drill as Prometheus text (a node-exporter textfile), so scheduled drills alert."""
    s = report["scenario"]
    lines = [
        "# HELP limitsync_drill_passed 1 when the last drill of the scenario passed",
        "# TYPE limitsync_drill_passed gauge",
        f'limitsync_drill_passed{{scenario="{s}"}} {int(report["passed"])}',
        "# HELP limitsync_drill_detect_seconds_max Slowest detection of the last drill",
        "# TYPE limitsync_drill_detect_seconds_max gauge",
        f'limitsync_drill_detect_seconds_max{{scenario="{s}"}} '
        f'{report["detect_s"]["max"] if report["detect_s"]["max"] is not None else "NaN"}',
        "# HELP limitsync_drill_heal_seconds_max Slowest heal of the last drill",
        "# TYPE limitsync_drill_heal_seconds_max gauge",
        f'limitsync_drill_heal_seconds_max{{scenario="{s}"}} '
        f'{report["heal_s"]["max"] if report["heal_s"]["max"] is not None else "NaN"}',
        "# HELP limitsync_drill_lost_events Events lost in the last drill",
        "# TYPE limitsync_drill_lost_events gauge",
        f'limitsync_drill_lost_events{{scenario="{s}"}} {report["lost_events"]}',
        "# HELP limitsync_drill_last_run_timestamp_seconds When the last drill ended",
        "# TYPE limitsync_drill_last_run_timestamp_seconds gauge",
        f'limitsync_drill_last_run_timestamp_seconds{{scenario="{s}"}} {now_s:.3f}',
    ]
    return "\n".join(lines) + "\n"


# -- running one -------------------------------------------------------------------------


def run_drill(settings: Settings, web_urls: list[str], options: DrillOptions) -> dict[str, Any]:
    """Run one drill against the system; its JSON report."""
    if options.scenario not in SCENARIOS:
        raise DrillError(f"unknown scenario {options.scenario!r}; one of {', '.join(SCENARIOS)}")
    if not 1 <= options.accounts <= ACCOUNTS_MAX:
        raise DrillError(f"--accounts must be 1..{ACCOUNTS_MAX}")
    drill = _Drill(settings, web_urls, options)
    try:
        return drill.run()
    finally:
        drill.close()


class _Drill:
    def __init__(self, settings: Settings, web_urls: list[str], options: DrillOptions) -> None:
        from kafka import KafkaConsumer

        from config.clients import kafka_python_config, make_redis

        self.settings = settings
        self.urls = web_urls
        self.options = options
        self.run_id = uuid.uuid4().hex[:8]
        self.redis = make_redis(settings)
        self.alerts = KafkaConsumer(**kafka_python_config(settings), enable_auto_commit=False)
        self.redis_stopped = False

    def close(self) -> None:
        self.alerts.close()
        self.redis.close()

    def run(self) -> dict[str, Any]:
        o = self.options
        targets = self._targets()
        self._send([_credit_line(t, self.run_id) for t in targets])
        self._wait(lambda: self._healed_now(targets) == len(targets), BASELINE_TIMEOUT_S,
                   "the drill accounts' first cache writes")
        self._seek_alerts_to_end()
        progress = _Progress()
        outage_s = o.outage_s if o.outage_s is not None else 2 * o.sla_s
        timeout_s = o.timeout_s or (max(60.0, 4 * (o.sla_s + o.tolerance_s)) + outage_s)
        with self._inject(targets, outage_s) as (t0, fault_over):
            self._watch(targets, progress, t0, t0 + timeout_s, fault_over)
        lost = self._lost_events(targets)
        return summarize(
            o.scenario, [t.account_id for t in targets], progress.detect_s, progress.heal_s,
            o.sla_s, o.tolerance_s, lost,
        )

    # -- accounts ----------------------------------------------------------------------

    def _targets(self) -> list[_Target]:
        """The drill's own accounts; for worker-kill, all on the victim's partitions."""
        n, prefix = self.options.accounts, f"drill-{self.options.scenario}-{self.run_id}"
        ids: list[str] = []
        if self.options.scenario == "worker-kill":
            from streams.live import partition_of

            self.victim = self._victim()
            mine = set(self.victim["partitions"])
            for k in range(ACCOUNT_SEARCH_MAX):
                aid = f"{prefix}-{k:05d}"
                if partition_of(aid, self.settings.partitions) in mine:
                    ids.append(aid)
                    if len(ids) == n:
                        break
        else:
            ids = [f"{prefix}-{k:05d}" for k in range(n)]
        return [_Target(aid, LINE + i) for i, aid in enumerate(ids)]

    def _victim(self) -> dict[str, Any]:
        healths = [h for h in (_get_json(f"{u}/healthz") for u in self.urls) if h is not None]
        live = [h for h in healths if h.get("ready") and h.get("partitions") and h.get("pid")]
        if len(live) < 2:
            raise DrillError(
                f"worker-kill needs a stack with at least 2 ready workers; {len(live)} answer"
            )
        victim = live[-1]
        if not _is_local_worker(int(victim["pid"])):
            raise DrillError(f"worker pid {victim['pid']} is not a limitsync worker on this host")
        return victim

    def _send(self, events: list[dict[str, Any]]) -> None:
        from limitsync.producing import produce_lines

        produce_lines(self.settings, [orjson.dumps(e) for e in events])

    # -- the fault ---------------------------------------------------------------------

    @contextmanager
    def _inject(
        self, targets: list[_Target], outage_s: float
    ) -> Iterator[tuple[float, Callable[[], bool]]]:
        """Inject the scenario's fault; yields its wall time and whether the fault is over
        (Redis back, for an outage). Whatever happens, a stopped Redis is resumed."""
        scenario = self.options.scenario
        keys = [f"{self.settings.cache_prefix}{t.account_id}" for t in targets]
        if scenario == "cache-divergence":
            t0 = time.time()
            with self.redis.pipeline(transaction=False) as pipe:
                for key, t in zip(keys, targets, strict=True):
                    pipe.hset(key, "available", t.expected + WRONG_BY)
                pipe.execute()
            yield t0, lambda: True
        elif scenario == "cache-loss":
            t0 = time.time()
            self.redis.delete(*keys)
            yield t0, lambda: True
        elif scenario == "worker-kill":
            t0 = time.time()
            os.kill(int(self.victim["pid"]), signal.SIGKILL)
            self._draw(targets)
            yield t0, lambda: True
        else:
            pid = self._local_redis_pid()
            t0 = time.time()
            os.kill(pid, signal.SIGSTOP)
            self.redis_stopped = True
            try:
                self._draw(targets)
                yield t0, lambda: self._resume_after(pid, t0 + outage_s)
            finally:
                if self.redis_stopped:
                    os.kill(pid, signal.SIGCONT)
                    self.redis_stopped = False

    def _resume_after(self, pid: int, at: float) -> bool:
        if self.redis_stopped and time.time() >= at:
            os.kill(pid, signal.SIGCONT)
            self.redis_stopped = False
        return not self.redis_stopped

    def _draw(self, targets: list[_Target]) -> None:
        events = []
        for t in targets:
            event = _drawdown(t, self.run_id)
            t.expected -= DRAWDOWN
            t.events.append(event["event_id"])
            events.append(event)
        self._send(events)

    def _local_redis_pid(self) -> int:
        host = urllib.parse.urlsplit(self.settings.redis_url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise DrillError(f"redis-outage stops a local stack's Redis only, not {host}")
        pid = int(self.redis.info("server")["process_id"])
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError as exc:
            raise DrillError(f"Redis pid {pid} is not a process of this host: {exc}") from None
        if "redis" not in name:
            raise DrillError(f"pid {pid} is {name!r}, not redis-server")
        return pid

    # -- watching ----------------------------------------------------------------------

    def _seek_alerts_to_end(self) -> None:
        from kafka import TopicPartition

        topic = self.settings.topics["alerts"]
        parts = self.alerts.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self.alerts.assign(tps)
        self.alerts.seek_to_end(*tps)
        for tp in tps:
            self.alerts.position(tp)  # resolve the end now, before the injection

    def _watch(
        self,
        targets: list[_Target],
        progress: _Progress,
        t0: float,
        deadline: float,
        fault_over: Callable[[], bool],
    ) -> None:
        wanted = {t.account_id for t in targets}
        while time.time() < deadline:
            for batch in self.alerts.poll(timeout_ms=int(POLL_S * 1000)).values():
                for msg in batch:
                    self._saw_alert(msg.value, wanted, t0, progress)
            if fault_over():
                now = time.time()
                for t in self._healed(targets):
                    progress.heal_s.setdefault(t.account_id, round(now - t0, 3))
            if len(progress.heal_s) == len(wanted) and all(
                a in progress.detect_s or progress.heal_s[a] <= self.options.sla_s
                for a in wanted
            ):
                return  # a drift closed within the SLA never breaches: no alert will come

    def _saw_alert(
        self, value: bytes, wanted: set[str], t0: float, progress: _Progress
    ) -> None:
        try:
            alert = orjson.loads(value)
            account, kind = alert["account_id"], alert["type"]
            detected = to_us(parse_rfc3339(alert["detected_at"])) / 1e6
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        if kind == "mismatch.opened" and account in wanted and detected >= t0:
            progress.detect_s.setdefault(account, round(detected - t0, 3))

    def _healed(self, targets: list[_Target]) -> list[_Target]:
        keys = [f"{self.settings.cache_prefix}{t.account_id}" for t in targets]
        with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, "available")
            seen = pipe.execute()
        return [t for t, v in zip(targets, seen, strict=True) if v is not None
                and str(v).lstrip("-").isdigit() and int(v) == t.expected]

    def _healed_now(self, targets: list[_Target]) -> int:
        return len(self._healed(targets))

    def _wait(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(POLL_S * 3)
        raise DrillError(f"timed out after {timeout_s:g} s waiting for {what}")

    def _lost_events(self, targets: list[_Target]) -> int:
        """Drill events the account's owner does not list among its changes."""
        lost = 0
        for t in targets:
            report = None
            for url in self.urls:
                q = urllib.parse.quote(t.account_id)
                report = _get_json(f"{url}/accounts/{q}/explain")
                if report is not None:
                    break
            applied = {c["event_id"] for c in report["changes"]} if report else set()
            lost += sum(e not in applied for e in t.events)
        return lost


def _credit_line(t: _Target, run_id: str) -> dict[str, Any]:
    event_id = f"drill-{run_id}-{t.account_id}-line"
    t.events.append(event_id)
    return {
        "event_id": event_id,
        "type": "credit_line.changed",
        "account_id": t.account_id,
        "occurred_at": format_us(time.time_ns() // 1000),
        "schema_version": 1,
        "credit_line": t.expected,
        "version": 1,
        "cause": "initial",
    }


def _drawdown(t: _Target, run_id: str) -> dict[str, Any]:
    return {
        "event_id": f"drill-{run_id}-{t.account_id}-draw",
        "type": "drawdown.booked",
        "account_id": t.account_id,
        "occurred_at": format_us(time.time_ns() // 1000),
        "schema_version": 1,
        "loan_id": f"drill-{run_id}",
        "principal": DRAWDOWN,
    }


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp:
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _is_local_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"worker" in cmdline and any(b"limitsync" in part for part in cmdline)
