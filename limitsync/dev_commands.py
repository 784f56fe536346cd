"""``limitsync up``: the embedded local stack (broker, Redis, workers, simulated traffic).

The one subcommand that starts the dev stack (``limitsync.stack``, ``limitsync.local_services``),
apart from the production subcommands of ``limitsync.live_commands``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def cmd_up(args: argparse.Namespace) -> int:
    from limitsync.stack import StackOptions, run_stack

    return run_stack(
        StackOptions(
            workers=args.workers,
            simulate=args.simulate,
            rate_per_s=args.rate,
            accounts=args.accounts,
            seed=args.seed,
            state_file=args.state_file,
            run_dir=args.run_dir,
            rescore=not args.no_rescore,
            duration_s=args.duration,
        )
    )


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="the embedded local stack: broker, Redis, workers (+ traffic)")
    p.add_argument("--simulate", action="store_true", help="feed simulator traffic")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rate", type=float, default=200.0, help="simulated events per second")
    p.add_argument("--accounts", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--state-file")
    p.add_argument("--run-dir", default=".limitsync")
    p.add_argument("--no-rescore", action="store_true")
    p.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    p.set_defaults(handler=cmd_up)
