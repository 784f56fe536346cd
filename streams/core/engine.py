"""The engine: one record at a time, the contract's replay-clock algorithm.

For each valid record: dedupe, advance the clock, fire what is due, apply, evaluate the
drift, fire again. Deadlines live in a heap (cost per event O(log n), independent of the
number of accounts); entries are invalidated lazily by checking the account's current watch
when they come due. No I/O: effects are returned to the shell.
"""

from __future__ import annotations

import heapq
from array import array
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from schemas import contract
from schemas import events as contract_models
from schemas.events import EVENT_TYPES
from schemas.native import (
    DrawdownBooked,
    Event,
    LimitDisplayed,
    RepaymentInitiated,
    RepaymentPosted,
    RepaymentReversed,
    from_model,
)
from schemas.parse import content_digest
from schemas.timefmt import to_us
from streams.core import alerts
from streams.core.admission import ADMITTED, DUPLICATE, Admission
from streams.core.clock import Clock
from streams.core.effects import (
    AlertRaised,
    CacheWrite,
    ChangeDisplayed,
    Effect,
    RescoreRequested,
    ReversalUnmatched,
)
from streams.core.errors import CoreError
from streams.core.journal import HISTORY, ID, ORPHAN, POSTING, REVERSAL, Journal, JournalKey
from streams.core.ledger import apply_ledger
from streams.core.state import (
    CLEARING_WATCHES_MAX,
    EVIDENCE_MAX,
    HELD_VALUES_MAX,
    HISTORY_MAX,
    PENDING_CHANGES_MAX,
    TRIGGERS_MAX,
    AccountState,
    ChangeEntry,
    ClearingWatch,
    Display,
    DriftState,
    remember,
    remembered_digest,
    remembered_keep,
)

__all__ = ["CoreConfig", "Engine", "Outcome"]

_S = 1_000_000
_COUNTER_KEYS = {kind: f"events.{kind}" for kind in EVENT_TYPES}
# Deadline kinds: a drift's breach and escalation, of the app's drifts and of the cache's;
# a clearing watch's; a coalesced rescore's.
_BREACH, _ESCALATE, _CACHE_BREACH, _CACHE_ESCALATE = range(4)
_CLEARING, _CLEARING_ESCALATE, _RESCORE = range(4, 7)
# Event classes are final: the core tests ``type(event) is X``, an identity check.
_RESCORE_TRIGGERS = (DrawdownBooked, RepaymentPosted)


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """The core's knobs, all in microseconds of the injected clock: the one configuration
    object of the core, for live workers and replay alike. ``from_seconds`` builds it from the
    seconds operators and the contract speak in; the defaults are the contract's."""

    sla_us: int = contract.SLA_S * _S
    clearing_sla_us: int = contract.CLEARING_SLA_S * _S
    escalation_factor: int = contract.ESCALATION_FACTOR
    dedupe_horizon_us: int = contract.DEDUPE_HORIZON_S * _S
    rescore_enabled: bool = False
    rescore_window_us: int = contract.RESCORE_WINDOW_S * _S
    reversal_window_us: int = contract.REVERSAL_WINDOW_S * _S

    @staticmethod
    def from_seconds(
        *,
        sla_s: int = contract.SLA_S,
        clearing_sla_s: int = contract.CLEARING_SLA_S,
        escalation_factor: int = contract.ESCALATION_FACTOR,
        dedupe_horizon_s: int = contract.DEDUPE_HORIZON_S,
        rescore_enabled: bool = False,
        rescore_window_s: int = contract.RESCORE_WINDOW_S,
        reversal_window_s: int = contract.REVERSAL_WINDOW_S,
    ) -> CoreConfig:
        """The knobs in seconds, by the names settings use (``Settings.core_seconds``)."""
        return CoreConfig(
            sla_us=sla_s * _S,
            clearing_sla_us=clearing_sla_s * _S,
            escalation_factor=escalation_factor,
            dedupe_horizon_us=dedupe_horizon_s * _S,
            rescore_enabled=rescore_enabled,
            rescore_window_us=rescore_window_s * _S,
            reversal_window_us=reversal_window_s * _S,
        )


class _IdFifo:
    """Remembered ids in the order they expire: (keep_us, account, event id) in three flat
    columns. There is one entry per id inside the dedupe horizon, and a tuple per entry was a
    quarter of a day-long replay's memory. Taken from the front by an index; the taken part
    is cut once it is half of what is held, so at most twice the live entries are held."""

    __slots__ = ("_accounts", "_event_ids", "_head", "_keeps")

    def __init__(self) -> None:
        self._keeps = array("q")
        self._accounts: list[str] = []
        self._event_ids: list[str] = []
        self._head = 0

    def empty(self) -> bool:
        return self._head == len(self._event_ids)

    def first_keep(self) -> int:
        return self._keeps[self._head]

    def last_keep(self) -> int:
        return self._keeps[len(self._keeps) - 1]

    def append(self, keep: int, account_id: str, event_id: str) -> None:
        self._keeps.append(keep)
        self._accounts.append(account_id)
        self._event_ids.append(event_id)

    def pop(self) -> tuple[int, str, str]:
        """The first entry, taken off (the FIFO is not empty)."""
        head = self._head
        entry = (self._keeps[head], self._accounts[head], self._event_ids[head])
        head += 1
        if head >= _FIFO_CUT_MIN and 2 * head >= len(self._event_ids):
            del self._keeps[:head]
            del self._accounts[:head]
            del self._event_ids[:head]
            head = 0
        self._head = head
        return entry


_FIFO_CUT_MIN = 4096  # taken entries below this are not worth a cut


class Outcome(Enum):
    """What became of one valid record."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def outcome_key(outcome: Outcome) -> str:
    """``outcome.value``, read without the enum's ``value`` descriptor, which runs as Python
    code: a replay counts every duplicate and conflict by it."""
    if outcome is Outcome.APPLIED:
        return _APPLIED
    return _DUPLICATE if outcome is Outcome.DUPLICATE else _CONFLICT


_APPLIED: Final = "applied"
_DUPLICATE: Final = "duplicate"
_CONFLICT: Final = "conflict"


class Engine:
    """The domain core for a set of accounts, with an injected clock."""

    def __init__(
        self,
        config: CoreConfig,
        clock: Clock,
        journal: Journal | None = None,
        compact_ids: bool = False,
        expected_ids: int = 0,
    ) -> None:
        self.config = config
        self.clock = clock
        # A live shell's record of per-id changes (replay keeps none); written as a plain dict:
        # a method call per change from compiled code into an uncompiled class is expensive
        # next to the rest of a ledger event.
        self._journal: dict[JournalKey, Any] | None = None if journal is None else journal.changes
        self.accounts: dict[str, AccountState] = {}
        # A plain dict: collections.Counter defines __delitem__ in Python, which routes every
        # store through a slot wrapper (a Python-level call per increment, twice a record).
        self._counts: dict[str, int] = {}
        self.dirty: set[str] = set()  # accounts changed since the shell last persisted them
        self._deadlines: list[tuple[int, tuple[Any, ...], int, str, str | int]] = []  # a heap
        self._breach_fifo: deque[tuple[int, tuple[Any, ...], int, str, str | int]] = deque()
        # Ids to forget at the dedupe horizon: (keep_us, account, event id). keep_us is the
        # later of event time and ingestion clock, which mostly grows record by record, so most
        # go on a FIFO; a late one goes on a heap. A heap push compares with an entry from half
        # the heap ago, a cache miss on every record. (Written out twice, here and for breach
        # deadlines: a shared helper taking Any-typed entries is slower on the hot path.)
        self._expiry_fifo = _IdFifo()
        self._expiry: list[tuple[int, str, str]] = []
        # Postings and waiting reversals to forget at the reversal window: (keep_us, account,
        # kind, id); few records leave one, so a heap is enough.
        self._reversal_expiry: list[tuple[int, str, str, str]] = []
        # compact_ids: a replay's ids in a flat table (streams.core.ids) instead of
        # ``AccountState.seen`` and the queues above; nothing a shell persists then holds them,
        # so it cannot go with a journal.
        if compact_ids and journal is not None:
            raise CoreError("compact ids are a replay's: they cannot be journaled")
        # expected_ids: how many ids a replay will likely remember (0: unknown): the compact
        # table is sized for them at once.
        self._admission: Admission | None = (
            Admission(config.dedupe_horizon_us, expected_ids, clock) if compact_ids else None
        )
        # Deadlines due at the same µs fire in the order they were pushed. That order is kept
        # as a key that says where in the log the push happened, not as a count of pushes:
        # (step, 1, n) for the n-th push of a step's apply; (step, phase, (due, key)) for a
        # push made while firing the deadline (due, key) before (0) or after (2) the apply.
        # Its order is the count's, and an engine that holds only some accounts (a sharded
        # replay, which numbers steps by record offset) gives each push the key the whole
        # log's engine gives it, so shards' firings merge into the one order.
        self.next_step = 0  # the number the next step takes (a sharded replay sets it)
        self._step = 0
        self._phase = 1
        self._pushes = 0
        self._firing: tuple[int, Any] | None = None  # (due, key) of the deadline firing
        self.last_occurred_us = 0  # occurred_at of the last ingested record (for shells)
        # Kept, not counted: the monitor reads them several times a second. Both sources, and
        # the cache's alone (the app's is the difference).
        self._open_drifts = 0
        self._open_cache_drifts = 0

    @property
    def counters(self) -> Counter[str]:
        """What the core counted (applied events by type, duplicates, breaches...): a copy."""
        return Counter(self._counts)

    def _count(self, key: str) -> None:
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1

    # -- records -------------------------------------------------------------------------

    def ingest(
        self,
        event: Event | contract_models.Event,
        digest: str | int,
        occurred_us: int | None = None,
    ) -> tuple[Outcome, list[Effect]]:
        """Process one valid record; a duplicate or conflict changes nothing, clock included.

        ``occurred_us`` is ``event.occurred_at`` in µs when the parser already has it. The
        core reads native events (``schemas.native``, what ``parse_event`` gives); a pydantic
        contract model is converted first (one dict lookup says a native one is native).
        """
        event = from_model(event)
        acct = self._account(event.account_id)
        if occurred_us is None:
            occurred_us = to_us(event.occurred_at)
        occurred = self.last_occurred_us = occurred_us
        event_id = event.event_id
        admission = self._admission
        if admission is not None:
            verdict = admission.admit(acct.account_id, event_id, digest, occurred)
            if verdict != ADMITTED:
                outcome = Outcome.DUPLICATE if verdict == DUPLICATE else Outcome.CONFLICT
                self._count(outcome_key(outcome))
                return outcome, []
            return Outcome.APPLIED, self._apply_new(acct, event, occurred)
        seen = acct.seen.get(event_id)
        if seen is not None:
            stored = remembered_digest(seen)  # in hex or as its number
            same = stored == digest or content_digest(stored) == content_digest(digest)
            outcome = Outcome.DUPLICATE if same else Outcome.CONFLICT
            self._count(outcome_key(outcome))
            return outcome, []
        now = self.clock.observe(occurred)
        # Remembered until both its event time and its arrival are past the horizon: an old
        # record (a backfill, a re-read topic) is remembered as long as a new one.
        keep = occurred if occurred > now else now
        acct.seen[event_id] = remember(digest, keep)
        fifo = self._expiry_fifo
        if fifo.empty() or keep >= fifo.last_keep():  # the FIFO-or-heap of breach deadlines
            fifo.append(keep, acct.account_id, event_id)
        else:
            heapq.heappush(self._expiry, (keep, acct.account_id, event_id))
        journal = self._journal
        if journal is not None:
            journal[(ID, acct.account_id, event_id)] = (digest, keep)
        self._count(_COUNTER_KEYS[event.type])
        return Outcome.APPLIED, self._process(acct, event, occurred, now, keep)

    def ingest_admitted(self, event: Event, occurred_us: int) -> list[Effect]:
        """``ingest`` of a record already found new by an ``Admission`` in front of this engine
        (a pipelined replay's other process): what ``ingest`` does once an id is new. The engine
        remembers no ids then: the admission does."""
        acct = self._account(event.account_id)
        self.last_occurred_us = occurred_us
        return self._apply_new(acct, event, occurred_us)

    def _apply_new(self, acct: AccountState, event: Event, occurred: int) -> list[Effect]:
        """A record found new by an admission (this engine's or one ahead of it)."""
        now = self.clock.observe(occurred)  # where the admission moved its clock too
        keep = occurred if occurred > now else now
        self._count(_COUNTER_KEYS[event.type])
        return self._process(acct, event, occurred, now, keep)

    def _account(self, account_id: str) -> AccountState:
        acct = self.accounts.get(account_id)
        if acct is None:
            acct = self.accounts[account_id] = AccountState(account_id)
        return acct

    def observe_own(self, event: LimitDisplayed, occurred_us: int) -> list[Effect]:
        """An observation limitsync made itself (its own cache write, its sampler): applied
        like a record, but not remembered as an id. Its id is unique and it reaches the core
        once, and observations are idempotent by their display key anyway."""
        acct = self._account(event.account_id)
        self.last_occurred_us = occurred_us
        now = self.clock.observe(occurred_us)
        self._count("own_observations")
        return self._process(acct, event, occurred_us, now, occurred_us)

    def _process(
        self, acct: AccountState, event: Event, occurred: int, now: int, keep: int
    ) -> list[Effect]:
        self.dirty.add(acct.account_id)
        effects: list[Effect] = []
        self._begin_step()
        self._phase = 0
        self._fire_due(now, effects)
        self._phase = 1
        self._apply(acct, event, occurred, now, keep, effects)
        self._phase = 2
        self._fire_due(now, effects)
        self._phase = 1
        self._expire(now)
        return effects

    def _begin_step(self) -> None:
        self._step = self.next_step
        self.next_step = self._step + 1
        self._pushes = 0

    def advance(self, now: int | None = None) -> list[Effect]:
        """Fire what is due at ``now`` (default: the clock's now), with no new record."""
        effects: list[Effect] = []
        self._begin_step()
        self._phase = 0
        self._fire_due(self.clock.now() if now is None else now, effects)
        self._phase = 1
        return effects

    def pass_time(self, now: int) -> list[Effect]:
        """A record of an account held elsewhere moved the clock to ``now`` (a sharded
        replay): what a record would do before and after its own apply, for these accounts:
        fire what falls due, forget what expires."""
        effects = self.advance(now)
        self._expire(now)
        return effects

    def predict(self, account: int, event: int, word: int) -> Outcome:
        """What ``ingest`` would say now of the id with these hashes (``id_hash`` of its
        account and of itself) and content (``digest_word``), without remembering it (compact
        ids only): a sharded replay tells the other shards which records move the clock
        before it applies them, and checks the prediction when it does."""
        admission = self._admission
        if admission is None:
            raise CoreError("predictions need compact ids")
        verdict = admission.predict(account, event, word)
        if verdict == ADMITTED:
            return Outcome.APPLIED
        return Outcome.DUPLICATE if verdict == DUPLICATE else Outcome.CONFLICT

    def heal(self, account_id: str) -> list[Effect]:
        """Rewrite the cache from the ledger (auto-heal): a newer version wins the CAS. The
        cache's drift, if open, then closes ``auto_healed`` at the next cache observation that
        agrees. Healing is for the cache: an app drift is the display layer's, not the cache's."""
        acct = self.accounts.get(account_id)
        if acct is None:
            return []
        acct.version += 1
        if acct.cache.drift is not None:
            acct.cache.drift.healing = True
        self.dirty.add(account_id)
        self._count("auto_heals")
        return [self._cache_write(acct, self.clock.now(), heal=True)]

    def confirm(self, account_id: str, source: str) -> list[Effect]:
        """A person confirmed this source's open drift (a user's inquiry, once limitsync has
        re-read the cache): it breaches now, not at its SLA, through the same firing as a
        deadline. A drift already breached is joined as it is; no drift, nothing."""
        acct = self.accounts.get(account_id)
        if acct is None:
            return []
        display = acct.cache if source == "cache" else acct.app
        drift = display.drift
        effects: list[Effect] = []
        if drift is not None and not drift.breached:
            kind = _CACHE_BREACH if source == "cache" else _BREACH
            due = drift.opened_us + self.config.sla_us
            self._begin_step()
            self._fire(acct, due, kind, drift.seq, self.clock.now(), effects)
        return effects

    # -- applying ------------------------------------------------------------------------

    def _apply(
        self,
        acct: AccountState,
        event: Event,
        occurred: int,
        now: int,
        keep: int,
        effects: list[Effect],
    ) -> None:
        # Only observed sources are evaluated; an observation does not move the expected value,
        # so it is evaluated for its own source alone: it never opens or closes the other's drift.
        app, cache = acct.app, acct.cache
        before = acct.expected_available if app.observed or cache.observed else -1
        ledger_changed = False
        if type(event) is LimitDisplayed:
            display = cache if event.source == "cache" else app
            if self._observe(display, event, occurred):
                self._evaluate(acct, display, event, occurred, now, before, True, False, effects)
            return
        if type(event) is RepaymentInitiated:
            self._initiated(acct, event, occurred)
        else:
            if type(event) is RepaymentPosted:
                entries = self._apply_repayment(acct, event, occurred, keep, effects)
                self._posted_payment(acct, event, now, effects)
            elif type(event) is RepaymentReversed:
                entries = self._apply_repayment(acct, event, occurred, keep, effects)
            else:
                entries = apply_ledger(acct, event, occurred, keep)
            if entries:
                ledger_changed = True
                self._add_history(acct, entries)
                effects.append(self._cache_write(acct, now, change_us=occurred))
                self._track_change(acct, event.event_id, occurred, effects)
                if self.config.rescore_enabled and type(event) in _RESCORE_TRIGGERS:
                    self._want_rescore(acct, event.event_id, now)
        changed = ledger_changed
        if app.observed:
            self._evaluate(acct, app, event, occurred, now, before, False, changed, effects)
        if cache.observed:
            self._evaluate(acct, cache, event, occurred, now, before, False, changed, effects)

    def _apply_repayment(
        self,
        acct: AccountState,
        event: RepaymentPosted | RepaymentReversed,
        occurred: int,
        keep: int,
        effects: list[Effect],
    ) -> list[ChangeEntry]:
        """A posting or a reversal: the ledger rule, plus what a later reversal will need
        (kept for the reversal window) and the count of reversals with nothing to undo."""
        reversal = type(event) is RepaymentReversed
        key = event.reverses_event_id if type(event) is RepaymentReversed else event.event_id
        before = acct.posted.get(key)
        reversed_before = before is not None and before[2]
        waiting_before = key in acct.orphan_reversals
        entries = apply_ledger(acct, event, occurred, keep)
        posting = acct.posted.get(key)
        journal = self._journal
        if reversal:
            if posting is not None and posting[2] and not reversed_before:
                if journal is not None:
                    journal[(REVERSAL, acct.account_id, key)] = event.event_id
            elif posting is None and not waiting_before:
                waiting = acct.orphan_reversals[key]
                self._count("reversals_unmatched")
                effects.append(ReversalUnmatched(acct.account_id, event.event_id, key))
                heapq.heappush(self._reversal_expiry, (keep, acct.account_id, ORPHAN, key))
                if journal is not None:
                    journal[(ORPHAN, acct.account_id, key)] = waiting
        elif before is None and posting is not None:
            heapq.heappush(self._reversal_expiry, (keep, acct.account_id, POSTING, key))
            if journal is not None:
                stored = [posting[0], posting[1], posting[3], posting[2]]
                journal[(POSTING, acct.account_id, key)] = stored
        return entries

    def _add_history(self, acct: AccountState, entries: list[ChangeEntry]) -> None:
        acct.history.extend(entries)  # a deque of HISTORY_MAX: the oldest go
        journal = self._journal
        for entry in entries:
            if journal is not None:  # the row is made when the journal is drained
                journal[(HISTORY, acct.account_id, str(acct.history_seq % HISTORY_MAX))] = (
                    acct.history_seq,
                    entry,
                )
            acct.history_seq += 1

    def _observe(self, display: Display, event: LimitDisplayed, occurred: int) -> bool:
        """Take the source's newest observation by occurred_at (a late one is stale):
        order-free."""
        key = [occurred, -1 if event.cache_version is None else event.cache_version, event.event_id]
        if display.key is not None and key < display.key:
            self._count("stale_observations")
            return False
        display.observed = True
        display.displayed = event.displayed_available
        display.key = key
        return True

    def _initiated(self, acct: AccountState, event: RepaymentInitiated, occurred: int) -> None:
        shown = acct.expected_available
        entry = ChangeEntry(
            occurred,
            event.event_id,
            "REPAYMENT_IN_FLIGHT",
            shown,
            shown,
            (event.amount, event.channel),
        )
        self._add_history(acct, [entry])
        pid = event.payment_id
        if pid in acct.posted_payments or pid in acct.clearing:
            return
        if len(acct.clearing) >= CLEARING_WATCHES_MAX:
            oldest = min(acct.clearing.values(), key=lambda w: (w.opened_us, w.payment_id))
            del acct.clearing[oldest.payment_id]
            self._count("clearing_watches_dropped")
        acct.clearing[pid] = ClearingWatch(pid, event.event_id, event.amount, occurred, "")
        self._push_deadline(occurred + self.config.clearing_sla_us, _CLEARING, acct.account_id, pid)

    def _posted_payment(
        self, acct: AccountState, event: RepaymentPosted, now: int, effects: list[Effect]
    ) -> None:
        if event.payment_id is None:
            return
        watch = acct.clearing.pop(event.payment_id, None)
        if watch is not None and watch.breached:
            effects.append(self._clearing_alert("mismatch.resolved", acct, watch, now, "synced"))

    def _track_change(
        self, acct: AccountState, event_id: str, occurred: int, effects: list[Effect]
    ) -> None:
        expected = acct.expected_available
        self._track_source(acct, acct.app, event_id, occurred, expected, effects)
        self._track_source(acct, acct.cache, event_id, occurred, expected, effects)

    def _track_source(
        self,
        acct: AccountState,
        display: Display,
        event_id: str,
        occurred: int,
        expected: int,
        effects: list[Effect],
    ) -> None:
        since_agree = display.since_agree
        since_agree.append(event_id)
        if len(since_agree) > EVIDENCE_MAX:  # grows one at a time: one to drop
            del since_agree[0]
        if not display.observed:
            return
        pending = display.pending_changes
        pending.append((occurred, expected))
        if len(pending) > PENDING_CHANGES_MAX:
            dropped = pending.pop(0)
            effects.append(ChangeDisplayed(acct.account_id, dropped[0], None, display.source))

    def _want_rescore(self, acct: AccountState, event_id: str, now: int) -> None:
        if acct.rescore_due_us is None:
            acct.rescore_due_us = now + self.config.rescore_window_us
            self._push_deadline(acct.rescore_due_us, _RESCORE, acct.account_id, "")
        if len(acct.rescore_triggers) < TRIGGERS_MAX:
            acct.rescore_triggers.append(event_id)

    # -- drift ---------------------------------------------------------------------------

    def _evaluate(
        self,
        acct: AccountState,
        display: Display,
        event: Event,
        occurred: int,
        now: int,
        before: int,
        observation: bool,
        ledger_changed: bool,
        effects: list[Effect],
    ) -> None:
        """The contract's rule after a record, for one source: open, extend or close its drift."""
        expected = acct.expected_available
        if before < 0:
            before = expected
        drift = display.drift
        if display.displayed != expected:
            if drift is None:
                display.seq += 1
                seq = display.seq
                # The alert id is derived when (if ever) the drift breaches: most never do.
                held = {before: None, expected: None}
                display.drift = DriftState("", occurred, held, list(display.since_agree), seq)
                self._open_drifts += 1
                kind = _BREACH
                if display is acct.cache:
                    self._open_cache_drifts += 1
                    kind = _CACHE_BREACH
                self._push_deadline(occurred + self.config.sla_us, kind, acct.account_id, seq)
            else:
                held = drift.held
                if expected not in held:
                    if len(held) >= HELD_VALUES_MAX:
                        # Keep the first (shown before the drift opened: the usual stale
                        # value); drop the next oldest.
                        it = iter(held)
                        next(it)
                        del held[next(it)]
                    held[expected] = None
                if ledger_changed and len(drift.evidence) < EVIDENCE_MAX:
                    drift.evidence.append(event.event_id)
            return
        pending = display.pending_changes
        if pending:
            if observation:
                for change_us, _ in pending:
                    latency = max(0, occurred - change_us)
                    effects.append(
                        ChangeDisplayed(acct.account_id, change_us, latency, display.source)
                    )
            pending.clear()
        display.since_agree.clear()
        if drift is None:
            return
        display.drift = None
        self._open_drifts -= 1
        if display is acct.cache:
            self._open_cache_drifts -= 1
        if drift.breached:
            # Only a cache drift is ever healing (``heal``); replay never heals.
            healed = observation and drift.healing
            resolution = "auto_healed" if healed else ("synced" if observation else "superseded")
            effects.append(
                self._drift_alert("mismatch.resolved", acct, display, drift, now, resolution)
            )

    # -- deadlines -----------------------------------------------------------------------

    def _push_deadline(self, due: int, kind: int, account_id: str, token: str | int) -> None:
        firing = self._firing
        key: tuple[Any, ...]
        if firing is None:
            self._pushes += 1
            key = (self._step, 1, self._pushes)
        else:
            key = (self._step, self._phase, firing)
        entry = (due, key, kind, account_id, token)
        if kind in (_BREACH, _CACHE_BREACH):
            # One per drift, and most drifts close before it: a FIFO keeps these in due order
            # (a drift's SLA is the same for all) with no heap work; a late one goes on the heap.
            fifo = self._breach_fifo
            if not fifo or due >= fifo[-1][0]:
                fifo.append(entry)
                return
        heapq.heappush(self._deadlines, entry)

    def _fire_due(self, now: int, effects: list[Effect]) -> None:
        heap, fifo = self._deadlines, self._breach_fifo
        while True:  # both in (due, seq) order, so merging them keeps the one firing order
            # over its SLA means strictly greater
            fifo_due = bool(fifo) and fifo[0][0] < now
            if heap and heap[0][0] < now and not (fifo_due and fifo[0] < heap[0]):
                entry = heapq.heappop(heap)
            elif fifo_due:
                entry = fifo.popleft()
            else:
                return
            due, key, kind, account_id, token = entry
            acct = self.accounts.get(account_id)
            if acct is not None:
                self._firing = (due, key)
                self._fire(acct, due, kind, token, now, effects)
                self._firing = None

    def _fire(
        self,
        acct: AccountState,
        due: int,
        kind: int,
        token: str | int,
        now: int,
        effects: list[Effect],
    ) -> None:
        factor = self.config.escalation_factor
        if kind <= _CACHE_ESCALATE:
            # The drift numbered ``token`` of the kind's source; gone if it closed since.
            cache = kind >= _CACHE_BREACH
            display = acct.cache if cache else acct.app
            drift = display.drift
            if drift is None or drift.seq != token:
                return
            breach = kind in (_BREACH, _CACHE_BREACH)
            if breach and not drift.breached:
                drift.breached, drift.detected_us = True, now
                # The app's ids are the ids of the one display before sources were told apart.
                drift.alert_id = (
                    alerts.alert_id("drift", acct.account_id, "cache", drift.seq, drift.opened_us)
                    if cache
                    else alerts.alert_id("drift", acct.account_id, drift.seq, drift.opened_us)
                )
                drift.reason = alerts.classify(acct, display.displayed, drift)
                drift.severity = alerts.severity(acct.expected_available, display.displayed)
                self._count(f"breaches.{drift.reason}")
                effects.append(self._drift_alert("mismatch.opened", acct, display, drift, now))
                self._push_deadline(
                    drift.opened_us + factor * self.config.sla_us,
                    _CACHE_ESCALATE if cache else _ESCALATE,
                    acct.account_id,
                    token,
                )
            elif not breach and not drift.escalated:
                drift.escalated = True
                effects.append(self._drift_alert("mismatch.escalated", acct, display, drift, now))
            else:
                return
        elif kind in (_CLEARING, _CLEARING_ESCALATE):
            self._fire_clearing(acct, kind, str(token), now, effects)
        elif kind == _RESCORE and acct.rescore_due_us == due:
            effects.append(RescoreRequested(acct.account_id, now, tuple(acct.rescore_triggers)))
            acct.rescore_due_us, acct.rescore_triggers = None, []
            acct.rescore_requested_us = now
            self._count("rescore_requests")
        else:
            return
        self.dirty.add(acct.account_id)

    def _fire_clearing(
        self, acct: AccountState, kind: int, pid: str, now: int, effects: list[Effect]
    ) -> None:
        watch = acct.clearing.get(pid)
        if watch is None:
            return
        if kind == _CLEARING and not watch.breached:
            watch.breached, watch.detected_us = True, now
            watch.alert_id = alerts.alert_id("clearing", acct.account_id, pid)
            self._count("breaches.REPAYMENT_NOT_POSTED")
            effects.append(self._clearing_alert("mismatch.opened", acct, watch, now))
            due = watch.opened_us + self.config.escalation_factor * self.config.clearing_sla_us
            self._push_deadline(due, _CLEARING_ESCALATE, acct.account_id, pid)
        elif kind == _CLEARING_ESCALATE and watch.breached and not watch.escalated:
            watch.escalated = True
            effects.append(self._clearing_alert("mismatch.escalated", acct, watch, now))

    def _drift_alert(
        self,
        kind: str,
        acct: AccountState,
        display: Display,
        drift: DriftState,
        now: int,
        resolution: str | None = None,
    ) -> AlertRaised:
        self._count(f"alerts.{kind}")
        return AlertRaised(
            alerts.drift_record(
                kind, acct, display, drift, drift.detected_us, now, self.config.sla_us, resolution
            ),
            self._phase,
            self._firing,
        )

    def _clearing_alert(
        self,
        kind: str,
        acct: AccountState,
        watch: ClearingWatch,
        now: int,
        resolution: str | None = None,
    ) -> AlertRaised:
        self._count(f"alerts.{kind}")
        return AlertRaised(
            alerts.clearing_record(
                kind, acct, watch, watch.detected_us, now, self.config.clearing_sla_us, resolution
            ),
            self._phase,
            self._firing,
        )

    # -- bounded memory ------------------------------------------------------------------

    def _expire(self, now: int) -> None:
        """Forget ids older than the dedupe horizon, and postings and waiting reversals older
        than the reversal window, so memory stays bounded."""
        horizon = now - self.config.dedupe_horizon_us
        if self._admission is not None:
            self._admission.expire(now)  # the flat table's ids expire as they are looked up
        fifo, heap = self._expiry_fifo, self._expiry
        while not fifo.empty() and fifo.first_keep() < horizon:
            self._forget(fifo.pop())
        while heap and heap[0][0] < horizon:
            self._forget(heapq.heappop(heap))
        reversals = self._reversal_expiry
        if reversals and reversals[0][0] < now - self.config.reversal_window_us:
            window = now - self.config.reversal_window_us
            while reversals and reversals[0][0] < window:
                self._forget_repayment(heapq.heappop(reversals))

    def _forget(self, entry: tuple[int, str, str]) -> None:
        keep, account_id, event_id = entry
        acct = self.accounts.get(account_id)
        if acct is None:
            return
        seen = acct.seen.get(event_id)
        if seen is None or remembered_keep(seen) != keep:
            return
        del acct.seen[event_id]
        if self._journal is not None:
            self._journal[(ID, account_id, event_id)] = None
        self._count("expired_ids")

    def _forget_repayment(self, entry: tuple[int, str, str, str]) -> None:
        keep, account_id, kind, key = entry
        acct = self.accounts.get(account_id)
        if acct is None:
            return
        if kind == POSTING:
            posting = acct.posted.get(key)
            if posting is None or posting[1] != keep:
                return
            del acct.posted[key]
            payment_id = posting[3]
            if payment_id and acct.posted_payments.get(payment_id) == keep:
                del acct.posted_payments[payment_id]
            self._count("expired_postings")
            if self._journal is not None:
                self._journal[(REVERSAL, account_id, key)] = None
        else:
            waiting = acct.orphan_reversals.get(key)
            if waiting is None or waiting[1] != keep:
                return
            del acct.orphan_reversals[key]
            if key not in acct.posted:
                self._count("expired_unmatched_reversals")
        if self._journal is not None:
            self._journal[(kind, account_id, key)] = None

    # -- state in and out ----------------------------------------------------------------

    def _cache_write(
        self, acct: AccountState, now: int, change_us: int | None = None, heal: bool = False
    ) -> CacheWrite:
        return CacheWrite(
            acct.account_id,
            acct.expected_available,
            acct.credit_line,
            acct.outstanding,
            acct.status,
            acct.version,
            now,
            now if change_us is None else change_us,
            heal,
        )

    def cache_write_of(self, account_id: str) -> CacheWrite | None:
        """The account's current state as a cache write (re-sent after restarts; CAS-safe)."""
        acct = self.accounts.get(account_id)
        if acct is None:
            return None
        return self._cache_write(acct, self.clock.now(), acct.last_change_us)

    def drain_journal(self) -> dict[JournalKey, Any]:
        """The per-id changes since the last drain (needs a journal), with the content
        digests in hex, here and in the remembered ids."""
        journal = self._journal
        if journal is None:
            raise CoreError("this engine keeps no journal")
        changes = journal.copy()
        journal.clear()
        for (kind, account_id, event_id), value in changes.items():
            if kind == HISTORY:
                seq, entry = value
                changes[(kind, account_id, event_id)] = [seq, *entry.to_row()]
            elif kind == ID and value is not None and type(value[0]) is not str:
                settled = (content_digest(value[0]), value[1])
                changes[(kind, account_id, event_id)] = settled
                acct = self.accounts.get(account_id)
                if acct is not None and acct.seen.get(event_id) == remember(*value):
                    acct.seen[event_id] = settled
        return changes

    def release_ids(self) -> None:
        """Forget every remembered id at once, for a shell done with its records (a finished
        replay): what comes after it, the report, can use their memory."""
        for acct in self.accounts.values():
            acct.seen.clear()
        if self._admission is not None:
            self._admission.release()
        self._expiry_fifo = _IdFifo()
        self._expiry = []

    def load(self, states: Iterable[AccountState]) -> None:
        """Adopt accounts (after a restart or a partition assignment) and rebuild deadlines."""
        self._begin_step()
        for acct in states:
            previous = self.accounts.get(acct.account_id)
            if previous is not None:
                self._count_open(previous, -1)
            self._count_open(acct, 1)
            self.accounts[acct.account_id] = acct
            aid = acct.account_id
            for event_id, entry in acct.seen.items():
                heapq.heappush(self._expiry, (remembered_keep(entry), aid, event_id))
            for event_id, posting in acct.posted.items():
                heapq.heappush(self._reversal_expiry, (posting[1], aid, POSTING, event_id))
            for event_id, waiting in acct.orphan_reversals.items():
                heapq.heappush(self._reversal_expiry, (waiting[1], aid, ORPHAN, event_id))
            for drift, breach, escalate in (
                (acct.app.drift, _BREACH, _ESCALATE),
                (acct.cache.drift, _CACHE_BREACH, _CACHE_ESCALATE),
            ):
                if drift is not None and not drift.breached:
                    due = drift.opened_us + self.config.sla_us
                    self._push_deadline(due, breach, aid, drift.seq)
                elif drift is not None and not drift.escalated:
                    due = drift.opened_us + self.config.escalation_factor * self.config.sla_us
                    self._push_deadline(due, escalate, aid, drift.seq)
            for pid, watch in acct.clearing.items():
                sla = self.config.clearing_sla_us
                if not watch.breached:
                    self._push_deadline(watch.opened_us + sla, _CLEARING, aid, pid)
                elif not watch.escalated:
                    due = watch.opened_us + self.config.escalation_factor * sla
                    self._push_deadline(due, _CLEARING_ESCALATE, aid, pid)
            if acct.rescore_due_us is not None:
                self._push_deadline(acct.rescore_due_us, _RESCORE, aid, "")

    def unload(self, account_ids: Iterable[str]) -> None:
        """Drop accounts this worker no longer owns; their heap entries die lazily."""
        for aid in account_ids:
            gone = self.accounts.pop(aid, None)
            if gone is not None:
                self._count_open(gone, -1)
            self.dirty.discard(aid)

    def _count_open(self, acct: AccountState, sign: int) -> None:
        if acct.app.drift is not None:
            self._open_drifts += sign
        if acct.cache.drift is not None:
            self._open_drifts += sign
            self._open_cache_drifts += sign

    def open_drifts(self) -> int:
        """Open drifts of both sources."""
        return self._open_drifts

    def open_drifts_of(self, source: str) -> int:
        """Open drifts of one source (``app`` or ``cache``)."""
        cache = self._open_cache_drifts
        return cache if source == "cache" else self._open_drifts - cache

    def next_due_us(self) -> int | None:
        heads = [q[0][0] for q in (self._deadlines, self._breach_fifo) if q]
        return min(heads) if heads else None
