"""The alert records as the report reads them: counted, grouped into drifts and timed in one
pass (``digest_alerts``).

A day's alert records need not be held for the report: the digest keeps the counts, one
``Drift`` per alert id, the times of the alerts-over-time chart and, per account, where its
records are (their indexes in the input). The records themselves are needed only for the few
accounts whose timelines are shown; a reader that does not keep them all fetches those again
(``AlertDigest.keep_records``).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from limitsync.report.text import parse_time
from limitsync.report.vocabulary import ESCALATED, OPENED, RESOLVED, SOURCES, TIMELINES_MAX

__all__ = [
    "AlertDigest",
    "AlertReader",
    "Drift",
    "TapBuffer",
    "accounts_by_drift",
    "alert_time",
    "digest_alerts",
    "finish_digest",
    "longest_by_account",
    "longest_key",
    "ranked_accounts",
    "timeline_accounts",
]


class Drift:
    """One alert id: what its breach fired with, and how long it lasted. Its fields come from
    its first opened record (or its first record if none is an opened one); it ends at its
    first resolved record, or at the end of the data while still open."""

    __slots__ = (
        "_detected", "_detected_text", "_first_opened", "_opened_moment", "_opened_raw",
        "_opened_text", "account_id", "alert_id", "drift", "duration_s", "end", "escalated",
        "group", "opened_at", "reason", "resolution", "severity", "start",
    )  # fmt: skip

    def __init__(
        self,
        alert_id: str = "",
        record: dict[str, Any] | None = None,
        opened: bool = False,
        words: dict[str, str] | None = None,
    ) -> None:
        # Every argument has a default: compiled (mypyc), unpickling makes a blank one and
        # sets its attributes (a shard's digest is pickled to the parent).
        if record is None:
            record = {}
        self.alert_id = alert_id
        self._take_first(record, opened, {} if words is None else words)
        self.opened_at = ""  # as in the data
        self.start: datetime | None = None
        self.end: datetime | None = None  # resolved_at, or the end of the data while open
        self.duration_s: float | None = None  # None when start or end is unknown
        self.resolution: str | None = None  # None while open
        self.escalated = False
        self._opened_raw: object = record.get("opened_at") or None  # the first truthy one
        self._opened_text: object = None  # the opened_at last parsed, and its time
        self._opened_moment: datetime | None = None
        self._detected_text: object = None  # the detected_at last parsed, and its time
        self._detected: datetime | None = None

    def _take_first(self, record: dict[str, Any], opened: bool, words: dict[str, str]) -> None:
        """``words``: the texts drifts repeat (reasons, accounts...), one string each."""
        get = record.get
        self._first_opened = opened
        reason = get("reason") or "(none)"
        if type(reason) is not str:
            reason = str(reason)
        source = get("source")
        # "app", "cache", "payments" (REPAYMENT_NOT_POSTED) or "other" (no source)
        group = (
            str(source) if source in SOURCES
            else "payments" if reason == "REPAYMENT_NOT_POSTED"
            else "other"
        )  # fmt: skip
        account = get("account_id", "")
        if type(account) is not str:
            account = str(account)
        severity = get("severity") or "(none)"
        if type(severity) is not str:
            severity = str(severity)
        intern = words.setdefault
        self.group, self.reason = intern(group, group), intern(reason, reason)
        self.account_id, self.severity = intern(account, account), intern(severity, severity)
        self.drift: object = get("drift")

    def _opened(self, value: object) -> datetime | None:
        """``value`` (an opened_at) parsed: a drift's records mostly repeat their breach's."""
        if value != self._opened_text or self._opened_text is None:
            self._opened_text, self._opened_moment = value, parse_time(value)
        return self._opened_moment

    def _escalated_at(self, record: dict[str, Any], detected: datetime | None) -> datetime | None:
        return _escalated_at(self._opened(record.get("opened_at")), record, detected)

    def _resolve(
        self, record: dict[str, Any], resolved_at: datetime | None, words: dict[str, str]
    ) -> None:
        self.end = resolved_at or parse_time(record.get("detected_at"))
        resolution = str(record.get("resolution") or "?")
        self.resolution = words.setdefault(resolution, resolution)

    def _finish(self, data_end: datetime | None) -> None:
        opened_text = "" if self._opened_raw is None else self._opened_raw
        self.opened_at = str(opened_text)
        start = self.start = self._opened(opened_text)
        if self.resolution is None:
            self.end = data_end
        end = self.end
        if start is not None and end is not None:
            self.duration_s = max(0.0, (end - start).total_seconds())


def alert_time(record: dict[str, Any]) -> datetime | None:
    """When the record was raised: ``detected_at`` for a breach, ``resolved_at`` for a
    resolution, and ``opened_at + age_seconds`` for an escalation (its ``detected_at`` stays
    the breach's detection time)."""
    detected = parse_time(record.get("detected_at"))
    kind = record.get("type")
    if kind == RESOLVED:
        return parse_time(record.get("resolved_at")) or detected
    if kind == ESCALATED:
        return _escalated_at(parse_time(record.get("opened_at")), record, detected)
    return detected


def _escalated_at(
    opened: datetime | None, record: dict[str, Any], detected: datetime | None
) -> datetime | None:
    age = record.get("age_seconds")
    if opened is not None and isinstance(age, int | float) and not isinstance(age, bool):
        raised = opened + timedelta(seconds=float(age))
        return raised if detected is None else max(raised, detected)
    return detected


@dataclass(slots=True)
class AlertDigest:
    """What the report reads of the alert records (see the module's docstring)."""

    # The drifts, times and records below are of this account only. A default, as for Drift.
    focus_account: str | None = None
    records: int = 0
    type_counts: dict[str, int] = field(default_factory=dict)  # by type, in first-seen order
    all_drifts: list[Drift] = field(default_factory=list)  # one per alert id, first raised first
    drifts: list[Drift] = field(default_factory=list)  # those of the focus account
    # When opened and escalated alerts were raised (POSIX seconds), and the first of them.
    opened_times: array[float] = field(default_factory=lambda: array("d"))
    escalated_times: array[float] = field(default_factory=lambda: array("d"))
    first_timed: datetime | None = None
    tz: tzinfo | None = None  # of the first opened_at or detected_at that parses
    data_end: datetime | None = None  # the last detected/resolved time
    where: dict[str, array[int]] = field(default_factory=dict)  # account -> record indexes
    source: Sequence[dict[str, Any]] | None = None  # all the records, when held anyway
    kept: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _longest: dict[str, float] | None = None

    @property
    def alerted_accounts(self) -> int:
        return len(self.where)

    def longest_by_account(self) -> dict[str, float]:
        """``longest_by_account(all_drifts)``, worked out once: both the reader and the
        report rank the accounts by it."""
        if self._longest is None:
            self._longest = longest_by_account(self.all_drifts)
        return self._longest

    def keep_records(self, records: dict[str, list[dict[str, Any]]]) -> None:
        """The records of these accounts (in input order), fetched again by the reader."""
        self.kept.update(records)

    def records_of(self, account_id: str) -> list[dict[str, Any]]:
        kept = self.kept.get(account_id)
        if kept is not None:
            return kept
        indexes = self.where.get(account_id, ())
        if self.source is not None:
            return [self.source[i] for i in indexes]
        if not indexes:
            return []
        raise LookupError(f"the alert records of account {account_id!r} were not kept")


def digest_alerts(
    records: Iterable[dict[str, Any]], focus_account: str | None = None
) -> AlertDigest:
    """One pass over alert records in raised order (see the module's docstring). When
    ``records`` is a sequence, the digest reads an account's records from it."""
    reader = AlertReader(focus_account)
    reader.read(records)
    digest = reader.digest()
    if isinstance(records, Sequence):
        digest.source = records
    return digest


class AlertReader:
    """Digests alert records in raised order, a batch at a time (``read``), then gives the
    digest (``digest``): records need not all be at hand at once."""

    __slots__ = ("_data_end", "_digest", "_first_timed", "_pending", "_records", "_tz", "_words")

    def __init__(self, focus_account: str | None = None) -> None:
        self._digest = AlertDigest(focus_account)
        self._pending: dict[str, Drift] = {}  # by alert id, first raised first
        self._records = 0
        self._data_end: datetime | None = None
        self._first_timed: datetime | None = None
        self._tz: tzinfo | None = None
        self._words: dict[str, str] = {}  # what drifts repeat, one string each (memory)

    def digest(self) -> AlertDigest:
        return finish_digest(self.partial())

    def partial(self) -> AlertDigest:
        """The digest so far, its drifts not finished: an open drift ends at the end of the
        data, and a sharded replay's digests are merged before it is known
        (``limitsync.report.shard_digest``)."""
        digest = self._digest
        digest.records, digest.data_end = self._records, self._data_end
        digest.first_timed, digest.tz = self._first_timed, self._tz
        digest.all_drifts = list(self._pending.values())
        return digest

    @property
    def timed(self) -> bool:
        """Whether the first timed alert (for the chart's time zone) was read."""
        return self._first_timed is not None

    @property
    def zoned(self) -> bool:
        """Whether the time zone of the data was read."""
        return self._tz is not None

    def read(self, records: Iterable[dict[str, Any]]) -> None:
        """The pass itself: every record counted and placed, each drift gathered. Written for
        speed (it runs once a record, and a day has many): locals, few calls a record."""
        digest, pending, words = self._digest, self._pending, self._words
        counts, where, focus = digest.type_counts, digest.where, digest.focus_account
        opened_times, escalated_times = digest.opened_times, digest.escalated_times
        data_end, first_timed, tz = self._data_end, self._first_timed, self._tz
        index = self._records - 1
        for index, record in enumerate(records, start=self._records):
            get = record.get
            kind = get("type", "?")
            if kind.__class__ is not str:
                kind = str(kind)
            counts[kind] = counts.get(kind, 0) + 1
            account = get("account_id", "")
            if account.__class__ is not str:
                account = str(account)
            mine = where.get(account)
            if mine is None:
                where[account] = array("q", (index,))
            else:
                mine.append(index)
            key = get("alert_id")
            if key.__class__ is not str or not key:
                key = _group_key(key, index)
            drift = pending.get(key)
            if drift is None:
                drift = pending[key] = Drift(key, record, kind == OPENED, words)
            else:
                if kind == OPENED and not drift._first_opened:
                    drift._take_first(record, True, words)
                if drift._opened_raw is None:
                    drift._opened_raw = get("opened_at") or None
            text = get("detected_at")
            if text == drift._detected_text and text is not None:
                detected = drift._detected  # and already weighed for the end of the data
            else:
                detected = drift._detected = parse_time(text)
                drift._detected_text = text
                if detected is not None and (data_end is None or detected > data_end):
                    data_end = detected
            text = get("resolved_at")  # any record's counts for the end of the data
            resolved_at = None if text is None else parse_time(text)
            if resolved_at is not None and (data_end is None or resolved_at > data_end):
                data_end = resolved_at
            if tz is None:
                tz = _record_tz(record)
            if kind == OPENED:
                if detected is not None and (focus is None or account == focus):
                    opened_times.append(detected.timestamp())
                    if first_timed is None:
                        first_timed = detected
            elif kind == RESOLVED:
                if drift.resolution is None:
                    drift._resolve(record, resolved_at, words)
            elif kind == ESCALATED:
                drift.escalated = True
                if focus is None or account == focus:
                    moment = drift._escalated_at(record, detected)
                    if moment is not None:
                        escalated_times.append(moment.timestamp())
                        if first_timed is None:
                            first_timed = moment
        self._records = index + 1
        self._data_end, self._first_timed, self._tz = data_end, first_timed, tz


class TapBuffer:
    """A replay's alert records as they are written, for ``limitsync.outputs.AlertTap``: each
    record and where its line starts (without a focus account), digested a batch at a time,
    or the focus account's records, held. Here, compiled, so that the replay's call a record
    is a C call, not an interpreted frame."""

    __slots__ = ("batch", "focus_account", "offsets", "position", "reader")

    def __init__(self, reader: AlertReader, focus_account: str | None) -> None:
        self.reader = reader
        self.focus_account = focus_account
        self.batch: list[dict[str, Any]] = []  # with a focus: all that account's records
        self.offsets = array("q")  # where each record's line starts (without a focus)
        self.position = 0

    def add(self, record: dict[str, Any], length: int) -> None:
        """A record was written in a line of ``length`` bytes."""
        if self.focus_account is None:
            self.offsets.append(self.position)
            self.batch.append(record)
            if len(self.batch) == TAP_BATCH:
                self.reader.read(self.batch)
                self.batch = []
        elif record.get("account_id") == self.focus_account:
            self.batch.append(record)
        self.position += length


TAP_BATCH = 4096  # records: the digest's loop runs a batch at once, on locals


def finish_digest(digest: AlertDigest) -> AlertDigest:
    """Each drift ended (a resolved one where it resolved, an open one at the end of the
    data), and the focus account's drifts picked."""
    drifts = digest.all_drifts
    for drift in drifts:
        drift._finish(digest.data_end)
    focus = digest.focus_account
    digest.drifts = drifts if focus is None else [d for d in drifts if d.account_id == focus]
    return digest


def _group_key(alert_id: object, index: int) -> str:
    return str(alert_id) if alert_id not in (None, "") else f"(no alert_id #{index})"


def _record_tz(record: dict[str, Any]) -> tzinfo | None:
    for key in ("opened_at", "detected_at"):
        moment = parse_time(record.get(key))
        if moment is not None:
            return moment.tzinfo
    return None


def longest_key(drift: Drift) -> tuple[float, str, str]:
    """Sorts the longest drift first (unknown durations last), then by account and id."""
    duration = drift.duration_s
    return (-duration if duration is not None else math.inf, drift.account_id, drift.alert_id)


def accounts_by_drift(drifts: Sequence[Drift], timelines: Iterable[str] = ()) -> list[str]:
    """Alerted accounts (and those of ``timelines``), the one with the longest drift first."""
    return ranked_accounts(longest_by_account(drifts), timelines)


def longest_by_account(drifts: Sequence[Drift]) -> dict[str, float]:
    """Per account, its longest drift's duration (-1.0 when none is known)."""
    longest: dict[str, float] = {}
    for drift in drifts:
        duration = drift.duration_s if drift.duration_s is not None else -1.0
        longest[drift.account_id] = max(longest.get(drift.account_id, -1.0), duration)
    return longest


def ranked_accounts(longest: dict[str, float], timelines: Iterable[str] = ()) -> list[str]:
    """The accounts of ``longest`` and of ``timelines`` (-1.0 if not in it), longest first."""
    longest = dict(longest)
    for account_id in timelines:
        longest.setdefault(account_id, -1.0)
    return sorted(longest, key=lambda account: (-longest[account], account))


def timeline_accounts(alerts: Sequence[dict[str, Any]] | AlertDigest) -> list[str]:
    """The accounts whose timelines ``render_report`` shows for these alerts (no focus): the
    TIMELINES_MAX with the longest drifts. A report's data needs timelines for these only."""
    digest = alerts if isinstance(alerts, AlertDigest) else digest_alerts(alerts)
    return ranked_accounts(digest.longest_by_account())[:TIMELINES_MAX]
