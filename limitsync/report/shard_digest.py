"""The report's digest of a sharded replay's alerts: taken by each shard of its own alerts, in
parallel, then merged into the digest one reader of the whole ``alerts.jsonl`` would give.

A shard holds whole accounts, so each drift (one alert id, of one account) is digested by
one shard from all its records in their order. What depends on the order across shards is
kept with the merge key of the alert it came from (``limitsync.replay_shard.run_shard``): which
type, which drift and which timed alert came first. Open drifts end at the end of all the
data, so they are finished after the merge.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any

from limitsync.report.alerts import AlertDigest, AlertReader, Drift, finish_digest

__all__ = ["KeyedAlertReader", "ShardDigest", "merge_digests"]

_BATCH = 4096  # records digested at once (the reader's loop runs on locals)


@dataclass
class ShardDigest:
    """A shard's digest, its drifts unfinished, with where each first came."""

    digest: AlertDigest
    drift_keys: list[Any]  # of each of digest.all_drifts, in that order
    type_keys: dict[str, Any]  # of each type's first record
    timed_key: Any = None  # of the record that gave digest.first_timed
    zoned_key: Any = None  # of the record that gave digest.tz


class KeyedAlertReader:
    """Digests a shard's alert records in its order, each given with its merge key. With a
    focus account, only that account's records are read (the report's alerts are its)."""

    def __init__(self, focus_account: str | None = None) -> None:
        self.focus_account = focus_account
        self._reader = AlertReader(focus_account)
        self._batch: list[dict[str, Any]] = []
        self._drift_keys: dict[str, Any] = {}
        self._type_keys: dict[str, Any] = {}
        self._timed_key: Any = None
        self._zoned_key: Any = None

    def add(self, key: Any, record: dict[str, Any]) -> None:
        focus = self.focus_account
        if focus is not None and record.get("account_id") != focus:
            return
        kind = record.get("type", "?")
        kind = kind if type(kind) is str else str(kind)
        if kind not in self._type_keys:
            self._type_keys[kind] = key
        alert_id = record.get("alert_id")
        if type(alert_id) is not str or not alert_id:
            # The reader names such a group by its index in the whole file, which a shard
            # does not know: not an alert the core raises.
            raise ValueError(f"an alert without an alert_id: {record!r}")
        if alert_id not in self._drift_keys:
            self._drift_keys[alert_id] = key
        reader = self._reader
        if reader.timed and reader.zoned:
            self._batch.append(record)
            if len(self._batch) == _BATCH:
                reader.read(self._batch)
                self._batch = []
            return
        # Until both are found, one record at a time, to know which record gave them.
        reader.read(self._batch)
        self._batch = []
        reader.read((record,))
        if self._timed_key is None and reader.timed:
            self._timed_key = key
        if self._zoned_key is None and reader.zoned:
            self._zoned_key = key

    def part(self) -> ShardDigest:
        self._reader.read(self._batch)
        self._batch = []
        digest = self._reader.partial()
        return ShardDigest(
            digest=digest,
            drift_keys=[self._drift_keys[drift.alert_id] for drift in digest.all_drifts],
            type_keys=self._type_keys,
            timed_key=self._timed_key,
            zoned_key=self._zoned_key,
        )


def merge_digests(parts: list[ShardDigest], focus_account: str | None = None) -> AlertDigest:
    """The shards' digests as one (``AlertReader.digest`` of all the records in the one
    order). ``where`` holds each account's records by their index in its shard: the report
    counts the accounts in it and reads the shown accounts' records from ``kept``."""
    merged = AlertDigest(focus_account)
    merged.records = sum(part.digest.records for part in parts)
    first_of_type: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for part in parts:
        for kind, count in part.digest.type_counts.items():
            counts[kind] = counts.get(kind, 0) + count
            key = part.type_keys[kind]
            if kind not in first_of_type or key < first_of_type[kind]:
                first_of_type[kind] = key
    ordered = sorted(counts, key=first_of_type.__getitem__)
    merged.type_counts = {kind: counts[kind] for kind in ordered}
    keyed: list[tuple[Any, Drift]] = []
    for part in parts:
        keyed.extend(zip(part.drift_keys, part.digest.all_drifts, strict=True))
    keyed.sort(key=_first)
    merged.all_drifts = [drift for _, drift in keyed]
    merged.opened_times = array("d")
    merged.escalated_times = array("d")
    for part in parts:
        merged.opened_times.extend(part.digest.opened_times)
        merged.escalated_times.extend(part.digest.escalated_times)
        merged.where.update(part.digest.where)
    timed = [(p.timed_key, p.digest.first_timed) for p in parts if p.timed_key is not None]
    if timed:
        merged.first_timed = min(timed, key=_first)[1]
    zoned = [(p.zoned_key, p.digest.tz) for p in parts if p.zoned_key is not None]
    if zoned:
        merged.tz = min(zoned, key=_first)[1]
    ends = [part.digest.data_end for part in parts if part.digest.data_end is not None]
    merged.data_end = max(ends) if ends else None
    return finish_digest(merged)


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]
