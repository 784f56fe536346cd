"""Limit inquiries, the live side: ``POST /inquiries`` on the worker web (issue 15).

The request is checked where it arrives (a bad one is a 400 with the error), then routed to
the worker that owns the account, like explain (Faust's own table routing forwards no body,
so the forwarding is here). The owner answers from its engine: a ``fault`` is an observation
from the user, so limitsync reads the cache at once, rewrites it when it is wrong and opens or
joins an alert with the inquiry as evidence. Every inquiry and its answer go on the
``inquiries`` topic and are counted in metrics.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import faust
import orjson
from aiohttp import ClientError, ClientTimeout
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError
from yarl import URL

from schemas.timefmt import format_us
from streams.core import AlertRaised, Effect
from streams.core.inquiry import InquiryRequest, answer, decide_action, parse_request
from streams.live import OWN_HEADER, LiveShell, own_observation, partition_of, wall_us
from streams.metrics import Metrics

__all__ = ["BODY_MAX_BYTES", "InquiryDesk", "install_inquiries"]

log = logging.getLogger(__name__)
BODY_MAX_BYTES = 16 * 1024  # a request is four short fields and the user's words
FORWARD_TIMEOUT_S = 10.0  # to the owning worker
ROUTED_HEADER = "X-Limitsync-Routed"  # a forwarded request is answered where it lands
_ANSWER_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class InquiryMetrics:
    """The inquiry series, on the worker's registry."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.inquiries = Counter(
            "limitsync_inquiries", "Limit inquiries answered, by verdict", ["verdict"], registry=r
        )
        self.actions = Counter(
            "limitsync_inquiry_actions",
            "What limitsync did about an inquiry",
            ["action"],
            registry=r,
        )
        self.rejected = Counter(
            "limitsync_inquiries_rejected", "Inquiries refused as bad requests (400)", registry=r
        )
        self.answer_seconds = Histogram(
            "limitsync_inquiry_answer_seconds",
            "From the request to its answer",
            buckets=_ANSWER_BUCKETS_S,
            registry=r,
        )
        for verdict in ("correct", "fault", "unknown_account"):
            self.inquiries.labels(verdict=verdict)
        for action in ("none", "cache_rewritten", "alert_opened"):
            self.actions.labels(action=action)


class InquiryDesk:
    """Answers the inquiries of the accounts this worker owns."""

    def __init__(self, shell: LiveShell, metrics: Metrics) -> None:
        self.shell = shell
        self.metrics = InquiryMetrics(metrics)
        self.topic = shell.settings.topic("inquiries")

    def owns(self, account_id: str) -> bool:
        return self.shell.ready and (
            partition_of(account_id, self.shell.settings.partitions) in self.shell.owned
        )

    async def ask(self, request: InquiryRequest, started: float) -> dict[str, Any]:
        """The answer to one inquiry, after carrying out its action and publishing both."""
        shell = self.shell
        inquiry_id = f"inq-{uuid.uuid4().hex}"
        state = shell.engine.accounts.get(request.account_id)
        action: Any = "none"
        alert_ids: tuple[str, ...] = ()
        if state is not None and request.displayed_available != state.expected_available:
            cached, version = await self._read_cache(request.account_id)
            # Nothing awaits from here to the answer: the state cannot change under it.
            state = shell.engine.accounts.get(request.account_id)
            if state is not None:
                action, alert_ids = await self._act(request, inquiry_id, cached, version)
        reply = answer(request, state, inquiry_id, action, alert_ids)
        answered_s = time.perf_counter() - started
        record = {
            "inquiry_id": inquiry_id,
            "received_at": format_us(wall_us() - int(answered_s * 1e6)),
            "request": {
                "account_id": request.account_id,
                "displayed_available": request.displayed_available,
                "channel": request.channel,
                "text": request.text,
            },
            "answer": reply,
            "answer_ms": round(answered_s * 1000, 3),
        }
        await shell.publisher.publish(self.topic, request.account_id, orjson.dumps(record))
        await shell.flush()
        self.metrics.inquiries.labels(verdict=reply["verdict"]).inc()
        self.metrics.actions.labels(action=reply["action"]).inc()
        self.metrics.answer_seconds.observe(answered_s)
        return reply

    async def _read_cache(self, account_id: str) -> tuple[int | None, int | None]:
        try:
            [seen] = await self.shell.cache.read_many([account_id])
        except (RedisError, OSError) as exc:
            # Unknown is not right: the rewrite is queued and lands when Redis is back.
            log.warning("inquiry could not read the cache of %s: %s", account_id, exc)
            return None, None
        return seen.available, seen.version

    async def _act(
        self, request: InquiryRequest, inquiry_id: str, cached: int | None, version: int | None
    ) -> tuple[str, tuple[str, ...]]:
        """A fault: observe what the user saw and, when wrong, what the cache held; then
        rewrite the cache or confirm the app's drift. Returns the action and the alert ids."""
        shell = self.shell
        aid = request.account_id
        state = shell.engine.accounts[aid]
        now = wall_us()
        action = decide_action(
            state, request.displayed_available, cached, now, shell.engine.config.sla_us
        )
        bodies: list[bytes] = []
        effects = self._observe(
            aid, request.displayed_available, None, "app", inquiry_id, now, bodies
        )
        source = "app"
        if action == "cache_rewritten":
            source = "cache"
            effects += self._observe(aid, cached, version, "cache", inquiry_id, now, bodies)
        if action != "none":
            effects += shell.engine.confirm(aid, source)
        display = state.cache if source == "cache" else state.app
        drift = display.drift
        alert_ids = (drift.alert_id,) if drift is not None and drift.breached else ()
        for eff in effects:
            if type(eff) is AlertRaised and eff.record.get("alert_id") in alert_ids:
                eff.record["inquiry_id"] = inquiry_id  # the evidence: the user's report
        for body in bodies:
            await shell.publisher.publish(shell.topics["displayed"], aid, body, [OWN_HEADER])
        await shell.carry_out(effects)
        if action == "cache_rewritten":
            # The breach's auto-heal rewrote it already unless its reason is not healed or
            # the drift had breached before; a second rewrite is coalesced and harmless (CAS).
            await shell.carry_out(shell.engine.heal(aid))
        shell.persist()
        return action, alert_ids

    def _observe(
        self,
        account_id: str,
        available: int | None,
        version: int | None,
        source: str,
        inquiry_id: str,
        now: int,
        bodies: list[bytes],
    ) -> list[Effect]:
        """One observation made for the inquiry, applied here and published (marked as ours,
        so workers skip it and replay sees it)."""
        event, body = own_observation(
            f"obs:inquiry:{inquiry_id}:{source}",
            account_id,
            now,
            available,
            version,
            source,
            {"observer": "inquiry", "inquiry_id": inquiry_id},
        )
        effects = self.shell.engine.observe_own(event, now)
        self.shell.metrics.own_observations.inc()
        bodies.append(orjson.dumps(body))
        return effects


def install_inquiries(app: faust.App, shell: LiveShell, metrics: Metrics) -> InquiryDesk:
    """Add ``POST /inquiries`` to the worker's web."""
    desk = InquiryDesk(shell, metrics)

    class InquiryView(faust.web.View):
        async def post(self, request: faust.web.Request, **kwargs: Any) -> faust.web.Response:
            started = time.perf_counter()
            body = await self.read_request_content(request)
            request_or_error = _parse_body(body)
            if isinstance(request_or_error, str):
                desk.metrics.rejected.inc()
                return self.json({"error": request_or_error}, status=400)
            inquiry = request_or_error
            if desk.owns(inquiry.account_id):
                return self.json(await desk.ask(inquiry, started))
            if request.headers.get(ROUTED_HEADER):
                return self.json(
                    {"error": "the account's owner is changing (rebalance); retry shortly"},
                    status=503,
                )
            return await _forward(self, app, inquiry.account_id, body)

    app.page("/inquiries")(InquiryView)
    return desk


def _parse_body(body: bytes) -> InquiryRequest | str:
    if len(body) > BODY_MAX_BYTES:
        return f"the request is over {BODY_MAX_BYTES} bytes"
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return f"the request is not JSON: {exc}"
    return parse_request(obj)


async def _forward(
    view: faust.web.View, app: faust.App, account_id: str, body: bytes
) -> faust.web.Response:
    """To the worker that owns the account (found as explain's route finds it)."""
    try:
        owner: URL = app.router.key_store("state", account_id)
    except KeyError:
        return view.json({"error": "no worker owns the account yet; retry shortly"}, status=503)
    target = URL(str(owner)).with_path("/inquiries")
    headers = {"Content-Type": "application/json", ROUTED_HEADER: "1"}
    try:
        async with app.http_client.post(
            target, data=body, headers=headers, timeout=ClientTimeout(total=FORWARD_TIMEOUT_S)
        ) as resp:
            text = await resp.text()
            return view.text(text, content_type="application/json", status=resp.status)
    except (ClientError, OSError, TimeoutError) as exc:
        return view.json({"error": f"the owning worker {owner} did not answer: {exc}"}, status=502)
