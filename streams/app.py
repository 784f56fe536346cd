"""The Faust application: built by a factory, never at import time.

Agents: ``ledger`` (account-events + displayed, co-partitioned), ``rescore``
(rescore-requests). Timers: the drift monitor and the black-box sampler. Table:
``accounts`` (changelog-backed). Web: explain (routed to the owning worker), health, metrics.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from limitsync.clients import faust_broker_credentials, make_async_redis
from limitsync.settings import Settings
from streams.cache import RedisLimitCache
from streams.live import LiveShell, RawRecord
from streams.metrics import Metrics
from streams.recovery_seek import SCHEME as SEEK_SAFE_SCHEME
from streams.recovery_seek import register as register_seek_safe_transport
from streams.rescore import Rescorer
from streams.scorer import load_scorer

__all__ = ["FaustPublisher", "create_app"]

log = logging.getLogger(__name__)
LEDGER_BATCH_MAX = 500
LEDGER_BATCH_WITHIN_S = 0.05
DRIFT_TICK_S = 0.25
LAG_INTERVAL_S = 5.0
CHANGELOG_DRAIN_TIMEOUT_S = 60.0


class FaustPublisher:
    """Publishes raw bytes keyed by account id on the contract's topics."""

    def __init__(self, app: faust.App, names: list[str], partitions: int) -> None:
        self._topics = {
            n: app.topic(
                n,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=partitions,
            )
            for n in names
        }

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        await self._topics[topic].send(key=key.encode(), value=value)


async def _drain_producer_buffer(app: faust.App) -> None:
    """Wait until Faust's producer buffer has handed every table change to the client.

    Faust commits offsets after ``producer.flush()``, but its buffer flush gives up after
    0.1 s without progress, so changelog records could still be queued when an offset
    commits; a crash then loses state. Waiting here, before the batch is acked, closes that
    window; ``flush()`` then waits for delivery of what the client holds.
    """
    buffer = app.producer.buffer
    deadline = asyncio.get_running_loop().time() + CHANGELOG_DRAIN_TIMEOUT_S
    while buffer.size and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.002)
    if buffer.size:
        raise RuntimeError(f"changelog not drained in {CHANGELOG_DRAIN_TIMEOUT_S} s")


def _app_settings(settings: Settings) -> dict[str, Any]:
    hosts = settings.bootstrap_servers.split(",")
    conf: dict[str, Any] = {
        "broker": [f"kafka://{h}" for h in hosts],
        "store": settings.store,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "processing_guarantee": "at_least_once",
        "web_bind": settings.web_bind,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        "table_standby_replicas": settings.standby_replicas,
        "datadir": settings.data_dir,
        "autodiscover": False,
        "consumer_auto_offset_reset": "earliest",
        "topic_allow_declare": True,
        "broker_consumer": [f"{SEEK_SAFE_SCHEME}://{h}" for h in hosts],
    }
    register_seek_safe_transport()
    credentials = faust_broker_credentials(settings)
    if credentials is not None:
        conf["broker_credentials"] = credentials
    return conf


def create_app(settings: Settings) -> tuple[faust.App, LiveShell]:
    app = faust.App(settings.app_id, **_app_settings(settings))
    topics = settings.topics
    publisher = FaustPublisher(app, list(topics.values()), settings.partitions)
    table = app.Table(
        "accounts",
        default=None,
        partitions=settings.partitions,
        use_partitioner=True,
        key_type=str,
        value_type=None,
    )
    metrics = Metrics()
    cache = RedisLimitCache(make_async_redis(settings), settings.cache_prefix)

    async def changelog_barrier() -> None:
        await _drain_producer_buffer(app)

    shell = LiveShell(settings, publisher, cache, table, metrics, changelog_barrier)
    rescorer = Rescorer(
        load_scorer(settings.scorer),
        publisher,
        topics,
        metrics,
        settings.rescore_timeout_s,
        settings.rescore_retries_max,
    )
    source = app.topic(
        topics["account_events"],
        topics["displayed"],
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    requests = app.topic(
        topics["rescore_requests"],
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    def owned() -> set[int]:
        return {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == topics["account_events"]
        }

    @app.agent(source, name="ledger")
    async def ledger(stream: faust.StreamT) -> None:
        batches = stream.take_events(LEDGER_BATCH_MAX, within=LEDGER_BATCH_WITHIN_S)  # type: ignore[attr-defined]
        async for events in batches:
            if not shell.ready:
                shell.rebuild(owned())
            await shell.handle(
                [
                    RawRecord(e.value, e.message.topic, e.message.partition, e.message.offset)
                    for e in events
                ]
            )

    @app.agent(requests, name="rescore")
    async def rescore(stream: faust.StreamT) -> None:
        async for value in stream:
            await rescorer.handle(value)

    @app.on_partitions_revoked.connect
    async def _revoked(*args: Any, **kwargs: Any) -> None:
        shell.revoke()

    @app.on_rebalance_complete.connect
    async def _rebalanced(*args: Any, **kwargs: Any) -> None:
        shell.rebuild(owned())

    @app.timer(DRIFT_TICK_S, name="drift_monitor")
    async def drift_monitor() -> None:
        await shell.tick()

    @app.timer(settings.sampler_interval_s, name="sampler")
    async def sampler() -> None:
        await shell.sample()

    @app.timer(LAG_INTERVAL_S, name="consumer_lag")
    async def consumer_lag() -> None:
        """Records behind the log end per owned input partition (from the consumer's view)."""
        consumer = app.consumer
        for tp in app.assignor.assigned_actives():
            if tp.topic not in (topics["account_events"], topics["displayed"]):
                continue
            try:
                highwater = consumer.highwater(tp)
                position = await consumer.position(tp)
            except (AttributeError, KeyError, AssertionError):
                continue  # not fetched yet
            if highwater is not None and position is not None:
                lag = max(0, highwater - position)
                metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)

    @app.task
    async def cache_writer() -> None:
        await shell.writer.run()

    @app.page("/healthz")
    async def healthz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json(
            {
                "status": "ok",
                "ready": shell.ready,
                "accounts": len(shell.engine.accounts),
                "partitions": sorted(shell.owned),
                "cache_backlog": shell.writer.backlog,
            }
        )

    @app.page("/metrics")
    async def metrics_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/accounts/{account_id}/explain")
    @app.table_route(table=table, match_info="account_id")
    async def explain_view(
        web: faust.web.View, request: faust.web.Request, account_id: str
    ) -> faust.web.Response:
        report = shell.explain(account_id)
        if report is None:
            return web.json({"error": f"unknown account {account_id}"}, status=404)
        return web.json(report)

    return app, shell
