"""The alert router: the alert topic, delivered to the sinks people and systems watch.

A kafka-python group consumer (group ``{app_id}-alert-router`` unless told otherwise) reads
the alert topic, hands each record to every sink, makes the sinks durable, and only then
commits. A crash therefore redelivers, never drops; the file sink turns redelivery into
exactly once, and the webhook carries an idempotency key. A record that is not an alert
object (not JSON, not an object) goes to the undelivered log with its bytes, so nothing
read from the topic is lost.

``tail`` is the read-only view: a consumer of its own that commits nothing and shows alerts
as they come (rich colours on a terminal, plain lines otherwise).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

from config.settings import Settings
from consumers.alert_sinks import Delivery, Sink, UndeliveredLog, format_alert_line
from consumers.kafka_common import make_consumer, topic_partitions

__all__ = ["RouterOptions", "RouterStats", "TailOptions", "route_alerts", "tail_alerts"]


@dataclass(frozen=True)
class RouterOptions:
    group_id: str | None = None  # default: "{app_id}-alert-router"
    poll_timeout_ms: int = 500
    # Records per poll: each may wait for a webhook's retries, and the consumer must poll
    # again within max.poll.interval.ms, so batches stay small.
    poll_records_max: int = 100
    # Kafka drops a member that does not poll within this (kafka-python's default)...
    max_poll_interval_ms: int = 300_000
    # ...so a batch spends at most this on a webhook (WebhookSink.batch_time_max_s): 100 alerts
    # x a 5 s timeout x retries would otherwise take far longer.
    batch_time_max_s: float = 60.0
    max_records: int | None = None  # stop after routing this many (tests, one-off runs)
    idle_exit_s: float | None = None  # stop after this long with nothing to route

    def __post_init__(self) -> None:
        if self.poll_records_max < 1 or self.poll_timeout_ms < 1:
            raise ValueError("poll_records_max and poll_timeout_ms must be >= 1")
        # Half the interval: the sinks' flush and the file sink's writes come on top.
        if not 0 < self.batch_time_max_s * 1000 <= self.max_poll_interval_ms / 2:
            raise ValueError("batch_time_max_s must be positive and at most half the poll interval")


@dataclass
class RouterStats:
    records: int = 0
    not_alerts: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (sink, delivery)


def _parse_alert(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        alert = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return alert if isinstance(alert, dict) else None


class _Router:
    def __init__(self, sinks: Sequence[Sink], undelivered: UndeliveredLog) -> None:
        self._sinks = sinks
        self._undelivered = undelivered
        self.stats = RouterStats()

    def route(self, record: ConsumerRecord) -> None:
        self.stats.records += 1
        alert = _parse_alert(record.value)
        if alert is None:
            self.stats.not_alerts += 1
            where = f"{record.topic}/{record.partition}@{record.offset}"
            self._undelivered.record("router", where, "not a JSON object", 0, None,
                                     record.value or b"")
            return
        for sink in self._sinks:
            outcome: Delivery = sink.deliver(alert)
            self.stats.outcomes[(sink.name, outcome.value)] += 1

    def flush(self) -> None:
        for sink in self._sinks:
            sink.flush()
        self._undelivered.flush()


def route_alerts(
    settings: Settings,
    sinks: Sequence[Sink],
    undelivered: UndeliveredLog,
    options: RouterOptions | None = None,
    stop: threading.Event | None = None,
) -> RouterStats:
    """Route until ``stop`` is set, a limit of ``options`` is reached, or Ctrl-C.

    The caller owns the sinks and the undelivered log (and closes them).
    """
    options = options or RouterOptions()
    group_id = options.group_id or f"{settings.app_id}-alert-router"
    consumer = make_consumer(
        settings, client_id=group_id, group_id=group_id,
        max_poll_records=options.poll_records_max,
        max_poll_interval_ms=options.max_poll_interval_ms,
    )
    router = _Router(sinks, undelivered)
    try:
        consumer.subscribe([settings.topics["alerts"]])
        _route_loop(consumer, router, options, stop)
    finally:
        consumer.close(autocommit=False)
    return router.stats


def _route_loop(
    consumer: KafkaConsumer, router: _Router, options: RouterOptions,
    stop: threading.Event | None,
) -> None:
    idle_since: float | None = None
    while stop is None or not stop.is_set():
        batch = consumer.poll(timeout_ms=options.poll_timeout_ms)
        done: dict[TopicPartition, OffsetAndMetadata] = {}
        finished = False
        for tp, records in batch.items():
            for record in records:
                router.route(record)
                done[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
                if options.max_records is not None and router.stats.records >= options.max_records:
                    finished = True
                    break
            if finished:
                break
        if done:
            router.flush()
            consumer.commit(done)
        if finished:
            return
        now = time.monotonic()
        if batch or not consumer.assignment():
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif options.idle_exit_s is not None and now - idle_since >= options.idle_exit_s:
            return


# -- tail --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TailOptions:
    from_beginning: bool = False
    poll_timeout_ms: int = 500
    max_records: int | None = None
    idle_exit_s: float | None = None


_STYLES = {"critical": "bold red", "major": "yellow"}


def _writer(out: TextIO, use_rich: bool) -> Any:
    """A function printing one alert: rich colours on a terminal, plain text otherwise."""
    if not use_rich:
        def plain(alert: dict[str, Any]) -> None:
            print(format_alert_line(alert), file=out, flush=True)

        return plain
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out)

    def coloured(alert: dict[str, Any]) -> None:
        resolved = alert.get("type") == "mismatch.resolved"
        style = "green" if resolved else _STYLES.get(str(alert.get("severity")), "")
        console.print(Text(format_alert_line(alert), style=style), soft_wrap=True)

    return coloured


def tail_alerts(
    settings: Settings,
    options: TailOptions | None = None,
    out: TextIO | None = None,
    use_rich: bool | None = None,
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
) -> int:
    """Show alerts as they arrive; returns how many were shown.

    Without ``from_beginning`` it starts at the end of each partition. ``ready`` is set once
    the first poll has placed the consumer.
    """
    options = options or TailOptions()
    out = out or sys.stdout
    show = _writer(out, out.isatty() if use_rich is None else use_rich)
    client_id = f"{settings.app_id}-alert-tail-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(settings, client_id=client_id, group_id=None)
    shown = 0
    try:
        tps = topic_partitions(consumer, [settings.topics["alerts"]])
        consumer.assign(tps)
        if options.from_beginning:
            consumer.seek_to_beginning()
        else:
            consumer.seek_to_end()
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            batch = consumer.poll(timeout_ms=options.poll_timeout_ms)
            if ready is not None:
                ready.set()
            for records in batch.values():
                for record in records:
                    alert = _parse_alert(record.value)
                    show(alert if alert is not None else {"type": "not-an-alert",
                                                          "alert_id": record.offset})
                    shown += 1
                    if options.max_records is not None and shown >= options.max_records:
                        return shown
            now = time.monotonic()
            if batch:
                idle_since = now
            elif options.idle_exit_s is not None and now - idle_since >= options.idle_exit_s:
                break
    finally:
        consumer.close(autocommit=False)
    return shown
