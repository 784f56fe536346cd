"""The whole report page: its head, its navigation and its sections in order."""

from __future__ import annotations

from limitsync.report.alerts import accounts_by_drift, ranked_accounts
from limitsync.report.css import REPORT_CSS
from limitsync.report.drift_sections import anchor_ids, section_longest, section_over_time
from limitsync.report.inquiries_section import section_inquiries
from limitsync.report.latency import section_latency
from limitsync.report.model import ReportData
from limitsync.report.overview import (
    section_header,
    section_reasons,
    section_unexplained,
)
from limitsync.report.text import esc
from limitsync.report.timelines import section_timelines
from limitsync.report.view import build_view
from limitsync.report.vocabulary import TIMELINES_MAX

__all__ = ["render_report"]

_HEAD = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    "style-src 'unsafe-inline'; img-src data:\">"
    '<meta name="generator" content="limitsync report">'
)


def _nav(with_inquiries: bool) -> str:
    links = "".join(
        f'<a href="#{target}">{name}</a>'
        for target, name in (
            ("by-reason", "by reason"), ("over-time", "over time"),
            ("longest-drifts", "longest drifts"), ("consistency", "consistency"),
            ("unexplained", "unexplained"),
            *((("inquiries", "inquiries"),) if with_inquiries else ()),
            ("timelines", "timelines"),
        )
    )  # fmt: skip
    return f"<nav>{links}</nav>"


def render_report(data: ReportData) -> str:
    """The whole HTML document for ``data``; the same data gives the same string."""
    view = build_view(data)
    if data.focus_account is None:
        ordered = ranked_accounts(view.alerts.longest_by_account(), data.timelines)
    else:
        ordered = accounts_by_drift(view.drifts, data.timelines)
        ordered = [a for a in ordered if a == data.focus_account]
    anchors = anchor_ids(ordered[:TIMELINES_MAX])
    body = "".join(
        [
            section_header(view),
            _nav(data.inquiries is not None),
            section_reasons(view),
            section_over_time(view),
            section_longest(view, anchors),
            section_latency(view),
            section_unexplained(view.tally.unexplained()),
            ""
            if data.inquiries is None
            else section_inquiries(data.inquiries, data.focus_account),
            section_timelines(view, ordered, anchors),
        ]
    )
    return (
        f"{_HEAD}<title>{esc(data.title)}</title>"
        f"<style>{REPORT_CSS}</style></head>\n<body>{body}</body></html>\n"
    )
