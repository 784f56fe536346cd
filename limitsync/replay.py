"""Replay: the event log through the same core, on the event-time clock.

This is the shell for incident analysis: it reads records in log order, lets the engine
judge them exactly as the live workers would, and writes the contract's outputs. Nothing
here decides anything about money or drift; it only carries effects to files.
"""

from __future__ import annotations

import gc
import struct
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

from schemas.native import Event, LimitDisplayed
from schemas.parse import (
    MAX_FUTURE_SKEW_S,
    InputRecord,
    Parsed,
    Rejected,
    conflict_error,
    dead_letter_record,
    future_timestamp_error,
    parse_event_for_replay,
)
from streams.core import (
    AlertRaised,
    ChangeDisplayed,
    CoreConfig,
    Effect,
    Engine,
    EventTimeClock,
    Outcome,
    outcome_key,
)
from streams.core.state import AccountState

__all__ = [
    "NEVER_SHOWN",
    "InputRecord",
    "OutputFiles",
    "ProgressMeter",
    "ReplayOptions",
    "ReplayResult",
    "Timeline",
    "add_timeline_point",
    "conflict_dead_letter",
    "count_never_shown",
    "finish_replay",
    "iter_file_records",
    "record_applied",
    "refusal",
    "run_replay",
    "without_collector",
]

TIMELINE_MAX = 200  # points kept per account for the report's timelines
TimelineEntry = tuple[int, str, str, str, int, int | None, int | None]
PROGRESS_EVERY_RECORDS = 20_000  # how often the progress callback is told
NEVER_SHOWN = -(2**63)  # the sync latency of a change never displayed

# A timeline point's numbers packed in one row: occurred µs, expected, app shown, cache held
# (machine ints; money is >= 0 by the contract, so -1 stands for "nothing shown"), then where
# its id ends in the id text. One pack a point: an array's item assignment parses each int
# with a format string, several times the cost of the pack.
_ROW: Final = struct.Struct("=qqqqI")
_PACK_ROW: Final = _ROW.pack  # bound once: no method lookup a point
_NOTHING = -1
# (type, observation source) of a point, by a small code: at most a few dozen pairs exist.
# Looked up by source, then type: no key tuple to build a point.
_KIND_CODES: Final[dict[str, dict[str, int]]] = {}
_KINDS: Final[list[tuple[str, str]]] = []
_KINDS_MAX: Final = 256  # a code is one byte


def _kind_code(kind: str, source: str) -> int:
    codes = _KIND_CODES.get(source)
    if codes is None:
        codes = _KIND_CODES[source] = {}
    code = codes.get(kind)
    if code is None:
        code = len(_KINDS)
        if code >= _KINDS_MAX:
            raise ValueError(f"more than {_KINDS_MAX} (type, source) pairs on timelines")
        codes[kind] = code
        _KINDS.append((kind, source))
    return code


class Timeline:
    """An account's last TIMELINE_MAX points, compact: a replay keeps one per account, and a
    tuple per point was most of a day-long replay's memory. Points are packed rows in one
    buffer, their event ids as UTF-8 in another (a string each kept every id of a day
    alive); once twice the cap, the older half is cut (so at most 2 x TIMELINE_MAX are held).
    A number beyond a machine int (the contract bounds no amount) turns the account's
    timeline into a list of tuples."""

    __slots__ = ("id_text", "kinds", "rows", "wide")

    def __init__(self) -> None:
        self.rows = bytearray()  # _ROW a point
        self.id_text = bytearray()
        self.kinds = bytearray()
        self.wide: list[TimelineEntry] | None = None

    def add(
        self,
        at_us: int,
        event_id: str,
        kind: str,
        source: str,
        expected: int,
        shown: int | None,
        cached: int | None,
    ) -> None:
        wide = self.wide
        if wide is None:
            id_text = self.id_text
            text = event_id.encode("utf-8", "surrogatepass")
            try:
                row = _PACK_ROW(
                    at_us,
                    expected,
                    _NOTHING if shown is None else shown,
                    _NOTHING if cached is None else cached,
                    len(id_text) + len(text),
                )
            except struct.error:  # a number beyond a machine int
                wide = self.wide = list(self.entries())
                self.rows, self.kinds, self.id_text = bytearray(), bytearray(), bytearray()
            else:
                self.rows += row
                id_text += text
                self.kinds.append(_kind_code(kind, source))
                if len(self.kinds) >= 2 * TIMELINE_MAX:
                    self._cut()
                return
        wide.append((at_us, event_id, kind, source, expected, shown, cached))
        if len(wide) > TIMELINE_MAX:
            del wide[0]

    def _cut(self) -> None:
        """Drop the older TIMELINE_MAX points."""
        size = _ROW.size
        cut = _ROW.unpack_from(self.rows, size * (TIMELINE_MAX - 1))[4]
        kept = bytearray()
        for i in range(TIMELINE_MAX, len(self.kinds)):
            at_us, expected, shown, cached, end = _ROW.unpack_from(self.rows, size * i)
            kept += _PACK_ROW(at_us, expected, shown, cached, end - cut)
        self.rows = kept
        del self.kinds[:TIMELINE_MAX]
        del self.id_text[:cut]

    def entries(self) -> list[TimelineEntry]:
        """The last TIMELINE_MAX points, oldest first."""
        if self.wide is not None:
            return list(self.wide)
        rows, kinds, id_text = self.rows, self.kinds, self.id_text
        size = _ROW.size
        first = max(0, len(kinds) - TIMELINE_MAX)
        start = _ROW.unpack_from(rows, size * (first - 1))[4] if first else 0
        points: list[TimelineEntry] = []
        for i in range(first, len(kinds)):
            at_us, expected, shown, cached, end = _ROW.unpack_from(rows, size * i)
            kind, source = _KINDS[kinds[i]]
            points.append(
                (
                    at_us,
                    id_text[start:end].decode("utf-8", "surrogatepass"),
                    kind,
                    source,
                    expected,
                    None if shown == _NOTHING else shown,
                    None if cached == _NOTHING else cached,
                )
            )
            start = end
        return points


class OutputFiles:
    """alerts.jsonl and dead_letters.jsonl of a replay, written as records are raised: a
    day's alerts and dead letters need not be held until the end. ``on_alert``, when given,
    is told each alert record and the length of its line (the report's digest,
    ``limitsync.outputs.AlertTap``, so that the report need not read the file back)."""

    def __init__(
        self, out_dir: Path, on_alert: Callable[[dict[str, Any], int], None] | None = None
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._alerts: IO[bytes] = (out_dir / "alerts.jsonl").open("wb", buffering=WRITE_BUFFER)
        self._dead: IO[bytes] = (out_dir / "dead_letters.jsonl").open(
            "wb", buffering=WRITE_BUFFER
        )
        self._on_alert = on_alert

    def alert(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record) + b"\n"
        self._alerts.write(line)
        if self._on_alert is not None:
            self._on_alert(record, len(line))

    def dead_letter(self, record: dict[str, Any]) -> None:
        self._dead.write(orjson.dumps(record) + b"\n")

    def close(self) -> None:
        self._alerts.close()
        self._dead.close()

    def close_dead_letters(self) -> None:
        """Done with dead letters (a pipelined replay's first stage, which writes them, while
        the process it was forked from writes the alerts)."""
        self._dead.close()

    def __enter__(self) -> OutputFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


WRITE_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    # The core's knobs (its SLAs from the command line, the rest at the contract's defaults);
    # a replay never rescores: the log's credit_line.changed events carry the live rescores.
    core: CoreConfig = field(default_factory=CoreConfig)
    until_us: int | None = None
    keep_timelines: bool = True
    # --now: the live workers' clock for the future-timestamp rule, which a replay applies only
    # when given one (a record stamped more than the skew after it is dead-lettered).
    now_us: int | None = None
    max_future_skew_s: int = MAX_FUTURE_SKEW_S
    # How many records the input likely holds (0: unknown), for sizing the ids' table once.
    expected_records: int = 0


@dataclass
class ReplayResult:
    """Everything a replay produced, in memory (written out by ``outputs.write_outputs``)."""

    engine: Engine
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # Per source (app, cache): per ledger change, how long until that source displayed it
    # (NEVER_SHOWN: never); machine ints, as there is one a ledger change.
    latencies_us: dict[str, array[int]] = field(
        default_factory=lambda: {"app": array("q"), "cache": array("q")}
    )
    # Per account, its last records: (occurred_us, event_id, type, source of an observation or
    # "", expected, app displayed, cache displayed) after each.
    timelines: dict[str, Timeline] = field(default_factory=dict)
    elapsed_s: float = 0.0
    # Alerts and dead letters went to OutputFiles as they came (``alerts`` and ``dead_letters``
    # are then empty: ``outputs.write_outputs`` reads the alerts back for the report).
    streamed: bool = False
    alert_count: int = 0
    # A pipelined replay (limitsync.replay_pipeline) runs in two processes: the other's peak
    # memory, for the summary line.
    processes: int = 1
    others_peak_rss_mb: float = 0.0

    def account_lines(self) -> list[dict[str, Any]]:
        return [account_line(a) for _, a in sorted(self.engine.accounts.items())]


def account_line(acct: AccountState) -> dict[str, Any]:
    """The contract's ``accounts.jsonl`` line for one account."""
    return {
        "account_id": acct.account_id,
        "credit_line": acct.credit_line,
        "outstanding": acct.outstanding,
        "status": acct.status,
        "expected_available": acct.expected_available,
        "displayed_available": acct.app.displayed,  # null when the app was never observed
        "cache_available": acct.cache.displayed,  # null when the cache was never observed
    }


def iter_file_records(path: Path) -> Iterator[InputRecord]:
    """A JSON Lines file in log order; the offset of a line is its 0-based index.

    Read in blocks and split, not line by line: a buffered readline per line and a copy per
    line to strip its newline were about a tenth of a replay (perf, the 505k-line bench log).
    A line's trailing CR and LF are not part of the record; an empty line is not a record.
    """
    index = 0
    pending: list[bytes] = []  # the start of a line that has not ended yet
    with path.open("rb") as fh:
        while True:
            block = fh.read(_BLOCK)
            if not block:
                break
            if b"\n" not in block:
                pending.append(block)
                continue
            if pending:
                pending.append(block)
                block = b"".join(pending)
                pending = []
            lines = block.split(b"\n")
            tail = lines.pop()
            if tail:
                pending.append(tail)
            for line in lines:
                if line and line[-1] == _CR:
                    line = line.rstrip(b"\r")
                if line:
                    yield InputRecord(line, None, None, index)
                index += 1
    if pending:
        line = b"".join(pending).rstrip(b"\r")
        if line:
            yield InputRecord(line, None, None, index)


_BLOCK = 1 << 20
_CR = ord("\r")


def run_replay(
    records: Iterable[InputRecord],
    options: ReplayOptions,
    progress: Callable[[int, int], None] | None = None,
    outputs: OutputFiles | None = None,
) -> ReplayResult:
    """Run the records through the core on the event-time clock. ``progress`` is told the
    records and bytes read so far every PROGRESS_EVERY_RECORDS records; with ``outputs``,
    alerts and dead letters are written there as they are raised."""
    return without_collector(lambda: _run_replay(records, options, progress, outputs))


def without_collector(run: Callable[[], ReplayResult]) -> ReplayResult:
    """``run()`` with the cyclic collector off, its survivors frozen after.

    Replay allocates many small objects that live to the end (ids, deadlines, timelines) and
    almost no cyclic garbage. The collector's passes over those survivors are a real share of
    the replay (timed with gc.callbacks), and merely deferring them (turning it off) moves
    the whole cost to the first allocation after the run. So: collect what is already
    garbage, run without the collector, then freeze the survivors (gc.freeze: out of every
    later pass; reference counting still frees them when they are dropped) and turn the
    collector back on as it was."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return run()
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


class ProgressMeter:
    """Tells ``progress`` the records and bytes read so far every PROGRESS_EVERY_RECORDS."""

    def __init__(self, progress: Callable[[int, int], None]) -> None:
        self.progress = progress
        self.read_bytes = 0

    def read(self, n: int, value: bytes | None) -> None:
        """Record ``n`` (1-based) was read."""
        self.read_bytes += 1 if value is None else len(value) + 1
        if n % PROGRESS_EVERY_RECORDS == 0:
            self.progress(n, self.read_bytes)


def _run_replay(
    records: Iterable[InputRecord],
    options: ReplayOptions,
    progress: Callable[[int, int], None] | None,
    outputs: OutputFiles | None,
) -> ReplayResult:
    clock = EventTimeClock()
    engine = Engine(options.core, clock, compact_ids=True, expected_ids=options.expected_records)
    result = ReplayResult(engine)
    result.streamed = outputs is not None
    counts = result.counts
    started = time.perf_counter()
    keep_timelines = options.keep_timelines
    now_us = options.now_us
    max_future_skew_us = options.max_future_skew_s * 1_000_000
    applied = 0
    n = 0
    meter = None if progress is None else ProgressMeter(progress)
    for n, rec in enumerate(records, 1):
        value = rec.value
        if meter is not None:
            meter.read(n, value)
        parsed = parse_event_for_replay(value)
        dead = refusal(rec, parsed, now_us, max_future_skew_us, counts)
        if dead is not None:
            _dead_letter(result, outputs, dead)
            continue
        assert isinstance(parsed, Parsed)
        event = parsed.event
        # Called as a method, not through a saved bound method: compiled, that is a direct C
        # call; the bound method goes through Python's generic calling convention.
        outcome, effects = engine.ingest(event, parsed.digest, parsed.occurred_us)
        if outcome is not Outcome.APPLIED:
            counts[outcome_key(outcome)] += 1
            if outcome is Outcome.CONFLICT:
                _dead_letter(result, outputs, conflict_dead_letter(rec, event))
            continue
        applied += 1
        record_applied(result, outputs, event, effects, keep_timelines)
    if applied:
        counts["applied"] += applied
    finish_replay(result, clock, options, outputs)
    counts["records"] = n
    result.elapsed_s = time.perf_counter() - started
    return result


def refusal(
    rec: InputRecord,
    parsed: Parsed | Rejected,
    now_us: int | None,
    max_future_skew_us: int,
    counts: Counter[str],
) -> dict[str, Any] | None:
    """The dead letter of a record that never reaches the core: invalid, or (with --now)
    stamped too far after the live clock; None for a record the core judges."""
    if not isinstance(parsed, Parsed):
        counts["invalid"] += 1
        return dead_letter_record(
            rec.value,
            parsed.error,
            "invalid",
            rec.topic,
            rec.partition,
            rec.offset,
            parsed.event_id,
            parsed.account_id,
        )
    if now_us is None:
        return None
    error = future_timestamp_error(parsed.occurred_us, now_us, max_future_skew_us)
    if error is None:
        return None
    counts["future_timestamp"] += 1
    event = parsed.event
    return dead_letter_record(
        rec.value,
        error,
        "future_timestamp",
        rec.topic,
        rec.partition,
        rec.offset,
        event.event_id,
        event.account_id,
    )


def conflict_dead_letter(rec: InputRecord, event: Event) -> dict[str, Any]:
    """The dead letter of a record whose id was seen with other content."""
    return dead_letter_record(
        rec.value,
        conflict_error(event.event_id),
        "conflict",
        rec.topic,
        rec.partition,
        rec.offset,
        event.event_id,
        event.account_id,
    )


def _dead_letter(result: ReplayResult, outputs: OutputFiles | None, dead: dict[str, Any]) -> None:
    if outputs is None:
        result.dead_letters.append(dead)
    else:
        outputs.dead_letter(dead)


def record_applied(
    result: ReplayResult,
    outputs: OutputFiles | None,
    event: Event,
    effects: list[Effect],
    keep_timelines: bool,
) -> None:
    """What a replay keeps of a record the core applied: its effects, its timeline point."""
    if effects:
        _carry(effects, result, outputs)
    if keep_timelines:
        add_timeline_point(result, event)


def _carry(effects: list[Effect], result: ReplayResult, outputs: OutputFiles | None) -> None:
    """Alerts to their output; per source, how long each ledger change took to be shown."""
    latencies = result.latencies_us
    for eff in effects:
        if type(eff) is AlertRaised:
            result.alert_count += 1
            if outputs is None:
                result.alerts.append(eff.record)
            else:
                outputs.alert(eff.record)
        elif type(eff) is ChangeDisplayed:
            latency = eff.latency_us
            latencies[eff.source].append(NEVER_SHOWN if latency is None else latency)


def add_timeline_point(result: ReplayResult, event: Event) -> None:
    """The account's timeline point after an applied record."""
    engine = result.engine
    account_id = event.account_id
    acct = engine.accounts[account_id]
    line = result.timelines.get(account_id)
    if line is None:
        line = result.timelines[account_id] = Timeline()
    source = ""
    if type(event) is LimitDisplayed:
        source = "cache" if event.source == "cache" else "app"
    line.add(
        engine.last_occurred_us,
        event.event_id,
        event.type,
        source,
        acct.expected_available,
        acct.app.displayed,
        acct.cache.displayed,
    )


def finish_replay(
    result: ReplayResult,
    clock: EventTimeClock,
    options: ReplayOptions,
    outputs: OutputFiles | None,
) -> None:
    """After the last record: the clock moved to --until (what falls due fires), and every
    ledger change still waiting to be shown counted as never shown."""
    engine = result.engine
    if options.until_us is not None:
        clock.advance_to(options.until_us)
        _carry(engine.advance(), result, outputs)
    count_never_shown(result)


def count_never_shown(result: ReplayResult) -> None:
    """Every ledger change still waiting to be shown, counted as never shown."""
    latencies = result.latencies_us
    for acct in result.engine.accounts.values():
        for display in (acct.app, acct.cache):
            latencies[display.source].extend(NEVER_SHOWN for _ in display.pending_changes)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("wb", buffering=WRITE_BUFFER) as fh:
        for row in rows:
            fh.write(orjson.dumps(row))
            fh.write(b"\n")
