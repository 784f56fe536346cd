"""The data the sections draw from: the report's data with its alerts digested and the focus
applied, and the time zone the page writes times in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, tzinfo

from limitsync.report.alerts import AlertDigest, Drift, digest_alerts
from limitsync.report.model import ReportData
from limitsync.report.tally import DriftTally
from limitsync.report.text import parse_time

__all__ = ["View", "build_view"]


@dataclass(slots=True)
class View:
    data: ReportData
    alerts: AlertDigest
    drifts: list[Drift]  # filtered by focus
    tally: DriftTally  # of drifts
    all_tally: DriftTally  # of all the input's drifts, for the header
    tz: tzinfo


def build_view(data: ReportData) -> View:
    alerts = data.alerts
    if isinstance(alerts, AlertDigest):
        if alerts.focus_account != data.focus_account:
            raise ValueError("the alerts were digested for another focus than the report's")
        digest = alerts
    else:
        digest = digest_alerts(alerts, data.focus_account)
    tally = DriftTally.of(digest.drifts)
    all_tally = tally if digest.drifts is digest.all_drifts else DriftTally.of(digest.all_drifts)
    return View(
        data=data,
        alerts=digest,
        drifts=digest.drifts,
        tally=tally,
        all_tally=all_tally,
        tz=_display_tz(data, digest),
    )


def _display_tz(data: ReportData, digest: AlertDigest) -> tzinfo:
    """The offset of the first timestamp in the data (times read as the source wrote them):
    of the alerts' opened_at and detected_at, else of the timelines' points."""
    if digest.tz is not None:
        return digest.tz
    for points in data.timelines.values():
        for point in points:
            moment = parse_time(point.at)
            if moment is not None:
                return moment.tzinfo or UTC
    return UTC
