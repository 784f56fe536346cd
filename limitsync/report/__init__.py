"""The self-contained HTML incident report of ``limitsync replay`` and ``limitsync report``.

One HTML document, standard library only: inline CSS and inline SVG, no JavaScript, no
external resource (a Content-Security-Policy forbids them), so it opens from disk anywhere.
Every value taken from the data is escaped. The same data gives the same bytes: nothing
about the time of generation is written. Money is in fen and shown as yuan with integer
arithmetic only. Key numbers carry stable ids and ``data-*`` attributes for tests and tools.

The modules, by concern: ``model`` (the data), ``vocabulary`` (the contract's words, the caps),
``alerts`` (the alert records digested in one pass), ``tally`` (drifts counted), ``view`` (the
data with the focus applied), ``text`` (how values are written), ``cards``, ``svg`` and
``timeline_chart`` (charts), ``css``, the sections (``overview``, ``drift_sections``,
``latency``, ``inquiries_section``, ``timelines`` with ``explanation``) and ``page``.
"""

from __future__ import annotations

from limitsync.report.alerts import AlertDigest, digest_alerts, timeline_accounts
from limitsync.report.model import ReportData, TimelinePoint
from limitsync.report.page import render_report
from limitsync.report.text import format_yuan, nines
from limitsync.report.vocabulary import TIMELINE_ROWS_MAX, TIMELINES_MAX

__all__ = [
    "TIMELINES_MAX",
    "TIMELINE_ROWS_MAX",
    "AlertDigest",
    "ReportData",
    "TimelinePoint",
    "digest_alerts",
    "format_yuan",
    "nines",
    "render_report",
    "timeline_accounts",
]
