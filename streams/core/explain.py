"""Explanations: why the limit a user sees is what it is (docs/contract.md, "Explanations").

Not every change a user notices is a fault; a support agent needs the breakdown and the
changes with a code each, and for a decrease the model's specific reasons.
"""

from __future__ import annotations

from typing import Any

from schemas.timefmt import format_us
from streams.core.alerts import CACHE_RIGHT_NOTE
from streams.core.ledger import yuan
from streams.core.state import AccountState, ChangeEntry, Display

__all__ = ["describe", "explain", "render_text"]


def describe(entry: ChangeEntry) -> str:
    """The words for one explained change (state keeps only its facts)."""
    f = entry.facts
    code = entry.code
    if code == "DRAWDOWN":
        return f"drew {yuan(f[0])} on loan {f[1]}"
    if code == "REPAYMENT_IN_FLIGHT":
        return f"paid {yuan(f[0])} by {f[1]}; waiting for core banking to post"
    if code == "REPAYMENT_RESTORED":
        return f"repaid {yuan(f[0])} of principal"
    if code == "INTEREST_NOT_RESTORED":
        return f"{yuan(f[0])} interest and {yuan(f[1])} fees paid: they do not restore the limit"
    if code == "REPAYMENT_REVERSED":
        if f[1] == "late":
            return f"repayment of {yuan(f[0])} posted after its reversal: no effect"
        return f"repayment of {yuan(f[0])} failed and was undone"
    if code in ("RESCORE_INCREASE", "RESCORE_DECREASE") or (
        code == "POLICY_CHANGE" and len(f) == 4
    ):
        model = f", model {f[3]}" if f[3] else ""
        return f"credit line {yuan(f[0])} -> {yuan(f[1])} ({f[2]}){model}"
    why = f": {f[2]}" if f[2] else ""
    if code == "ACCOUNT_FROZEN":
        return f"account {f[1]}{why}"
    if code == "ACCOUNT_UNFROZEN":
        return f"account active again{why}"
    return f"status {f[0]} -> {f[1]}{why}"


def explain(state: AccountState, since_us: int | None = None) -> dict[str, Any]:
    """The breakdown of the expected limit and the explained changes since ``since_us``."""
    changes = [
        {
            "at": format_us(h.at_us),
            "event_id": h.event_id,
            "code": h.code,
            "available_before": h.available_before,
            "available_after": h.available_after,
            "detail": describe(h),
            **({"reasons": h.reasons} if h.reasons else {}),
        }
        for h in sorted(state.history, key=lambda h: (h.at_us, h.event_id))
        if since_us is None or h.at_us >= since_us
    ]
    pending = [
        {
            "code": "REPAYMENT_IN_FLIGHT",
            "payment_id": w.payment_id,
            "amount": w.amount,
            "since": format_us(w.opened_us),
            "detail": f"{yuan(w.amount)} paid, not yet posted by core banking",
        }
        for w in sorted(state.clearing.values(), key=lambda w: w.opened_us)
    ]
    rescore_since = state.rescore_requested_us or state.rescore_due_us
    if rescore_since is not None:
        pending.append(
            {
                "code": "RESCORE_PENDING",
                "since": format_us(rescore_since),
                "detail": "the risk model is re-scoring the line after recent activity",
            }
        )
    app, cache = state.app, state.cache
    return {
        "account_id": state.account_id,
        "expected_available": state.expected_available,
        "displayed_available": app.displayed,  # as in accounts.jsonl: the app's latest
        "cache_available": cache.displayed,  # and the cache's
        "credit_line": state.credit_line,
        "outstanding": state.outstanding,
        "status": state.status,
        "version": state.version,
        "in_drift": app.drift is not None or cache.drift is not None,
        "sources": {"app": _source(app), "cache": _source(cache)},
        "changes": changes,
        "pending": pending,
    }


def _source(display: Display) -> dict[str, Any]:
    """What one observation source shows and whether it drifts."""
    drift = display.drift
    key = display.key
    return {
        "observed": display.observed,
        "displayed_available": display.displayed,
        "observed_at": format_us(key[0]) if key is not None else None,
        "in_drift": drift is not None,
        "drift_opened_at": format_us(drift.opened_us) if drift is not None else None,
        # fixed when the breach fired; none before
        "drift_reason": drift.reason if drift is not None and drift.breached else None,
    }


def render_text(report: dict[str, Any]) -> str:
    """A support agent's view of ``explain``: plain lines, amounts in yuan."""
    lines = [
        f"Account {report['account_id']}",
        f"  expected available  {yuan(report['expected_available'])}"
        f"  (line {yuan(report['credit_line'])} - outstanding {yuan(report['outstanding'])}"
        f", status {report['status']})",
    ]
    sources = report["sources"]
    for name, label in (("app", "shown in the app"), ("cache", "held in the cache")):
        lines.append(f"  {label:<19} {_shown_text(sources[name])}")
    app, cache = sources["app"], sources["cache"]
    if app["in_drift"] and cache["observed"] and not cache["in_drift"]:
        lines.append(f"  note: {CACHE_RIGHT_NOTE}")
    lines.append("Changes:" if report["changes"] else "No changes in the period.")
    for c in report["changes"]:
        delta = c["available_after"] - c["available_before"]
        lines.append(f"  {c['at']}  {c['code']:<22} {delta:+d} fen  {c['detail']}")
        lines.extend(f"      reason: {r}" for r in c.get("reasons", []))
    for p in report["pending"]:
        lines.append(f"  pending  {p['code']:<22} {p['detail']} (since {p['since']})")
    return "\n".join(lines)


def _shown_text(source: dict[str, Any]) -> str:
    if not source["observed"]:
        return "never observed"
    shown = source["displayed_available"]
    text = "nothing" if shown is None else yuan(shown)
    text += f" (observed {source['observed_at']})"
    if source["in_drift"]:
        reason = f", {source['drift_reason']}" if source["drift_reason"] else ""
        text += f"; disagrees since {source['drift_opened_at']}{reason}"
    return text
