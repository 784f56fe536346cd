"""Where routed alerts go: a terminal, a JSONL file, a webhook; and where failures go.

Every sink answers each alert with a :class:`Delivery`, and the router commits an offset only
once every sink has answered for it; an answer is never "lost". A webhook that keeps failing
writes the alert to the undelivered log (fsynced before the commit), from which
``limitsync alerts redeliver`` sends it again.

The file sink is what people and scripts read after an incident, so it holds each alert
once: a router that restarts before committing gets the uncommitted records again, and the
sink drops those whose ``(alert_id, type)`` it already wrote. The keys are rebuilt from the
file's tail on start, within bounds (``tail_bytes_max``, ``dedupe_keys_max``): redelivery
after a restart covers only the records since the last commit, which are recent.
A webhook gets at least once, with an ``Idempotency-Key`` header so the receiver can drop
repeats.
"""

from __future__ import annotations

import enum
import os
import sys
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TextIO

import orjson

from limitsync.report import format_yuan
from schemas.timefmt import format_us

__all__ = [
    "SEVERITIES",
    "AlertFilter",
    "DedupeWindow",
    "Delivery",
    "FileSink",
    "HttpPost",
    "Sink",
    "StdoutSink",
    "UndeliveredLog",
    "WebhookSink",
    "alert_key",
    "format_alert_line",
    "redeliver",
    "urllib_post",
]

SEVERITIES = ("major", "critical")  # lowest first
_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


class Delivery(enum.Enum):
    DELIVERED = "delivered"
    FILTERED = "filtered"  # the sink's filter does not want it
    DUPLICATE = "duplicate"  # already delivered (file sink, after a restart)
    UNDELIVERED = "undelivered"  # written to the undelivered log instead


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts a sink wants. An unknown severity passes a severity filter: an alert
    nobody expected is better seen than silently dropped."""

    min_severity: str | None = None
    reasons: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.min_severity is not None and self.min_severity not in _SEVERITY_RANK:
            raise ValueError(f"min_severity must be one of {SEVERITIES}, got {self.min_severity!r}")

    def accepts(self, alert: Mapping[str, Any]) -> bool:
        if self.reasons is not None and alert.get("reason") not in self.reasons:
            return False
        if self.min_severity is None:
            return True
        rank = _SEVERITY_RANK.get(str(alert.get("severity")), len(SEVERITIES))
        return rank >= _SEVERITY_RANK[self.min_severity]


def alert_key(alert: Mapping[str, Any]) -> tuple[str, str]:
    """One alert record: a drift's opened, escalated and resolved records share the id."""
    return (str(alert.get("alert_id")), str(alert.get("type")))


class DedupeWindow:
    """The most recent ``keys_max`` keys, oldest forgotten first."""

    def __init__(self, keys_max: int) -> None:
        if keys_max < 1:
            raise ValueError("keys_max must be >= 1")
        self._keys: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._keys_max = keys_max

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: tuple[str, str]) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._keys_max:
            self._keys.popitem(last=False)


class Sink(Protocol):
    name: str
    filter: AlertFilter

    def deliver(self, alert: dict[str, Any]) -> Delivery: ...

    def flush(self) -> None:
        """Make every delivery so far durable; called before the router commits."""

    def close(self) -> None: ...


def _fsync(fh: BinaryIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


class UndeliveredLog:
    """Alerts a sink could not deliver, one JSON line each, with the sink and the error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: BinaryIO | None = None
        self.count = 0

    def record(self, sink: str, target: str, error: str, attempts: int,
               alert: dict[str, Any] | None = None, raw: bytes | None = None) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        row: dict[str, Any] = {
            "sink": sink,
            "target": target,
            "error": error,
            "attempts": attempts,
            "failed_at": format_us(time.time_ns() // 1000),
            "alert": alert,
        }
        if raw is not None:
            row["original"] = raw.decode("utf-8", errors="backslashreplace")
        self._fh.write(orjson.dumps(row) + b"\n")
        self.count += 1

    def flush(self) -> None:
        if self._fh is not None:
            _fsync(self._fh)

    def close(self) -> None:
        if self._fh is not None:
            _fsync(self._fh)
            self._fh.close()
            self._fh = None


def _money(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return format_yuan(value)
    return "none" if value is None else str(value)


def format_alert_line(alert: Mapping[str, Any]) -> str:
    """One line a person can read in a terminal or a log."""
    kind = str(alert.get("type", "?"))
    parts = [
        str(alert.get("detected_at") or alert.get("resolved_at") or "-"),
        str(alert.get("severity", "?")).upper(),
        kind,
        f"account={alert.get('account_id')}",
        str(alert.get("reason", "?")),
        f"expected={_money(alert.get('expected_available'))}",
        f"displayed={_money(alert.get('displayed_available'))}",
    ]
    if alert.get("source"):  # which display drifted: app (what users see) or cache
        parts.insert(3, f"source={alert['source']}")
    if "cache_available" in alert:  # an app alert says what the cache held
        parts.append(f"cache={_money(alert['cache_available'])}")
    drift = alert.get("drift")
    if isinstance(drift, int) and not isinstance(drift, bool):
        parts.append(f"drift={'+' if drift > 0 else ''}{format_yuan(drift)}")
    if alert.get("age_seconds") is not None:
        parts.append(f"age={alert['age_seconds']}s")
    if alert.get("payment_id"):
        parts.append(f"payment={alert['payment_id']}")
    if alert.get("resolution"):
        parts.append(f"resolution={alert['resolution']}")
    parts.append(f"alert={alert.get('alert_id')}")
    return " ".join(parts)


class StdoutSink:
    name = "stdout"

    def __init__(self, alert_filter: AlertFilter | None = None, stream: TextIO | None = None):
        self.filter = alert_filter or AlertFilter()
        self._stream = stream

    def deliver(self, alert: dict[str, Any]) -> Delivery:
        if not self.filter.accepts(alert):
            return Delivery.FILTERED
        print(format_alert_line(alert), file=self._stream or sys.stdout)
        return Delivery.DELIVERED

    def flush(self) -> None:
        (self._stream or sys.stdout).flush()

    def close(self) -> None:
        self.flush()


class FileSink:
    """A JSONL file holding each alert record once."""

    name = "file"

    def __init__(
        self,
        path: Path,
        alert_filter: AlertFilter | None = None,
        *,
        dedupe_keys_max: int = 200_000,
        tail_bytes_max: int = 64 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.filter = alert_filter or AlertFilter()
        self._seen = DedupeWindow(dedupe_keys_max)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._load_tail(tail_bytes_max)
        self._fh: BinaryIO = path.open("ab")

    def _load_tail(self, tail_bytes_max: int) -> None:
        """Learn the keys already written; cut a partial last line a crash left behind."""
        if not self.path.exists():
            return
        with self.path.open("r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - tail_bytes_max)
            fh.seek(start)
            data = fh.read()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                fh.truncate(start + cut)
                data = data[:cut]
        lines = data.split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first line is cut in the middle
        for line in lines:
            if line:
                try:
                    self._seen.add(alert_key(orjson.loads(line)))
                except orjson.JSONDecodeError:
                    continue

    def deliver(self, alert: dict[str, Any]) -> Delivery:
        if not self.filter.accepts(alert):
            return Delivery.FILTERED
        key = alert_key(alert)
        if key in self._seen:
            return Delivery.DUPLICATE
        self._fh.write(orjson.dumps(alert) + b"\n")
        self._seen.add(key)
        return Delivery.DELIVERED

    def flush(self) -> None:
        _fsync(self._fh)

    def close(self) -> None:
        _fsync(self._fh)
        self._fh.close()


HttpPost = Callable[[str, bytes, Mapping[str, str], float], int]


def urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """POST and return the status; a connection failure raises OSError."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def _retryable(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


class WebhookSink:
    """POSTs each alert as JSON; retries with capped exponential backoff, then gives up to the
    undelivered log.

    After one alert has used up its retries the webhook counts as down for ``down_for_s``:
    alerts in that time go straight to the undelivered log, so an outage costs one retry
    budget per ``down_for_s`` rather than per alert (the router must poll again within
    Kafka's ``max.poll.interval.ms``). A 4xx other than 408/425/429 is not retried: the same
    request will fail again.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        undelivered: UndeliveredLog,
        alert_filter: AlertFilter | None = None,
        *,
        retries_max: int = 5,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        timeout_s: float = 5.0,
        down_for_s: float = 30.0,
        post: HttpPost = urllib_post,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retries_max < 0 or backoff_initial_s < 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need retries_max >= 0 and 0 <= backoff_initial_s <= backoff_max_s")
        self.url = url
        self.filter = alert_filter or AlertFilter()
        self._undelivered = undelivered
        self._retries_max = retries_max
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._timeout_s = timeout_s
        self._down_for_s = down_for_s
        self._post = post
        self._sleep = sleep
        self._clock = clock
        self._down_until: float | None = None
        self._down_error = ""

    def backoff_s(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based)."""
        return min(self._backoff_max_s, self._backoff_initial_s * 2 ** (attempt - 1))

    def _attempt(self, body: bytes, headers: Mapping[str, str]) -> tuple[bool, bool, str]:
        """(delivered, worth retrying, error)."""
        try:
            status = self._post(self.url, body, headers, self._timeout_s)
        except OSError as exc:
            return False, True, f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return True, False, ""
        return False, _retryable(status), f"HTTP {status}"

    def send(self, alert: Mapping[str, Any]) -> tuple[bool, int, str]:
        """One alert with retries: (delivered, attempts, last error)."""
        body = orjson.dumps(alert)
        alert_id, kind = alert_key(alert)
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"{alert_id}:{kind}"}
        attempts, error = 0, ""
        while attempts <= self._retries_max:
            attempts += 1
            delivered, retry, error = self._attempt(body, headers)
            if delivered:
                return True, attempts, ""
            if not retry or attempts > self._retries_max:
                break
            self._sleep(self.backoff_s(attempts))
        return False, attempts, error

    def deliver(self, alert: dict[str, Any]) -> Delivery:
        if not self.filter.accepts(alert):
            return Delivery.FILTERED
        now = self._clock()
        if self._down_until is not None and now < self._down_until:
            self._undelivered.record(self.name, self.url, f"webhook down: {self._down_error}",
                                     0, alert)
            return Delivery.UNDELIVERED
        delivered, attempts, error = self.send(alert)
        if delivered:
            self._down_until = None
            return Delivery.DELIVERED
        self._down_until, self._down_error = self._clock() + self._down_for_s, error
        self._undelivered.record(self.name, self.url, error, attempts, alert)
        return Delivery.UNDELIVERED

    def flush(self) -> None:
        self._undelivered.flush()

    def close(self) -> None:
        self._undelivered.flush()


def _read_rows(path: Path) -> Iterable[dict[str, Any]]:
    for line in path.read_bytes().splitlines():
        if line.strip():
            yield orjson.loads(line)


def redeliver(path: Path, sink: WebhookSink) -> tuple[int, int]:
    """Send the undelivered webhook alerts of ``path`` again; keep in it only what still fails.

    Returns (delivered, left). Rows of other sinks, and rows without an alert (records that
    were not alerts at all), stay as they are. The file is replaced atomically.
    """
    delivered, kept = 0, []
    for row in _read_rows(path):
        alert = row.get("alert")
        if row.get("sink") == WebhookSink.name and isinstance(alert, dict):
            ok, attempts, error = sink.send(alert)
            if ok:
                delivered += 1
                continue
            row = {**row, "error": error, "attempts": attempts,
                   "failed_at": format_us(time.time_ns() // 1000)}
        kept.append(row)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        for row in kept:
            fh.write(orjson.dumps(row) + b"\n")
        _fsync(fh)
    os.replace(tmp, path)
    return delivered, len(kept)
