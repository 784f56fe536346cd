"""Per-account state: everything the core knows about one account.

Plain data with a lossless dict form, so the live shell can keep it in a changelog-backed
table and rebuild the engine's in-memory indexes from it after a restart or rebalance.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from schemas.parse import content_digest

__all__ = [
    "CLEARING_WATCHES_MAX",
    "HELD_VALUES_MAX",
    "HISTORY_MAX",
    "KEEP_BITS",
    "AccountState",
    "ChangeEntry",
    "ClearingWatch",
    "Display",
    "DriftState",
    "Remembered",
    "remember",
    "remembered_digest",
    "remembered_keep",
]

# The one display of a row saved before displays were tracked per source.
_SINGLE_DISPLAY = (
    "observed", "displayed", "display_key", "drift", "drift_seq", "pending_changes", "since_agree"
)

# Every part of an account's state that is rewritten with each change has a bound, so the
# live row stays small whatever the account does; what only grows (remembered ids, postings a
# reversal may still need) is kept per id and expires.
HISTORY_MAX = 50  # explained changes kept per account (replay re-derives the full history)
EVIDENCE_MAX = 16  # event ids kept as evidence of one drift
PENDING_CHANGES_MAX = 32  # ledger changes waiting to be displayed (sync latency)
TRIGGERS_MAX = 16  # event ids that triggered one coalesced rescore
HELD_VALUES_MAX = 256  # expected values one drift remembers (SYNC_DELAY); the oldest go first
CLEARING_WATCHES_MAX = 64  # unposted payments watched per account; the oldest go first


# A remembered id (``AccountState.seen``): (digest, keep_us), or, when the digest is the
# number a replay's parser gives, one int holding the digest above the low KEEP_BITS and
# keep_us in them. A day's replay remembers millions of ids: the tuple and its two ints took
# 132 bytes an id, the one int takes 52.
KEEP_BITS = 64
_KEEP_MASK = (1 << KEEP_BITS) - 1
Remembered = tuple[Any, ...] | int


def remember(digest: str | int, keep_us: int) -> Remembered:
    if type(digest) is int and 0 <= keep_us <= _KEEP_MASK and digest >= 0:
        return (digest << KEEP_BITS) | keep_us
    return (digest, keep_us)


def remembered_digest(entry: Remembered) -> str | int:
    if type(entry) is int:
        return entry >> KEEP_BITS
    assert type(entry) is tuple
    digest: str | int = entry[0]
    return digest


def remembered_keep(entry: Remembered) -> int:
    if type(entry) is int:
        return entry & _KEEP_MASK
    assert type(entry) is tuple
    keep: int = entry[1]
    return keep


_NO_REASONS: list[str] = []


@dataclass(slots=True, init=False)
class ChangeEntry:
    """One explained change of an account, for ``explain``."""

    at_us: int
    event_id: str
    code: str
    available_before: int
    available_after: int
    facts: tuple[Any, ...]  # the numbers and names behind the change; words come in explain
    reasons: list[str]

    # Written out (here and in the watch and drift classes): built per ledger change, and a
    # dataclass's generated __init__ is Python code even in a compiled module (a tenth as fast).
    def __init__(
        self,
        at_us: int,
        event_id: str,
        code: str,
        available_before: int,
        available_after: int,
        facts: tuple[Any, ...],
        reasons: list[str] | None = None,
    ) -> None:
        self.at_us = at_us
        self.event_id = event_id
        self.code = code
        self.available_before = available_before
        self.available_after = available_after
        self.facts = facts
        # Most changes have no reasons: they share one empty list, never appended to (a list
        # each was a seventh of a replay's explanation history).
        self.reasons = reasons if reasons else _NO_REASONS

    def to_dict(self) -> dict[str, Any]:
        return {
            "at_us": self.at_us,
            "event_id": self.event_id,
            "code": self.code,
            "available_before": self.available_before,
            "available_after": self.available_after,
            "facts": list(self.facts),
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChangeEntry:
        return cls(**{**d, "facts": tuple(d["facts"])})

    def to_row(self) -> list[Any]:
        """The compact form kept in the changelog: up to 64 of these go out with every change
        of the account, and the keys of ``to_dict`` were half their bytes."""
        return [
            self.at_us,
            self.event_id,
            self.code,
            self.available_before,
            self.available_after,
            list(self.facts),
            list(self.reasons),
        ]

    @classmethod
    def from_row(cls, row: list[Any] | dict[str, Any]) -> ChangeEntry:
        """Either form: changelogs written before the compact one hold dicts."""
        if isinstance(row, dict):
            return cls.from_dict(row)
        at_us, event_id, code, before, after, facts, reasons = row
        return cls(at_us, event_id, code, before, after, tuple(facts), list(reasons))


@dataclass(slots=True, init=False)
class DriftState:
    """An open drift: displayed differs from expected since ``opened_us``."""

    alert_id: str  # derived when the drift breaches ("" before)
    opened_us: int
    # Expected values held since just before the drift opened, oldest first (a dict as an
    # ordered set); at most HELD_VALUES_MAX.
    held: dict[int, None]
    evidence: list[str]
    seq: int  # the account's drift number: identifies it in the deadline heap
    breached: bool
    escalated: bool
    reason: str
    severity: str
    detected_us: int
    healing: bool  # limitsync rewrote the cache; the next agreement is auto_healed

    def __init__(
        self,
        alert_id: str,
        opened_us: int,
        held: dict[int, None],
        evidence: list[str],
        seq: int = 0,
        breached: bool = False,
        escalated: bool = False,
        reason: str = "",
        severity: str = "",
        detected_us: int = 0,
        healing: bool = False,
    ) -> None:
        self.alert_id = alert_id
        self.opened_us = opened_us
        self.held = held
        self.evidence = evidence
        self.seq = seq
        self.breached = breached
        self.escalated = escalated
        self.reason = reason
        self.severity = severity
        self.detected_us = detected_us
        self.healing = healing

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "opened_us": self.opened_us,
            "held": list(self.held),
            "evidence": list(self.evidence),
            "seq": self.seq,
            "breached": self.breached,
            "escalated": self.escalated,
            "reason": self.reason,
            "severity": self.severity,
            "detected_us": self.detected_us,
            "healing": self.healing,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DriftState:
        return cls(**{**d, "held": dict.fromkeys(d["held"])})


@dataclass(slots=True, init=False)
class ClearingWatch:
    """A repayment the user made that core banking has not posted yet."""

    payment_id: str
    event_id: str
    amount: int
    opened_us: int
    alert_id: str
    breached: bool
    escalated: bool
    detected_us: int

    def __init__(
        self,
        payment_id: str,
        event_id: str,
        amount: int,
        opened_us: int,
        alert_id: str,
        breached: bool = False,
        escalated: bool = False,
        detected_us: int = 0,
    ) -> None:
        self.payment_id = payment_id
        self.event_id = event_id
        self.amount = amount
        self.opened_us = opened_us
        self.alert_id = alert_id
        self.breached = breached
        self.escalated = escalated
        self.detected_us = detected_us

    def to_dict(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "event_id": self.event_id,
            "amount": self.amount,
            "opened_us": self.opened_us,
            "alert_id": self.alert_id,
            "breached": self.breached,
            "escalated": self.escalated,
            "detected_us": self.detected_us,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClearingWatch:
        return cls(**d)


@dataclass(slots=True, init=False)
class Display:
    """One observation source of an account (docs/contract.md, "Drift, SLA and alerts"): ``app``
    (what a user was shown) or ``cache`` (what the limit cache held). Each has its own
    displayed value and its own drift; an observation of one never touches the other."""

    source: str  # "app" or "cache"
    seq: int  # drifts of this source ever opened: numbers them (alert ids, deadlines)
    observed: bool
    displayed: int | None
    key: list[Any] | None  # the newest observation's [occurred_us, cache_version, event_id]
    drift: DriftState | None
    # ledger changes not yet displayed by this source: (occurred_us, expected_after)
    pending_changes: list[tuple[int, ...]]
    since_agree: list[str]  # ledger event ids since this source last agreed

    def __init__(
        self,
        source: str,
        seq: int = 0,
        observed: bool = False,
        displayed: int | None = None,
        key: list[Any] | None = None,
        drift: DriftState | None = None,
        pending_changes: list[tuple[int, ...]] | None = None,
        since_agree: list[str] | None = None,
    ) -> None:
        self.source = source
        self.seq = seq
        self.observed = observed
        self.displayed = displayed
        self.key = key
        self.drift = drift
        self.pending_changes = [] if pending_changes is None else pending_changes
        self.since_agree = [] if since_agree is None else since_agree

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "observed": self.observed,
            "displayed": self.displayed,
            "key": self.key,
            "drift": self.drift.to_dict() if self.drift else None,
            "pending_changes": self.pending_changes,
            "since_agree": self.since_agree,
        }

    @classmethod
    def from_dict(cls, source: str, d: dict[str, Any]) -> Display:
        return cls(
            source,
            d["seq"],
            d["observed"],
            d["displayed"],
            d["key"],
            DriftState.from_dict(d["drift"]) if d["drift"] else None,
            [tuple(c) for c in d["pending_changes"]],
            list(d["since_agree"]),
        )


def _app() -> Display:
    return Display("app")


def _cache() -> Display:
    return Display("cache")


@dataclass(slots=True)
class AccountState:
    """The ledger, the display and the watches of one account."""

    account_id: str
    drawn: int = 0
    repaid: int = 0  # principal of posted repayments not reversed
    credit_line: int = 0
    line_version: int | None = None
    status: str = "active"
    status_version: int | None = None
    version: int = 0  # cache version: grows with every applied change
    last_change_us: int | None = None
    first_us: int | None = None  # first ledger change (tenure, for the scorecard)
    drawdowns: int = 0
    repayments: int = 0
    failed_debits: int = 0
    # Idempotency: event_id -> (digest, keep_us), or both in one int (``remember``), where
    # keep_us is the later of its occurred_at and the clock when it was ingested: an id is
    # forgotten only when both are older than the dedupe horizon.
    seen: dict[str, Remembered] = field(default_factory=dict)
    # Posted repayments a reversal may still undo: event_id -> [principal, keep_us, reversed,
    # payment_id or ""], kept for the reversal window.
    posted: dict[str, list[Any]] = field(default_factory=dict)
    # Reversals that found no repayment when they arrived: reversed event_id -> [reversal's
    # event_id, keep_us], kept for the reversal window (a posting that comes later is
    # reversed from the start).
    orphan_reversals: dict[str, list[Any]] = field(default_factory=dict)
    # Payment ids already posted (satisfy a later initiation in advance): id -> keep_us of
    # the posting; they go with the posting.
    posted_payments: dict[str, int] = field(default_factory=dict)
    clearing: dict[str, ClearingWatch] = field(default_factory=dict)
    # The two observation sources, each with its displayed value and its drift.
    app: Display = field(default_factory=_app)
    cache: Display = field(default_factory=_cache)
    rescore_due_us: int | None = None
    rescore_triggers: list[str] = field(default_factory=list)
    rescore_requested_us: int | None = None  # a request is out; RESCORE_PENDING until answered
    history: deque[ChangeEntry] = field(default_factory=lambda: deque(maxlen=HISTORY_MAX))
    history_seq: int = 0  # explained changes ever appended (the live store's ring slot)

    @property
    def outstanding(self) -> int:
        owed = self.drawn - self.repaid
        return owed if owed > 0 else 0

    @property
    def expected_available(self) -> int:
        if self.status != "active":
            return 0
        available = self.credit_line - self.outstanding
        return available if available > 0 else 0

    def settle_digests(self) -> None:
        """Write the remembered digests in hex: ``seen`` holds a replay parser's digests as the
        numbers their hex spells (compact in memory), and saved state holds hex."""
        seen = self.seen
        for event_id, entry in seen.items():
            digest = remembered_digest(entry)
            if type(digest) is not str:
                seen[event_id] = (content_digest(digest), remembered_keep(entry))

    def hot_dict(self) -> dict[str, Any]:
        """What each change needs, JSON-able: the live row. Bounded (see the limits above);
        the remembered ids, postings and history are stored per id beside it."""
        return {
            "account_id": self.account_id,
            "drawn": self.drawn,
            "repaid": self.repaid,
            "credit_line": self.credit_line,
            "line_version": self.line_version,
            "status": self.status,
            "status_version": self.status_version,
            "version": self.version,
            "last_change_us": self.last_change_us,
            "first_us": self.first_us,
            "drawdowns": self.drawdowns,
            "repayments": self.repayments,
            "failed_debits": self.failed_debits,
            "clearing": {k: w.to_dict() for k, w in self.clearing.items()},
            "app": self.app.to_dict(),
            "cache": self.cache.to_dict(),
            "rescore_due_us": self.rescore_due_us,
            "rescore_triggers": self.rescore_triggers,
            "rescore_requested_us": self.rescore_requested_us,
            "history_seq": self.history_seq,
        }

    def to_dict(self) -> dict[str, Any]:
        """Lossless, JSON-able form of the whole state; digests in hex."""
        self.settle_digests()
        return {
            **self.hot_dict(),
            "seen": self.seen,
            "posted": self.posted,
            "orphan_reversals": self.orphan_reversals,
            "posted_payments": self.posted_payments,
            "history": [h.to_row() for h in self.history],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccountState:
        """From ``to_dict`` or ``hot_dict`` (the per-id parts then start empty). A row saved
        before displays were tracked per source holds one display: it becomes the ``cache``
        source's (live, nearly all observations were limitsync's own cache writes and reads,
        which keep that source current), and ``app`` starts unobserved; both number their
        drifts on from the row's count, so no alert id comes again."""
        data = dict(d)
        data["clearing"] = {k: ClearingWatch.from_dict(w) for k, w in d["clearing"].items()}
        if "app" in d:
            data["app"] = Display.from_dict("app", d["app"])
            data["cache"] = Display.from_dict("cache", d["cache"])
        else:
            single = {name: data.pop(name) for name in _SINGLE_DISPLAY}
            single["key"] = single.pop("display_key")
            single["seq"] = single.pop("drift_seq")
            data["app"] = Display("app", single["seq"])
            data["cache"] = Display.from_dict("cache", single)
        data["seen"] = {k: tuple(v) for k, v in d.get("seen", {}).items()}
        data["history"] = deque(
            (ChangeEntry.from_row(h) for h in d.get("history", ())), maxlen=HISTORY_MAX
        )
        return cls(**data)
