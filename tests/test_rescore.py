"""The rescore agent (streams/rescore.py) without a broker: what it publishes for a request.

A decision goes back onto ``account-events`` as a ``credit_line.changed`` that the parser
accepts; a request that cannot be scored goes to the dead letters, and the agent goes on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from config.settings import Settings
from schemas.native import CreditLineChanged
from schemas.parse import Parsed, parse_event
from streams.metrics import Metrics
from streams.rescore import Rescorer, decision_event
from streams.scorer import BehaviourScorecard, Decision, Features

REQUEST: dict[str, Any] = {
    "account_id": "A-1",
    "requested_at": "2026-11-29T10:00:00.000Z",
    "requested_us": 1_795_946_400_000_000,
    "trigger_event_ids": ["e-1"],
    "line_version": 1,
    "features": {
        "credit_line": 100_000,
        "outstanding": 20_000,
        "drawn_total": 50_000,
        "repaid_total": 30_000,
        "drawdowns": 2,
        "repayments": 1,
        "failed_debits": 0,
        "tenure_days": 40,
    },
}


def test_a_decision_with_a_decimal_score_is_a_valid_credit_line_change() -> None:
    decision = Decision(credit_line=90_000, score=642.7, reasons=["r"], model_version="m-2")
    event = decision_event(REQUEST, decision, REQUEST["requested_us"])
    parsed = parse_event(orjson.dumps(event))
    assert isinstance(parsed, Parsed) and isinstance(parsed.event, CreditLineChanged)
    assert parsed.event.score == 642.7


TOPICS = Settings().topics


class Published:
    """A publisher that keeps what it is given: (topic, key, decoded value)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, Any]] = []

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        self.records.append((topic, key, orjson.loads(value)))


class FailingScorer:
    def score(self, features: Features) -> Decision:
        raise RuntimeError("model server down")


def handled(raw: bytes | None, scorer: Any = None) -> list[tuple[str, str, Any]]:
    published = Published()
    rescorer = Rescorer(scorer or BehaviourScorecard(), published, TOPICS, Metrics(),
                        timeout_s=1.0, retries_max=1)
    asyncio.run(rescorer.handle(raw))
    return published.records


def dead_letter_reason(records: list[tuple[str, str, Any]]) -> str:
    [(topic, _, letter)] = records
    assert topic == TOPICS["dead_letters"]
    return str(letter["reason"])


def test_a_request_is_published_as_a_rescore_of_its_account() -> None:
    [(topic, key, event)] = handled(orjson.dumps(REQUEST))
    assert (topic, key, event["type"], event["cause"]) == (
        TOPICS["account_events"], "A-1", "credit_line.changed", "rescore")


def test_a_tombstone_request_is_dead_lettered_invalid() -> None:
    [(_, _, letter)] = handled(None)
    assert (letter["reason"], letter["error"], letter["original_b64"]) == (
        "invalid", "tombstone: the record value is null", None)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        orjson.dumps({k: v for k, v in REQUEST.items() if k != "account_id"}),
        orjson.dumps({**REQUEST, "account_id": "A 1"}),
        orjson.dumps({**REQUEST, "requested_us": "1795946400000000"}),
        orjson.dumps({**REQUEST, "requested_us": 10**17}),  # past 2099
        orjson.dumps({**REQUEST, "features": {"credit_line": 1}}),
        orjson.dumps({**REQUEST, "features": [1, 2]}),
    ],
)
def test_a_request_that_cannot_be_read_is_dead_lettered_invalid(raw: bytes) -> None:
    assert dead_letter_reason(handled(raw)) == "invalid"


def test_a_request_the_scorer_keeps_failing_is_dead_lettered_rescore_failed() -> None:
    assert dead_letter_reason(handled(orjson.dumps(REQUEST), FailingScorer())) == "rescore_failed"
