"""The live pipeline under failure: crashes, rebalances, Redis outages, tampering, rescoring.

Each test runs real ``limitsync worker`` processes against the session's broker and a real
Redis, and judges the outcome by what a client sees: the cache and the alert topic.
"""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from limitsync.replay import InputRecord, ReplayOptions, run_replay
from limitsync.simulate import simulate
from schemas.timefmt import format_us
from tests.integration.live_harness import LiveSystem, make_live_system, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_ids = itertools.count()


def now_us() -> int:
    return time.time_ns() // 1000


def ev(kind: str, account: str, **fields: Any) -> bytes:
    """One contract event occurring now (the live clock is the wall clock)."""
    body = {
        "event_id": f"live-{next(_ids)}-{now_us()}",
        "type": kind,
        "account_id": account,
        "occurred_at": format_us(now_us()),
        "schema_version": 1,
        **fields,
    }
    return orjson.dumps(body)


def line(account: str, amount: int, version: int = 1) -> bytes:
    return ev("credit_line.changed", account, credit_line=amount, version=version, cause="initial")


def replay_accounts(lines: list[bytes]) -> dict[str, dict[str, Any]]:
    result = run_replay([InputRecord(x) for x in lines], ReplayOptions(keep_timelines=False))
    return {a["account_id"]: a for a in result.account_lines()}


def cache_mismatches(system: LiveSystem, expected: dict[str, dict[str, Any]]) -> list[str]:
    """Accounts whose cache hash differs from the replay (empty when consistent)."""
    cached = system.cache(expected)
    wrong = []
    for aid, want in expected.items():
        got = cached[aid]
        have = (
            (int(got["available"]), int(got["outstanding"]), int(got["credit_line"]), got["status"])
            if got
            else None
        )
        if have != (
            want["expected_available"],
            want["outstanding"],
            want["credit_line"],
            want["status"],
        ):
            wrong.append(f"{aid}: cache {have} replay {want}")
    return wrong


def converge(system: LiveSystem, expected: dict[str, dict[str, Any]], timeout_s: float) -> None:
    wrong: list[str] = []

    def done() -> bool:
        wrong[:] = cache_mismatches(system, expected)
        return not wrong

    try:
        wait_for(done, timeout_s, "the cache to equal the replay")
    except AssertionError:
        raise AssertionError(f"{len(wrong)} accounts differ: {wrong[:5]}") from None


def alerts(system: LiveSystem, **match: str) -> list[dict[str, Any]]:
    return [
        a
        for a in system.read_topic("alerts", idle_s=1.0)
        if all(a.get(k) == v for k, v in match.items())
    ]


@pytest.fixture
def make_system(
    kafka_bootstrap: str, redis_url: str, unique_id: str, tmp_path: Path
) -> Iterator[Any]:
    made: list[LiveSystem] = []

    def factory(redis: str | None = None, **overrides: str) -> LiveSystem:
        s = make_live_system(
            kafka_bootstrap,
            redis or redis_url,
            f"{unique_id}{len(made)}",
            tmp_path,
            **overrides,
        )
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop_all()


def test_a_worker_killed_mid_stream_loses_and_doubles_nothing(make_system: Any) -> None:
    system = make_system(clearing_sla_seconds="8")
    log = list(simulate(accounts=120, hours=2, seed=11, faults=0.0, bad=0.0))
    worker = system.worker().start()
    worker.wait_ready()
    watch = ev(
        "repayment.initiated", "kill-acct", payment_id="p-kill", amount=100, channel="bank_card"
    )
    opening = line("kill-acct", 1000)
    system.produce([*log[: len(log) // 2], opening, watch])
    wait_for(lambda: system.cache(["kill-acct"])["kill-acct"], 60, "the first half processed")
    worker.kill()
    system.produce(log[len(log) // 2 :])
    system.worker().start().wait_ready(timeout_s=90)
    expected = replay_accounts([*log, opening, watch])
    converge(system, expected, 120)
    opened = wait_for(
        lambda: alerts(system, reason="REPAYMENT_NOT_POSTED", account_id="kill-acct"),
        60,
        "the clearing deadline set before the crash to fire",
    )
    assert {a["payment_id"] for a in opened} == {"p-kill"}


def test_a_record_dead_lettered_before_a_crash_is_not_dead_lettered_again(
    make_system: Any,
) -> None:
    system = make_system()
    # No offset commit before the kill: the restarted worker reads every record again.
    system.env["BROKER_COMMIT_INTERVAL"] = "600"
    worker = system.worker().start()
    worker.wait_ready()
    good = [line(f"dl-{i}", 1000) for i in range(20)]
    bad = [b"not json %d" % i for i in range(5)]
    system.produce([*good[:10], *bad, *good[10:]])
    wait_for(
        lambda: len(system.read_topic("dead_letters", idle_s=0.5)) >= len(bad), 60, "dead letters"
    )
    time.sleep(2)  # the saves after the batch carry its handled offsets
    worker.kill()
    system.worker().start().wait_ready(timeout_s=90)
    system.produce([line("dl-after", 1000)])
    wait_for(lambda: system.cache(["dl-after"])["dl-after"], 60, "a record after the restart")
    dead = system.read_topic("dead_letters", idle_s=1.0)
    assert sorted(d["original"] for d in dead) == sorted(b.decode() for b in bad)


def test_a_second_worker_takes_over_partitions_and_deadlines(make_system: Any) -> None:
    system = make_system(clearing_sla_seconds="12")
    first, second = system.worker().start(), system.worker().start()
    wait_for(
        lambda: (
            (first.health() or {}).get("partitions") and (second.health() or {}).get("partitions")
        ),
        90,
        "both workers to own partitions",
    )
    accounts = [f"acct-split-{i}" for i in range(16)]
    system.produce([line(a, 500_000) for a in accounts])
    system.produce(
        [
            ev("repayment.initiated", a, payment_id=f"p-{a}", amount=1, channel="balance")
            for a in accounts
        ]
    )
    moved = set((second.health() or {})["partitions"])
    assert moved, "the second worker owned no partition"
    second.stop()
    first.wait_ready(partitions=8, timeout_s=90)
    fired = wait_for(
        lambda: {a["account_id"] for a in alerts(system, type="mismatch.opened")} >= set(accounts),
        90,
        "every clearing deadline, including those of the stopped worker",
    )
    assert fired


def test_a_redis_outage_shows_as_sync_delay_and_loses_nothing(
    make_system: Any, local_redis_factory: Any
) -> None:
    redis = local_redis_factory()
    system = make_system(redis=redis.url, sla_seconds="3")
    worker = system.worker().start()
    worker.wait_ready()
    accounts = [f"acct-outage-{i}" for i in range(20)]
    sent = [line(a, 1_000_000) for a in accounts]
    system.produce(sent)
    wait_for(lambda: all(system.cache(accounts).values()), 60, "the cache to fill")
    stop = threading.Event()

    def load() -> None:
        for n in itertools.count():
            if stop.wait(0.5):
                return
            batch = [ev("drawdown.booked", accounts[n % 20], loan_id=f"L{n}", principal=1000)]
            sent.extend(batch)
            system.produce(batch)

    feeder = threading.Thread(target=load)
    feeder.start()
    time.sleep(2)
    redis.stop()
    time.sleep(20)
    redis.start()
    time.sleep(2)
    stop.set()
    feeder.join()
    converge(system, replay_accounts(sent), 90)
    opened = {a["alert_id"] for a in alerts(system, type="mismatch.opened", reason="SYNC_DELAY")}
    resolved = wait_for(
        lambda: (
            {a["alert_id"] for a in alerts(system, type="mismatch.resolved")} >= opened and opened
        ),
        60,
        "the SYNC_DELAY breaches to resolve",
    )
    assert resolved


def test_a_cache_value_changed_behind_our_back_is_detected_and_healed(make_system: Any) -> None:
    system = make_system(sla_seconds="3")
    worker = system.worker().start()
    worker.wait_ready()
    system.produce([line("acct-tamper", 800_000)])
    wait_for(lambda: system.cache(["acct-tamper"])["acct-tamper"], 60, "the first write")
    client = system.redis()
    client.hset(f"{system.settings.cache_prefix}acct-tamper", "available", "99999999")
    client.close()
    resolved = wait_for(
        lambda: alerts(system, type="mismatch.resolved", account_id="acct-tamper"),
        30,
        "the tampered value to be healed",
    )
    opened = alerts(system, type="mismatch.opened", account_id="acct-tamper")
    assert (
        opened[0]["reason"],
        opened[0]["severity"],
        resolved[0]["resolution"],
        system.cache(["acct-tamper"])["acct-tamper"]["available"],
    ) == ("CACHE_DIVERGED", "critical", "auto_healed", "800000")


def test_a_worker_exports_the_metrics_the_alert_rules_use(make_system: Any) -> None:
    from tests.deploy_metrics import worker_metrics

    system = make_system()
    worker = system.worker().start()
    worker.wait_ready()

    def missing() -> list[str]:
        text = "\n" + worker.metrics()
        return [n for n in worker_metrics() if f"\n{n}" not in text]

    wait_for(lambda: not missing(), 20, "every metric to be exported (lag is measured every 5 s)")


def test_explain_asks_the_running_system(
    make_system: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from limitsync.cli import main

    system = make_system()
    worker = system.worker().start()
    worker.wait_ready()
    system.produce([line("acct-explain", 300_000)])
    wait_for(lambda: system.cache(["acct-explain"])["acct-explain"], 60, "the first write")
    monkeypatch.setenv("LIMITSYNC_WEB_PORT", str(worker.web_port))
    assert main(["explain", "acct-explain", "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert (report["expected_available"], [c["code"] for c in report["changes"]]) == (
        300_000,
        ["POLICY_CHANGE"],
    )


def test_a_rescore_after_repayments_lands_once_with_reasons(make_system: Any) -> None:
    system = make_system(rescore_enabled="true", rescore_window_s="2")
    worker = system.worker().start()
    worker.wait_ready()
    acct = "acct-rescore"
    posted = ev("repayment.posted", acct, loan_id="L1", principal=10_000, interest=50, fee=0)
    system.produce([line(acct, 1_000_000)])
    system.produce(
        [
            ev("drawdown.booked", acct, loan_id="L1", principal=500_000),
            ev("drawdown.booked", acct, loan_id="L2", principal=450_000),
            posted,
            ev("repayment.reversed", acct, reverses_event_id=orjson.loads(posted)["event_id"]),
        ]
    )

    def rescores() -> list[dict[str, Any]]:
        return [
            e
            for e in system.read_topic("account_events", idle_s=1.0)
            if e.get("cause") == "rescore" and e["account_id"] == acct
        ]

    decided = wait_for(rescores, 60, "a rescore decision")
    time.sleep(4)  # past another window: coalesced requests give no second decision
    decided = rescores()
    assert len(decided) == 1 and decided[0]["credit_line"] < 1_000_000
    assert 1 <= len(decided[0]["reasons"]) <= 4 and decided[0]["model_version"]
    with urllib.request.urlopen(f"{worker.url}/accounts/{acct}/explain", timeout=5) as resp:
        codes = [c["code"] for c in orjson.loads(resp.read())["changes"]]
    assert "RESCORE_DECREASE" in codes
