"""Publishing contract records to the input topics (``limitsync produce``, the feeder)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from limitsync.clients import kafka_python_config
from limitsync.settings import Settings
from schemas.timefmt import parse_rfc3339, to_us

__all__ = ["RecordRouter", "make_producer"]


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
        ts = max(self._last_ms + 1, occurred_ms or 0)
        self._last_ms = ts
        return topic, key, ts


def produce_lines(settings: Settings, lines: Iterable[bytes]) -> int:
    producer = make_producer(settings)
    router = RecordRouter(settings)
    n = 0
    try:
        for line in lines:
            topic, key, ts = router.route(line)
            producer.send(topic, value=line, key=key, timestamp_ms=ts)
            n += 1
        producer.flush()
    finally:
        producer.close()
    return n
