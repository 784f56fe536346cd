"""The rescore agent (streams/rescore.py) without a broker: what it publishes for a request.

A decision goes back onto ``account-events`` as a ``credit_line.changed`` that the parser
accepts; a request that cannot be scored goes to the dead letters, and the agent goes on.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.native import CreditLineChanged
from schemas.parse import Parsed, parse_event
from streams.rescore import decision_event
from streams.scorer import Decision

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
