"""Writing a replay's outputs: alerts.jsonl, dead_letters.jsonl, accounts.jsonl and report.html.

Apart from ``limitsync.replay`` so that the replay does not import the report, which imports
the replay (``report_data`` reads ``ReplayResult``): the layers hold no cycle.
"""

from __future__ import annotations

import gc
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate, chain
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from limitsync.memory import return_free_memory
from limitsync.replay import ReplayOptions, ReplayResult, write_jsonl

if TYPE_CHECKING:
    from limitsync.inquiry_report import InquirySummary
    from limitsync.report import AlertDigest

__all__ = ["AlertTap", "collector_paused", "read_alerts_for_report", "write_outputs"]

_BLOCK = 1 << 20


def read_alerts_for_report(path: Path, focus_account: str | None = None) -> AlertDigest:
    """alerts.jsonl back for the report, digested in one pass (``report.alerts``) without
    holding its records; then the records of the accounts whose timelines the report shows,
    read again. With a focus account, the report's alerts are that account's only: they are
    few, and held."""
    from limitsync.report import digest_alerts

    offsets = array("q")  # where each record's line starts
    # The records read back hold no cycles and each is dropped once digested: the
    # collector's passes (over the digest's growing drifts) would find nothing to collect.
    with path.open("rb") as fh, collector_paused():
        if focus_account is not None:
            mine = [r for r in _records(fh, offsets) if r["account_id"] == focus_account]
            return digest_alerts(mine, focus_account)
        digest = digest_alerts(_records(fh, offsets))
        _keep_shown(digest, fh, offsets)
    return digest


class AlertTap:
    """The report's digest of a streamed replay's alerts, taken as they are written: its
    ``add`` is ``OutputFiles``' ``on_alert``, told each record and the length of its line. The
    report then reads back only the records of the accounts whose timelines it shows, not a
    day of them. Records are digested a batch at a time: the replay builds a new dict for
    each alert and keeps none, so a batch may be held until digested."""

    def __init__(self, focus_account: str | None = None) -> None:
        from limitsync.report.alerts import AlertReader, TapBuffer  # the report is optional

        self.focus_account = focus_account
        self._reader = AlertReader(focus_account)
        self._buffer = TapBuffer(self._reader, focus_account)
        self.add = self._buffer.add

    def digest(self, path: Path) -> AlertDigest:
        """The digest, once the replay has written and closed ``path`` (its alerts.jsonl)."""
        from limitsync.report import digest_alerts

        buffer = self._buffer
        if self.focus_account is not None:
            return digest_alerts(buffer.batch, self.focus_account)
        self._reader.read(buffer.batch)
        buffer.batch = []
        digest = self._reader.digest()
        with path.open("rb") as fh:
            _keep_shown(digest, fh, buffer.offsets)
        return digest


def _keep_shown(digest: AlertDigest, fh: IO[bytes], offsets: array[int]) -> None:
    """The records of the accounts whose timelines the report shows, read again."""
    from limitsync.report import timeline_accounts

    digest.keep_records(
        {
            account: [_record_at(fh, offsets[i]) for i in digest.where[account]]
            for account in timeline_accounts(digest)
        }
    )


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block, then as it was before (a caller that had it
    off keeps it off)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _records(fh: IO[bytes], offsets: array[int]) -> Iterator[dict[str, Any]]:
    """The JSON Lines of ``fh`` parsed, each line's start appended to ``offsets``."""
    return chain.from_iterable(_record_blocks(fh, offsets))


def _record_blocks(fh: IO[bytes], offsets: array[int]) -> Iterator[list[dict[str, Any]]]:
    """Read in blocks and split, a block's lines parsed at once: faster than a buffered
    readline and a generator step a line."""
    loads = orjson.loads
    start = 0  # of the block's first line
    tail = b""
    while block := fh.read(_BLOCK):
        lines = (tail + block).split(b"\n") if tail else block.split(b"\n")
        tail = lines.pop()
        starts = accumulate(map(_NEXT_LINE, map(len, lines)), initial=start)
        offsets.extend(starts)
        start = offsets.pop()  # the start of the tail
        yield [loads(line) for line in lines]
    if tail:
        offsets.append(start)
        yield [loads(tail)]


_NEXT_LINE = (1).__add__  # a line's length with its newline


def _record_at(fh: IO[bytes], offset: int) -> dict[str, Any]:
    fh.seek(offset)
    record: dict[str, Any] = orjson.loads(fh.readline())
    return record


def write_outputs(
    result: ReplayResult,
    out_dir: Path,
    options: ReplayOptions,
    source: str,
    focus_account: str | None = None,
    inquiries: InquirySummary | None = None,
    alerts: AlertTap | None = None,
) -> None:
    """Write alerts.jsonl, dead_letters.jsonl (unless the replay streamed them), accounts.jsonl
    and report.html into ``out_dir``; with ``inquiries``, the report has their section. A
    streamed replay's alerts are read back for the report, unless ``alerts`` took them as
    they were written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not result.streamed:
        write_jsonl(out_dir / "alerts.jsonl", result.alerts)
        write_jsonl(out_dir / "dead_letters.jsonl", result.dead_letters)
    write_jsonl(out_dir / "accounts.jsonl", result.account_lines())
    digest = None
    if result.streamed:
        # The ids are done with; the report's alerts take their place in memory.
        result.engine.release_ids()
        path = out_dir / "alerts.jsonl"
        if alerts is None:
            digest = read_alerts_for_report(path, focus_account)
        elif alerts.focus_account != focus_account:
            raise ValueError("the alerts were tapped for another focus than the report's")
        else:
            digest = alerts.digest(path)
    from limitsync.report import render_report  # the report is optional weight
    from limitsync.report_data import build_report_data, shown_accounts

    if digest is not None:
        # Only the shown accounts' timelines are drawn: the others' memory goes to the report.
        shown = set(shown_accounts(digest, focus_account, result.engine.accounts))
        result.timelines = {a: t for a, t in result.timelines.items() if a in shown}
        return_free_memory()

    data = build_report_data(result, options, source, focus_account, inquiries, digest)
    (out_dir / "report.html").write_text(render_report(data), encoding="utf-8")
