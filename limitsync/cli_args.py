"""Small argument helpers shared by every subcommand module."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from limitsync.replay import ReplayOptions

__all__ = ["add_inquiries_argument", "fail", "replay_options", "seconds", "time_us"]


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
    """The replay options every replaying subcommand takes (SLAs, ``--until``, ``--now``)."""
    from limitsync.replay import ReplayOptions
    from schemas.contract import DEDUPE_HORIZON_S, MAX_FUTURE_SKEW_S
    from streams.core import CoreConfig

    skew_s = getattr(args, "max_future_skew_s", None)
    return ReplayOptions(
        core=CoreConfig.from_seconds(
            sla_s=args.sla_s,
            clearing_sla_s=args.clearing_sla_s,
            dedupe_horizon_s=getattr(args, "dedupe_horizon_s", None) or DEDUPE_HORIZON_S,
        ),
        until_us=getattr(args, "until", None),
        now_us=getattr(args, "now", None),
        max_future_skew_s=MAX_FUTURE_SKEW_S if skew_s is None else skew_s,
    )


def add_sla_arguments(p: argparse.ArgumentParser, clearing: bool = True) -> None:
    """The SLAs a replaying subcommand judges by, in whole seconds (``--sla-seconds`` and
    ``--clearing-sla-seconds``, the older spellings, still work); with ``clearing``, also the
    dedupe horizon of the records it replays."""
    from schemas.contract import CLEARING_SLA_S, DEDUPE_HORIZON_S, SLA_S

    p.add_argument(
        "--sla-s",
        "--sla-seconds",
        dest="sla_s",
        type=seconds,
        default=SLA_S,
        help=f"drift SLA (default {SLA_S})",
    )
    if clearing:
        p.add_argument(
            "--clearing-sla-s",
            "--clearing-sla-seconds",
            dest="clearing_sla_s",
            type=seconds,
            default=CLEARING_SLA_S,
            help=f"clearing SLA (default {CLEARING_SLA_S})",
        )
        # A replay's clock is event time: an old log re-sent after newer records "arrives"
        # when the clock already stands at the newer ones, so its copies can fall outside a
        # horizon that the live workers, on the wall clock, saw them arrive well within.
        p.add_argument(
            "--dedupe-horizon-s",
            dest="dedupe_horizon_s",
            type=_positive_seconds,
            default=DEDUPE_HORIZON_S,
            help=f"how long an event id is remembered (default {DEDUPE_HORIZON_S}, the live "
            "default): give the live workers' LIMITSYNC_DEDUPE_HORIZON_S, or longer to replay "
            "topics where an old log was produced again after newer records",
        )


def seconds(text: str) -> int:
    """A whole number of seconds, 0 or more (argparse ``type=``)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds >= 0: {text!r}")
    return value


def _positive_seconds(text: str) -> int:
    """A whole number of seconds, 1 or more (argparse ``type=``)."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("not a whole number of seconds >= 1: '0'")
    return value


def add_inquiries_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--inquiries",
        metavar="FILE",
        help="records of the limit.inquiries topic (JSONL, segment, dir or glob): the report "
        "gets an inquiries section (by verdict, faults confirmed, time to answer)",
    )
