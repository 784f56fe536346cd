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
from typing import Any

import orjson

from schemas.timefmt import format_us
from streams.live import Publisher, wall_us
from streams.metrics import Metrics
from streams.scorer import Decision, Features, Scorer

__all__ = ["Rescorer", "decision_event"]

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

    async def handle(self, raw: bytes) -> None:
        try:
            request = orjson.loads(raw)
            features = Features.from_dict(request["features"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            await self._fail(raw, f"unreadable rescore request: {exc}", None)
            return
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
        await self._fail(raw, f"scorer failed {self.retries_max} times: {last!r}", request)

    async def _score(self, features: Features) -> Decision:
        result = self.scorer.score(features)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _fail(self, raw: bytes, error: str, request: dict[str, Any] | None) -> None:
        from schemas.parse import dead_letter_record

        account = request.get("account_id") if isinstance(request, dict) else None
        record = dead_letter_record(
            raw, error, "rescore_failed", self.topics["rescore_requests"], None, None, None, account
        )
        await self.publisher.publish(
            self.topics["dead_letters"], account or "", orjson.dumps(record)
        )
        self.metrics.rescores.labels(outcome="failed").inc()
        self.metrics.dead_letters.labels(reason="rescore_failed").inc()
