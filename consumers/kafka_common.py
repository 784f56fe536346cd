"""The kafka-python consumer every tool here uses.

kafka-python (not Faust) because these tools are plain loops that must decide exactly when
an offset is committed; the one place that builds the consumer keeps the security settings
(``kafka_python_config``) out of each tool.
"""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from config.clients import kafka_python_config
from config.settings import Settings

__all__ = [
    "METADATA_TIMEOUT_S",
    "ConsumerSetupError",
    "make_consumer",
    "release_parked_records",
    "topic_partitions",
]

METADATA_TIMEOUT_S = 15.0
_METADATA_POLL_S = 0.2


class ConsumerSetupError(RuntimeError):
    """The consumer cannot start: an unknown topic, or no metadata within the bound."""


def make_consumer(settings: Settings, *, client_id: str, **options: Any) -> KafkaConsumer:
    """A consumer with raw ``bytes`` keys and values; the caller picks group and commits."""
    config: dict[str, Any] = {
        **kafka_python_config(settings),
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    config.update(options)
    return KafkaConsumer(**config)


def topic_partitions(
    consumer: KafkaConsumer, topics: list[str], timeout_s: float = METADATA_TIMEOUT_S
) -> list[TopicPartition]:
    """Every partition of ``topics``, sorted; raises when a topic is unknown after the bound."""
    deadline = time.monotonic() + timeout_s
    found: list[TopicPartition] = []
    for topic in topics:
        while True:
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                found.extend(TopicPartition(topic, p) for p in sorted(partitions))
                break
            if time.monotonic() >= deadline:
                raise ConsumerSetupError(f"topic {topic!r} not found within {timeout_s} s")
            time.sleep(_METADATA_POLL_S)
    return found


def release_parked_records(consumer: KafkaConsumer) -> None:
    """Lets kafka-python 3.0.12 hand back the records of a resumed partition.

    Records fetched for a paused partition are parked (KAFKA-7548, kafka-python PR #2981)
    and restored after ``resume()`` only when the fetcher's in-line slot is ``None``; but a
    drained batch stays in that slot once the fetch queue is empty, so the resumed partition
    is neither returned nor fetched again and looks finished. A drained batch and ``None``
    mean the same everywhere else in the fetcher, so the slot is cleared before each poll.
    Without the private attribute (another version) this does nothing.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None and not current:
        fetcher._next_partition_records = None  # type: ignore[union-attr]
