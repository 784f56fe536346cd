"""Limit inquiries (issue 15): a user says "the app shows ¥X", and support asks limitsync.

Pure: the request is checked and the answer composed from the account's state, the value the
shell read from the cache and an injected clock and id. The shell (``streams.inquiries``)
reads the cache, carries out the action and publishes the record.

Verdicts: ``correct`` when the reported value is the expected available limit, ``fault`` when
it is not, ``unknown_account``. Actions: ``cache_rewritten`` (a fault, and the cache was wrong
too: limitsync rewrites it and the cache drift alerts at once), ``alert_opened`` (a fault with
a right cache: the display layer is wrong; its drift alerts at once, or is joined if it had
already), ``none`` (nothing is wrong, or the reported value is one the account held moments
ago: a change still on its way, which the app drift's SLA covers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from schemas.contract import ACCOUNT_ID_CHARS, ACCOUNT_ID_LEN_MAX, MINOR_UNITS_MAX
from streams.core.explain import explain
from streams.core.ledger import yuan
from streams.core.state import AccountState

__all__ = [
    "AMOUNT_MAX",
    "CHANGES_MAX",
    "InquiryRequest",
    "answer",
    "decide_action",
    "gap_reason",
    "parse_request",
]

Verdict = Literal["correct", "fault", "unknown_account"]
Action = Literal["none", "cache_rewritten", "alert_opened"]

_ACCOUNT_ID: Final = re.compile(f"[{ACCOUNT_ID_CHARS}]{{1,{ACCOUNT_ID_LEN_MAX}}}")
# Money as in the envelope: a fault is published as a limit.displayed of the reported value,
# which the parser must accept.
AMOUNT_MAX: Final = MINOR_UNITS_MAX
CHANNEL_MAX_CHARS: Final = 32
TEXT_MAX_CHARS: Final = 2000  # the user's own words, kept with the record
CHANGES_MAX: Final = 5  # recent changes in an answer: what an agent can read out
REASONS_MAX: Final = 4  # model reasons read out for a decrease (adverse-action practice)

RESCORE_NOTICE_EN: Final = (
    "Your limit is reviewed regularly by a credit model; a review (rescore) can raise or "
    "lower it."
)
RESCORE_NOTICE_ZH: Final = "您的额度会由信用模型定期评估，重新评分后额度可能上调或下调。"


@dataclass(frozen=True, slots=True)
class InquiryRequest:
    account_id: str
    displayed_available: int  # fen, what the user says they see
    channel: str | None = None
    text: str | None = None


def parse_request(body: object) -> InquiryRequest | str:
    """The request, or a readable error (the web answers it with a 400). Unknown extra fields
    are ignored, as the contract does for records (forward compatible)."""
    if not isinstance(body, dict):
        return "the request must be a JSON object"
    account_id = body.get("account_id")
    if not isinstance(account_id, str) or _ACCOUNT_ID.fullmatch(account_id) is None:
        return (
            f"account_id must be a string of 1..{ACCOUNT_ID_LEN_MAX} characters "
            f"[{ACCOUNT_ID_CHARS}]"
        )
    shown = body.get("displayed_available")
    # bool is an int in Python; the contract says booleans are not integers.
    if type(shown) is not int:
        return "displayed_available must be an integer amount in fen (minor units)"
    if not 0 <= shown <= AMOUNT_MAX:
        return f"displayed_available must be between 0 and {AMOUNT_MAX} fen"
    channel = body.get("channel")
    if channel is not None and (
        not isinstance(channel, str) or not 1 <= len(channel) <= CHANNEL_MAX_CHARS
    ):
        return f"channel must be a string of 1..{CHANNEL_MAX_CHARS} characters"
    text = body.get("text")
    if text is not None and (not isinstance(text, str) or len(text) > TEXT_MAX_CHARS):
        return f"text must be a string of at most {TEXT_MAX_CHARS} characters"
    return InquiryRequest(account_id, shown, channel, text)


def gap_reason(state: AccountState, shown: int) -> str:
    """What explains a reported value that is not the expected one (the alert reasons)."""
    if state.status != "active" and shown > 0:
        return "FREEZE_NOT_APPLIED"
    if any(h.available_before == shown for h in state.history):
        return "SYNC_DELAY"  # a value the account held: a change has not reached the display
    return "CACHE_DIVERGED"


def _in_flight(state: AccountState, shown: int, now_us: int, sla_us: int) -> bool:
    """The reported value was the expected one less than an SLA ago: the change that replaced
    it may still be on its way to the app, which is not yet a fault to alert on."""
    return any(
        h.available_before == shown and now_us - h.at_us <= sla_us for h in state.history
    )


def decide_action(
    state: AccountState, shown: int, cache_available: int | None, now_us: int, sla_us: int
) -> Action:
    """For a fault: what limitsync does, given what the cache held when it was read."""
    if cache_available != state.expected_available:
        return "cache_rewritten"
    if _in_flight(state, shown, now_us, sla_us):
        return "none"
    return "alert_opened"


def answer(
    request: InquiryRequest,
    state: AccountState | None,
    inquiry_id: str,
    action: Action = "none",
    alert_ids: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The answer: verdict, expected value, reasons, recent changes, action and the words a
    support agent reads out (Chinese and English, amounts in yuan)."""
    shown = request.displayed_available
    if state is None:
        return {
            "inquiry_id": inquiry_id,
            "account_id": request.account_id,
            "verdict": "unknown_account",
            "expected_available": None,
            "displayed_reported": shown,
            "reasons": [],
            "changes": [],
            "action": "none",
            "alert_ids": [],
            "message": {
                "en": f"limitsync knows no account {request.account_id}; check the id.",
                "zh": f"未找到账户 {request.account_id}，请核对账户号。",
            },
        }
    report = explain(state)
    expected = state.expected_available
    verdict: Verdict = "correct" if shown == expected else "fault"
    reasons = [] if verdict == "correct" else [gap_reason(state, shown)]
    reasons += _current_reasons(report)
    changes = report["changes"][-CHANGES_MAX:]
    en, zh = _verdict_words(verdict, shown, expected, action, alert_ids)
    for code in reasons:
        words = _reason_words(code, report)
        if words is not None:
            en.append(words[0])
            zh.append(words[1])
    en.append(RESCORE_NOTICE_EN)
    zh.append(RESCORE_NOTICE_ZH)
    return {
        "inquiry_id": inquiry_id,
        "account_id": request.account_id,
        "verdict": verdict,
        "expected_available": expected,
        "displayed_reported": shown,
        "credit_line": state.credit_line,
        "outstanding": state.outstanding,
        "status": state.status,
        "reasons": reasons,
        "changes": changes,
        "pending": report["pending"],
        "action": action if verdict == "fault" else "none",
        "alert_ids": list(alert_ids),
        "message": {"en": " ".join(en), "zh": "".join(zh)},
    }


def _current_reasons(report: dict[str, Any]) -> list[str]:
    """The explanation codes behind the current limit: the status, what is still clearing or
    re-scoring, then the recent changes' codes, newest first, each once."""
    codes: list[str] = []
    if report["status"] != "active":
        codes.append("ACCOUNT_FROZEN")
    codes += [p["code"] for p in report["pending"]]
    codes += [c["code"] for c in reversed(report["changes"][-CHANGES_MAX:])]
    return list(dict.fromkeys(codes))


def _money(fen: int) -> str:
    return f"¥{yuan(fen)}"


def _verdict_words(
    verdict: Verdict, shown: int, expected: int, action: Action, alert_ids: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    if verdict == "correct":
        return (
            [f"The available limit shown, {_money(shown)}, is correct."],
            [f"您看到的可用额度 {_money(shown)} 是正确的。"],
        )
    en = [f"The available limit should be {_money(expected)}, not the {_money(shown)} shown."]
    zh = [f"您的可用额度应为 {_money(expected)}，而不是显示的 {_money(shown)}。"]
    ref = f" (alert {', '.join(alert_ids)})" if alert_ids else ""
    if action == "cache_rewritten":
        en.append(f"The stored limit was wrong and has been corrected{ref}; refreshing the app "
                  f"shows {_money(expected)}.")
        zh.append(f"额度缓存有误，已自动更正{ref}；刷新 App 即可看到 {_money(expected)}。")
    elif action == "alert_opened":
        en.append(f"The stored limit is right but the app shows an old value; the issue has "
                  f"been raised with the operations team{ref}.")
        zh.append(f"系统记录的额度正确，但 App 显示未同步，已上报运维处理{ref}。")
    else:
        en.append(f"A recent change is still reaching the app; it shows {_money(expected)} "
                  f"within a minute.")
        zh.append(f"最近的额度变动正在同步中，稍后刷新即可看到 {_money(expected)}。")
    return en, zh


def _reason_words(code: str, report: dict[str, Any]) -> tuple[str, str] | None:
    """One sentence per reason code, in English and Chinese; None for codes that need none."""
    change = next((c for c in reversed(report["changes"]) if c["code"] == code), None)
    if code == "ACCOUNT_FROZEN":
        return (
            f"The account is {report['status']}, so no limit is available.",
            "账户已冻结或关闭，暂无可用额度。",
        )
    if code == "REPAYMENT_IN_FLIGHT":
        amount = sum(p["amount"] for p in report["pending"] if p["code"] == code)
        return (
            f"Repayments of {_money(amount)} are still clearing; the limit rises once the bank "
            f"posts them.",
            f"有 {_money(amount)} 的还款正在清算中，入账后额度即恢复。",
        )
    if code == "INTEREST_NOT_RESTORED" and change is not None:
        return (
            "Interest and fees you repaid do not restore the limit; only principal does.",
            "还款中的利息和费用不恢复额度，只有本金会恢复。",
        )
    if code == "RESCORE_DECREASE" and change is not None:
        why = change.get("reasons", [])[:REASONS_MAX]
        before, after = change["available_before"], change["available_after"]
        return (
            f"A credit review lowered the available limit from {_money(before)} to "
            f"{_money(after)}" + (f", because: {'; '.join(why)}." if why else "."),
            f"信用评估将可用额度从 {_money(before)} 调整为 {_money(after)}"
            + (f"，原因：{'；'.join(why)}。" if why else "。"),
        )
    if code == "RESCORE_PENDING":
        return (
            "A credit review of the line is under way after recent activity.",
            "近期交易后，信用额度正在重新评估中。",
        )
    if code == "SYNC_DELAY":
        return (
            "The value shown is one the account had before its latest change.",
            "显示的是最近一次变动之前的额度。",
        )
    if code == "FREEZE_NOT_APPLIED":
        return ("The account is frozen but the app still shows a limit.",
                "账户已冻结，但 App 仍显示可用额度。")
    if code == "REPAYMENT_REVERSED" and change is not None:
        return (
            "A repayment failed at the bank and was undone.",
            "一笔还款扣款失败，已被撤销。",
        )
    return None
