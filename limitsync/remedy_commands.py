"""Subcommands of the remedies (issue 15): inquire, drill, backtest."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from limitsync.cli_args import fail

__all__ = ["post_inquiry", "register"]

INQUIRY_TIMEOUT_S = 15.0  # the owner reads the cache and waits for Kafka before answering


def post_inquiry(urls: list[str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST an inquiry to the first worker that answers (any worker routes it to the owner):
    the HTTP status and the JSON answer. Raises ``OSError`` when none answers."""
    data = json.dumps(body).encode()
    last: Exception = OSError("no worker URL configured")
    for url in urls:
        req = urllib.request.Request(
            f"{url}/inquiries", data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=INQUIRY_TIMEOUT_S) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 413):
                return exc.code, json.loads(exc.read() or b"{}")
            last = OSError(f"{url}: HTTP {exc.code} {exc.read()[:200]!r}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = OSError(f"{url}: {exc}")
    raise OSError(str(last))


def cmd_inquire(args: argparse.Namespace) -> int:
    from limitsync.live_commands import _web_urls

    body: dict[str, Any] = {"account_id": args.account, "displayed_available": args.sees}
    if args.channel:
        body["channel"] = args.channel
    if args.text:
        body["text"] = args.text
    try:
        status, reply = post_inquiry(_web_urls(args), body)
    except OSError as exc:
        return fail(f"no worker answered ({exc})")
    if status != 200:
        return fail(f"the inquiry was refused: {reply.get('error', reply)}")
    print(json.dumps(reply, indent=2, ensure_ascii=False) if args.json else render(reply))
    return 0


def render(reply: dict[str, Any]) -> str:
    """What a support agent reads: the verdict, the numbers, the words to read out."""
    from streams.core.ledger import yuan

    expected = reply["expected_available"]
    lines = [
        f"Inquiry {reply['inquiry_id']} about {reply['account_id']}: {reply['verdict'].upper()}",
        f"  user sees   ¥{yuan(reply['displayed_reported'])}",
    ]
    if expected is not None:
        lines.append(f"  expected    ¥{yuan(expected)}")
        lines.append(f"  action      {reply['action']}"
                     + (f" (alert {', '.join(reply['alert_ids'])})" if reply["alert_ids"] else ""))
        lines.append(f"  reasons     {', '.join(reply['reasons']) or '-'}")
    lines += ["", f"  EN: {reply['message']['en']}", f"  中文: {reply['message']['zh']}"]
    return "\n".join(lines)


def _fen(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in fen (an integer)") from None
    if value < 0:
        raise argparse.ArgumentTypeError("an amount is never negative")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser("inquire", help="a user's limit inquiry: is what they see right?")
    p.add_argument("account")
    p.add_argument("--sees", type=_fen, required=True, help="the available limit shown, in fen")
    p.add_argument("--channel", help="where the inquiry came from (app, phone, chat...)")
    p.add_argument("--text", help="the user's own words")
    p.add_argument("--state-file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_inquire)
    for extra in _remedies():
        extra(sub)


def _remedies() -> list[Any]:
    """Drill and backtest register themselves beside inquire."""
    return []
