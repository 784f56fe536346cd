"""Subcommands of the remedies (issue 15): inquire, drill, backtest."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from limitsync.cli_args import add_sla_arguments, fail

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

    from limitsync.drill import SCENARIOS

    p = sub.add_parser("drill", help="rehearse a fault on the running system (contingency drill)")
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--accounts", type=int, default=20, help="drill accounts (its own, 1..1000)")
    p.add_argument("--state-file")
    p.add_argument("--json", action="store_true")
    p.add_argument("--sla-s", type=float, help="the workers' SLA (default: the settings')")
    p.add_argument("--tolerance-s", type=float, default=5.0,
                   help="allowed beyond the SLA for detection (default 5)")
    p.add_argument("--outage-s", type=float, help="redis-outage: how long (default 2 x SLA)")
    p.add_argument("--timeout-s", type=float, help="give up waiting after this long")
    p.add_argument("--metrics-file", help="write the result as Prometheus text here")
    p.set_defaults(handler=cmd_drill)

    from limitsync.cli_args import time_us

    p = sub.add_parser("backtest", help="what a candidate scorecard would have decided on history")
    p.add_argument("--input", help="JSON Lines log or archive, in log order")
    p.add_argument("--from-kafka", action="store_true", help="read the input topics instead")
    p.add_argument("--start", type=time_us, help="with --from-kafka: first record timestamp")
    p.add_argument("--end", type=time_us, help="with --from-kafka: last record timestamp")
    p.add_argument("--scorer", required=True, help="the candidate, as module:callable")
    p.add_argument("--out", default="backtest-out", help="output directory")
    add_sla_arguments(p, clearing=False)
    p.add_argument("--state-file")
    p.set_defaults(handler=cmd_backtest)


def cmd_backtest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from limitsync.backtest import run_backtest, write_outputs
    from limitsync.inputs import InputError, open_input
    from streams.scorer import load_scorer

    try:
        scorer = load_scorer(args.scorer)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        return fail(f"cannot load the scorer {args.scorer!r}: {exc}")
    if args.from_kafka:
        from consumers.kafka_replay import read_window
        from limitsync.live_commands import _settings

        records: Any = (r.as_input() for r in read_window(_settings(args), args.start, args.end))
    elif args.input:
        try:
            records = open_input(args.input)
        except InputError as exc:
            return fail(str(exc))
    else:
        return fail("backtest needs --input FILE or --from-kafka")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with (out / "decisions.jsonl").open("wb") as decisions:
            result = run_backtest(records, scorer, args.scorer, decisions, args.sla_s)
    except InputError as exc:
        return fail(str(exc))
    write_outputs(result, out)
    s = result.summary()
    print(
        f"backtest of {args.scorer}: {s['rescore_points']} rescore points, {s['lines_changed']} "
        f"lines changed, {s['cuts']} cuts on {s['accounts_cut']} accounts, "
        f"{s['reason_problems']} with reasons a notice cannot carry, alerts "
        f"{s['alerts_incumbent']} -> {s['alerts_candidate']} -> {out}"
    )
    return 0


def cmd_drill(args: argparse.Namespace) -> int:
    """Exit 0 when the drill passed, 1 when it ran and failed, 2 when it could not run."""
    import time
    from pathlib import Path

    from limitsync.drill import DrillError, DrillOptions, metrics_text, render, run_drill
    from limitsync.live_commands import _settings, _web_urls

    settings = _settings(args)
    options = DrillOptions(
        scenario=args.scenario,
        accounts=args.accounts,
        sla_s=args.sla_s if args.sla_s is not None else float(settings.sla_s),
        tolerance_s=args.tolerance_s,
        outage_s=args.outage_s,
        timeout_s=args.timeout_s,
    )
    try:
        report = run_drill(settings, _web_urls(args), options)
    except DrillError as exc:
        return fail(str(exc))
    if args.metrics_file:
        target = Path(args.metrics_file)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(metrics_text(report, time.time()))
        tmp.replace(target)  # a textfile collector never reads half a file
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if report["passed"] else 1
