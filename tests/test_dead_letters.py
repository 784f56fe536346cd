"""schemas.parse.dead_letter_record: the contract's dead letters ("Bad input").

A dead letter carries the original bytes (exactly, in base64, and as text), where the record
was, a readable error and a reason; it can always be written out as JSON, whatever the record
held.
"""

from __future__ import annotations

import base64
import json
from typing import get_args

import orjson
import pytest
from eventlog import drawdown, line

from limitsync.replay import InputRecord, ReplayOptions, run_replay
from schemas.parse import Rejected, dead_letter_record, parse_event
from schemas.records import DeadLetterReason, DeadLetterRecord


def written(record: dict[str, object]) -> bytes:
    """The dead letter as the topic or ``dead_letters.jsonl`` gets it (validated first)."""
    DeadLetterRecord.model_validate(record)
    return orjson.dumps(record)


def test_a_record_given_as_text_with_a_lone_surrogate_is_dead_lettered() -> None:
    raw = json.dumps({"event_id": "e-1", "note": "\ud800"}, ensure_ascii=False)
    result = parse_event(raw)
    assert isinstance(result, Rejected)
    letter = orjson.loads(written(dead_letter_record(raw, result.error, "invalid")))
    # U+D800 in the three bytes UTF-8 would give it (surrogatepass): UTF-8 cannot hold it
    assert base64.b64decode(letter["original_b64"]) == raw.encode("utf-8", "surrogatepass")


def test_a_tombstone_is_dead_lettered_without_original_bytes() -> None:
    letter = orjson.loads(written(dead_letter_record(None, "tombstone", "invalid", "t", 2, 9)))
    assert (letter["original"], letter["original_b64"], letter["offset"]) == (None, None, 9)


def test_a_replay_dead_letters_a_tombstone_as_invalid_and_goes_on() -> None:
    records = [InputRecord(None, "limit.account-events", 1, 41),
               InputRecord(line(drawdown("A", 0, 500)), "limit.account-events", 1, 42)]
    result = run_replay(records, ReplayOptions())
    [letter] = result.dead_letters
    assert (letter["reason"], letter["error"], letter["offset"], result.counts["applied"]) == (
        "invalid", "tombstone: the record value is null", 41, 1)


# -- reasons -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason", ["invalid", "conflict", "internal", "future_timestamp", "rescore_failed"]
)
def test_each_reason_of_the_contract_is_a_dead_letter_reason(reason: str) -> None:
    assert reason in get_args(DeadLetterReason)
