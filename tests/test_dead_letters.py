"""schemas.parse.dead_letter_record: the contract's dead letters ("Bad input").

A dead letter carries the original bytes (exactly, in base64, and as text), where the record
was, a readable error and a reason; it can always be written out as JSON, whatever the record
held.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, get_args

import orjson
import pytest
from eventlog import drawdown, line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# -- size: never more than 256 KB written out ---------------------------------------------------

LIMIT = 256 * 1024
KEPT = 64 * 1024

# Bytes whose text takes the most room written out: control characters (\u0000: 6 bytes),
# bytes that are not UTF-8 (\\xff: 5), quotes and backslashes (2), a lone surrogate's
# three-byte form, half a character; and plain ones.
ATOMS = [b"\x00", b"\x1f", b"\xff", b'"', b"\\", b"\n", b"\xed\xa0\x80", b"\xe4\xb8", b"a",
         "中".encode()]
ORIGINALS = st.lists(
    st.tuples(st.sampled_from(ATOMS), st.integers(0, 150_000)), min_size=1, max_size=3
).map(lambda parts: b"".join(atom * n for atom, n in parts))
# Originals that cannot fit (270 KB of text alone), starting with costly bytes.
TOO_LONG = ORIGINALS.map(lambda start: start + b"a" * 270_000)
# Fields as long and as costly to write as a caller could pass them.
TEXTS = st.sampled_from(["", "e-1", "\x00" * 1_000_000, "\ud800" * 100_000, "中" * 300_000,
                         "\x01" * 128, "a" * 64])
SIZE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def letter(data: bytes, **fields: Any) -> dict[str, Any]:
    return dead_letter_record(data, "field 'principal': not an integer", "invalid", **fields)


@SIZE
@given(ORIGINALS, TEXTS, TEXTS, TEXTS, TEXTS)
def test_a_dead_letter_never_exceeds_256_kb_written_out(
    data: bytes, error: str, topic: str, event_id: str, account_id: str
) -> None:
    record = dead_letter_record(data, error, "invalid", topic, 3, 7, event_id, account_id)
    assert len(written(record)) <= LIMIT


@SIZE
@given(TOO_LONG)
def test_a_cut_original_keeps_its_first_64_kb_its_length_and_its_sha256(data: bytes) -> None:
    record = letter(data)
    kept = (record["original_truncated"], base64.b64decode(record["original_b64"]),
            record["original_length"], record["original_sha256"])
    assert kept == (True, data[:KEPT], len(data), hashlib.sha256(data).hexdigest())


@SIZE
@given(TOO_LONG)
def test_the_text_of_a_cut_original_is_a_start_of_the_text_of_its_first_64_kb(
    data: bytes,
) -> None:
    text = data[:KEPT].decode("utf-8", "backslashreplace")
    assert text.startswith(letter(data)["original"])


def test_a_record_that_fits_is_kept_whole() -> None:
    data = b"x" * 100_000  # about 233 KB written out: text and base64
    record = letter(data)
    assert (base64.b64decode(record["original_b64"]), record["original"], "original_truncated"
            in record) == (data, data.decode(), False)


def test_a_record_that_does_not_fit_is_said_to_be_cut() -> None:
    record = letter(b"x" * 120_000)  # about 280 KB written out
    assert (record["original_truncated"], len(record["original"])) == (True, KEPT)


def test_control_characters_cut_the_text_further_but_not_the_bytes() -> None:
    record = letter(b"\x00" * 300_000)  # 64 KB of them take 384 KB as text written out
    assert (len(base64.b64decode(record["original_b64"])), len(record["original"]) < KEPT) == (
        KEPT, True)


def test_an_event_id_beyond_the_contracts_length_is_not_copied() -> None:
    assert letter(b"{}", event_id="e" * 1_000_000)["event_id"] is None


def test_an_account_id_beyond_the_contracts_length_is_not_copied() -> None:
    assert letter(b"{}", account_id="A" * 65)["account_id"] is None


def test_ids_within_the_contracts_lengths_are_copied() -> None:
    record = letter(b"{}", event_id="e" * 128, account_id="A" * 64)
    assert (record["event_id"], record["account_id"]) == ("e" * 128, "A" * 64)


def test_a_long_error_is_cut_to_1000_characters() -> None:
    assert len(dead_letter_record(b"{}", "x" * 5000, "internal")["error"]) == 1000
