"""The words and caps of the report: the contract's alert vocabulary and how much it shows."""

from __future__ import annotations

TIMELINES_MAX = 50  # accounts with a timeline section (the ones with the longest drifts)
DRIFT_ROWS_MAX = 50  # rows of the longest-drifts table
TIMELINE_ROWS_MAX = 200  # rows of one account's event table (first and last halves)
TIME_BUCKETS_MAX = 48  # columns of the alerts-over-time chart
EXPLANATION_ROWS_MAX = 100  # rows of one list inside an explanation
EXPLANATION_DEPTH_MAX = 4
CHART_DOTS_MAX = 500  # observation dots drawn on one timeline chart

OPENED = "mismatch.opened"
ESCALATED = "mismatch.escalated"
RESOLVED = "mismatch.resolved"
ALERT_TYPES = (OPENED, ESCALATED, RESOLVED)
REASONS = (
    "REPAYMENT_NOT_POSTED",
    "SYNC_DELAY",
    "FREEZE_NOT_APPLIED",
    "CACHE_MISSING",
    "CACHE_DIVERGED",
)
# A mismatch is explained when its reason names a cause; CACHE_DIVERGED (the display shows a
# value the account never had) and any reason outside the contract are not explained.
EXPLAINED_REASONS = frozenset(REASONS) - {"CACHE_DIVERGED"}
SEVERITIES = ("critical", "major")
# The observation sources (docs/contract.md, "Drift, SLA and alerts"), and what the report calls the
# drifts of each; clearing watches (REPAYMENT_NOT_POSTED) have no source.
SOURCES = ("app", "cache")
GROUPS = (
    ("app", "What users saw (source app)"),
    ("cache", "What the cache held (source cache)"),
    ("payments", "Payments not posted (no source)"),
    ("other", "Drifts whose record names no source"),
)
DEAD_LETTER_REASONS = ("invalid", "conflict")
