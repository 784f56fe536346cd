"""The Faust application: built by a factory, never at import time.

Agents: ``ledger`` (account-events + displayed, co-partitioned), ``rescore``
(rescore-requests). The ledger's records reach the live shell a fetched batch at a time
(``streams.batch_consumer``); the agent declares the subscription and takes any record that
comes Faust's own way. Timers: the drift monitor and the black-box sampler. Table: ``state``
(changelog-backed, keyed per account and id: ``streams.state_store``). Web: explain (routed
to the owning worker), health, metrics.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Sequence
from typing import Any, cast

import faust
from faust.types import Message

from config.clients import faust_broker_credentials, make_async_redis
from config.settings import Settings
from streams import batch_consumer
from streams.cache import RedisLimitCache
from streams.inquiries import install_inquiries
from streams.kafka_out import ChangelogTable, KafkaOut, PartitionMemo
from streams.live import OWN_HEADER, LiveShell, RawRecord, partition_of, tune_collector
from streams.metrics import Metrics
from streams.rescore import Rescorer
from streams.scorer import load_scorer
from streams.state_store import state_key_partition

__all__ = ["FaustPublisher", "create_app"]

log = logging.getLogger(__name__)
LEDGER_BATCH_MAX = 500
LEDGER_BATCH_WITHIN_S = 0.05
DRIFT_TICK_S = 0.25
LAG_INTERVAL_S = 5.0
# The most a record batch of one partition may hold (Faust's default is 16 KB). A flush hands
# the client one batch per partition, and the client puts at most one batch of a partition in
# each produce request: at 16 KB, one flush of a few hundred events took a few dozen requests
# in turn, and the broker's cost is largely per request and per partition batch. Well below
# the broker's default largest batch (1 MB), which a record larger than this still reaches on
# its own (``KafkaOut``).
PRODUCER_BATCH_BYTES_MAX = 512 * 1024
# How long the group waits for a worker that stopped answering before its partitions go to
# the others (or to its restarted self). Faust's default, 60 s, is the whole default SLA: every
# repayment on a killed worker's partitions would breach before anyone applied it. Kafka's
# classic 10 s, with heartbeats every 3 s; Faust's consumer thread sends them, not the loop
# that applies batches, so a long batch does not miss one. BROKER_SESSION_TIMEOUT and
# BROKER_HEARTBEAT_INTERVAL in the environment still win (Faust reads them).
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_INTERVAL_S = 3.0


class FaustPublisher:
    """Publishes raw bytes keyed by account id on the contract's topics."""

    def __init__(self, app: faust.App, names: list[str], partitions: int) -> None:
        self._app = app
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

    async def publish(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        await self._topics[topic].send(
            key=key.encode(), value=value, headers=None if headers is None else list(headers)
        )


class StateTable(faust.Table):
    """The state table: every key of an account goes to the account's partition (the one its
    input records come from), whatever the rest of the key, so its owner restores all of it."""

    def partition_for_key(self, key: Any) -> int:
        partitions = self.partitions
        if partitions is None:
            raise RuntimeError("the state table is declared with its partition count")
        return state_key_partition(key, lambda account: partition_of(account.decode(), partitions))

    def _new_store_by_url(self, url: Any) -> Any:
        """Faust's store for the URL; for RocksDB, one whose changelog batches and their
        offsets reach the disk in one write (``streams.rocksdb_store``)."""
        if not str(url).startswith("rocksdb:"):
            return super()._new_store_by_url(url)
        from streams.rocksdb_store import AtomicOffsetStore

        return AtomicOffsetStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )


def keeps_state_on_disk(settings: Settings) -> bool:
    """Whether the table's store outlives the worker process (RocksDB), so that what it holds
    must never run ahead of the changelog (``ChangelogTable``'s ``durable_first``)."""
    return not settings.store.startswith("memory:")


def standby_replicas(settings: Settings) -> int:
    """The standby replicas a worker keeps: the ones asked for, with a store that keeps them.

    A standby shortens a takeover only when the store remembers up to which changelog offset
    it holds a partition (RocksDB). Faust's in-memory store remembers none: a partition that
    moves to its standby is read again from the changelog's start, and the store drops the
    standby's keys whenever a recovery completes. There a standby is CPU spent on every record
    another worker saves, for a takeover that is no shorter, so none is kept.
    """
    if settings.standby_replicas and not keeps_state_on_disk(settings):
        log.info(
            "standby replicas: none with the in-memory store (%d asked for): a takeover reads "
            "the changelog from its start either way; RocksDB keeps them",
            settings.standby_replicas,
        )
        return 0
    return settings.standby_replicas


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
        "table_standby_replicas": standby_replicas(settings),
        "datadir": settings.data_dir,
        "autodiscover": False,
        "consumer_auto_offset_reset": "earliest",
        "topic_allow_declare": True,
        "broker_consumer": [f"{batch_consumer.SCHEME}://{h}" for h in hosts],
        "producer_max_batch_size": PRODUCER_BATCH_BYTES_MAX,
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_heartbeat_interval": HEARTBEAT_INTERVAL_S,
    }
    batch_consumer.register()
    credentials = faust_broker_credentials(settings)
    if credentials is not None:
        conf["broker_credentials"] = credentials
    return conf


def create_app(settings: Settings) -> tuple[faust.App, LiveShell]:
    tune_collector()
    app = faust.App(settings.app_id, **_app_settings(settings))
    topics = settings.topics
    publisher = FaustPublisher(app, list(topics.values()), settings.partitions)
    table = _state_table(app, settings)
    metrics = Metrics()
    shell = _live_shell(app, settings, table, metrics)
    rescorer = Rescorer(
        load_scorer(settings.scorer),
        publisher,
        topics,
        metrics,
        settings.rescore_timeout_s,
        settings.rescore_retries_max,
    )
    _install_agents(app, topics, shell, rescorer)
    _install_timers(app, settings, shell, metrics)
    _install_web(app, shell, metrics, table)
    return app, shell


def _state_table(app: faust.App, settings: Settings) -> StateTable:
    table = app.tables.add(
        StateTable(
            app,
            name="state",
            default=None,
            beacon=app.tables.beacon,
            partitions=settings.partitions,
            key_type=bytes,  # raw bytes both ways: the store encodes its own rows
            value_type=bytes,
        )
    )
    return cast(StateTable, table)


def _live_shell(
    app: faust.App, settings: Settings, table: StateTable, metrics: Metrics
) -> LiveShell:
    cache = RedisLimitCache(make_async_redis(settings), settings.cache_prefix)
    # The shell's writes (state changelog, observations, alerts, dead letters) go out in
    # batches per partition through Faust's own client, started and stopped with the app.
    out = KafkaOut(lambda: _client_of(app), settings.partitions)
    account_partition = PartitionMemo(settings.partitions)
    store = ChangelogTable(
        table,
        out,
        lambda key: state_key_partition(key, account_partition),
        durable_first=keeps_state_on_disk(settings),
        is_active=lambda tp: tp in cast(Any, app.tables).recovery.active_tps,
    )
    return LiveShell(settings, out, cache, store, metrics, out)


def _raw_topic(app: faust.App, *names: str) -> Any:
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


def _install_agents(
    app: faust.App, topics: dict[str, str], shell: LiveShell, rescorer: Rescorer
) -> None:
    """The ledger (its records reach the shell a fetched batch at a time), the rescore agent,
    and the rebalance signals that rebuild the shell's engine."""
    source = _raw_topic(app, topics["account_events"], topics["displayed"])
    requests = _raw_topic(app, topics["rescore_requests"])

    def owned() -> set[int]:
        return {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == topics["account_events"]
        }

    async def ledger_batch(
        messages: Sequence[Message],
    ) -> tuple[Sequence[Message], Awaitable[None]]:
        """The fast path: one fetched batch of the input topics, applied together; its
        offsets are committed once its state is in Kafka, while the next batch runs."""
        if not shell.ready:
            shell.rebuild(owned())
        mine = [m for m in messages if m.partition in shell.owned]
        await shell.take([_raw(m) for m in mine])
        return mine, shell.flush()

    batch_consumer.attach(app, [topics["account_events"], topics["displayed"]], ledger_batch)

    @app.agent(source, name="ledger")
    async def ledger(stream: faust.StreamT) -> None:
        batches = stream.take_events(LEDGER_BATCH_MAX, within=LEDGER_BATCH_WITHIN_S)  # type: ignore[attr-defined]
        async for events in batches:
            if not shell.ready:
                shell.rebuild(owned())
            await shell.handle([_raw(e.message) for e in events])

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


def _install_timers(
    app: faust.App, settings: Settings, shell: LiveShell, metrics: Metrics
) -> None:
    """The drift monitor, the sampler, the consumer lag gauge and the cache writer's task."""
    inputs = (settings.topics["account_events"], settings.topics["displayed"])

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
            if tp.topic not in inputs:
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


def _install_web(app: faust.App, shell: LiveShell, metrics: Metrics, table: StateTable) -> None:
    """Health, metrics, inquiries and the explain view (routed to the account's owner)."""

    @app.page("/healthz")
    async def healthz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json(
            {
                "status": "ok",
                "ready": shell.ready,
                "accounts": len(shell.engine.accounts),
                "partitions": sorted(shell.owned),
                "cache_backlog": shell.writer.backlog,
                "first_batch_us": shell.first_batch_us,
                "pid": os.getpid(),  # issue 15: the worker-kill drill finds its target here
            }
        )

    @app.page("/metrics")
    async def metrics_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    install_inquiries(app, shell, metrics)  # issue 15: POST /inquiries, routed to the owner

    @app.page("/accounts/{account_id}/explain")
    @app.table_route(table=table, match_info="account_id")
    async def explain_view(
        web: faust.web.View, request: faust.web.Request, account_id: str
    ) -> faust.web.Response:
        report = shell.explain(account_id)
        if report is None:
            return web.json({"error": f"unknown account {account_id}"}, status=404)
        return web.json(report)


def _raw(message: Message) -> RawRecord:
    headers = message.headers or ()
    own = OWN_HEADER in (headers.items() if isinstance(headers, dict) else headers)
    return RawRecord(message.value, message.topic, message.partition, message.offset, own)


def _client_of(app: faust.App) -> Any:
    """The aiokafka producer inside Faust's (its driver keeps it; no public accessor)."""
    return cast(Any, app.producer)._ensure_producer()
