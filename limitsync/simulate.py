"""Traffic simulator: realistic limitsync input in the contract's JSON Lines format.

``simulate(...)`` yields one contract record per line (bytes, no newline) in log order;
``write_simulation(path, ...)`` writes them to a file and returns ``SimulationStats``: the
counts, the ground truth of every injected fault, and the simulator's own model of each
account's end state (the contract's formula applied in log order).

How the traffic is made. A discrete-event simulation over one heap keyed by *log time*
(when a record reaches the log). Each account wakes up now and then (more often during the
Beijing day) to draw down, repay, be rescored, be frozen, or open the app. A repayment is
``repayment.initiated`` and, minutes to about an hour later, ``repayment.posted``; some
postings are later ``repayment.reversed``. Risk changes the credit line (``rescore`` with model
version, score and up to four reasons on cuts; ``policy`` waves; rare ``manual`` raises).
Every record that changes an account's state is applied to the model when it is emitted and
the cache syncs after a short delay: a ``limit.displayed`` (``source: cache``) with the value
the model expects. App views (``source: app``) show what the cache holds, and once a user has
opened the app it refreshes 0.1-2 s after each cache write (another ``source: app`` record), so
the app's display follows the cache and each source is in drift only while a change is on its
way (docs/contract.md tracks drift per source).

Injected faults (each at ``faults`` of its opportunities; the faulty record carries
``"sim_fault": KIND``, an extra field the contract keeps and ignores):

- ``slow_sync``: the cache sync of a change arrives 90-300 s late (tag on that display).
- ``lost_sync``: a change's sync never happens; the cache keeps the old value until a later
  change (tag on the change whose sync was lost).
- ``diverged``: the sync writes a value the account never had (tag on that display).
- ``freeze_not_applied``: after a freeze the cache keeps showing the old value > 0.
- ``cache_missing``: the cache entry vanishes: a cache read and an app view show
  ``displayed_available: null`` (tag on the app view).
- ``app_stale``: the display layer is behind: the cache is written, but the app misses the
  refresh and shows the old value for minutes (tag on the change it missed).
- ``not_posted``: a ``repayment.initiated`` that is never posted (only where the clearing SLA
  of 2 h ends before the simulated window does).
- ``duplicate``: the same record re-sent byte-identical 1 s to 5 min later (both copies tagged).
- ``conflict``: the same ``event_id`` re-sent with different content (tag on the copy).
- ``out_of_order``: a record that reaches the log 5 s to 4 min after records that occurred
  later. Only records that change nothing when they arrive are delayed, so the fault tests
  order-independence without causing a drift: an initiation arriving after its posting, a
  posting arriving after its reversal, an older credit-line version arriving after a newer one.

Each display fault shows in the sources the simulator records (``InjectedFault.sources``): the
cache faults and ``cache_missing`` in the cache and in the app (it shows what the cache holds;
they are injected only where a user has opened the app before), ``app_stale`` in the app alone.

The six display faults keep the account quiet (no state change) for a few minutes so that
their drift outlives the 60 s SLA and has the reason the contract assigns to it.

Invalid records (``bad``, a share of all lines, each tagged ``"sim_bad": KIND`` when it is
JSON at all) come right after a valid record and never change the model: not JSON, a missing
field, a float amount, a negative amount, an unknown type, a bad timestamp, no
``schema_version``, a boolean where an int belongs.

The same arguments give a byte-identical file: everything comes from ``random.Random`` seeded
from ``seed``; no wall clock is read.
"""

from __future__ import annotations

import argparse
import heapq
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "BAD_KINDS",
    "DEFAULT_START",
    "DISPLAY_FAULTS",
    "FAULT_KINDS",
    "ExpectedAccount",
    "InjectedFault",
    "Simulation",
    "SimulationError",
    "SimulationStats",
    "add_arguments",
    "main",
    "run",
    "simulate",
    "write_simulation",
]

FAULT_KINDS: frozenset[str] = frozenset(
    {
        "slow_sync",
        "lost_sync",
        "diverged",
        "freeze_not_applied",
        "not_posted",
        "cache_missing",
        "app_stale",
        "duplicate",
        "conflict",
        "out_of_order",
    }
)
BAD_KINDS: frozenset[str] = frozenset(
    {
        "not_json",
        "missing_field",
        "float_amount",
        "negative_amount",
        "unknown_type",
        "bad_timestamp",
        "missing_schema_version",
        "bool_as_int",
    }
)
DISPLAY_FAULTS: frozenset[str] = frozenset(
    {"slow_sync", "lost_sync", "diverged", "freeze_not_applied", "cache_missing", "app_stale"}
)
DEFAULT_START = datetime(2026, 11, 29, tzinfo=UTC)

FAULT_RATE_MAX = 0.25
SLA_MS = 60_000
CLEARING_SLA_MS = 7_200_000

_BAD_ORDER: tuple[str, ...] = tuple(sorted(BAD_KINDS))

_DRAWDOWN = "drawdown.booked"
_INITIATED = "repayment.initiated"
_POSTED = "repayment.posted"
_REVERSED = "repayment.reversed"
_LINE = "credit_line.changed"
_STATUS = "account.status_changed"
_DISPLAY = "limit.displayed"

_ACTIVE = "active"
_FROZEN = "frozen"

# Heap action codes.
(_A_ACT, _A_SYNC, _A_POST, _A_REVERSE, _A_UNFREEZE, _A_LINE, _A_EMIT, _A_RAW, _A_POLICY,
 _A_REFRESH) = range(10)
_APP = "app"
_CACHE = "cache"

_MIN_DRAWDOWN = 50_000  # 500 yuan
_LINE_STEP = 100_000  # credit lines move in steps of 1,000 yuan
_LINE_MIN = 200_000
_LINE_MAX = 50_000_000
_INITIAL_LINES = (
    500_000,
    1_000_000,
    2_000_000,
    3_000_000,
    5_000_000,
    8_000_000,
    10_000_000,
    20_000_000,
)
_ACT_MEAN_GAP_S = 1_150.0

# Activity multiplier by Beijing hour (UTC+8): quiet at night, busy at lunch and evening.
_DIURNAL = (
    0.35, 0.2, 0.15, 0.12, 0.12, 0.2, 0.4, 0.8, 1.1, 1.3, 1.35, 1.3,
    1.55, 1.4, 1.2, 1.2, 1.2, 1.25, 1.4, 1.55, 1.65, 1.55, 1.2, 0.7,
)  # fmt: skip

_CHANNELS = ("balance", "bank_card", "auto_debit", "transfer")
_CHANNEL_CUM = (0.2, 0.55, 0.85, 1.0)
_POSTING_DELAY_MS = {
    "balance": (60_000, 300_000),
    "bank_card": (60_000, 1_200_000),
    "auto_debit": (300_000, 2_700_000),
    "transfer": (600_000, 3_900_000),
}
_REVERSAL_RATE = {"balance": 0.01, "bank_card": 0.04, "auto_debit": 0.08, "transfer": 0.01}

_MODEL_VERSIONS = ("bscore-7.2.1", "bscore-7.3.0")
_CUT_REASONS = (
    "Credit line utilisation above 80% for the last 30 days",
    "A repayment failed for insufficient funds in the last 90 days",
    "Three or more drawdowns in the last 7 days",
    "Outstanding balance grew by more than 50% in 30 days",
    "New credit applications at other lenders in the last 30 days",
    "A repayment was more than 5 days late in the last 6 months",
    "Income verification is older than 12 months",
    "Account history shorter than 6 months",
)
_POLICY_REASONS_CUT = ("Portfolio policy: consumer-credit exposure cap lowered for this segment",)
_FREEZE_REASONS = ("suspected_fraud", "overdue_30_days", "customer_request", "kyc_review")
_UNFREEZE_REASONS = ("review_cleared", "overdue_settled", "customer_request", "kyc_completed")

_MONEY_FIELD = {
    _DRAWDOWN: "principal",
    _INITIATED: "amount",
    _POSTED: "principal",
    _LINE: "credit_line",
    _DISPLAY: "displayed_available",
}
_REQUIRED_FIELDS = {
    _DRAWDOWN: ("loan_id", "principal"),
    _INITIATED: ("payment_id", "amount", "channel"),
    _POSTED: ("loan_id", "principal", "interest", "fee"),
    _REVERSED: ("reverses_event_id",),
    _LINE: ("credit_line", "version", "cause"),
    _STATUS: ("status", "version"),
    _DISPLAY: (),
}
_ENVELOPE_REQUIRED = ("event_id", "type", "account_id", "occurred_at")
_UNKNOWN_TYPES = ("loan.restructured", "repayment.refunded", "drawdown.cancelled", "limit.shown")
_NOT_JSON_LINES = (
    b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
    b"event_id=%s type=drawdown.booked principal=100000",
    b"\xef\xbb\xbf{'event_id': '%s', 'type': 'limit.displayed'}",
)


class SimulationError(RuntimeError):
    """The simulator broke one of its own invariants (a bug, never bad input)."""


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One injected fault: the ground truth a golden test checks alerts against. ``sources``:
    the observation sources whose drift it shows in (none for the ledger and delivery faults)."""

    kind: str
    account_id: str
    event_id: str
    occurred_at: str
    payment_id: str | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExpectedAccount:
    """The simulator's model of one account after the last record (as in ``accounts.jsonl``)."""

    account_id: str
    credit_line: int
    outstanding: int
    status: str
    expected_available: int
    displayed_available: int | None  # the app's latest
    cache_available: int | None = None  # the cache's latest

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "credit_line": self.credit_line,
            "outstanding": self.outstanding,
            "status": self.status,
            "expected_available": self.expected_available,
            "displayed_available": self.displayed_available,
            "cache_available": self.cache_available,
        }


@dataclass
class SimulationStats:
    """Counts and ground truth of one simulation (filled while the lines are produced)."""

    lines: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    bad: dict[str, int] = field(default_factory=dict)
    injected: list[InjectedFault] = field(default_factory=list, repr=False)
    accounts: dict[str, ExpectedAccount] = field(default_factory=dict, repr=False)
    # Drifts (a source's display != expected, measured as the contract's replay clock would)
    # that lasted longer than the 60 s SLA: account id -> longest such drift of either source in
    # ms. Only display faults should put an account here.
    drifts_over_sla_ms: dict[str, int] = field(default_factory=dict, repr=False)
    min_expected_available: int | None = None
    first_occurred_at: str | None = None
    last_occurred_at: str | None = None

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    @property
    def fault_accounts(self) -> dict[str, frozenset[str]]:
        """Per fault kind, the accounts it was injected into."""
        found: dict[str, set[str]] = {}
        for f in self.injected:
            found.setdefault(f.kind, set()).add(f.account_id)
        return {kind: frozenset(ids) for kind, ids in found.items()}

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly digest (no per-account data)."""
        return {
            "lines": self.lines,
            "by_type": dict(sorted(self.by_type.items())),
            "faults": dict(sorted(self.faults.items())),
            "bad": dict(sorted(self.bad.items())),
            "accounts": len(self.accounts),
            "first_occurred_at": self.first_occurred_at,
            "last_occurred_at": self.last_occurred_at,
        }

    def __str__(self) -> str:
        faults = ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"
        return (
            f"{self.lines} lines, {len(self.accounts)} accounts, "
            f"faults: {faults}; bad: {self.bad_total}"
        )


class _Account:
    __slots__ = (
        "app_drift_since",
        "app_observed",
        "app_shown",
        "app_stuck_until",
        "cache",
        "cache_drift_since",
        "cache_observed",
        "cache_shown",
        "cache_version",
        "cache_written",
        "drawn",
        "expected",
        "hold_until",
        "id",
        "idx",
        "last_sync",
        "last_target",
        "line",
        "line_alloc",
        "line_version",
        "loans",
        "pace",
        "pin_until",
        "posted",
        "repaid",
        "reversed",
        "seen",
        "status",
        "status_alloc",
        "status_version",
        "unfreeze_pending",
    )

    def __init__(self, idx: int, account_id: str, pace: float) -> None:
        self.idx = idx
        self.id = account_id
        self.pace = pace  # mean gap multiplier: < 1 is a busy account
        # The contract's model, applied in log order.
        self.line = 0
        self.line_version = 0
        self.status = _ACTIVE
        self.status_version = 0
        self.drawn = 0
        self.repaid = 0
        self.posted: dict[str, int] = {}
        self.reversed: set[str] = set()
        self.expected = 0
        self.seen: set[int] = {0}
        # The generator's own bookkeeping.
        self.line_alloc = 0
        self.status_alloc = 0
        self.loans: dict[str, int] = {}  # loan id -> principal not yet committed to a payment
        self.unfreeze_pending = False
        self.hold_until = 0  # no state change before this (a display fault is showing)
        self.pin_until = 0  # a prebuilt late record is pending: start no display fault
        self.last_sync = 0  # time of the latest scheduled cache sync
        self.last_target = -1
        # The cache, and what each observation source last showed.
        self.cache: int | None = None
        self.cache_version = 0
        self.cache_written = False
        self.app_observed = False
        self.app_shown: int | None = None
        self.app_drift_since = -1
        self.cache_observed = False
        self.cache_shown: int | None = None
        self.cache_drift_since = -1
        self.app_stuck_until = 0  # the app misses refreshes and shows app_shown until then

    @property
    def clean(self) -> bool:
        """Neither source in drift."""
        return self.app_drift_since < 0 and self.cache_drift_since < 0


class _Timestamps:
    """RFC 3339 with milliseconds; the minute's prefix is cached (records come in time order)."""

    __slots__ = ("_cn", "_cn_min", "_in_minute", "_z", "_z_min")

    def __init__(self) -> None:
        self._z_min = -1
        self._z = ""
        self._cn_min = -1
        self._cn = ""
        # "SS.mmm" for every millisecond of a minute: formatting is the hot path.
        self._in_minute = [f"{ms // 1000:02d}.{ms % 1000:03d}" for ms in range(60_000)]

    def utc(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        if minute != self._z_min:
            self._z_min = minute
            self._z = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return self._z + self._in_minute[rest] + "Z"

    def beijing(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        if minute != self._cn_min:
            self._cn_min = minute
            self._cn = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60 + 28_800))
        return self._cn + self._in_minute[rest] + "+08:00"


def _to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("start must carry a UTC offset")
    return round(moment.timestamp() * 1000)


class Simulation:
    """One simulation run: iterate it for the lines; read ``stats`` once it is exhausted."""

    def __init__(
        self,
        accounts: int,
        hours: float,
        seed: int,
        faults: float = 0.02,
        bad: float = 0.001,
        start: datetime | None = None,
        fault_kinds: frozenset[str] | None = None,
    ) -> None:
        if accounts < 0:
            raise ValueError("accounts must be >= 0")
        if not hours > 0:
            raise ValueError("hours must be > 0")
        if not 0 <= faults <= FAULT_RATE_MAX:
            raise ValueError(f"faults must be within [0, {FAULT_RATE_MAX}]")
        if not 0 <= bad < 1:
            raise ValueError("bad must be within [0, 1)")
        kinds = FAULT_KINDS if fault_kinds is None else frozenset(fault_kinds)
        unknown = kinds - FAULT_KINDS
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self._accounts_n = accounts
        self._seed = seed
        self._rate = faults if kinds else 0.0
        self._kinds = kinds
        self._bad = bad
        self._start = _to_ms(start or DEFAULT_START)
        self._end = self._start + int(hours * 3_600_000)
        self._rng = random.Random(seed)  # traffic
        self._frng = random.Random(f"limitsync-faults-{seed}")  # fault decisions
        self._brng = random.Random(f"limitsync-bad-{seed}")  # invalid records
        self._arng = random.Random(f"limitsync-app-{seed}")  # app refreshes
        self._ts = _Timestamps()
        self._heap: list[tuple[int, int, int, int, Any]] = []
        self._seq = 0
        self._n_event = 0
        self._n_bad = 0
        self._n_loan = 0
        self._n_payment = 0
        self._now = self._start
        self._clock = 0
        self._out: list[bytes] = []
        self._acc: list[_Account] = []
        self.stats = SimulationStats()
        self._started = False

    # -- driving --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a Simulation runs once")
        self._started = True
        self._setup()
        handlers = (
            self._on_act,
            self._on_sync,
            self._on_post,
            self._on_reverse,
            self._on_unfreeze,
            self._on_line,
            self._on_emit,
            self._on_raw,
            self._on_policy,
            self._on_refresh,
        )
        heap = self._heap
        pop = heapq.heappop
        out = self._out
        while heap:
            t, _, code, idx, data = pop(heap)
            self._now = t
            handlers[code](idx, t, data)
            if out:
                yield from out
                out.clear()
        self._finish()

    def _push(self, t: int, code: int, idx: int, data: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, code, idx, data))

    def _setup(self) -> None:
        rng = self._rng
        spread = max(1, min(300_000, (self._end - self._start) // 4))
        for i in range(self._accounts_n):
            pace = min(4.0, max(0.25, rng.lognormvariate(0.0, 0.6)))
            a = _Account(i, f"acct-{i + 1:06d}", pace)
            self._acc.append(a)
            t = self._start + rng.randrange(spread)
            self._push(t, _A_LINE, i, ("initial", rng.choice(_INITIAL_LINES), None))
            self._schedule_act(a, t)
        t = self._start + 3 * 3_600_000
        while t < self._end:
            self._push(t, _A_POLICY, -1, None)
            t += 6 * 3_600_000

    def _schedule_act(self, a: _Account, t: int) -> None:
        hour = ((t // 3_600_000) + 8) % 24
        mean_s = _ACT_MEAN_GAP_S * a.pace / _DIURNAL[hour]
        nxt = t + 1 + int(self._rng.expovariate(1.0) * mean_s * 1000)
        if nxt < self._end:
            self._push(nxt, _A_ACT, a.idx, None)

    def _finish(self) -> None:
        st = self.stats
        for a in self._acc:
            for since in (a.app_drift_since, a.cache_drift_since):
                if since >= 0:
                    self._note_drift(a, self._clock - since)
            st.accounts[a.id] = ExpectedAccount(
                account_id=a.id,
                credit_line=a.line,
                outstanding=max(0, a.drawn - a.repaid),
                status=a.status,
                expected_available=a.expected,
                displayed_available=a.app_shown if a.app_observed else None,
                cache_available=a.cache_shown if a.cache_observed else None,
            )

    # -- records --------------------------------------------------------------------------

    def _record(self, typ: str, a: _Account, t: int, utc: bool) -> dict[str, Any]:
        self._n_event += 1
        return {
            "event_id": f"evt-{self._seed}-{self._n_event}",
            "type": typ,
            "account_id": a.id,
            "occurred_at": self._ts.utc(t) if utc else self._ts.beijing(t),
            "schema_version": 1,
        }

    def _display(self, a: _Account, t: int, value: int | None, source: str) -> dict[str, Any]:
        rec = self._record(_DISPLAY, a, t, utc=False)
        rec["displayed_available"] = value
        if value is not None:
            rec["cache_version"] = a.cache_version
        rec["source"] = source
        return rec

    def _line_record(
        self, a: _Account, t: int, cause: str, line: int, reasons: list[str] | None
    ) -> dict[str, Any]:
        rec = self._record(_LINE, a, t, utc=True)
        a.line_alloc += 1
        rec["credit_line"] = line
        rec["version"] = a.line_alloc
        rec["cause"] = cause
        if cause == "rescore":
            cut = line < a.line
            rec["model_version"] = _MODEL_VERSIONS[0 if t < self._start + 43_200_000 else 1]
            rec["score"] = self._rng.randint(380, 600) if cut else self._rng.randint(600, 820)
        if reasons:
            rec["reasons"] = reasons
        return rec

    def _emit(
        self,
        a: _Account,
        rec: dict[str, Any],
        t: int,
        tag: str | None = None,
        freeze: bool = False,
    ) -> None:
        """Apply a new record to the model, schedule its cache sync, and write it out."""
        was_clean = a.clean
        if self._apply(a, rec):
            tag = self._schedule_sync(a, t, was_clean, freeze, tag)
        copy: str | None = None
        if tag is None and self._rate > 0.0:
            u = self._frng.random()
            if u < self._rate:
                if "duplicate" in self._kinds:
                    tag = "duplicate"
                    copy = tag
            elif u < 2 * self._rate and "conflict" in self._kinds:
                copy = "conflict"
        if tag is not None:
            rec["sim_fault"] = tag
            self._note_fault(tag, a, rec)
        line = orjson.dumps(rec)
        self._write(line, rec["type"])
        if copy is not None:
            later = self._now + self._frng.randint(1_000, 300_000)
            if copy == "conflict":
                self._note_fault(copy, a, rec)
                line = orjson.dumps(_conflicting(rec))
            self._push(later, _A_RAW, a.idx, (line, rec["type"]))
        if self._bad > 0.0 and self._brng.random() < self._bad:
            self._write_bad(rec, t)
        self._track(a, t, rec["occurred_at"])

    def _write(self, line: bytes, typ: str) -> None:
        self._out.append(line)
        st = self.stats
        st.lines += 1
        st.by_type[typ] = st.by_type.get(typ, 0) + 1

    def _note_fault(self, kind: str, a: _Account, rec: dict[str, Any]) -> None:
        st = self.stats
        st.faults[kind] = st.faults.get(kind, 0) + 1
        payment = rec.get("payment_id") if kind == "not_posted" else None
        sources: tuple[str, ...] = ()
        if kind == "app_stale":
            sources = (_APP,)
        elif kind in DISPLAY_FAULTS:
            sources = (_APP, _CACHE)
        st.injected.append(
            InjectedFault(kind, a.id, rec["event_id"], rec["occurred_at"], payment, sources)
        )

    # -- the model (docs/contract.md, "The expected available limit") ----------------------------

    def _apply(self, a: _Account, rec: dict[str, Any]) -> bool:
        """Apply one new record; True when the account's ledger state changed."""
        typ = rec["type"]
        if typ == _DISPLAY:
            if rec["source"] == _CACHE:
                a.cache_shown = rec["displayed_available"]
                a.cache_observed = True
            else:
                a.app_shown = rec["displayed_available"]
                a.app_observed = True
            return False
        if typ == _DRAWDOWN:
            a.drawn += rec["principal"]
        elif typ == _POSTED:
            eid = rec["event_id"]
            a.posted[eid] = rec["principal"]
            if eid in a.reversed:
                return False
            a.repaid += rec["principal"]
        elif typ == _REVERSED:
            rid = rec["reverses_event_id"]
            if rid in a.reversed:
                return False
            a.reversed.add(rid)
            if rid not in a.posted:
                return False
            a.repaid -= a.posted[rid]
        elif typ == _LINE:
            if rec["version"] <= a.line_version:
                return False
            a.line = rec["credit_line"]
            a.line_version = rec["version"]
        elif typ == _STATUS:
            if rec["version"] <= a.status_version:
                return False
            a.status = rec["status"]
            a.status_version = rec["version"]
        else:  # repayment.initiated changes nothing
            return False
        outstanding = a.drawn - a.repaid
        if outstanding < 0:
            raise SimulationError(f"{a.id}: repaid more principal than was drawn")
        expected = max(0, a.line - outstanding) if a.status == _ACTIVE else 0
        a.expected = expected
        low = self.stats.min_expected_available
        if low is None or expected < low:
            self.stats.min_expected_available = expected
        return True

    def _track(self, a: _Account, t: int, occurred_at: str) -> None:
        """Follow drifts the way the contract's replay clock sees them."""
        st = self.stats
        if t > self._clock:
            self._clock = t
            st.last_occurred_at = occurred_at
            if st.first_occurred_at is None:
                st.first_occurred_at = occurred_at
        if a.app_observed:
            a.app_drift_since = self._drift_since(a, a.app_shown, a.app_drift_since, t)
        if a.cache_observed:
            a.cache_drift_since = self._drift_since(a, a.cache_shown, a.cache_drift_since, t)

    def _drift_since(self, a: _Account, shown: int | None, since: int, t: int) -> int:
        """One source's drift start after a record at t (-1: not in drift)."""
        if shown != a.expected:
            return t if since < 0 else since
        if since >= 0:
            self._note_drift(a, self._clock - since)
        return -1

    def _note_drift(self, a: _Account, age_ms: int) -> None:
        if age_ms > SLA_MS:
            worst = self.stats.drifts_over_sla_ms
            worst[a.id] = max(age_ms, worst.get(a.id, 0))

    # -- cache syncs and display faults ------------------------------------------------------

    def _fault_room(self, a: _Account, t: int, window_ms: int) -> bool:
        """Can a display fault start now and show cleanly for window_ms?"""
        return (
            a.cache_observed
            and a.app_observed
            and a.clean
            and t >= a.hold_until
            and t >= a.pin_until
            and a.last_sync <= t
            and t + window_ms <= self._end
        )

    def _schedule_sync(
        self, a: _Account, t: int, was_clean: bool, freeze: bool, tag: str | None
    ) -> str | None:
        value = a.expected
        changed = value != a.last_target
        a.last_target = value
        a.seen.add(value)
        at = max(t + 150 + min(12_000, int(self._rng.expovariate(1.0) * 1_200)), a.last_sync + 1)
        r = self._rate
        if r > 0.0 and tag is None and was_clean and self._fault_room(a, t, 900_000):
            kinds = self._kinds
            frng = self._frng
            u = frng.random()
            if freeze:
                if u < r and "freeze_not_applied" in kinds and a.cache is not None and a.cache > 0:
                    a.hold_until = t + frng.randint(180_000, 900_000)
                    a.last_sync = at
                    self._push(at, _A_SYNC, a.idx, (None, False, "freeze_not_applied"))
                    return None
            elif changed and a.status == _ACTIVE:
                if u < r and "slow_sync" in kinds:
                    at = t + frng.randint(90_000, 300_000)
                    a.hold_until = at + 30_000
                    a.last_sync = at
                    self._push(at, _A_SYNC, a.idx, (value, True, "slow_sync"))
                    return None
                if r <= u < 2 * r and "lost_sync" in kinds:
                    a.hold_until = t + frng.randint(180_000, 900_000)
                    return "lost_sync"
                if 2 * r <= u < 3 * r and "diverged" in kinds:
                    a.hold_until = t + frng.randint(180_000, 900_000)
                    a.last_sync = at
                    self._push(at, _A_SYNC, a.idx, (self._divergent(a, value), True, "diverged"))
                    return None
                if 3 * r <= u < 4 * r and "app_stale" in kinds:
                    # The cache is written as usual; the app misses the refreshes.
                    a.hold_until = t + frng.randint(180_000, 900_000)
                    a.app_stuck_until = a.hold_until
                    a.last_sync = at
                    self._push(at, _A_SYNC, a.idx, (value, True, None))
                    return "app_stale"
        a.last_sync = at
        self._push(at, _A_SYNC, a.idx, (value, True, None))
        return tag

    def _divergent(self, a: _Account, value: int) -> int:
        frng = self._frng
        while True:
            delta = frng.randint(1, 400) * 1_000 + frng.randint(1, 99)
            wrong = value + delta if value < delta or frng.random() < 0.7 else value - delta
            if wrong not in a.seen:
                return wrong

    def _on_sync(self, idx: int, t: int, data: tuple[int | None, bool, str | None]) -> None:
        a = self._acc[idx]
        value, write, tag = data
        if write:
            a.cache = value
            a.cache_version += 1
            a.cache_written = True
            if a.app_observed:  # the app shows the new value a moment later
                self._push(t + self._arng.randint(100, 2_000), _A_REFRESH, idx, None)
        else:  # the write did not happen: the display shows what the cache still holds
            value = a.cache
        self._emit(a, self._display(a, t, value, _CACHE), t, tag)

    def _on_refresh(self, idx: int, t: int, _: None) -> None:
        a = self._acc[idx]
        if t >= a.app_stuck_until:
            self._emit(a, self._display(a, t, a.cache, _APP), t)

    # -- account activity -------------------------------------------------------------------

    def _on_act(self, idx: int, t: int, _: None) -> None:
        a = self._acc[idx]
        self._schedule_act(a, t)
        if t < a.hold_until:
            self._view(a, t)
            return
        u = self._rng.random()
        done = False
        if u < 0.40:
            done = False
        elif u < 0.57:
            done = self._drawdown(a, t)
        elif u < 0.84:
            done = self._repay(a, t) or self._drawdown(a, t)
        elif u < 0.965:
            done = self._rescore(a, t)
        elif u < 0.98:
            done = self._freeze(a, t)
        else:
            done = self._manual(a, t)
        if not done:
            self._view(a, t)

    def _view(self, a: _Account, t: int) -> None:
        if not a.cache_written:
            return
        if (
            self._rate > 0.0
            and "cache_missing" in self._kinds
            and a.status == _ACTIVE
            and a.cache is not None
            and self._fault_room(a, t, 900_000)
            and self._frng.random() < self._rate
        ):
            a.cache = None
            a.hold_until = t + self._frng.randint(180_000, 900_000)
            self._emit(a, self._display(a, t, None, _CACHE), t)  # a cache read finds nothing
            self._emit(a, self._display(a, t, None, _APP), t, "cache_missing")
            return
        shown = a.app_shown if t < a.app_stuck_until else a.cache
        self._emit(a, self._display(a, t, shown, _APP), t)

    def _drawdown(self, a: _Account, t: int) -> bool:
        avail = a.expected
        if a.status != _ACTIVE or avail < _MIN_DRAWDOWN:
            return False
        rng = self._rng
        amount = max(_MIN_DRAWDOWN, int(avail * rng.uniform(0.05, 0.6)) // 10_000 * 10_000)
        self._n_loan += 1
        loan_id = f"loan-{self._seed}-{self._n_loan}"
        a.loans[loan_id] = amount
        rec = self._record(_DRAWDOWN, a, t, utc=False)
        rec["loan_id"] = loan_id
        rec["principal"] = amount
        rec["term_months"] = rng.choice((3, 6, 12, 12, 24))
        self._emit(a, rec, t)
        return True

    def _repay(self, a: _Account, t: int) -> bool:
        if not a.loans:
            return False
        rng = self._rng
        loan_id = rng.choice(list(a.loans))
        left = a.loans[loan_id]
        if left <= 100_000 or rng.random() < 0.35:
            principal = left
        else:
            principal = max(10_000, left // rng.choice((2, 3, 6, 12)))
        if principal >= left:
            del a.loans[loan_id]
        else:
            a.loans[loan_id] = left - principal
        interest = int(principal * rng.uniform(0.002, 0.03))
        fee = 0 if rng.random() < 0.85 else rng.choice((500, 1_000, 2_000, 5_000))
        u = rng.random()
        channel = next(c for c, cum in zip(_CHANNELS, _CHANNEL_CUM, strict=True) if u < cum)
        self._n_payment += 1
        payment_id = f"pay-{self._seed}-{self._n_payment}"
        rec = self._record(_INITIATED, a, t, utc=False)
        rec["payment_id"] = payment_id
        rec["amount"] = principal + interest + fee
        rec["channel"] = channel
        posting = (loan_id, principal, interest, fee, payment_id, channel)
        r = self._rate
        if r > 0.0:
            frng = self._frng
            if (
                frng.random() < r
                and "not_posted" in self._kinds
                and t + CLEARING_SLA_MS + 300_000 <= self._end
            ):
                self._emit(a, rec, t, "not_posted")
                return True
            if frng.random() < r and "out_of_order" in self._kinds:
                post_at = t + frng.randint(20_000, 90_000)
                arrive = post_at + frng.randint(5_000, 150_000)
                self._push(post_at, _A_POST, a.idx, posting)
                self._push(arrive, _A_EMIT, a.idx, (rec, t, "out_of_order"))
                a.pin_until = max(a.pin_until, arrive)
                return True
        self._emit(a, rec, t)
        low, high = _POSTING_DELAY_MS[channel]
        self._push(t + rng.randint(low, high), _A_POST, a.idx, posting)
        return True

    def _on_post(self, idx: int, t: int, posting: tuple[str, int, int, int, str, str]) -> None:
        a = self._acc[idx]
        if t < a.hold_until:
            self._push(a.hold_until + self._rng.randint(1_000, 60_000), _A_POST, idx, posting)
            return
        loan_id, principal, interest, fee, payment_id, channel = posting
        rec = self._record(_POSTED, a, t, utc=False)
        rec["loan_id"] = loan_id
        rec["principal"] = principal
        rec["interest"] = interest
        rec["fee"] = fee
        rec["payment_id"] = payment_id
        rng = self._rng
        if rng.random() >= _REVERSAL_RATE[channel]:
            self._emit(a, rec, t)
            return
        reversal = (rec["event_id"], loan_id, principal)
        if self._rate > 0.0 and "out_of_order" in self._kinds and self._frng.random() < self._rate:
            # A quick failed debit: the posting reaches the log only after its own reversal.
            reverse_at = t + self._frng.randint(20_000, 120_000)
            arrive = reverse_at + self._frng.randint(5_000, 120_000)
            if arrive <= self._end:
                self._push(reverse_at, _A_REVERSE, idx, reversal)
                self._push(arrive, _A_EMIT, idx, (rec, t, "out_of_order"))
                a.pin_until = max(a.pin_until, arrive)
                return
        self._emit(a, rec, t)
        reverse_at = t + rng.randint(120_000, 3_600_000)
        if reverse_at <= self._end:
            self._push(reverse_at, _A_REVERSE, idx, reversal)

    def _on_reverse(self, idx: int, t: int, reversal: tuple[str, str, int]) -> None:
        a = self._acc[idx]
        if t < a.hold_until:
            self._push(a.hold_until + self._rng.randint(1_000, 60_000), _A_REVERSE, idx, reversal)
            return
        posted_id, loan_id, principal = reversal
        a.loans[loan_id] = a.loans.get(loan_id, 0) + principal
        rec = self._record(_REVERSED, a, t, utc=False)
        rec["reverses_event_id"] = posted_id
        rec["failure"] = "insufficient_funds"
        self._emit(a, rec, t)

    def _rescore(self, a: _Account, t: int) -> bool:
        if a.status != _ACTIVE or a.line <= 0:
            return False
        rng = self._rng
        cut = rng.random() < 0.4
        line = _new_line(a.line, rng.uniform(0.5, 0.9) if cut else rng.uniform(1.1, 1.5))
        if line == a.line:
            return False
        reasons = rng.sample(_CUT_REASONS, rng.randint(1, 4)) if line < a.line else None
        rec = self._line_record(a, t, "rescore", line, reasons)
        if self._rate > 0.0 and "out_of_order" in self._kinds and self._frng.random() < self._rate:
            # A corrected score follows within a minute; the first arrives after it.
            frng = self._frng
            fixed_at = t + frng.randint(5_000, 60_000)
            arrive = fixed_at + frng.randint(5_000, 180_000)
            fixed_line = _new_line(line, frng.uniform(0.9, 1.1))
            fixed_reasons = reasons if fixed_line < a.line else None
            fixed = self._line_record(a, fixed_at, "rescore", fixed_line, fixed_reasons)
            self._push(fixed_at, _A_EMIT, a.idx, (fixed, fixed_at, None))
            self._push(arrive, _A_EMIT, a.idx, (rec, t, "out_of_order"))
            a.pin_until = max(a.pin_until, arrive)
            return True
        self._emit(a, rec, t)
        return True

    def _manual(self, a: _Account, t: int) -> bool:
        if a.status != _ACTIVE or a.line <= 0:
            return False
        line = _new_line(a.line, self._rng.uniform(1.1, 1.3))
        self._emit(a, self._line_record(a, t, "manual", line, None), t)
        return True

    def _freeze(self, a: _Account, t: int) -> bool:
        if a.status != _ACTIVE or a.unfreeze_pending:
            return False
        rng = self._rng
        a.status_alloc += 1
        rec = self._record(_STATUS, a, t, utc=True)
        rec["status"] = _FROZEN
        rec["version"] = a.status_alloc
        rec["reason"] = rng.choice(_FREEZE_REASONS)
        self._emit(a, rec, t, freeze=True)
        until = t + rng.randint(1_800_000, 28_800_000)
        if until < self._end:
            a.unfreeze_pending = True
            self._push(until, _A_UNFREEZE, a.idx, None)
        return True

    def _on_unfreeze(self, idx: int, t: int, _: None) -> None:
        a = self._acc[idx]
        if t < a.hold_until:
            self._push(a.hold_until + self._rng.randint(1_000, 60_000), _A_UNFREEZE, idx, None)
            return
        a.unfreeze_pending = False
        a.status_alloc += 1
        rec = self._record(_STATUS, a, t, utc=True)
        rec["status"] = _ACTIVE
        rec["version"] = a.status_alloc
        rec["reason"] = self._rng.choice(_UNFREEZE_REASONS)
        self._emit(a, rec, t)

    def _on_line(self, idx: int, t: int, data: tuple[str, float, list[str] | None]) -> None:
        a = self._acc[idx]
        cause, value, reasons = data
        if cause == "initial":
            self._emit(a, self._line_record(a, t, cause, int(value), None), t)
            return
        if t < a.hold_until:
            self._push(a.hold_until + self._rng.randint(1_000, 60_000), _A_LINE, idx, data)
            return
        line = _new_line(a.line, value)
        if line != a.line:
            self._emit(a, self._line_record(a, t, cause, line, reasons), t)

    def _on_policy(self, _: int, t: int, __: None) -> None:
        rng = self._rng
        cut = rng.random() < 0.5
        factor = 0.85 if cut else 1.15
        reasons = list(_POLICY_REASONS_CUT) if cut else None
        for a in self._acc:
            if rng.random() < 0.04:
                at = t + rng.randrange(600_000)
                if at < self._end:
                    self._push(at, _A_LINE, a.idx, ("policy", factor, reasons))

    # -- prebuilt and copied records ----------------------------------------------------------

    def _on_emit(self, idx: int, t: int, data: tuple[dict[str, Any], int, str | None]) -> None:
        rec, occurred, tag = data
        self._emit(self._acc[idx], rec, occurred, tag)

    def _on_raw(self, idx: int, t: int, data: tuple[bytes, str]) -> None:
        self._write(*data)

    # -- invalid records ----------------------------------------------------------------------

    def _write_bad(self, rec: dict[str, Any], t: int) -> None:
        brng = self._brng
        kind = brng.choice(_BAD_ORDER)
        self._n_bad += 1
        bad_id = f"evt-{self._seed}-x{self._n_bad}"
        tpl = {k: v for k, v in rec.items() if k != "sim_fault"}
        money = _MONEY_FIELD.get(tpl["type"])
        if kind in ("float_amount", "negative_amount", "bool_as_int") and (
            money is None or tpl.get(money) is None
        ):
            tpl = {k: tpl[k] for k in ("type", "account_id", "occurred_at", "schema_version")}
            tpl["type"] = _DRAWDOWN
            tpl["loan_id"] = f"loan-{self._seed}-x{self._n_bad}"
            tpl["principal"] = brng.randint(5, 500) * 10_000
            money = "principal"
        obj: dict[str, Any] = {"event_id": bad_id, "sim_bad": kind}
        obj.update((k, v) for k, v in tpl.items() if k != "event_id")
        if kind == "not_json":
            line = self._not_json(obj, bad_id)
        else:
            _corrupt(obj, kind, money, t, brng)
            line = orjson.dumps(obj)
        self._out.append(line)
        st = self.stats
        st.lines += 1
        st.bad[kind] = st.bad.get(kind, 0) + 1

    def _not_json(self, obj: dict[str, Any], bad_id: str) -> bytes:
        brng = self._brng
        if brng.random() < 0.7:
            whole = orjson.dumps(obj)
            return whole[: brng.randint(len(whole) // 3, len(whole) - 2)]
        template = brng.choice(_NOT_JSON_LINES)
        return template.replace(b"%s", bad_id.encode()) if b"%s" in template else template


def _new_line(line: int, factor: float) -> int:
    value = round(line * factor / _LINE_STEP) * _LINE_STEP
    return min(_LINE_MAX, max(_LINE_MIN, value))


def _conflicting(rec: dict[str, Any]) -> dict[str, Any]:
    """Same event_id, different content: a producer bug, not a retry."""
    other = dict(rec)
    money = _MONEY_FIELD.get(rec["type"])
    if money is not None and isinstance(other.get(money), int):
        other[money] += 10_000
    elif rec["type"] == _STATUS:
        other["reason"] = "manual_override"
    other["sim_fault"] = "conflict"
    return other


def _corrupt(
    obj: dict[str, Any], kind: str, money: str | None, t: int, brng: random.Random
) -> None:
    """Make a valid record invalid in one way (see BAD_KINDS)."""
    if kind == "missing_field":
        required = _ENVELOPE_REQUIRED + _REQUIRED_FIELDS[obj["type"]]
        obj.pop(brng.choice(required), None)
    elif kind == "float_amount" and money is not None:
        obj[money] = obj[money] / 100  # yuan instead of fen
    elif kind == "negative_amount" and money is not None:
        obj[money] = -(obj[money] or 10_000)
    elif kind == "bool_as_int" and money is not None:
        obj[money] = True
    elif kind == "unknown_type":
        obj["type"] = brng.choice(_UNKNOWN_TYPES)
    elif kind == "bad_timestamp":
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1000))
        obj["occurred_at"] = brng.choice(
            (
                moment,  # no offset
                moment.replace("T", " "),
                moment[:8] + "32" + moment[10:] + ".000Z",  # day 32
                moment[:11] + "25" + moment[13:] + "+08:00",  # hour 25
                "yesterday at noon",
                t,  # epoch milliseconds: not a string
            )
        )
    elif kind == "missing_schema_version":
        del obj["schema_version"]


def simulate(
    accounts: int,
    hours: float,
    seed: int,
    faults: float = 0.02,
    bad: float = 0.001,
    start: datetime | None = None,
    fault_kinds: frozenset[str] | None = None,
) -> Iterator[bytes]:
    """The simulated log, one JSON line each (no newline), in log order."""
    return iter(Simulation(accounts, hours, seed, faults, bad, start, fault_kinds))


def write_simulation(
    path: Path,
    accounts: int,
    hours: float,
    seed: int,
    faults: float = 0.02,
    bad: float = 0.001,
    start: datetime | None = None,
    fault_kinds: frozenset[str] | None = None,
) -> SimulationStats:
    """Write the simulated log to ``path`` (JSON Lines) and return its stats and ground truth."""
    sim = Simulation(accounts, hours, seed, faults, bad, start, fault_kinds)
    chunk: list[bytes] = []
    with Path(path).open("wb") as f:
        for line in sim:
            chunk.append(line)
            if len(chunk) >= 8_192:
                chunk.append(b"")
                f.write(b"\n".join(chunk))
                chunk.clear()
        if chunk:
            chunk.append(b"")
            f.write(b"\n".join(chunk))
    return sim.stats


# -- command line ------------------------------------------------------------------------------


def _start_arg(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("start needs an offset, e.g. 2026-11-29T00:00:00Z")
    return moment


def _kinds_arg(text: str) -> frozenset[str]:
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = kinds - FAULT_KINDS
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    return kinds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``limitsync simulate``."""
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", type=float, default=0.02, help="share of each fault kind")
    parser.add_argument("--bad", type=float, default=0.001, help="share of invalid records")
    parser.add_argument("--start", type=_start_arg, default=None, help="RFC 3339 start time")
    parser.add_argument(
        "--fault-kinds", type=_kinds_arg, default=None, help="comma-separated subset of kinds"
    )
    parser.add_argument("--truth", default=None, help="also write the ground truth (JSON) here")
    parser.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> int:
    stats = write_simulation(
        Path(args.out),
        accounts=args.accounts,
        hours=args.hours,
        seed=args.seed,
        faults=args.faults,
        bad=args.bad,
        start=args.start,
        fault_kinds=args.fault_kinds,
    )
    if args.truth:
        truth = {
            **stats.summary(),
            "injected": [
                {k: v for k, v in _fault_dict(f).items() if v is not None} for f in stats.injected
            ],
            "expected_accounts": [a.as_dict() for a in stats.accounts.values()],
        }
        Path(args.truth).write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
    print(f"wrote {args.out}: {stats}")
    return 0


def _fault_dict(fault: InjectedFault) -> dict[str, Any]:
    return {
        "kind": fault.kind,
        "account_id": fault.account_id,
        "event_id": fault.event_id,
        "occurred_at": fault.occurred_at,
        "payment_id": fault.payment_id,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="limitsync simulate", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
