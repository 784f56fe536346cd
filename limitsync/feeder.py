"""Feeds simulator traffic into the live system at a steady rate (``up --simulate``).

Simulated times are moved to the wall clock at send time, since the live clock is the wall
clock; credit-line versions become decision times in microseconds (the convention the
rescore agent uses), so simulated risk decisions and live rescores order by time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import orjson

from config.settings import Settings
from limitsync.producing import RecordRouter, make_producer
from schemas.timefmt import format_us

__all__ = ["Feeder"]


RETIMED_MAX = 10_000  # remembered retimed records, so a re-sent duplicate stays identical


def retime(line: bytes, now_us: int) -> bytes:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(obj, dict) or not isinstance(obj.get("occurred_at"), str):
        return line
    obj["occurred_at"] = format_us(now_us)
    if obj.get("type") == "credit_line.changed" and isinstance(obj.get("version"), int):
        obj["version"] = now_us
    return orjson.dumps(obj)


class Feeder(threading.Thread):
    def __init__(self, settings: Settings, lines: Iterator[bytes], rate_per_s: float) -> None:
        super().__init__(name="limitsync-feeder", daemon=True)
        self.settings = settings
        self.lines = lines
        self.rate_per_s = rate_per_s
        self.sent = 0
        self._halt = threading.Event()
        self._recent: dict[bytes, bytes] = {}

    def _retimed(self, line: bytes) -> bytes:
        """Move to the wall clock; a duplicate of a recent record is re-sent byte-identical."""
        cached = self._recent.get(line)
        if cached is not None:
            return cached
        value = retime(line, time.time_ns() // 1000)
        self._recent[line] = value
        if len(self._recent) > RETIMED_MAX:
            del self._recent[next(iter(self._recent))]
        return value

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        producer = make_producer(self.settings)
        router = RecordRouter(self.settings)
        interval = 1.0 / self.rate_per_s
        next_at = time.monotonic()
        try:
            for line in self.lines:
                if self._halt.is_set():
                    break
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._halt.wait(delay)
                next_at += interval
                value = self._retimed(line)
                topic, key, ts = router.route(value)
                producer.send(topic, value=value, key=key, timestamp_ms=ts)
                self.sent += 1
        finally:
            producer.flush(timeout=5)
            producer.close(timeout=5)
