"""Creating the topics limitsync uses: the worker at startup, ``limitsync up``'s stack and the
tests. Production code (the worker) calls it, so it lives here and not in the dev stack
(``limitsync.local_services``, which re-exports it for the tools that start a local broker).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from kafka import KafkaAdminClient
from kafka import errors as kafka_errors

__all__ = ["TopicSetupError", "create_topics"]

_TOPIC_POLL_INTERVAL_S = 0.1


class TopicSetupError(RuntimeError):
    """The topics could not be created, or did not become ready in time."""


def create_topics(
    bootstrap_servers: str,
    names: list[str],
    partitions: int,
    replication_factor: int = 1,
    *,
    ready_timeout_s: float = 30.0,
    admin_configs: Mapping[str, object] | None = None,
) -> None:
    """Create the topics unless they exist, then wait until metadata shows every partition.

    A topic that already exists is left as it is (its partition count is not changed), and
    only its presence is awaited. ``admin_configs`` passes security settings through to
    ``KafkaAdminClient`` for a real cluster.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    if partitions < 1 or replication_factor < 1:
        raise ValueError("partitions and replication_factor must be at least 1")
    deadline = time.monotonic() + ready_timeout_s
    timeout_ms = max(1, int(ready_timeout_s * 1000))
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="limitsync-create-topics",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        **dict(admin_configs or {}),
    )
    try:
        spec = {"num_partitions": partitions, "replication_factor": replication_factor}
        result = admin.create_topics(
            {name: dict(spec) for name in wanted}, timeout_ms=timeout_ms, raise_errors=False
        )
        created = _created_topics(result)
        expected = {name: (partitions if name in created else 1) for name in wanted}
        _wait_for_partitions(admin, expected, deadline, ready_timeout_s)
    finally:
        admin.close()


def _created_topics(result: Mapping[str, object]) -> set[str]:
    created: set[str] = set()
    topics = result.get("topics")
    if not isinstance(topics, list):
        raise TopicSetupError(f"unexpected CreateTopics response: {result!r}")
    for topic in topics:
        error = kafka_errors.for_code(topic["error_code"])
        if error is kafka_errors.NoError:
            created.add(topic["name"])
        elif error is not kafka_errors.TopicAlreadyExistsError:
            message = topic.get("error_message") or error.__name__
            raise TopicSetupError(f"cannot create topic {topic['name']!r}: {message}")
    return created


def _wait_for_partitions(
    admin: KafkaAdminClient,
    min_partitions: Mapping[str, int],
    deadline: float,
    ready_timeout_s: float,
) -> None:
    while True:
        missing = _unready_topics(admin, min_partitions)
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise TopicSetupError(f"topics not ready within {ready_timeout_s} s: {missing}")
        time.sleep(_TOPIC_POLL_INTERVAL_S)


def _unready_topics(admin: KafkaAdminClient, min_partitions: Mapping[str, int]) -> dict[str, str]:
    try:
        described = admin.describe_topics(list(min_partitions))
    except kafka_errors.KafkaError as exc:
        return dict.fromkeys(min_partitions, repr(exc))
    by_name = {topic["name"]: topic for topic in described}
    unready: dict[str, str] = {}
    for name, wanted in min_partitions.items():
        topic = by_name.get(name)
        if topic is None or topic["error_code"] != 0:
            unready[name] = "not in metadata"
            continue
        led = [p for p in topic["partitions"] if p["error_code"] == 0 and p["leader_id"] >= 0]
        if len(led) < wanted:
            unready[name] = f"{len(led)} of {wanted} partitions have a leader"
    return unready
