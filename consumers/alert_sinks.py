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
repeats. Only http and https; a redirect is a failed delivery (it could point anywhere, and a
POST that became a GET delivered nothing); and a batch spends at most ``batch_time_max_s`` on
the webhook, so the router polls again within Kafka's poll interval whatever the webhook does.

The undelivered log is shared with ``alerts redeliver`` through a lock file beside it
(``<log>.lock``): the router holds it while a batch writes rows, and redelivery while it takes
the rows out and while it puts back those that still fail, so no row is lost between them.
"""

from __future__ import annotations

import enum
import fcntl
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
from urllib.parse import urlsplit

import orjson

from schemas.money import format_yuan
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
    "shown_url",
    "urllib_post",
    "webhook_url",
]

WEBHOOK_SCHEMES = frozenset({"http", "https"})
_TIMEOUT_MIN_S = 0.05  # a request's timeout when the batch's time is all but spent (0 = none)


def webhook_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; ValueError (naming no secret) otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError("the webhook URL does not parse") from exc
    if parts.scheme not in WEBHOOK_SCHEMES or not parts.hostname:
        raise ValueError(
            f"the webhook URL must be http:// or https:// with a host, not {parts.scheme!r}://"
        )
    return url


def shown_url(url: str) -> str:
    """A webhook URL as logs, prints and undelivered rows show it: scheme, host and port only.

    A webhook's secret is often its path or query (a chat hook's token), or a password in
    its user part, so none of them is shown."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    hidden = "/***" if (parts.path.strip("/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{hidden}"


class _FileLock:
    """An exclusive ``flock`` on ``path`` (created if missing), held between acquire and
    release; blocking: the other holder keeps it for one batch at most."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock


def lock_path(undelivered: Path) -> Path:
    return undelivered.with_name(undelivered.name + ".lock")

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
    """Alerts a sink could not deliver, one JSON line each, with the sink and the error.

    The file is opened (under the shared lock) at the first row after a flush and closed by the
    flush: redelivery may have moved it away in between, and rows must go to the file that is
    at ``path`` now, not to one that was renamed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: BinaryIO | None = None
        self._lock = _FileLock(lock_path(path))
        self.count = 0

    def record(self, sink: str, target: str, error: str, attempts: int,
               alert: dict[str, Any] | None = None, raw: bytes | None = None) -> None:
        if self._fh is None:
            self._lock.acquire()
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
        """Make the rows durable and let redelivery at the file."""
        fh, self._fh = self._fh, None
        try:
            if fh is not None:
                _fsync(fh)
                fh.close()
        finally:
            self._lock.release()

    def close(self) -> None:
        self.flush()


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is returned as it is (an HTTPError carrying its status), never followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """POST and return the status (a redirect's own 3xx: never followed); a connection failure
    raises OSError."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
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
    request will fail again; nor is a 3xx.

    Between two ``flush()`` calls (one router batch) the sink spends at most
    ``batch_time_max_s`` on the webhook: each wait and each request's timeout is cut to what is
    left, and alerts after that go to the undelivered log untried.
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
        batch_time_max_s: float = 60.0,
        post: HttpPost = urllib_post,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retries_max < 0 or backoff_initial_s < 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need retries_max >= 0 and 0 <= backoff_initial_s <= backoff_max_s")
        if batch_time_max_s <= 0 or timeout_s <= 0:
            raise ValueError("batch_time_max_s and timeout_s must be positive")
        self.url = webhook_url(url)
        self.target = shown_url(url)
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
        self._batch_time_max_s = batch_time_max_s
        self._batch_ends_at: float | None = None  # set by the batch's first alert

    def backoff_s(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based)."""
        return min(self._backoff_max_s, self._backoff_initial_s * 2 ** (attempt - 1))

    def _left_s(self) -> float:
        return float("inf") if self._batch_ends_at is None else self._batch_ends_at - self._clock()

    def _attempt(self, body: bytes, headers: Mapping[str, str]) -> tuple[bool, bool, str]:
        """(delivered, worth retrying, error)."""
        try:
            timeout_s = max(_TIMEOUT_MIN_S, min(self._timeout_s, self._left_s()))
            status = self._post(self.url, body, headers, timeout_s)
        except OSError as exc:
            return False, True, f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return True, False, ""
        if 300 <= status < 400:
            return False, False, f"HTTP {status}: redirects are not followed"
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
            wait_s = self.backoff_s(attempts)
            if wait_s >= self._left_s():
                error += "; the batch's time for the webhook ran out"
                break
            self._sleep(wait_s)
        return False, attempts, error

    def deliver(self, alert: dict[str, Any]) -> Delivery:
        if not self.filter.accepts(alert):
            return Delivery.FILTERED
        now = self._clock()
        if self._batch_ends_at is None:
            self._batch_ends_at = now + self._batch_time_max_s
        if self._down_until is not None and now < self._down_until:
            self._undelivered.record(self.name, self.target, f"webhook down: {self._down_error}",
                                     0, alert)
            return Delivery.UNDELIVERED
        if self._left_s() <= 0:
            self._undelivered.record(self.name, self.target, "the batch's time for the webhook "
                                     f"({self._batch_time_max_s:g} s) ran out", 0, alert)
            return Delivery.UNDELIVERED
        delivered, attempts, error = self.send(alert)
        if delivered:
            self._down_until = None
            return Delivery.DELIVERED
        self._down_until, self._down_error = self._clock() + self._down_for_s, error
        self._undelivered.record(self.name, self.target, error, attempts, alert)
        return Delivery.UNDELIVERED

    def flush(self) -> None:
        self._batch_ends_at = None  # the router commits and polls again: a new batch
        self._undelivered.flush()

    def close(self) -> None:
        self.flush()


def _read_rows(path: Path) -> Iterable[dict[str, Any]]:
    for line in path.read_bytes().splitlines():
        if line.strip():
            yield orjson.loads(line)


def _taken_path(path: Path) -> Path:
    return path.with_name(path.name + ".redelivering")


def redeliver(path: Path, sink: WebhookSink) -> tuple[int, int]:
    """Send the undelivered webhook alerts of ``path`` again; put back only what still fails.

    Returns (delivered, left). Rows of other sinks, and rows without an alert (records that
    were not alerts at all), are put back as they are. A running router may go on writing:
    under the shared lock the rows are moved aside (``<log>.redelivering``, where a crash
    leaves them for the next run), sent without the lock, and the rows left are appended,
    under the lock again, to whatever the router wrote in the meantime.
    """
    lock = _FileLock(lock_path(path))
    taken = _taken_path(path)
    lock.acquire()
    try:
        if not taken.exists() and path.exists():
            os.replace(path, taken)
    finally:
        lock.release()
    rows = list(_read_rows(taken)) if taken.exists() else []
    delivered, kept = 0, []
    for row in rows:
        alert = row.get("alert")
        if row.get("sink") == WebhookSink.name and isinstance(alert, dict):
            ok, attempts, error = sink.send(alert)
            if ok:
                delivered += 1
                continue
            row = {**row, "target": sink.target, "error": error, "attempts": attempts,
                   "failed_at": format_us(time.time_ns() // 1000)}
        kept.append(row)
    lock.acquire()
    try:
        with path.open("ab") as fh:
            for row in kept:
                fh.write(orjson.dumps(row) + b"\n")
            _fsync(fh)
        taken.unlink(missing_ok=True)
    finally:
        lock.release()
    return delivered, len(kept)
