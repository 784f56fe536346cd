"""Small argument helpers shared by every subcommand module."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from limitsync.replay import ReplayOptions

__all__ = ["fail", "replay_options", "time_us"]


def fail(message: str) -> int:
    """One line on stderr and exit status 2: what a user can act on, no traceback."""
    print(f"limitsync: error: {message}", file=sys.stderr)
    return 2


def time_us(text: str) -> int:
    """An RFC 3339 argument as microseconds since the epoch (argparse ``type=``)."""
    from schemas.timefmt import parse_rfc3339, to_us

    try:
        return to_us(parse_rfc3339(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def replay_options(args: argparse.Namespace) -> ReplayOptions:
    """The replay options every replaying subcommand takes (SLAs, ``--until``)."""
    from limitsync.replay import ReplayOptions

    return ReplayOptions(
        sla_seconds=args.sla_seconds,
        clearing_sla_seconds=args.clearing_sla_seconds,
        until_us=getattr(args, "until", None),
    )
