"""Two observation sources, two drifts (docs/contract.md, "Drift, SLA and alerts"; issue 12).

``limit.displayed`` with ``source: app`` (or none) is what a user was shown; ``source: cache`` is
what the limit cache held. Each source has its own displayed value, drift, deadlines, reason and
alerts, and an observation of one never opens or closes the other's drift. Times are
milliseconds after T0; the SLA is 60 s.
"""

from __future__ import annotations

from typing import Any

import orjson
from eventlog import (
    S,
    account_status,
    credit_line,
    displayed,
    drawdown,
    feed,
    line,
    repayment_posted,
    replay,
    ts,
)
from hypothesis import given
from hypothesis import strategies as st
from test_core_properties import PROPS

from schemas.parse import Parsed, parse_event
from streams.core import AlertRaised, ChangeDisplayed, CoreConfig, Engine, EventTimeClock
from streams.core.alerts import CACHE_RIGHT_NOTE
from streams.core.state import Display

SLA = 60 * S
YUAN_1000 = 100_000  # 1,000.00 yuan in fen


def app(account: str, at: int, available: int | None, **extra: Any) -> dict[str, Any]:
    return displayed(account, at, available, source="app", **extra)


def cache(account: str, at: int, available: int | None, **extra: Any) -> dict[str, Any]:
    return displayed(account, at, available, source="cache", **extra)


def tick(at: int) -> dict[str, Any]:
    """A record of another account that only moves the clock."""
    return displayed("OTHER", at, 0)


def opened(events: list[dict[str, Any]], account: str = "A") -> dict[str, dict[str, Any]]:
    """The mismatch.opened record of each source of ``account``."""
    return {
        a["source"]: a
        for a in replay(events).alerts
        if a["type"] == "mismatch.opened" and a["account_id"] == account
    }


# A's line is 100.00; its cache and its app both show it at T0.
AGREEING = [credit_line("A", 0, 10_000, 1), cache("A", 0, 10_000), app("A", 0, 10_000)]


# -- the experiment --------------------------------------------------------------------


def experiment() -> list[dict[str, Any]]:
    """20 accounts get a line of 1,000.00 (the cache written, version 1); 3 s later the app shows
    500.00-500.19 for each, newer than the cache write."""
    accounts = [f"exp-{i:02d}" for i in range(20)]
    events = []
    for account in accounts:
        events.append(credit_line(account, 0, YUAN_1000, 1))
        events.append(cache(account, 0, YUAN_1000, cache_version=1))
    for i, account in enumerate(accounts):
        events.append(app(account, 3 * S, 50_000 + i))
    return events


def test_the_experiment_raises_an_app_breach_for_each_account_after_the_sla() -> None:
    result = replay([*experiment(), tick(3 * S + SLA + 1)])
    breached = {(a["account_id"], a["source"], a["reason"]) for a in result.alerts}
    assert breached == {(f"exp-{i:02d}", "app", "CACHE_DIVERGED") for i in range(20)}


def test_in_the_experiment_the_cache_stays_exact_and_opens_no_drift() -> None:
    result = replay([*experiment(), tick(3 * S + SLA + 1)])
    caches = {(a.cache.displayed, a.cache.drift) for a in result.engine.accounts.values()
              if a.account_id != "OTHER"}
    assert caches == {(YUAN_1000, None)}


def test_in_the_experiment_a_cache_read_after_the_app_report_does_not_close_its_drift() -> None:
    later_reads = [cache(f"exp-{i:02d}", 4 * S, YUAN_1000, cache_version=1) for i in range(20)]
    result = replay([*experiment(), *later_reads, tick(3 * S + SLA + 1)])
    assert len([a for a in result.alerts if a["source"] == "app"]) == 20


# -- one source's observation opens and closes only its own drift -----------------------------


def test_an_app_observation_that_disagrees_opens_the_apps_drift_only() -> None:
    acct = replay([*AGREEING, app("A", 10 * S, 7_000)]).engine.accounts["A"]
    assert (acct.app.drift is not None, acct.cache.drift) == (True, None)


def test_a_cache_observation_that_disagrees_opens_the_caches_drift_only() -> None:
    acct = replay([*AGREEING, cache("A", 10 * S, 7_000)]).engine.accounts["A"]
    assert (acct.app.drift, acct.cache.drift is not None) == (None, True)


def test_a_cache_observation_that_agrees_does_not_close_the_apps_drift() -> None:
    events = [*AGREEING, app("A", 10 * S, 7_000), cache("A", 20 * S, 10_000)]
    assert replay(events).engine.accounts["A"].app.drift is not None


def test_an_app_observation_that_agrees_does_not_close_the_caches_drift() -> None:
    events = [*AGREEING, cache("A", 10 * S, 7_000), app("A", 20 * S, 10_000)]
    assert replay(events).engine.accounts["A"].cache.drift is not None


def test_an_observation_without_source_is_the_apps() -> None:
    acct = replay([*AGREEING, displayed("A", 10 * S, 7_000)]).engine.accounts["A"]
    assert (acct.app.displayed, acct.cache.displayed) == (7_000, 10_000)


def test_a_ledger_change_opens_a_drift_in_each_observed_source() -> None:
    events = [*AGREEING, drawdown("A", 10 * S, 3_000), tick(10 * S + SLA + 1)]
    assert {s: (a["reason"], a["opened_at"]) for s, a in opened(events).items()} == {
        "app": ("SYNC_DELAY", ts(10 * S)), "cache": ("SYNC_DELAY", ts(10 * S))}


def test_a_ledger_change_that_agrees_again_supersedes_both_drifts() -> None:
    events = [*AGREEING, drawdown("A", 10 * S, 3_000, event_id="dd"), tick(10 * S + SLA + 1),
              repayment_posted("A", 100 * S, 3_000)]
    resolved = {a["source"]: a["resolution"] for a in replay(events).alerts
                if a["type"] == "mismatch.resolved"}
    assert resolved == {"app": "superseded", "cache": "superseded"}


def test_a_source_never_observed_has_no_drift() -> None:
    events = [credit_line("A", 0, 10_000, 1), cache("A", 0, 10_000),
              drawdown("A", 10 * S, 3_000), tick(10 * S + SLA + 1)]
    assert set(opened(events)) == {"cache"}


def test_the_two_sources_drifts_have_their_own_alert_ids() -> None:
    events = [*AGREEING, drawdown("A", 10 * S, 3_000), tick(10 * S + SLA + 1)]
    ids = {source: alert["alert_id"] for source, alert in opened(events).items()}
    assert ids["app"] != ids["cache"]


def test_each_source_keeps_its_own_reason() -> None:
    events = [*AGREEING, account_status("A", 10 * S, "frozen", 1), cache("A", 11 * S, None),
              tick(10 * S + SLA + 1)]
    reasons = {source: alert["reason"] for source, alert in opened(events).items()}
    assert reasons == {"app": "FREEZE_NOT_APPLIED", "cache": "CACHE_MISSING"}


def test_each_source_measures_when_it_displayed_a_change() -> None:
    engine = Engine(CoreConfig(), EventTimeClock())
    feed(engine, [*AGREEING, drawdown("A", 10 * S, 3_000)])
    effects = feed(engine, [cache("A", 11 * S, 7_000), app("A", 15 * S, 7_000)])
    shown = [(e.source, e.latency_us) for e in effects if isinstance(e, ChangeDisplayed)]
    assert shown == [("cache", 1_000_000), ("app", 5_000_000)]


# -- what an app alert says about the cache ------------------------------------------------------


def test_an_app_alert_says_the_cache_holds_the_expected_value() -> None:
    alert = opened([*AGREEING, app("A", 10 * S, 7_000), tick(10 * S + SLA + 1)])["app"]
    assert (alert["cache_available"], alert["note"]) == (10_000, CACHE_RIGHT_NOTE)


def test_an_app_alert_says_what_a_wrong_cache_holds_without_the_note() -> None:
    events = [*AGREEING, app("A", 10 * S, 7_000), cache("A", 10 * S, 8_000),
              tick(10 * S + SLA + 1)]
    alert = opened(events)["app"]
    assert (alert["cache_available"], "note" in alert) == (8_000, False)


def test_an_app_alert_of_an_account_whose_cache_was_never_observed_names_no_cache() -> None:
    alert = opened([credit_line("A", 0, 10_000, 1), app("A", 0, 10_000),
                    app("A", 10 * S, 7_000), tick(10 * S + SLA + 1)])["app"]
    assert {"cache_available", "note"} & set(alert) == set()


def test_a_cache_alert_names_no_other_source() -> None:
    alert = opened([*AGREEING, cache("A", 10 * S, 7_000), tick(10 * S + SLA + 1)])["cache"]
    assert {"cache_available", "note"} & set(alert) == set()


# -- auto-heal is for the cache -------------------------------------------------------------------


def both_breached() -> Engine:
    """A's app and cache both show the value before a drawdown, past the SLA."""
    engine = Engine(CoreConfig(), EventTimeClock())
    feed(engine, [*AGREEING, drawdown("A", 10 * S, 3_000), tick(10 * S + SLA + 1)])
    return engine


def resolutions(effects: list[Any]) -> dict[str, str]:
    return {e.record["source"]: e.record["resolution"] for e in effects
            if isinstance(e, AlertRaised) and e.record["type"] == "mismatch.resolved"}


def test_heal_marks_only_the_caches_drift_as_healing() -> None:
    engine = both_breached()
    engine.heal("A")
    acct = engine.accounts["A"]
    assert (acct.app.drift.healing, acct.cache.drift.healing) == (False, True)  # type: ignore[union-attr]


def test_after_a_heal_the_cache_resolves_auto_healed_and_the_app_synced() -> None:
    engine = both_breached()
    engine.heal("A")
    effects = feed(engine, [cache("A", 80 * S, 7_000), app("A", 81 * S, 7_000)])
    assert resolutions(effects) == {"cache": "auto_healed", "app": "synced"}


# -- the other source untouched: properties ------------------------------------------------------

SOURCES = ("app", "cache")


@st.composite
def mixed_logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Account A's ledger and both sources' observations, in any order, values close enough to
    agree often; times unique so the latest observation is unambiguous."""
    n = draw(st.integers(1, 40))
    times = draw(st.lists(st.integers(0, 900 * S), min_size=n, max_size=n, unique=True))
    events: list[dict[str, Any]] = []
    for i, at in enumerate(times):
        kind = draw(st.sampled_from(["drawdown", "posted", "line", "status", *SOURCES]))
        eid = f"e{i}"
        if kind == "drawdown":
            events.append(drawdown("A", at, 1_000, event_id=eid))
        elif kind == "posted":
            events.append(repayment_posted("A", at, 1_000, event_id=eid))
        elif kind == "line":
            amount = draw(st.sampled_from([1_000, 2_000, 3_000]))
            events.append(credit_line("A", at, amount, i, event_id=eid))
        elif kind == "status":
            status = draw(st.sampled_from(["active", "frozen"]))
            events.append(account_status("A", at, status, i, event_id=eid))
        else:
            shown = draw(st.sampled_from([None, 0, 1_000, 2_000, 3_000, 4_321]))
            events.append(displayed("A", at, shown, event_id=eid, source=kind))
    return events


def _moved_away(events: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """The log with A's observations of ``source`` made Z's: the clock moves the same."""
    return [
        {**e, "account_id": "Z"} if e["type"] == "limit.displayed" and e["source"] == source
        else e
        for e in events
    ]


def _trace(events: list[dict[str, Any]], source: str) -> list[tuple[Any, ...]]:
    """After each record: A's display of ``source`` and the effects about it (an app alert's
    note on the cache left out: it reports the other source, not this one's drift)."""
    engine = Engine(CoreConfig(), EventTimeClock())
    steps = []
    for event in [*events, displayed("Z", 2_000 * S, 0, event_id="end")]:
        parsed = parse_event(line(event))
        assert isinstance(parsed, Parsed)
        _, effects = engine.ingest(parsed.event, parsed.digest, parsed.occurred_us)
        acct = engine.accounts.get("A")
        shown = (acct.app if source == "app" else acct.cache) if acct else Display(source)
        mine = []
        for e in effects:
            if isinstance(e, AlertRaised) and e.record["account_id"] == "A":
                if e.record.get("source") == source:
                    mine.append({k: v for k, v in e.record.items()
                                 if k not in ("cache_available", "note")})
            elif isinstance(e, ChangeDisplayed) and e.account_id == "A" and e.source == source:
                mine.append((e.change_us, e.latency_us))
        steps.append((orjson.loads(orjson.dumps(shown.to_dict())), mine))  # a copy
    return steps


@PROPS
@given(mixed_logs(), st.sampled_from(SOURCES))
def test_observations_of_one_source_never_change_the_others_drift(
    events: list[dict[str, Any]], source: str
) -> None:
    other = "cache" if source == "app" else "app"
    assert _trace(events, source) == _trace(_moved_away(events, other), source)


@PROPS
@given(mixed_logs())
def test_source_app_and_no_source_are_the_same_observation(events: list[dict[str, Any]]) -> None:
    unmarked = [
        {k: v for k, v in e.items() if k != "source"} if e.get("source") == "app" else e
        for e in events
    ]
    first, second = replay(events, until=3_000 * S), replay(unmarked, until=3_000 * S)
    assert (first.alerts, first.account_lines()) == (second.alerts, second.account_lines())
