"""The rescore agent's work: score a request and publish the decision as an event.

Decisions go back onto ``account-events`` as ``credit_line.changed`` (cause ``rescore``),
so the ledger applies them like any other line change and a replay sees them too.
Line versions: limitsync's rescores use the decision time in microseconds since the epoch
(see docs/operations.md, "Credit line versions"), so they order with the risk engine's own
decisions by time instead of colliding with its counter.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from typing import Any

import orjson

from schemas.contract import ACCOUNT_ID_CHARS, ACCOUNT_ID_LEN_MAX
from schemas.parse import TOMBSTONE_ERROR, dead_letter_record
from schemas.records import DeadLetterReason
from schemas.timefmt import OCCURRED_MAX_US, OCCURRED_MIN_US, format_us
from streams.live import Publisher, wall_us
from streams.metrics import Metrics
from streams.scorer import Decision, Features, Scorer

__all__ = ["Rescorer", "decision_event", "read_request"]

log = logging.getLogger(__name__)


def decision_event(request: dict[str, Any], decision: Decision, decided_us: int) -> dict[str, Any]:
    """The ``credit_line.changed`` event for a decision (deterministic in its inputs)."""
    return {
        "event_id": f"rescore:{request['account_id']}:{request['requested_us']}",
        "type": "credit_line.changed",
        "account_id": request["account_id"],
        "occurred_at": format_us(decided_us),
        "schema_version": 1,
        "credit_line": decision.credit_line,
        "version": decided_us,
        "cause": "rescore",
        "model_version": decision.model_version,
        "score": decision.score,
        "reasons": decision.reasons[:4],
    }


class Rescorer:
    def __init__(
        self,
        scorer: Scorer,
        publisher: Publisher,
        topics: dict[str, str],
        metrics: Metrics,
        timeout_s: float = 5.0,
        retries_max: int = 3,
    ) -> None:
        self.scorer = scorer
        self.publisher = publisher
        self.topics = topics
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.retries_max = retries_max

    async def handle(self, raw: bytes | None) -> None:
        """Score one request and publish the decision. A request that cannot be read (a
        tombstone, not JSON, a field missing or ill-typed) is dead-lettered ``invalid``, one
        the scorer keeps failing ``rescore_failed``; neither stops the agent."""
        read = read_request(raw)
        if isinstance(read, str):
            await self._fail(raw, read, None, "invalid")
            return
        request, features = read
        for attempt in range(1, self.retries_max + 1):
            try:
                decision = await asyncio.wait_for(self._score(features), self.timeout_s)
            except Exception as exc:  # a plugged-in scorer may fail in any way: retry, then DLQ
                self.metrics.rescores.labels(outcome="retried").inc()
                log.warning("scorer failed (attempt %d/%d): %r", attempt, self.retries_max, exc)
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
                last = exc
                continue
            event = decision_event(request, decision, max(wall_us(), int(request["requested_us"])))
            await self.publisher.publish(
                self.topics["account_events"], request["account_id"], orjson.dumps(event)
            )
            self.metrics.rescores.labels(outcome="ok").inc()
            return
        await self._fail(
            raw, f"scorer failed {self.retries_max} times: {last!r}", request, "rescore_failed"
        )

    async def _score(self, features: Features) -> Decision:
        result = self.scorer.score(features)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _fail(
        self,
        raw: bytes | None,
        error: str,
        request: dict[str, Any] | None,
        reason: DeadLetterReason,
    ) -> None:
        account = request.get("account_id") if isinstance(request, dict) else None
        record = dead_letter_record(
            raw, error, reason, self.topics["rescore_requests"], None, None, None, account
        )
        await self.publisher.publish(
            self.topics["dead_letters"], account or "", orjson.dumps(record)
        )
        self.metrics.rescores.labels(outcome="failed").inc()
        self.metrics.dead_letters.labels(reason=reason).inc()


_ACCOUNT_ID = re.compile(f"[{ACCOUNT_ID_CHARS}]{{1,{ACCOUNT_ID_LEN_MAX}}}\\Z")


def read_request(raw: bytes | None) -> tuple[dict[str, Any], Features] | str:
    """A rescore request and its features, or why it cannot be scored (the dead letter's
    error). What the decision is built from is checked here, so that publishing it cannot
    fail: an ``account_id`` of the contract and a ``requested_us`` within its time bounds."""
    if raw is None:
        return TOMBSTONE_ERROR
    try:
        request = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"unreadable rescore request: not JSON: {exc}"
    if type(request) is not dict:
        return f"unreadable rescore request: not an object (got {type(request).__name__})"
    account_id, requested_us = request.get("account_id"), request.get("requested_us")
    if type(account_id) is not str or not _ACCOUNT_ID.match(account_id):
        return "unreadable rescore request: 'account_id' is missing or not an account id"
    if type(requested_us) is not int or not OCCURRED_MIN_US <= requested_us <= OCCURRED_MAX_US:
        return "unreadable rescore request: 'requested_us' is missing or not a time in bounds"
    try:
        features = Features.from_dict(request["features"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        return f"unreadable rescore request: features: {exc!r}"[:500]
    return request, features
