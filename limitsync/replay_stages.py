"""A replay in two stages, for two processes (``limitsync.replay_pipeline`` runs them): the
first reads, parses and dedupes every record; the second applies the new ones.

``run_replay`` does both in one loop. Their only link is which records are new, and that
depends on the ids and the event-time clock alone, never on an account's state
(``streams.core.admission``): so the first stage decides it, writes the dead letters (it
holds the records' bytes), and hands each new record on as its event; the second keeps the
accounts, fires deadlines, writes the alerts and keeps the timelines. Each output is written
by one stage, in log order, so the outputs are those of ``run_replay``, byte for byte.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Final

from limitsync.replay import (
    OutputFiles,
    ReplayOptions,
    ReplayResult,
    conflict_dead_letter,
    finish_replay,
    record_applied,
    refusal,
)
from schemas.parse import InputRecord, Parsed, parse_event_for_replay
from schemas.wire import event_of_wire, wire_of_event
from streams.core import Engine, EventTimeClock
from streams.core.admission import ADMITTED, DUPLICATE, Admission

__all__ = ["STAGE_BATCH", "Batch", "admit_records", "apply_admitted"]

# Records read per batch handed on, and bytes: a batch is sent once either is reached, so what
# it holds is bounded whatever the records' size, and a batch goes at least this often (the
# second stage shows progress through runs of refused records too).
STAGE_BATCH: Final = 1024
STAGE_BATCH_BYTES: Final = 4 << 20
# A batch: the records read so far, their bytes read so far (each line and its newline), and
# the new records among the last STAGE_BATCH read, as ``schemas.wire`` tuples.
Batch = tuple[int, int, list[tuple[Any, ...]]]


def admit_records(
    records: Iterable[InputRecord],
    options: ReplayOptions,
    dead_letter: Callable[[dict[str, Any]], None],
    send: Callable[[Batch], None],
) -> Counter[str]:
    """The first stage: every record parsed and judged new, duplicate or conflict (or refused
    before that), in log order; the new ones sent on in batches, the dead letters written.
    Returns its counts (records, invalid, duplicate, conflict, future_timestamp)."""
    admission = Admission(options.core.dedupe_horizon_us, options.expected_records)
    counts: Counter[str] = Counter()
    now_us = options.now_us
    max_future_skew_us = options.max_future_skew_s * 1_000_000
    batch: list[tuple[Any, ...]] = []
    read_bytes = 0
    sent_bytes = 0  # read_bytes when the last batch was sent
    n = 0
    sent = 0  # n when the last batch was sent
    try:
        for n, rec in enumerate(records, 1):
            value = rec.value
            read_bytes += 1 if value is None else len(value) + 1
            parsed = parse_event_for_replay(value)
            dead = refusal(rec, parsed, now_us, max_future_skew_us, counts)
            if dead is not None:
                dead_letter(dead)
            else:
                assert isinstance(parsed, Parsed)
                event = parsed.event
                verdict = admission.admit(
                    event.account_id, event.event_id, parsed.digest, parsed.occurred_us
                )
                if verdict == ADMITTED:
                    batch.append(wire_of_event(event))
                elif verdict == DUPLICATE:
                    counts["duplicate"] += 1
                else:
                    counts["conflict"] += 1
                    dead_letter(conflict_dead_letter(rec, event))
            if n - sent == STAGE_BATCH or read_bytes - sent_bytes >= STAGE_BATCH_BYTES:
                send((n, read_bytes, batch))
                batch, sent, sent_bytes = [], n, read_bytes
    finally:  # also what was found new before an error: one process applies it too
        send((n, read_bytes, batch))
    counts["records"] = n
    return counts


def apply_admitted(
    batches: Iterable[list[tuple[Any, ...]]],
    options: ReplayOptions,
    outputs: OutputFiles | None,
) -> ReplayResult:
    """The second stage: the new records of ``admit_records``, in its order, through the
    core on the event-time clock. Its counts are the applied records' alone."""
    clock = EventTimeClock()
    engine = Engine(options.core, clock)  # no ids: the first stage remembers them
    result = ReplayResult(engine)
    result.streamed = outputs is not None
    keep_timelines = options.keep_timelines
    applied = 0
    for batch in batches:
        for wire in batch:
            event = event_of_wire(wire)
            effects = engine.ingest_admitted(event, event.occurred_us)
            applied += 1
            record_applied(result, outputs, event, effects, keep_timelines)
    if applied:
        result.counts["applied"] += applied
    finish_replay(result, clock, options, outputs)
    return result
