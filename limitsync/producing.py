"""Publishing contract records to the input topics (``limitsync produce``, the feeder)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
from kafka.errors import KafkaError

from limitsync.clients import kafka_python_config
from limitsync.settings import Settings
from schemas.timefmt import parse_rfc3339, to_us

__all__ = ["ProduceError", "RecordRouter", "make_producer", "produce_lines"]

# Kafka refuses a record whose timestamp is further ahead of the broker's clock than
# log.message.timestamp.after.max.ms (one hour by default since Kafka 4.0), and with it the
# whole batch it travels in; a record stamped ahead of this is given the previous record's
# time plus one instead (it is dead-lettered by the workers anyway).
TIMESTAMP_AHEAD_MAX_MS = 10 * 60 * 1000


class ProduceError(RuntimeError):
    """Records the broker did not take (each is lost unless sent again)."""


def make_producer(settings: Settings) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(
        **kafka_python_config(settings),
        acks="all",
        linger_ms=5,
        batch_size=64 * 1024,
    )


class RecordRouter:
    """Picks topic, key and record timestamp for one raw line, keeping the file's order.

    ``limit.displayed`` goes to ``displayed``, everything else (bad lines included, so
    the workers dead-letter them) to ``account-events``. Record timestamps are the event
    time, made strictly increasing in file order, so that a replay from Kafka that merges
    partitions by timestamp reads the records in the order of the file.
    """

    def __init__(self, settings: Settings) -> None:
        self.events_topic = settings.topics["account_events"]
        self.displayed_topic = settings.topics["displayed"]
        self._last_ms = 0

    def route(self, line: bytes) -> tuple[str, bytes | None, int]:
        topic, key, occurred_ms = self.events_topic, None, None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            if obj.get("type") == "limit.displayed":
                topic = self.displayed_topic
            if isinstance(obj.get("account_id"), str):
                key = obj["account_id"].encode()
            if isinstance(obj.get("occurred_at"), str):
                try:
                    occurred_ms = to_us(parse_rfc3339(obj["occurred_at"])) // 1000
                except ValueError:
                    occurred_ms = None
        if occurred_ms is not None and occurred_ms > time.time() * 1000 + TIMESTAMP_AHEAD_MAX_MS:
            occurred_ms = None
        ts = max(self._last_ms + 1, occurred_ms or 0)
        self._last_ms = ts
        return topic, key, ts


def produce_lines(settings: Settings, lines: Iterable[bytes]) -> int:
    """Send every line; raise ``ProduceError`` naming what the broker refused, if anything."""
    producer = make_producer(settings)
    router = RecordRouter(settings)
    n = 0
    failed: list[tuple[int, BaseException]] = []
    try:
        for line in lines:
            topic, key, ts = router.route(line)
            index = n
            n += 1
            try:
                sent = producer.send(topic, value=line, key=key, timestamp_ms=ts)
            except KafkaError as exc:  # refused before sending (too large for a request)
                failed.append((index, exc))
                continue
            sent.add_errback(lambda exc, i=index: failed.append((i, exc)))
        producer.flush()
    finally:
        producer.close()
    if failed:
        first_line, first_error = min(failed, key=lambda f: f[0])
        raise ProduceError(
            f"the broker refused {len(failed):,} of {n:,} records (first: line "
            f"{first_line + 1}: {first_error!r}); they were not produced"
        )
    return n
