"""schemas.parse_event: the contract's envelope, input events and bad-input rules.

docs/contract.md "Envelope", "Input events" and "Bad input": every valid type parses; every kind
of bad input is a Rejected with a readable error, never an exception; the content digest
makes idempotency exact (same object = same digest, any difference = another digest).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from eventlog import (
    account_status,
    credit_line,
    displayed,
    drawdown,
    repayment_initiated,
    repayment_posted,
    repayment_reversed,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.native import (  # what Parsed.event is, whichever path parsed the record
    AccountStatusChanged,
    CreditLineChanged,
    DrawdownBooked,
    LimitDisplayed,
    RepaymentInitiated,
    RepaymentPosted,
    RepaymentReversed,
)
from schemas.parse import (
    Parsed,
    Rejected,
    _parse_slowly,
    content_digest,
    future_timestamp_error,
    parse_event,
)
from schemas.timefmt import to_us

VALID: dict[str, dict[str, Any]] = {
    "drawdown.booked": drawdown("A-1", 0, 50_000, event_id="e-dd", loan_id="L9"),
    "repayment.initiated": repayment_initiated("A-1", 0, "pay-1", 20_000, event_id="e-ri",
                                               channel="auto_debit"),
    "repayment.posted": repayment_posted("A-1", 0, 20_000, interest=150, fee=10,
                                         payment_id="pay-1", event_id="e-rp"),
    "repayment.reversed": repayment_reversed("A-1", 0, "e-rp", event_id="e-rr"),
    "credit_line.changed": credit_line("A-1", 0, 100_000, 3, cause="rescore", event_id="e-cl",
                                       model_version="m7", score=612,
                                       reasons=["high utilisation"]),
    "account.status_changed": account_status("A-1", 0, "frozen", 2, event_id="e-as",
                                             reason="fraud review"),
    "limit.displayed": displayed("A-1", 0, 80_000, event_id="e-ld", cache_version=4),
}
EVENT_CLASSES = {
    "drawdown.booked": DrawdownBooked,
    "repayment.initiated": RepaymentInitiated,
    "repayment.posted": RepaymentPosted,
    "repayment.reversed": RepaymentReversed,
    "credit_line.changed": CreditLineChanged,
    "account.status_changed": AccountStatusChanged,
    "limit.displayed": LimitDisplayed,
}
REQUIRED = {
    "drawdown.booked": ["loan_id", "principal"],
    "repayment.initiated": ["payment_id", "amount", "channel"],
    "repayment.posted": ["loan_id", "principal", "interest", "fee"],
    "repayment.reversed": ["reverses_event_id"],
    "credit_line.changed": ["credit_line", "version", "cause"],
    "account.status_changed": ["status", "version"],
    "limit.displayed": [],
}
ENVELOPE = ["event_id", "type", "account_id", "occurred_at", "schema_version"]
AMOUNTS = [
    ("drawdown.booked", "principal"),
    ("repayment.initiated", "amount"),
    ("repayment.posted", "principal"),
    ("repayment.posted", "interest"),
    ("repayment.posted", "fee"),
    ("credit_line.changed", "credit_line"),
    ("limit.displayed", "displayed_available"),
]


FUZZ_SURROGATES = settings(max_examples=200, deadline=None)


def parse_obj(obj: object) -> Parsed | Rejected:
    return parse_event(json.dumps(obj).encode())


def rejected(obj: object) -> Rejected:
    result = parse_obj(obj)
    assert isinstance(result, Rejected), f"accepted: {obj!r}"
    assert result.error.strip()
    return result


def with_(kind: str, **changes: Any) -> dict[str, Any]:
    return {**VALID[kind], **changes}


def without(kind: str, field: str) -> dict[str, Any]:
    return {k: v for k, v in VALID[kind].items() if k != field}


# -- valid input -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_input_type_parses_to_its_event_class(kind: str) -> None:
    result = parse_obj(VALID[kind])
    assert isinstance(result, Parsed)
    assert type(result.event) is EVENT_CLASSES[kind]
    assert result.event.event_id == VALID[kind]["event_id"]
    assert result.event.account_id == "A-1"


def test_repayment_posted_fields_are_read() -> None:
    result = parse_obj(VALID["repayment.posted"])
    assert isinstance(result, Parsed)
    event = result.event
    assert isinstance(event, RepaymentPosted)
    assert (event.principal, event.interest, event.fee, event.payment_id) == (
        20_000, 150, 10, "pay-1")


def test_bytes_and_str_input_parse_alike() -> None:
    raw = json.dumps(VALID["drawdown.booked"])
    from_bytes, from_str = parse_event(raw.encode()), parse_event(raw)
    assert isinstance(from_bytes, Parsed) and isinstance(from_str, Parsed)
    assert content_digest(from_bytes.digest) == content_digest(from_str.digest)


@pytest.mark.parametrize(
    "stamp",
    ["2026-11-29T10:00:00.000+08:00", "2026-11-29T02:00:00Z", "2026-11-29T02:00:00.000000000Z",
     "2026-11-29t02:00:00z", "2026-11-28T21:00:00-05:00"],
)
def test_rfc3339_timestamps_with_offset_parse_to_the_same_instant(stamp: str) -> None:
    result = parse_obj(with_("drawdown.booked", occurred_at=stamp))
    assert isinstance(result, Parsed)
    assert to_us(result.event.occurred_at) == to_us(
        parse_ok(with_("drawdown.booked", occurred_at="2026-11-29T02:00:00Z")).occurred_at)


@pytest.mark.parametrize(
    ("stamp", "us"),
    [
        ("2000-01-01T00:00:00Z", 946_684_800_000_000),
        ("2000-01-01T00:00:00.000001Z", 946_684_800_000_001),
        ("2026-11-29T10:00:00.123457+08:00", 1_795_917_600_123_457),
        ("2099-12-31T23:59:59.998999Z", 4_102_444_799_998_999),
        ("2099-12-31T23:59:59.999Z", 4_102_444_799_999_000),
    ],
)
def test_occurred_at_is_read_to_the_exact_microsecond(stamp: str, us: int) -> None:
    result = parse_obj(with_("drawdown.booked", occurred_at=stamp))
    assert isinstance(result, Parsed)
    assert (result.occurred_us, to_us(result.event.occurred_at)) == (us, us)


@pytest.mark.parametrize(
    "stamp",
    ["2000-01-01T00:00:00Z", "2000-01-01T08:00:00.000+08:00", "1999-12-31T19:00:00-05:00",
     "2099-12-31T23:59:59.999Z", "2099-12-31T23:59:59.999000000Z",
     "2100-01-01T07:59:59.999+08:00", "2099-12-31T18:59:59.999-05:00"],
)
def test_occurred_at_on_either_bound_is_valid(stamp: str) -> None:
    assert isinstance(parse_obj(with_("drawdown.booked", occurred_at=stamp)), Parsed)


@pytest.mark.parametrize(
    "stamp",
    ["1999-12-31T23:59:59.999Z", "1999-12-31T23:59:59.999999999Z",
     "2000-01-01T07:59:59.999+08:00", "2099-12-31T23:59:59.999001Z",
     "2099-12-31T23:59:59.9990001Z", "2100-01-01T00:00:00Z", "2099-12-31T19:00:00-05:00",
     "2100-01-01T08:00:00.000+08:00", "1970-01-01T00:00:00Z", "2111-08-30T21:21:24.230141Z",
     "0001-01-01T00:00:00.000+08:00", "9999-12-31T23:59:59.999999+00:00"],
)
def test_occurred_at_outside_the_bounds_is_rejected(stamp: str) -> None:
    error = rejected(with_("drawdown.booked", occurred_at=stamp)).error
    assert "occurred_at" in error and "2000-01-01T00:00:00Z" in error


@pytest.mark.parametrize("kind", sorted(VALID))
def test_both_parse_paths_give_occurred_us_of_the_event(kind: str) -> None:
    obj = with_(kind, occurred_at="2026-11-29T18:00:00.123+08:00")
    fast = parse_obj(obj)
    slow = _parse_slowly(obj)  # the path taken by records the fast path declines
    assert isinstance(fast, Parsed) and isinstance(slow, Parsed)
    assert fast.occurred_us == slow.occurred_us == to_us(slow.event.occurred_at)


def parse_ok(obj: object) -> Any:
    result = parse_obj(obj)
    assert isinstance(result, Parsed), result
    return result.event


@pytest.mark.parametrize(
    ("kind", "field"),
    [("repayment.posted", "payment_id"), ("credit_line.changed", "model_version"),
     ("credit_line.changed", "score"), ("credit_line.changed", "reasons"),
     ("account.status_changed", "reason"), ("limit.displayed", "displayed_available"),
     ("limit.displayed", "cache_version"), ("limit.displayed", "source")],
)
def test_null_optional_field_counts_as_absent(kind: str, field: str) -> None:
    assert getattr(parse_ok(with_(kind, **{field: None})), field) is None
    assert getattr(parse_ok(without(kind, field)), field) is None


@pytest.mark.parametrize("source", ["app", "cache"])
def test_an_observation_names_its_source(source: str) -> None:
    event = parse_ok(with_("limit.displayed", source=source))
    assert (event.source, event.extra) == (source, None)


@pytest.mark.parametrize("source", ["cache_write", "sampler", "auto_heal", "APP", "", 1])
def test_an_observation_source_outside_app_and_cache_is_rejected(source: object) -> None:
    assert "source" in rejected(with_("limit.displayed", source=source)).error


def test_unknown_extra_fields_are_kept() -> None:
    event = parse_ok(with_("drawdown.booked", source="core-v2", trace={"span": 7}))
    assert event.extra == {"source": "core-v2", "trace": {"span": 7}}


@pytest.mark.parametrize("score", [642, 642.7, 0, -12.25, 2**53 + 1, 6.4e2])
def test_score_is_any_finite_number_integer_or_decimal(score: float) -> None:
    event = parse_ok(with_("credit_line.changed", score=score))
    assert (type(event.score), event.score) == (type(score), score)


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b'"642.7"'])
def test_score_that_is_not_a_finite_json_number_is_rejected(token: bytes) -> None:
    raw = orjson.dumps(VALID["credit_line.changed"]).replace(b'"score":612', b'"score":' + token)
    assert b'"score":' + token in raw
    assert isinstance(parse_event(raw), Rejected)


@pytest.mark.parametrize(
    ("kind", "field", "longest"),
    [
        ("credit_line.changed", "model_version", "m" * 128),
        ("credit_line.changed", "reasons", ["r" * 200] * 16),
        ("account.status_changed", "reason", "r" * 200),
    ],
)
def test_bounded_optional_fields_accept_their_bound(kind: str, field: str, longest: Any) -> None:
    assert getattr(parse_ok(with_(kind, **{field: longest})), field) == longest


@pytest.mark.parametrize(
    ("kind", "field", "too_long"),
    [
        ("credit_line.changed", "model_version", "m" * 129),
        ("credit_line.changed", "reasons", ["r"] * 17),
        ("credit_line.changed", "reasons", ["r" * 201]),
        ("account.status_changed", "reason", "r" * 201),
    ],
)
def test_bounded_optional_fields_past_their_bound_are_rejected(
    kind: str, field: str, too_long: Any
) -> None:
    assert isinstance(parse_event(orjson.dumps(with_(kind, **{field: too_long}))), Rejected)


def test_amount_zero_is_valid() -> None:
    assert parse_ok(with_("drawdown.booked", principal=0)).principal == 0


# -- bad input: every kind is a readable rejection -------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"not json", b"{", b'{"event_id": "e1",}', b"\xff\xfe\x00"])
def test_not_json_is_rejected(raw: bytes) -> None:
    result = parse_event(raw)
    assert isinstance(result, Rejected)
    assert "not JSON" in result.error


def test_a_tombstone_is_rejected_with_a_clear_error() -> None:
    # a Kafka record whose value is null: no bytes at all, unlike the JSON text "null"
    assert parse_event(None) == Rejected("tombstone: the record value is null")


@pytest.mark.parametrize("raw", [b"[]", b"1", b'"text"', b"null", b"true"])
def test_json_that_is_not_an_object_is_rejected(raw: bytes) -> None:
    result = parse_event(raw)
    assert isinstance(result, Rejected)
    assert "not an object" in result.error


@pytest.mark.parametrize(
    ("kind", "field"),
    [(kind, field) for kind in sorted(VALID) for field in ENVELOPE + REQUIRED[kind]],
)
def test_missing_required_field_is_rejected_naming_the_field(kind: str, field: str) -> None:
    assert field in rejected(without(kind, field)).error


@pytest.mark.parametrize(
    ("kind", "field"),
    [("drawdown.booked", "loan_id"), ("repayment.reversed", "reverses_event_id"),
     ("credit_line.changed", "version"), ("account.status_changed", "status")],
)
def test_null_required_field_is_rejected(kind: str, field: str) -> None:
    assert field in rejected(with_(kind, **{field: None})).error


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [("drawdown.booked", "loan_id", 7), ("drawdown.booked", "principal", "100"),
     ("repayment.initiated", "channel", "cash"), ("repayment.initiated", "amount", [1]),
     ("credit_line.changed", "cause", "whim"), ("credit_line.changed", "version", "2"),
     ("credit_line.changed", "reasons", "too many loans"), ("credit_line.changed", "score", "642"),
     ("credit_line.changed", "score", [642]),
     ("account.status_changed", "status", "suspended"), ("limit.displayed", "cache_version", "4"),
     ("drawdown.booked", "event_id", 12), ("drawdown.booked", "account_id", 12)],
)
def test_wrong_type_is_rejected_naming_the_field(kind: str, field: str, value: object) -> None:
    assert field in rejected(with_(kind, **{field: value})).error


@pytest.mark.parametrize(("kind", "field"), AMOUNTS)
def test_negative_amount_is_rejected(kind: str, field: str) -> None:
    assert field in rejected(with_(kind, **{field: -1})).error


@pytest.mark.parametrize(("kind", "field"), AMOUNTS)
def test_float_amount_is_rejected_even_when_whole(kind: str, field: str) -> None:
    assert field in rejected(with_(kind, **{field: 100.0})).error


@pytest.mark.parametrize(
    ("kind", "field"),
    [*AMOUNTS, ("credit_line.changed", "version"), ("account.status_changed", "version"),
     ("credit_line.changed", "score"), ("limit.displayed", "cache_version")],
)
def test_boolean_is_not_an_integer(kind: str, field: str) -> None:
    assert field in rejected(with_(kind, **{field: True})).error


def test_unknown_type_is_rejected_naming_it() -> None:
    result = rejected(with_("drawdown.booked", type="drawdown.cancelled"))
    assert "drawdown.cancelled" in result.error


@pytest.mark.parametrize(
    "stamp", ["yesterday", "2026-11-29", "2026-13-29T10:00:00Z", "2026-11-29T25:00:00Z",
              "29/11/2026 10:00:00+08:00", "", 1795946400, "2026-11-29T10:00:00.１２３Z",
              "２０２６-11-29T10:00:00Z"]
)
def test_unparsable_timestamp_is_rejected(stamp: object) -> None:
    assert "occurred_at" in rejected(with_("drawdown.booked", occurred_at=stamp)).error


@pytest.mark.parametrize("stamp", ["2026-11-29T10:00:00", "2026-11-29T10:00:00.000"])
def test_naive_timestamp_is_rejected(stamp: str) -> None:
    assert "occurred_at" in rejected(with_("drawdown.booked", occurred_at=stamp)).error


def test_missing_schema_version_is_rejected() -> None:
    assert "schema_version" in rejected(without("drawdown.booked", "schema_version")).error


@pytest.mark.parametrize("version", [0, 2, "1", 1.0, True, None])
def test_schema_version_other_than_1_is_rejected(version: object) -> None:
    assert "schema_version" in rejected(with_("drawdown.booked", schema_version=version)).error


@pytest.mark.parametrize(
    "account_id", ["", "A 1", "A/1", "A\n", "账户1", "A;DROP", "x" * 65]
)
def test_bad_account_id_is_rejected(account_id: str) -> None:
    assert "account_id" in rejected(with_("drawdown.booked", account_id=account_id)).error


def test_account_id_of_64_allowed_chars_is_valid() -> None:
    account_id = ("Az09_.:-" * 8)[:64]
    assert parse_ok(with_("drawdown.booked", account_id=account_id)).account_id == account_id


def test_event_id_of_128_chars_is_valid_and_129_is_rejected() -> None:
    assert parse_ok(with_("drawdown.booked", event_id="e" * 128)).event_id == "e" * 128
    assert "event_id" in rejected(with_("drawdown.booked", event_id="e" * 129)).error


def test_empty_event_id_is_rejected() -> None:
    assert "event_id" in rejected(with_("drawdown.booked", event_id="")).error


def test_rejection_keeps_the_ids_it_could_read() -> None:
    result = rejected(with_("drawdown.booked", principal=-5))
    assert (result.event_id, result.account_id) == ("e-dd", "A-1")


def test_error_text_is_bounded() -> None:
    result = rejected(with_("drawdown.booked", type="x" * 10_000))
    assert len(result.error) <= 500


# -- lone surrogates: a string must be valid Unicode, anywhere in the record -----------------

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# Where in a record the string goes: a field of the contract, an extra value, an extra key,
# inside an extra list or object, or a key of a nested object.
PLACES = ["loan_id", "event_id", "account_id", "occurred_at", "type", "extra", "extra key",
          "in a list", "nested key"]


def holding(text: str, place: str) -> dict[str, Any]:
    """A valid drawdown with ``text`` at ``place``."""
    record = dict(VALID["drawdown.booked"])
    if place == "extra":
        record["note"] = text
    elif place == "extra key":
        record[text] = 1
    elif place == "in a list":
        record["tags"] = ["a", text]
    elif place == "nested key":
        record["meta"] = {"k": {text: [1]}}
    else:
        record[place] = text
    return record


@FUZZ_SURROGATES
@given(st.text(max_size=6), SURROGATES, st.text(max_size=6), st.sampled_from(PLACES))
def test_a_lone_surrogate_anywhere_makes_the_record_invalid(
    before: str, surrogate: str, after: str, place: str
) -> None:
    record = holding(before + surrogate + after, place)
    for raw in (json.dumps(record).encode(), json.dumps(record, ensure_ascii=False)):
        result = parse_event(raw)  # escaped in bytes, or the code point itself in a str
        assert isinstance(result, Rejected) and "lone surrogate" in result.error


def test_the_error_says_where_the_lone_surrogate_is() -> None:
    result = rejected(holding("x\ud800", "in a list"))
    assert "'tags[1]'" in result.error


def test_an_escaped_surrogate_pair_is_one_valid_character() -> None:
    raw = orjson.dumps(VALID["drawdown.booked"])[:-1] + b',"note":"\\ud83d\\ude00"}'
    assert parse_ok(json.loads(raw)).extra == {"note": "\U0001F600"}
    assert isinstance(parse_event(raw), Parsed)


def test_a_record_rejected_for_a_lone_surrogate_keeps_its_readable_ids() -> None:
    result = rejected(holding("\udc00", "extra"))
    assert (result.event_id, result.account_id) == ("e-dd", "A-1")


def test_a_lone_surrogate_in_an_id_is_not_copied_into_the_rejection() -> None:
    assert rejected(holding("e-\ud800", "event_id")).event_id is None


# -- the future-timestamp rule (live, and a replay given --now) ------------------------------

NOW_US = 1_795_946_400_000_000  # 2026-11-29T10:00:00Z
SKEW_US = 300 * 1_000_000


def test_a_record_stamped_the_whole_skew_ahead_may_be_applied() -> None:
    assert future_timestamp_error(NOW_US + SKEW_US, NOW_US, SKEW_US) is None


def test_a_record_stamped_beyond_the_skew_is_a_future_timestamp_saying_by_how_much() -> None:
    error = future_timestamp_error(NOW_US + SKEW_US + 1, NOW_US, SKEW_US)
    assert error == (
        "future_timestamp: occurred_at 2026-11-29T10:05:00.000001Z is 300.000001 s ahead of the "
        "clock (2026-11-29T10:00:00.000Z), more than the 300 s allowed"
    )


def test_a_record_stamped_in_the_past_may_be_applied() -> None:
    assert future_timestamp_error(NOW_US - 86_400 * 1_000_000, NOW_US, SKEW_US) is None


# -- the digest: idempotency by content -----------------------------------------------------


def digest(raw: bytes | str) -> str:
    result = parse_event(raw)
    assert isinstance(result, Parsed), result
    return content_digest(result.digest)


def test_digest_ignores_key_order_and_whitespace() -> None:
    obj = with_("repayment.posted", note="retry")
    compact = orjson.dumps(obj)
    spaced = json.dumps(dict(reversed(list(obj.items()))), indent=3).encode()
    assert digest(compact) == digest(spaced)


@pytest.mark.parametrize(
    "change",
    [{"principal": 20_001}, {"occurred_at": "2026-11-29T10:00:00.001Z"}, {"loan_id": "L2"},
     {"note": "retry"}, {"payment_id": "pay-2"}],
)
def test_digest_differs_when_any_field_differs(change: dict[str, Any]) -> None:
    base = with_("repayment.posted", note="first")
    assert digest(orjson.dumps(base)) != digest(orjson.dumps({**base, **change}))


def test_digest_differs_when_an_extra_field_is_added() -> None:
    base = VALID["drawdown.booked"]
    assert digest(orjson.dumps(base)) != digest(orjson.dumps({**base, "source": "x"}))


def test_digest_is_the_one_older_workers_wrote() -> None:
    # Live state keeps digests for the dedupe horizon: a worker restored from a changelog
    # compares new records with digests older releases computed. The format must not drift.
    assert digest(orjson.dumps(VALID["drawdown.booked"])) == "2bfdba473d9f3de1a5d3ab01b442490f"
    with_extras = {**VALID["drawdown.booked"], "source": "x", "n": None}
    assert digest(orjson.dumps(with_extras)) == "af3f5cd0f90ac364deaf05cf36159306"


def with_extra_token(token: bytes) -> bytes:
    """A valid drawdown with an extra field ``x`` spelled as the raw JSON token."""
    return orjson.dumps(VALID["drawdown.booked"])[:-1] + b',"x":' + token + b"}"


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(token: bytes) -> None:
    assert isinstance(parse_event(with_extra_token(token)), Rejected)


def test_overflowing_number_does_not_digest_like_null() -> None:
    result = parse_event(with_extra_token(b"1e400"))
    assert isinstance(result, Rejected) or content_digest(result.digest) != digest(
        with_extra_token(b"null"))


def test_deeply_nested_extra_field_does_not_raise() -> None:
    depth = 1020
    raw = with_extra_token(b"[" * depth + b"]" * depth)
    assert isinstance(parse_event(raw), Parsed | Rejected)


# -- fuzzing: parse_event never raises ------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def assert_parsed_or_rejected(raw: bytes | str) -> None:
    result = parse_event(raw)
    assert isinstance(result, Parsed | Rejected)
    if isinstance(result, Rejected):
        assert result.error.strip()


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    assert_parsed_or_rejected(raw)


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text(raw: str) -> None:
    assert_parsed_or_rejected(raw)


@FUZZ
@given(json_values)
def test_fuzz_arbitrary_json_values(value: object) -> None:
    assert_parsed_or_rejected(json.dumps(value))


@FUZZ
@given(
    st.sampled_from(sorted(VALID)),
    st.dictionaries(
        st.sampled_from(sorted({f for fs in REQUIRED.values() for f in fs} | set(ENVELOPE)
                               | {"payment_id", "reasons", "score", "displayed_available"})),
        json_values,
        max_size=4,
    ),
    st.sets(st.sampled_from([*ENVELOPE, "principal", "amount", "version"]), max_size=2),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)
def test_fuzz_valid_events_with_mutated_fields(
    kind: str, changes: dict[str, object], dropped: set[str], extras: dict[str, object]
) -> None:
    obj = {**extras, **VALID[kind], **changes}
    for field in dropped:
        obj.pop(field, None)
    assert_parsed_or_rejected(json.dumps(obj))
    assert_parsed_or_rejected(json.dumps(obj).encode())
