"""The dedupe step on its own (``streams.core.admission``) decides every record of a log as a
replay's engine does (``Engine.ingest`` with compact ids), and an engine that applies only the
records it admits (``Engine.ingest_admitted``) ends where the whole log's engine ends.

This is what lets a pipelined replay dedupe in one process and apply in another: for every
record, in log order, the admission says new (admitted), duplicate or conflict as the engine
says applied, duplicate or conflict, also when an id expires at the dedupe horizon (an id is
kept until both its time and the clock at its arrival are past it), a record arrives out of
order, the same id comes on another account, or the same id comes with other content; neither
a duplicate nor a conflict moves its clock. The engine behind it then gives, record by record,
the same effects (cache writes, alerts, clearing and rescore deadlines firing, displayed
changes), and ends with the same accounts, the same counts and the same deadlines still due
(docs/contract.md "Idempotency horizon", "Replay clock, exactly").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from eventlog import (
    S,
    account_status,
    credit_line,
    displayed,
    drawdown,
    line,
    repayment_initiated,
    repayment_posted,
    repayment_reversed,
    us,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.parse import Parsed, parse_event_for_replay
from streams.core import CoreConfig, Effect, Engine, EventTimeClock, Outcome
from streams.core.admission import ADMITTED, CONFLICT, DUPLICATE, Admission

PROPS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HORIZON_S = 20


def short(rescore_enabled: bool = False) -> CoreConfig:
    """Knobs short enough for a log of a few minutes to expire ids and fire every kind of
    deadline: drift breaches and escalations, clearing breaches and escalations, rescores,
    and the reversal window's expiry of postings."""
    return CoreConfig.from_seconds(
        dedupe_horizon_s=HORIZON_S,
        sla_s=10,
        clearing_sla_s=30,
        escalation_factor=2,
        reversal_window_s=40,
        rescore_enabled=rescore_enabled,
        rescore_window_s=5,
    )


CONFIGS = {
    "short": short(),
    "short-rescoring": short(rescore_enabled=True),
    "contract-defaults": CoreConfig(),  # a week's horizon, no rescores
}
_VERDICT_OF = {
    Outcome.APPLIED: ADMITTED,
    Outcome.DUPLICATE: DUPLICATE,
    Outcome.CONFLICT: CONFLICT,
}
# After the log, far enough for every deadline left to fall due (--until).
UNTIL_US = us(10**7 * S)


def parsed(raw: bytes) -> Parsed:
    """A record as a replay parses it (its fingerprint lives as long as this process)."""
    result = parse_event_for_replay(raw)
    assert isinstance(result, Parsed), result
    return result


def admission_verdicts(config: CoreConfig, raws: list[bytes]) -> list[int]:
    admission = Admission(config.dedupe_horizon_us)
    verdicts = []
    for raw in raws:
        p = parsed(raw)
        verdicts.append(
            admission.admit(p.event.account_id, p.event.event_id, p.digest, p.occurred_us)
        )
    return verdicts


def engine_verdicts(config: CoreConfig, raws: list[bytes]) -> list[int]:
    engine = Engine(config, EventTimeClock(), compact_ids=True)
    verdicts = []
    for raw in raws:
        p = parsed(raw)
        outcome, _ = engine.ingest(p.event, p.digest, p.occurred_us)
        verdicts.append(_VERDICT_OF[outcome])
    return verdicts


@dataclass
class Run:
    """What an engine did with a log: per record it applied, the record's index and its
    effects spelled out; and the engine, for its end state."""

    applied: list[tuple[int, list[str]]]
    engine: Engine


def spelled(effects: list[Effect]) -> list[str]:
    return [repr(e) for e in effects]


def whole_log(config: CoreConfig, raws: list[bytes]) -> Run:
    """A one-process replay: every record through ``ingest``."""
    engine = Engine(config, EventTimeClock(), compact_ids=True)
    applied = []
    for i, raw in enumerate(raws):
        p = parsed(raw)
        outcome, effects = engine.ingest(p.event, p.digest, p.occurred_us)
        if outcome is Outcome.APPLIED:
            applied.append((i, spelled(effects)))
    return Run(applied, engine)


def admitted_only(config: CoreConfig, raws: list[bytes]) -> Run:
    """A pipelined replay: the admission sees every record, the engine the admitted ones."""
    admission = Admission(config.dedupe_horizon_us)
    engine = Engine(config, EventTimeClock())  # no ids of its own: the admission keeps them
    applied = []
    for i, raw in enumerate(raws):
        p = parsed(raw)
        verdict = admission.admit(p.event.account_id, p.event.event_id, p.digest, p.occurred_us)
        if verdict == ADMITTED:
            applied.append((i, spelled(engine.ingest_admitted(p.event, p.occurred_us))))
    return Run(applied, engine)


def accounts(engine: Engine) -> dict[str, dict[str, Any]]:
    """Each account's whole state (its lossless form: ledger, both displays and their drifts,
    clearing watches, postings a reversal may undo, rescore, history), and what it shows."""
    return {
        account_id: {
            **acct.to_dict(),
            "expected_available": acct.expected_available,
            "outstanding": acct.outstanding,
        }
        for account_id, acct in sorted(engine.accounts.items())
    }


def counted(engine: Engine) -> dict[str, int]:
    """The engine's counts but duplicates and conflicts: the admission counts those."""
    return {k: v for k, v in engine.counters.items() if k not in ("duplicate", "conflict")}


def due_after(engine: Engine) -> list[str]:
    """What is still due fires when the clock moves past the log (--until)."""
    assert isinstance(engine.clock, EventTimeClock)
    engine.clock.advance_to(UNTIL_US)
    return spelled(engine.advance())


# -- logs ------------------------------------------------------------------------------------

ACCOUNTS = ["A", "B"]
PAYMENTS = ["p1", "p2", "p3"]
IDS = 17  # ids come back: the i-th record's id is e{i % IDS}


@st.composite
def new_event(draw: st.DrawFn, at: int, event_id: str) -> dict[str, Any]:
    """A record of any type on a random account; amounts and displayed values from small sets,
    so that displays agree with the ledger sometimes and drifts both open and close."""
    account = draw(st.sampled_from(ACCOUNTS))
    kind = draw(
        st.sampled_from(
            ["drawdown", "posted", "initiated", "reversed", "line", "status", "shown", "shown"]
        )
    )
    amount = draw(st.sampled_from([100, 200, 300]))
    if kind == "drawdown":
        return drawdown(account, at, amount, event_id=event_id)
    if kind == "posted":
        paid = draw(st.none() | st.sampled_from(PAYMENTS))
        return repayment_posted(account, at, amount, payment_id=paid, event_id=event_id)
    if kind == "initiated":
        pid = draw(st.sampled_from(PAYMENTS))
        return repayment_initiated(account, at, pid, amount, event_id=event_id)
    if kind == "reversed":
        target = f"e{draw(st.integers(0, IDS - 1))}"  # a posting, something else, or nothing
        return repayment_reversed(account, at, target, event_id=event_id)
    if kind == "line":
        version = draw(st.integers(1, 6))
        return credit_line(
            account, at, draw(st.sampled_from([0, 500, 1000])), version, event_id=event_id
        )
    if kind == "status":
        status = draw(st.sampled_from(["active", "active", "frozen"]))
        return account_status(account, at, status, draw(st.integers(1, 6)), event_id=event_id)
    shown = draw(st.sampled_from([None, 0, 300, 500, 700, 1000]))
    source = draw(st.sampled_from([None, "app", "cache"]))  # None: absent, the app
    extra: dict[str, Any] = {} if source is None else {"source": source}
    if draw(st.booleans()):
        extra["cache_version"] = draw(st.integers(0, 3))
    return displayed(account, at, shown, event_id=event_id, **extra)


@st.composite
def logs_with_repeats(draw: st.DrawFn) -> list[bytes]:
    """Records of every type on two accounts, with times jumping back and forth across a
    short horizon (now and then exactly a horizon on), and ids repeated: the same record again
    (soon, or long after it expired), in other bytes, with other content (a conflict), and on
    the other account."""
    raws: list[bytes] = []
    sent: list[dict[str, Any]] = []
    at = 0
    for i in range(draw(st.integers(1, 60))):
        at = max(0, at + draw(st.integers(-15, 30) | st.just(HORIZON_S)) * S)
        choice = draw(
            st.sampled_from(["new", "new", "new", "again", "respelled", "other", "moved"])
        )
        if choice == "new" or not sent:
            event = draw(new_event(at, f"e{i % IDS}"))
        else:
            event = dict(draw(st.sampled_from(sent)))
            if choice == "other":
                event["revision"] = event.get("revision", 0) + 1  # an extra field: other content
            elif choice == "moved":
                event["account_id"] = "B" if event["account_id"] == "A" else "A"
        sent.append(event)
        if choice == "respelled":
            raws.append(json.dumps(dict(reversed(list(event.items()))), indent=1).encode())
        else:
            raws.append(line(event))
    return raws


# -- the admission's verdicts ----------------------------------------------------------------


@PROPS
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@given(raws=logs_with_repeats())
def test_the_admission_decides_every_record_as_the_engine_does(
    config: CoreConfig, raws: list[bytes]
) -> None:
    assert admission_verdicts(config, raws) == engine_verdicts(config, raws)


CONFIG = CONFIGS["short"]
H = HORIZON_S * S


def both_verdicts(raws: list[bytes]) -> tuple[list[int], list[int]]:
    return admission_verdicts(CONFIG, raws), engine_verdicts(CONFIG, raws)


def test_the_same_record_again_in_any_bytes_is_a_duplicate() -> None:
    event = drawdown("A", 0, 100, event_id="e1")
    respelled = json.dumps(dict(reversed(list(event.items()))), indent=2).encode()
    expected = [ADMITTED, DUPLICATE, DUPLICATE]
    assert both_verdicts([line(event), line(event), respelled]) == (expected, expected)


def test_the_same_id_with_other_content_is_a_conflict() -> None:
    raws = [line(drawdown("A", 0, 100, event_id="e1")), line(drawdown("A", 0, 101, event_id="e1"))]
    expected = [ADMITTED, CONFLICT]
    assert both_verdicts(raws) == (expected, expected)


def test_the_same_id_on_another_account_is_another_id() -> None:
    raws = [line(drawdown("A", 0, 100, event_id="e1")), line(drawdown("B", 0, 100, event_id="e1"))]
    expected = [ADMITTED, ADMITTED]
    assert both_verdicts(raws) == (expected, expected)


def test_an_id_is_remembered_up_to_the_horizon_and_admitted_again_past_it() -> None:
    first = line(drawdown("A", 0, 100, event_id="e1"))
    raws = [
        first,
        line(drawdown("B", H, 1, event_id="tick-1")),  # the clock a horizon after e1
        first,
        line(drawdown("B", H + 1, 1, event_id="tick-2")),  # and a millisecond more
        first,
    ]
    expected = [ADMITTED, ADMITTED, DUPLICATE, ADMITTED, ADMITTED]
    assert both_verdicts(raws) == (expected, expected)


def test_a_late_record_is_remembered_from_the_clock_at_its_arrival() -> None:
    late = line(drawdown("A", 0, 100, event_id="late"))
    raws = [
        line(drawdown("B", 100 * S, 1, event_id="tick-1")),  # the clock at 100 s
        late,  # stamped at 0 s: kept until 100 s + the horizon, not 0 s + the horizon
        line(drawdown("B", 100 * S + H, 1, event_id="tick-2")),
        late,
        line(drawdown("B", 100 * S + H + 1, 1, event_id="tick-3")),
        late,
    ]
    expected = [ADMITTED, ADMITTED, ADMITTED, DUPLICATE, ADMITTED, ADMITTED]
    assert both_verdicts(raws) == (expected, expected)


def test_a_conflict_does_not_move_the_clock() -> None:
    first = line(drawdown("A", 0, 100, event_id="e1"))
    raws = [
        first,
        line(drawdown("A", 10 * H, 101, event_id="e1")),  # other content, stamped far later
        first,  # still remembered: the clock is where e1 left it
    ]
    expected = [ADMITTED, CONFLICT, DUPLICATE]
    assert both_verdicts(raws) == (expected, expected)


# -- the engine behind it ---------------------------------------------------------------------


@PROPS
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@given(raws=logs_with_repeats())
def test_the_admitted_records_alone_have_the_whole_logs_effects(
    config: CoreConfig, raws: list[bytes]
) -> None:
    assert admitted_only(config, raws).applied == whole_log(config, raws).applied


@PROPS
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@given(raws=logs_with_repeats())
def test_the_admitted_records_alone_end_in_the_whole_logs_accounts(
    config: CoreConfig, raws: list[bytes]
) -> None:
    assert accounts(admitted_only(config, raws).engine) == accounts(whole_log(config, raws).engine)


@PROPS
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@given(raws=logs_with_repeats())
def test_the_admitted_records_alone_count_as_the_whole_log(
    config: CoreConfig, raws: list[bytes]
) -> None:
    assert counted(admitted_only(config, raws).engine) == counted(whole_log(config, raws).engine)


@PROPS
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@given(raws=logs_with_repeats())
def test_the_admitted_records_alone_leave_the_whole_logs_deadlines_due(
    config: CoreConfig, raws: list[bytes]
) -> None:
    assert due_after(admitted_only(config, raws).engine) == due_after(
        whole_log(config, raws).engine
    )
