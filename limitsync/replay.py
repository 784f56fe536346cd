"""Replay: the event log through the same core, on the event-time clock.

This is the shell for incident analysis: it reads records in log order, lets the engine
judge them exactly as the live workers would, and writes the contract's outputs. Nothing
here decides anything about money or drift; it only carries effects to files.
"""

from __future__ import annotations

import gc
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schemas.native import LimitDisplayed
from schemas.parse import (
    MAX_FUTURE_SKEW_S,
    Parsed,
    conflict_error,
    dead_letter_record,
    future_timestamp_error,
    parse_event,
)
from streams.core import AlertRaised, ChangeDisplayed, CoreConfig, Engine, EventTimeClock, Outcome
from streams.core.engine import core_config_from_seconds
from streams.core.state import AccountState

__all__ = [
    "InputRecord",
    "ReplayOptions",
    "ReplayResult",
    "iter_file_records",
    "run_replay",
    "write_outputs",
]

TIMELINE_MAX = 200  # points kept per account for the report's timelines
TimelineEntry = tuple[int, str, str, str, int, int | None, int | None]


@dataclass(slots=True, init=False)
class InputRecord:
    """One record of the log and where it came from (for dead letters). Built per line: a
    written-out constructor, as neither a NamedTuple's nor a dataclass's is compiled. The
    value of a Kafka tombstone is None (the parser rejects it)."""

    value: bytes | None
    topic: str | None
    partition: int | None
    offset: int | None

    def __init__(
        self,
        value: bytes | None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.value = value
        self.topic = topic
        self.partition = partition
        self.offset = offset


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    sla_seconds: int = 60
    clearing_sla_seconds: int = 7200
    until_us: int | None = None
    dedupe_horizon_s: int = 7 * 24 * 3600
    escalation_factor: int = 10
    rescore_enabled: bool = False
    keep_timelines: bool = True
    # --now: the live workers' clock for the future-timestamp rule, which a replay applies only
    # when given one (a record stamped more than the skew after it is dead-lettered).
    now_us: int | None = None
    max_future_skew_s: int = MAX_FUTURE_SKEW_S

    def core_config(self) -> CoreConfig:
        return core_config_from_seconds(
            self.sla_seconds,
            self.clearing_sla_seconds,
            self.escalation_factor,
            self.dedupe_horizon_s,
            self.rescore_enabled,
        )


@dataclass
class ReplayResult:
    """Everything a replay produced, in memory (written out by ``write_outputs``)."""

    engine: Engine
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # Per source (app, cache): per ledger change, how long until that source displayed it
    # (None: never).
    latencies_us: dict[str, list[int | None]] = field(
        default_factory=lambda: {"app": [], "cache": []}
    )
    # Per account, its last records: (occurred_us, event_id, type, source of an observation or
    # "", expected, app displayed, cache displayed) after each.
    timelines: dict[str, deque[TimelineEntry]] = field(default_factory=dict)
    elapsed_s: float = 0.0

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
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Run the records through the core on the event-time clock."""
    # Replay allocates many small objects that live to the end (ids, deadlines, timelines) and
    # almost no cyclic garbage. The collector's passes over those survivors are a real share of
    # the replay (timed with gc.callbacks), and merely deferring them (turning it off) moves
    # the whole cost to the first allocation after the run. So: collect what is already
    # garbage, run without the collector, then freeze the survivors (gc.freeze: out of every
    # later pass; reference counting still frees them when they are dropped) and turn the
    # collector back on as it was.
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_replay(records, options, progress)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _run_replay(
    records: Iterable[InputRecord],
    options: ReplayOptions,
    progress: Callable[[int], None] | None,
) -> ReplayResult:
    clock = EventTimeClock()
    engine = Engine(options.core_config(), clock)
    result = ReplayResult(engine)
    alerts, counts = result.alerts, result.counts
    latencies = result.latencies_us
    timelines = result.timelines
    started = time.perf_counter()
    accounts = engine.accounts
    keep_timelines = options.keep_timelines
    now_us = options.now_us
    max_future_skew_us = options.max_future_skew_s * 1_000_000
    applied = 0
    n = 0
    for n, rec in enumerate(records, 1):
        parsed = parse_event(rec.value)
        if not isinstance(parsed, Parsed):
            counts["invalid"] += 1
            result.dead_letters.append(
                dead_letter_record(
                    rec.value,
                    parsed.error,
                    "invalid",
                    rec.topic,
                    rec.partition,
                    rec.offset,
                    parsed.event_id,
                    parsed.account_id,
                )
            )
            continue
        event = parsed.event
        if now_us is not None:
            error = future_timestamp_error(parsed.occurred_us, now_us, max_future_skew_us)
            if error is not None:
                counts["future_timestamp"] += 1
                result.dead_letters.append(
                    dead_letter_record(
                        rec.value,
                        error,
                        "future_timestamp",
                        rec.topic,
                        rec.partition,
                        rec.offset,
                        event.event_id,
                        event.account_id,
                    )
                )
                continue
        # Called as a method, not through a saved bound method: compiled, that is a direct C
        # call; the bound method goes through Python's generic calling convention.
        outcome, effects = engine.ingest(event, parsed.digest, parsed.occurred_us)
        if outcome is not Outcome.APPLIED:
            counts[outcome.value] += 1
            if outcome is Outcome.CONFLICT:
                result.dead_letters.append(
                    dead_letter_record(
                        rec.value,
                        conflict_error(event.event_id),
                        "conflict",
                        rec.topic,
                        rec.partition,
                        rec.offset,
                        event.event_id,
                        event.account_id,
                    )
                )
            continue
        applied += 1
        for eff in effects:
            if type(eff) is AlertRaised:
                alerts.append(eff.record)
            elif type(eff) is ChangeDisplayed:
                latencies[eff.source].append(eff.latency_us)
        if keep_timelines:
            account_id = event.account_id
            acct = accounts[account_id]
            line = timelines.get(account_id)
            if line is None:
                line = timelines[account_id] = deque(maxlen=TIMELINE_MAX)
            source = ""
            if type(event) is LimitDisplayed:
                source = "cache" if event.source == "cache" else "app"
            line.append(
                (
                    engine.last_occurred_us,
                    event.event_id,
                    event.type,
                    source,
                    acct.expected_available,
                    acct.app.displayed,
                    acct.cache.displayed,
                )
            )
        if progress is not None and n % 20000 == 0:
            progress(n)
    if applied:
        counts["applied"] += applied
    if options.until_us is not None:
        clock.advance_to(options.until_us)
        for eff in engine.advance():
            if type(eff) is AlertRaised:
                alerts.append(eff.record)
    for acct in engine.accounts.values():
        for display in (acct.app, acct.cache):
            latencies[display.source].extend(None for _ in display.pending_changes)
    counts["records"] = n
    result.elapsed_s = time.perf_counter() - started
    return result


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("wb") as fh:
        for row in rows:
            fh.write(orjson.dumps(row))
            fh.write(b"\n")


def write_outputs(
    result: ReplayResult,
    out_dir: Path,
    options: ReplayOptions,
    source: str,
    focus_account: str | None = None,
) -> None:
    """Write alerts.jsonl, dead_letters.jsonl, accounts.jsonl and report.html into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "alerts.jsonl", result.alerts)
    write_jsonl(out_dir / "dead_letters.jsonl", result.dead_letters)
    write_jsonl(out_dir / "accounts.jsonl", result.account_lines())
    from limitsync.report import render_report
    from limitsync.report_data import build_report_data  # the report is optional weight

    data = build_report_data(result, options, source, focus_account)
    (out_dir / "report.html").write_text(render_report(data), encoding="utf-8")
