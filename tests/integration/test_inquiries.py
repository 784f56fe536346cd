"""Issue 15, limit inquiries, live: a real broker, a real Redis and a worker with a 5 s SLA.

The stack is fed a simulated log (30 accounts, an hour, the simulator's faults); the log's
replay gives every account's expected available limit. ``limitsync inquire ACCOUNT --sees
FEN --json`` must answer ``correct`` exactly when FEN is that value and ``fault`` otherwise,
with ``expected_available`` right; a fault whose cache was wrong ends with the cache exact.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventlog import records

from limitsync.cli import main
from limitsync.remedy_commands import post_inquiry
from limitsync.replay import ReplayOptions, run_replay
from limitsync.simulate import simulate
from schemas.records import AlertRecord
from streams.core import CoreConfig
from tests.integration.live_harness import LiveSystem, make_live_system, wait_for

pytestmark = pytest.mark.integration

SLA_S = 5
ACCOUNTS = 30
TAMPERED = 5  # accounts whose cache the test makes wrong before the user asks


@pytest.fixture(scope="module")
def fed(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveSystem, dict[str, int], Path]]:
    """A worker fed the log until its state is the replay's: the system, each account's
    expected available limit (from the replay) and a state file to reach the system."""
    tmp = tmp_path_factory.mktemp("inquiries")
    unique = f"inq{time.time_ns()}"
    system = make_live_system(kafka_bootstrap, redis_url, unique, tmp, sla_seconds=str(SLA_S))
    worker = system.worker().start()
    try:
        worker.wait_ready()
        start = datetime.now(UTC) - timedelta(hours=2)
        log = list(simulate(ACCOUNTS, 1.0, 7, start=start))
        result = run_replay(records(log), ReplayOptions(core=CoreConfig.from_seconds(sla_s=SLA_S)))
        expected = {a: s.expected_available for a, s in result.engine.accounts.items()}
        system.produce(log)
        wait_for(lambda: _all_known(system, expected), 60, "the worker's state = the replay's")
        state_file = tmp / "state.json"
        state_file.write_text(json.dumps({
            "bootstrap_servers": kafka_bootstrap,
            "redis_url": redis_url,
            "topic_prefix": system.settings.topic_prefix,
            "web_urls": [worker.url],
        }))
        yield system, expected, state_file
    finally:
        system.stop_all()


def _all_known(system: LiveSystem, expected: dict[str, int]) -> bool:
    for account, value in expected.items():
        status, reply = post_inquiry([system.workers[0].url], _body(account, value))
        if status != 200 or reply["expected_available"] != value:
            return False
    return True


def _body(account: str, sees: int) -> dict[str, Any]:
    return {"account_id": account, "displayed_available": sees, "channel": "test"}


def inquire(state_file: Path, account: str, sees: int) -> dict[str, Any]:
    """``limitsync inquire ACCOUNT --sees FEN --state-file F --json``, as a user runs it."""
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["inquire", account, "--sees", str(sees), "--state-file", str(state_file),
                     "--json"])
    assert code == 0
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def test_every_account_seeing_its_expected_limit_is_answered_correct(
    fed: tuple[LiveSystem, dict[str, int], Path],
) -> None:
    _, expected, state_file = fed
    verdicts = {a: inquire(state_file, a, v)["verdict"] for a, v in expected.items()}
    assert set(verdicts.values()) == {"correct"}


def test_every_account_seeing_another_limit_is_a_fault_with_the_expected_value(
    fed: tuple[LiveSystem, dict[str, int], Path],
) -> None:
    _, expected, state_file = fed
    answers = {a: inquire(state_file, a, v + 1) for a, v in expected.items()}
    seen = {a: (r["verdict"], r["expected_available"]) for a, r in answers.items()}
    assert seen == {a: ("fault", v) for a, v in expected.items()}


def test_a_fault_whose_cache_was_wrong_ends_with_the_cache_exact(
    fed: tuple[LiveSystem, dict[str, int], Path],
) -> None:
    system, expected, state_file = fed
    victims = sorted(expected)[:TAMPERED]
    client = system.redis()
    try:
        for a in victims:  # a wrong value under the right version: only a reader finds it
            client.hset(f"{system.settings.cache_prefix}{a}", "available", expected[a] + 777)
    finally:
        client.close()
    actions = {a: inquire(state_file, a, expected[a] + 777)["action"] for a in victims}
    assert actions == dict.fromkeys(victims, "cache_rewritten")
    wait_for(
        lambda: all(int(h.get("available", -1)) == expected[a]
                    for a, h in system.cache(victims).items()),
        10, "the rewritten caches",
    )


def tamper_and_inquire(
    fed: tuple[LiveSystem, dict[str, int], Path], victim: str, off_by: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The cache of ``victim`` made wrong by ``off_by`` fen, the user asks seeing that value:
    the inquiry's reply and the alerts that name it."""
    system, expected, state_file = fed
    client = system.redis()
    try:
        client.hset(
            f"{system.settings.cache_prefix}{victim}", "available", expected[victim] + off_by
        )
    finally:
        client.close()
    reply = inquire(state_file, victim, expected[victim] + off_by)
    opened = wait_for(
        lambda: [a for a in system.read_topic("alerts", idle_s=1.0)
                 if a.get("inquiry_id") == reply["inquiry_id"]],
        30, "the inquiry's alert",
    )
    return reply, opened


def test_a_cache_fault_found_by_an_inquiry_alerts_at_once_with_the_inquiry_as_evidence(
    fed: tuple[LiveSystem, dict[str, int], Path],
) -> None:
    reply, opened = tamper_and_inquire(fed, sorted(fed[1])[TAMPERED], 5)
    first = opened[0]
    assert (first["type"], first["source"], first["alert_id"], first["age_seconds"] < SLA_S) == (
        "mismatch.opened", "cache", reply["alert_ids"][0], True
    )


def test_an_alert_an_inquiry_opened_is_a_valid_alert_record(
    fed: tuple[LiveSystem, dict[str, int], Path],
) -> None:
    reply, opened = tamper_and_inquire(fed, sorted(fed[1])[TAMPERED + 1], 7)
    assert AlertRecord.model_validate(opened[0]).inquiry_id == reply["inquiry_id"]


def test_every_inquiry_and_its_answer_is_published_on_the_inquiries_topic(
    fed: tuple[LiveSystem, dict[str, int], Path],
) -> None:
    system, expected, state_file = fed
    account = sorted(expected)[-1]
    reply = inquire(state_file, account, expected[account])
    published = wait_for(
        lambda: [r for r in system.read_topic("inquiries", idle_s=1.0)
                 if r["inquiry_id"] == reply["inquiry_id"]],
        10, "the inquiry on its topic",
    )
    assert published[0]["answer"] == reply


def test_a_negative_amount_is_a_400_with_a_readable_error(
    fed: tuple[LiveSystem, dict[str, int], Path],
) -> None:
    system, expected, _ = fed
    status, reply = post_inquiry([system.workers[0].url], _body(sorted(expected)[0], -1))
    assert (status, "between 0" in reply["error"]) == (400, True)


def test_a_bad_account_id_is_a_400(fed: tuple[LiveSystem, dict[str, int], Path]) -> None:
    system, _, _ = fed
    status, _ = post_inquiry([system.workers[0].url], _body("no spaces allowed", 1))
    assert status == 400


def test_an_amount_given_as_a_string_is_a_400(
    fed: tuple[LiveSystem, dict[str, int], Path],
) -> None:
    system, expected, _ = fed
    body: dict[str, Any] = {"account_id": sorted(expected)[0], "displayed_available": "100"}
    status, _ = post_inquiry([system.workers[0].url], body)
    assert status == 400


def test_an_unknown_account_is_answered_unknown_account(
    fed: tuple[LiveSystem, dict[str, int], Path],
) -> None:
    _, _, state_file = fed
    assert inquire(state_file, "nobody-here", 100)["verdict"] == "unknown_account"


def test_inquiries_are_counted_in_metrics_by_verdict(
    fed: tuple[LiveSystem, dict[str, int], Path],
) -> None:
    system, _, state_file = fed
    inquire(state_file, "nobody-at-all", 1)
    text = system.workers[0].metrics()
    line = next(x for x in text.splitlines()
                if x.startswith('limitsync_inquiries_total{verdict="unknown_account"}'))
    assert float(line.split()[-1]) >= 1
