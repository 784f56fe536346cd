"""One shard of a replay spread over processes (``limitsync.sharded_replay`` runs them).

A replay spread over processes gives each the accounts whose id hashes to it. Every shard
reads every record, but parses and applies only its own. What a shard needs of the others'
records is where the event-time clock moved: firings and expiry follow the clock, and the
clock follows every account's records. So the records go in blocks: a shard predicts which
of its records of a block move the clock (valid, new, and later than any of its own before),
tells the others, then applies the block before with what they told it. A prediction reads
the ids as they stood a block or two before; the apply checks every one, and a wrong one
(an id that expired inside the block) fails the shard: the replay then runs in one process.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from limitsync.replay import (
    NEVER_SHOWN,
    ProgressMeter,
    ReplayOptions,
    ReplayResult,
    add_timeline_point,
    conflict_dead_letter,
    count_never_shown,
    refusal,
    without_collector,
)
from schemas.parse import (
    InputRecord,
    Parsed,
    load_record,
    parse_loaded_for_replay,
)
from streams.core import (
    AlertRaised,
    ChangeDisplayed,
    Effect,
    Engine,
    EventTimeClock,
    Outcome,
    outcome_key,
)
from streams.core.ids import digest_word, id_hash

__all__ = [
    "SHARD_BLOCK",
    "ShardLink",
    "ShardMismatch",
    "ShardOutputs",
    "run_shard",
    "shard_of",
]

SHARD_BLOCK = 4096  # records read before telling the others: bounds what a shard holds, sends


class ShardMismatch(Exception):
    """This shard's part is not what the one-process replay would have done (a prediction
    was wrong, or an account id read two ways): the shards' outputs must be thrown away."""


class ShardLink(Protocol):
    """A shard's line to the others: its clock moves of a block out, theirs in."""

    def send(self, indices: array[int], times: array[int]) -> None: ...

    def receive(self) -> tuple[array[int], array[int]]: ...


class ShardOutputs(Protocol):
    """Where a shard's alerts and dead letters go, each with its place in the one order."""

    def alert(self, key: tuple[int, ...], record: dict[str, Any]) -> None: ...

    def dead_letter(self, index: int, record: dict[str, Any]) -> None: ...


def shard_of(account_id: str, shards: int) -> int:
    """The shard that holds an account: by the hash of its UTF-8 bytes, which a shard reads
    of most records without parsing them (Python's hash: the shards are forked, so they
    share its seed)."""
    return hash(account_id.encode("utf-8", "surrogatepass")) % shards


class _Told:
    """One of a shard's records of a block: read and predicted, not yet applied."""

    __slots__ = ("dead", "index", "outcome", "parsed", "rec")

    def __init__(
        self,
        index: int,
        rec: InputRecord,
        parsed: Parsed | None,
        outcome: Outcome | None,
        dead: dict[str, Any] | None,
    ) -> None:
        self.index = index
        self.rec = rec
        self.parsed = parsed
        self.outcome = outcome
        self.dead = dead


def run_shard(
    records: Iterable[InputRecord],
    options: ReplayOptions,
    shard: int,
    shards: int,
    link: ShardLink,
    outputs: ShardOutputs,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Shard ``shard`` of ``shards`` of a replay of ``records`` (every shard is given them
    all, in the same order). Raises ShardMismatch when its part cannot be trusted."""
    return without_collector(
        lambda: _run_shard(records, options, shard, shards, link, outputs, progress)
    )


class _Shard:
    """A shard's state between blocks."""

    def __init__(
        self,
        options: ReplayOptions,
        shard: int,
        shards: int,
        link: ShardLink,
        outputs: ShardOutputs,
    ) -> None:
        self.clock = EventTimeClock()
        # A shard remembers about its share of the ids.
        expected = options.expected_records // shards
        self.engine = Engine(options.core, self.clock, compact_ids=True, expected_ids=expected)
        self.result = ReplayResult(self.engine)
        self.result.streamed = True
        self.options = options
        self.shard = shard
        self.shards = shards
        self.link = link
        self.outputs = outputs
        self.max_future_skew_us = options.max_future_skew_s * 1_000_000
        # Ids predicted new in this block and the one before: not yet in the engine's table.
        self.unsettled: dict[tuple[int, int], int] = {}
        self.settling: dict[tuple[int, int], int] = {}
        self.latest = -(2**62)  # the latest occurred_at this shard told
        self.moves_at = array("q")
        self.moves_to = array("q")

    def predict(self, index: int, rec: InputRecord, obj: Any) -> _Told:
        parsed = parse_loaded_for_replay(obj)
        options = self.options
        dead = refusal(rec, parsed, options.now_us, self.max_future_skew_us, self.result.counts)
        if dead is not None:
            return _Told(index, rec, None, None, dead)
        assert isinstance(parsed, Parsed)
        event = parsed.event
        if shard_of(event.account_id, self.shards) != self.shard:
            raise ShardMismatch(f"record {index}: account {event.account_id!r} read two ways")
        account, event_key = id_hash(event.account_id), id_hash(event.event_id)
        key = (account, event_key)
        word = digest_word(parsed.digest)
        earlier = self.unsettled.get(key)
        if earlier is None:
            earlier = self.settling.get(key)
        if earlier is not None:
            outcome = Outcome.DUPLICATE if earlier == word else Outcome.CONFLICT
        else:
            outcome = self.engine.predict(account, event_key, word)
        if outcome is Outcome.APPLIED:
            self.unsettled[key] = word
            if parsed.occurred_us > self.latest:
                self.latest = parsed.occurred_us
                self.moves_at.append(index)
                self.moves_to.append(parsed.occurred_us)
        return _Told(index, rec, parsed, outcome, None)

    def tell(self) -> None:
        """Send this block's clock moves; the ids predicted in it settle with the next."""
        self.link.send(self.moves_at, self.moves_to)
        self.moves_at, self.moves_to = array("q"), array("q")
        self.settling, self.unsettled = self.unsettled, {}

    def apply(self, block: list[_Told]) -> None:
        """Apply a told block, with the others' clock moves of it."""
        moves_at, moves_to = self.link.receive()
        engine = self.engine
        result = self.result
        counts = result.counts
        outputs = self.outputs
        keep_timelines = self.options.keep_timelines
        moved, moves = 0, len(moves_at)
        applied = 0
        for told in block:
            index = told.index
            while moved < moves and moves_at[moved] < index:
                self.pass_time(moves_at[moved], moves_to[moved])
                moved += 1
            dead = told.dead
            if dead is not None:
                outputs.dead_letter(index, dead)
                continue
            parsed = told.parsed
            assert parsed is not None
            event = parsed.event
            engine.next_step = index
            outcome, effects = engine.ingest(event, parsed.digest, parsed.occurred_us)
            if outcome is not told.outcome:
                raise ShardMismatch(f"record {index}: predicted {told.outcome}, was {outcome}")
            if outcome is not Outcome.APPLIED:
                counts[outcome_key(outcome)] += 1
                if outcome is Outcome.CONFLICT:
                    outputs.dead_letter(index, conflict_dead_letter(told.rec, event))
                continue
            applied += 1
            if effects:
                self.carry(effects, index)
            if keep_timelines:
                add_timeline_point(result, event)
        while moved < moves:
            self.pass_time(moves_at[moved], moves_to[moved])
            moved += 1
        if applied:
            counts["applied"] += applied

    def pass_time(self, index: int, to_us: int) -> None:
        """Another shard's record ``index`` moved the clock to ``to_us`` (if later)."""
        clock = self.clock
        if to_us > clock.now():
            clock.advance_to(to_us)
            engine = self.engine
            engine.next_step = index
            effects = engine.pass_time(to_us)
            if effects:
                self.carry(effects, index)

    def carry(self, effects: list[Effect], step: int) -> None:
        """``_carry``, each alert with its key in the one order: (step, phase, what fired it,
        or its place among the apply's alerts), flattened."""
        result = self.result
        latencies = result.latencies_us
        raised = 0
        for eff in effects:
            if type(eff) is AlertRaised:
                result.alert_count += 1
                firing = eff.firing
                if firing is None:
                    raised += 1
                    self.outputs.alert((step, eff.phase, raised), eff.record)
                else:
                    flat = [step, eff.phase]
                    _flatten(firing, flat)
                    self.outputs.alert(tuple(flat), eff.record)
            elif type(eff) is ChangeDisplayed:
                latency = eff.latency_us
                latencies[eff.source].append(NEVER_SHOWN if latency is None else latency)

    def finish(self, records: int) -> None:
        """After the last record (``finish_replay``): --until, then the changes never shown."""
        result = self.result
        engine = self.engine
        until_us = self.options.until_us
        if until_us is not None:
            self.clock.advance_to(until_us)
            engine.next_step = records + 1
            self.carry(engine.advance(), records + 1)
        count_never_shown(result)
        result.counts["records"] = records


def _account_of(value: bytes | None) -> bytes | None:
    """The account id of a record as most are written (``"account_id":"..."``, no escape in
    it), as its bytes, read without parsing the record: a shard reads every record's account,
    and parses only its own. None when it is not spelled so. Which shard a record goes to is
    decided by this reading on every shard alike; the shard that parses it checks that the
    account is one it holds, and fails the split if not (a nested or repeated key)."""
    if value is None:
        return None
    at = value.find(_ACCOUNT_KEY)
    if at < 0:
        return None
    start = at + _ACCOUNT_KEY_LEN
    end = value.find(_QUOTE, start)
    # find, not `in`: a bytes containment test first tries its operand as an int, and the
    # TypeError it builds and drops costs more than the whole search.
    if end < 0 or value.find(_BACKSLASH, start, end) >= 0:
        return None
    return value[start:end]


_ACCOUNT_KEY: Final = b'"account_id":"'
_ACCOUNT_KEY_LEN: Final = len(_ACCOUNT_KEY)
_QUOTE: Final = b'"'
_BACKSLASH: Final = b"\\"


def _flatten(key: tuple[Any, ...], out: list[int]) -> None:
    """A deadline's key (nested tuples of ints) as its ints in order: compared as tuples, the
    flat keys of two alerts order as the nested ones do (wherever two keys agree, they have
    the same shape up to there), and a flat key is cheap to store and send."""
    for part in key:
        if isinstance(part, tuple):
            _flatten(part, out)
        else:
            out.append(part)


def _run_shard(
    records: Iterable[InputRecord],
    options: ReplayOptions,
    shard: int,
    shards: int,
    link: ShardLink,
    outputs: ShardOutputs,
    progress: Callable[[int, int], None] | None,
) -> ReplayResult:
    started = time.perf_counter()
    state = _Shard(options, shard, shards, link, outputs)
    block: list[_Told] = []
    told: list[_Told] | None = None  # the block before, told and not yet applied
    n = 0
    meter = None if progress is None else ProgressMeter(progress)
    for n, rec in enumerate(records, 1):
        value = rec.value
        if meter is not None:
            meter.read(n, value)
        account = _account_of(value)
        obj: Any = None
        owner = 0  # a record with no account id to read is invalid: shard 0 dead-letters it
        if account is not None:
            owner = hash(account) % shards  # shard_of, from the bytes
        else:  # not plainly spelled: the JSON says
            obj = load_record(value)
            if type(obj) is dict:
                found = obj.get("account_id")
                if type(found) is str:
                    owner = shard_of(found, shards)
        if owner == shard:
            if obj is None:
                obj = load_record(value)
            block.append(state.predict(n, rec, obj))
        if n % SHARD_BLOCK == 0:
            state.tell()
            if told is not None:
                state.apply(told)
            told, block = block, []
    if n % SHARD_BLOCK:  # the last block, short (every shard reads the same records)
        state.tell()
    if told is not None:
        state.apply(told)
    if n % SHARD_BLOCK:
        state.apply(block)
    state.finish(n)
    result = state.result
    result.elapsed_s = time.perf_counter() - started
    return result
