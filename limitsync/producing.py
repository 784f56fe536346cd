"""Publishing contract records to the input topics (``limitsync produce``, the feeder)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka.errors import KafkaError as AIOKafkaError
from kafka.errors import KafkaError

from config.clients import kafka_python_config
from config.settings import Settings
from schemas.timefmt import parse_rfc3339, to_us
from streams.kafka_out import key_partition

__all__ = ["ProduceError", "RecordRouter", "make_producer", "produce_lines"]

# Kafka refuses a record whose timestamp is further ahead of the broker's clock than
# log.message.timestamp.after.max.ms (one hour by default since Kafka 4.0), and with it the
# whole batch it travels in; a record stamped ahead of this is given the previous record's
# time plus one instead (it is dead-lettered by the workers anyway).
TIMESTAMP_AHEAD_MAX_MS = 10 * 60 * 1000


class ProduceError(RuntimeError):
    """Records the broker did not take (each is lost unless sent again)."""


KafkaErrors = (KafkaError, AIOKafkaError)


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
    """Send every line; raise ``ProduceError`` naming what the broker refused, if anything.

    Records go out as whole batches per partition (aiokafka's batch API: a few microseconds a
    record, where a producer's per-record send costs tens), in the order of the file within
    each partition, with at most ``IN_FLIGHT_BATCHES_MAX`` batches waiting for the broker.
    """
    n, failed = asyncio.run(_produce(settings, lines))
    if failed:
        first_line, first_error = min(failed, key=lambda f: f[0])
        raise ProduceError(
            f"the broker refused {len(failed):,} of {n:,} records (first: line "
            f"{first_line + 1}: {first_error!r}); they were not produced"
        )
    return n


IN_FLIGHT_BATCHES_MAX = 64
BATCH_BYTES_MAX = 512 * 1024
ALONE_BYTES_MIN = 256 * 1024


class _Open:
    """A batch being filled for one partition: its builder and the lines in it."""

    __slots__ = ("builder", "lines")

    def __init__(self, builder: Any) -> None:
        self.builder = builder
        self.lines: list[int] = []


async def _produce(
    settings: Settings, lines: Iterable[bytes]
) -> tuple[int, list[tuple[int, BaseException]]]:
    from aiokafka import AIOKafkaProducer

    from config.clients import aiokafka_config

    producer = AIOKafkaProducer(
        **aiokafka_config(settings), acks="all", max_batch_size=BATCH_BYTES_MAX
    )
    await producer.start()
    router = RecordRouter(settings)
    failed: list[tuple[int, BaseException]] = []
    in_flight: list[tuple[asyncio.Future[Any], list[int]]] = []
    open_batches: dict[tuple[str, int], _Open] = {}
    partitions: dict[str, int] = {}

    async def settle(keep: int) -> None:
        while len(in_flight) > keep:
            delivery, numbers = in_flight.pop(0)
            try:
                await delivery
            except KafkaErrors as exc:
                failed.extend((i, exc) for i in numbers)

    async def send(topic: str, partition: int, batch: _Open) -> None:
        delivery = await producer.send_batch(batch.builder, topic, partition=partition)
        in_flight.append((delivery, batch.lines))
        await settle(IN_FLIGHT_BATCHES_MAX)

    n = 0
    try:
        for line in lines:
            index, n = n, n + 1
            topic, key, ts = router.route(line)
            if topic not in partitions:
                partitions[topic] = len(await producer.partitions_for(topic))
            count = partitions[topic]
            partition = key_partition(key, count) if key is not None else index % count
            batch = open_batches.get((topic, partition))
            if batch is None:
                batch = open_batches[(topic, partition)] = _Open(producer.create_batch())
            elif len(line) > ALONE_BYTES_MIN and batch.lines:
                # A record the broker may refuse for its size travels alone: a refused batch
                # takes every record in it.
                await send(topic, partition, batch)
                batch = open_batches[(topic, partition)] = _Open(producer.create_batch())
            if batch.builder.append(key=key, value=line, timestamp=ts) is None:
                if batch.lines:
                    await send(topic, partition, batch)
                batch = open_batches[(topic, partition)] = _Open(producer.create_batch())
                if batch.builder.append(key=key, value=line, timestamp=ts) is None:
                    failed.append((index, ProduceError("larger than a produce batch may be")))
                    continue
            batch.lines.append(index)
        for (topic, partition), batch in open_batches.items():
            if batch.lines:
                await send(topic, partition, batch)
        await settle(0)
    finally:
        await producer.stop()
    return n, failed
