"""``limitsync status``: what the running system is doing, as JSON."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from config.clients import kafka_python_config
from config.settings import Settings
from limitsync.worker_metrics import add_carried, scrape

__all__ = ["collect_status"]

ALERT_SCAN_MAX = 100_000


def collect_status(
    settings: Settings, web_urls: list[str], counter_base: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Partitions, alerts and the workers' metrics. ``counter_base``: the counter values of
    restarted workers' earlier processes, from ``up``'s state file, so that the counts agree
    with ``up``'s dashboard after a restart."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    config = kafka_python_config(settings)
    admin = KafkaAdminClient(**config)
    consumer = KafkaConsumer(
        **config, enable_auto_commit=False, consumer_timeout_ms=1500, auto_offset_reset="earliest"
    )
    try:
        committed = admin.list_group_offsets(settings.app_id).get(settings.app_id, {})
        partitions = []
        for name in (settings.topics["account_events"], settings.topics["displayed"]):
            tps = [
                TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or [])
            ]
            ends = consumer.end_offsets(tps)
            for tp in tps:
                meta = committed.get(tp)
                done = meta.offset if meta is not None else None
                partitions.append(
                    {
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "committed": done,
                        "end": ends.get(tp),
                    }
                )
        alerts = _count_alerts(consumer, settings.topics["alerts"])
    finally:
        consumer.close()
        admin.close()
    snap = scrape(web_urls)
    add_carried(snap, counter_base or [])
    return {
        "partitions": partitions,
        "workers_up": snap.workers_up,
        "open_drifts": int(snap.open_drifts),
        "events_processed": int(snap.events),
        "dead_letters": int(snap.dead_letters),
        "alerts": alerts,
    }


def _count_alerts(consumer: Any, topic: str) -> dict[str, int]:
    from kafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    counts: Counter[str] = Counter()
    for n, msg in enumerate(consumer, 1):
        try:
            record = orjson.loads(msg.value)
            counts[f"{record['type']}:{record['reason']}"] += 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            counts["unreadable"] += 1
        if n >= ALERT_SCAN_MAX:
            break
    return dict(sorted(counts.items()))
