"""``limitsync simulate``: its options, and writing the log and the ground truth."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from limitsync.simulation.faults import FAULT_KINDS
from limitsync.simulation.truth import InjectedFault
from limitsync.simulation.writer import write_simulation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``limitsync simulate``."""
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument(
        "--hours",
        type=float,
        default=1.0,
        help="hours of traffic; postings and late records follow for up to about an hour more",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", type=float, default=0.02, help="share of each fault kind")
    parser.add_argument("--bad", type=float, default=0.001, help="share of invalid records")
    parser.add_argument(
        "--start",
        type=_start_arg,
        default=None,
        help="RFC 3339 start time; to produce into a running stack, start at least --hours + 1 h "
        "ago: live workers dead-letter records stamped over 300 s ahead (future_timestamp)",
    )
    parser.add_argument(
        "--fault-kinds", type=_kinds_arg, default=None, help="comma-separated subset of kinds"
    )
    parser.add_argument("--truth", default=None, help="also write the ground truth (JSON) here")
    parser.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> int:
    stats = write_simulation(
        Path(args.out),
        accounts=args.accounts,
        hours=args.hours,
        seed=args.seed,
        faults=args.faults,
        bad=args.bad,
        start=args.start,
        fault_kinds=args.fault_kinds,
    )
    if args.truth:
        truth = {
            **stats.summary(),
            "injected": [
                {k: v for k, v in _fault_dict(f).items() if v is not None} for f in stats.injected
            ],
            "expected_accounts": [a.as_dict() for a in stats.accounts.values()],
        }
        Path(args.truth).write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
    print(f"wrote {args.out}: {stats}")
    return 0


def _start_arg(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("start needs an offset, e.g. 2026-11-29T00:00:00Z")
    return moment


def _kinds_arg(text: str) -> frozenset[str]:
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = kinds - FAULT_KINDS
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    return kinds


def _fault_dict(fault: InjectedFault) -> dict[str, Any]:
    """The truth file's fields of a fault (its sources are not among them)."""
    return {
        "kind": fault.kind,
        "account_id": fault.account_id,
        "event_id": fault.event_id,
        "occurred_at": fault.occurred_at,
        "payment_id": fault.payment_id,
    }
