"""Writing a replay's outputs: alerts.jsonl, dead_letters.jsonl, accounts.jsonl and report.html.

Apart from ``limitsync.replay`` so that the replay does not import the report, which imports
the replay (``report_data`` reads ``ReplayResult``): the layers hold no cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from limitsync.replay import WRITE_BUFFER, ReplayOptions, ReplayResult, write_jsonl

if TYPE_CHECKING:
    from limitsync.inquiry_report import InquirySummary

__all__ = ["write_outputs"]


def _read_alerts_for_report(path: Path) -> list[dict[str, Any]]:
    """alerts.jsonl back, without the fields the report never reads, and with its repeated
    words (type, reason, account...) shared, not one string a record."""
    from limitsync.report import ALERT_FIELDS_UNREAD

    words: dict[str, str] = {}
    alerts = []
    with path.open("rb", buffering=WRITE_BUFFER) as fh:
        for line in fh:
            record = orjson.loads(line)
            for key in ALERT_FIELDS_UNREAD:
                record.pop(key, None)
            for key in _REPEATED_WORDS:
                value = record.get(key)
                if type(value) is str:
                    record[key] = words.setdefault(value, value)
            alerts.append(record)
    return alerts


_REPEATED_WORDS = ("type", "source", "account_id", "reason", "severity", "resolution")


def write_outputs(
    result: ReplayResult,
    out_dir: Path,
    options: ReplayOptions,
    source: str,
    focus_account: str | None = None,
    inquiries: InquirySummary | None = None,
) -> None:
    """Write alerts.jsonl, dead_letters.jsonl (unless the replay streamed them), accounts.jsonl
    and report.html into ``out_dir``; with ``inquiries``, the report has their section."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not result.streamed:
        write_jsonl(out_dir / "alerts.jsonl", result.alerts)
        write_jsonl(out_dir / "dead_letters.jsonl", result.dead_letters)
    write_jsonl(out_dir / "accounts.jsonl", result.account_lines())
    if result.streamed:
        # The ids are done with; the report's alerts take their place in memory.
        result.engine.release_ids()
        result.alerts = _read_alerts_for_report(out_dir / "alerts.jsonl")
    from limitsync.report import render_report  # the report is optional weight
    from limitsync.report_data import build_report_data

    data = build_report_data(result, options, source, focus_account, inquiries)
    (out_dir / "report.html").write_text(render_report(data), encoding="utf-8")
