"""Replay from Kafka against the real broker: a time window of the topics gives the same
alerts and accounts as replaying the same slice of the file.

The start of the window is found with offsets_for_times: each partition is read from the
first record of the window on, never from its beginning.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from config.settings import Settings
from consumers.kafka_replay import (
    KafkaReadOptions,
    KafkaReadStats,
    StartMode,
    read_window,
)
from limitsync.cli import main
from limitsync.kafka_replay_command import replay_from_kafka
from limitsync.local_services import create_topics
from limitsync.outputs import write_outputs
from limitsync.producing import RecordRouter, make_producer, produce_lines
from limitsync.replay import InputRecord, ReplayOptions, run_replay
from limitsync.simulate import simulate
from tests.integration.live_harness import write_state_file

pytestmark = pytest.mark.integration

OUTPUTS = ("alerts.jsonl", "accounts.jsonl")
FAST = KafkaReadOptions(idle_timeout_s=1.5)


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return list(simulate(accounts=40, hours=4, seed=8, faults=0.08, bad=0.01))


@pytest.fixture
def settings(kafka_bootstrap: str, unique_id: str) -> Settings:
    s = Settings(
        topic_prefix=f"{unique_id}.", bootstrap_servers=kafka_bootstrap, app_id=unique_id,
    )
    create_topics(kafka_bootstrap, [s.topics["account_events"], s.topics["displayed"]],
                  partitions=4)
    return s


@pytest.fixture
def produced(settings: Settings, lines: list[bytes]) -> list[int]:
    """Produces the log; returns each line's record timestamp (ms)."""
    produce_lines(settings, lines)
    router = RecordRouter(settings)
    return [router.route(line)[2] for line in lines]


def send_tombstone(settings: Settings, key: bytes) -> None:
    """A record with a key and a null value on account-events (what compaction deletes by)."""
    producer = make_producer(settings)
    try:
        producer.send(settings.topics["account_events"], value=None, key=key)
        producer.flush()
    finally:
        producer.close()


def window_of(timestamps: list[int]) -> tuple[int, int]:
    """The middle third of the log, in ms."""
    n = len(timestamps)
    return timestamps[n // 3], timestamps[2 * n // 3]


def outputs_of(records: list[bytes] | None, out: Path, result: object = None) -> dict[str, bytes]:
    options = ReplayOptions()
    if result is None:
        assert records is not None
        result = run_replay((InputRecord(x) for x in records), options)
    write_outputs(result, out, options, "test")  # type: ignore[arg-type]
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def file_slice(
    lines: list[bytes], timestamps: list[int], start_ms: int, end_ms: int
) -> list[bytes]:
    return [x for x, ts in zip(lines, timestamps, strict=True) if start_ms <= ts <= end_ms]


def partition_logs(settings: Settings) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """Every partition's (offset, timestamp) pairs, read from the beginning."""
    logs: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for record in read_window(settings, None, None, FAST):
        logs.setdefault((record.topic, record.partition), []).append(
            (record.offset, record.timestamp_ms)
        )
    return logs


def test_the_whole_topic_replays_like_the_whole_file(
    settings: Settings, lines: list[bytes], produced: list[int], tmp_path: Path
) -> None:
    result, stats = replay_from_kafka(settings, None, None, ReplayOptions(), FAST)
    assert set(stats.modes()) == {StartMode.BEGINNING.value}
    assert result.counts["records"] == len(lines)
    assert outputs_of(None, tmp_path / "kafka", result) == outputs_of(lines, tmp_path / "file")


def test_tiny_buffers_pause_partitions_and_change_nothing(
    settings: Settings, lines: list[bytes], produced: list[int]
) -> None:
    """Partitions that run ahead are paused and resumed many times over; kafka-python 3.0.12
    would never hand a resumed partition's parked records back without
    ``release_parked_records``, and the replay would end short."""
    tiny = KafkaReadOptions(idle_timeout_s=1.5, buffer_records_max=16, poll_records_max=8)
    assert [r.value for r in read_window(settings, None, None, tiny)] == lines


def test_a_window_replays_like_the_same_slice_of_the_file(
    settings: Settings, lines: list[bytes], produced: list[int], tmp_path: Path,
) -> None:
    start_ms, end_ms = window_of(produced)
    expected = file_slice(lines, produced, start_ms, end_ms)
    result, stats = replay_from_kafka(
        settings, start_ms * 1000, end_ms * 1000, ReplayOptions(), FAST,
    )
    assert result.counts["records"] == len(expected)
    from_file = outputs_of(expected, tmp_path / "file")
    assert from_file["alerts.jsonl"]
    assert outputs_of(None, tmp_path / "kafka", result) == from_file
    assert set(stats.modes()) == {StartMode.AT_TIME.value}


def test_each_partition_is_read_from_the_first_record_of_the_window_only(
    settings: Settings, produced: list[int],
) -> None:
    start_ms, end_ms = window_of(produced)
    logs = partition_logs(settings)
    stats = KafkaReadStats()
    assert list(read_window(settings, start_ms * 1000, end_ms * 1000, FAST, stats=stats))
    assert set(stats.partitions) == set(logs)
    for tp, log in logs.items():
        first = next(offset for offset, ts in log if ts >= start_ms)
        # from the first record at or after start, up to and including the one that ends it
        reads = [offset for offset, _ in log if offset >= first]
        after_end = next((o for o, ts in log if o >= first and ts > end_ms), None)
        if after_end is not None:
            reads = [o for o in reads if o <= after_end]
        partition = stats.partitions[tp]
        assert (partition.start_mode, partition.answer) == (StartMode.AT_TIME, first), tp
        assert partition.records_read == len(reads), tp


def test_a_start_after_every_record_reads_nothing(
    settings: Settings, produced: list[int],
) -> None:
    stats = KafkaReadStats()
    assert list(read_window(settings, (max(produced) + 1) * 1000, None, FAST, stats=stats)) == []
    assert set(stats.modes()) == {StartMode.EMPTY.value}
    assert all(p.records_read == 0 for p in stats.partitions.values())


def test_replay_commits_nothing(settings: Settings, produced: list[int]) -> None:
    stats = KafkaReadStats()
    assert list(read_window(settings, None, None, FAST, stats=stats))
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                             group_id=stats.group_id, enable_auto_commit=False)
    try:
        for topic in (settings.topics["account_events"], settings.topics["displayed"]):
            for partition in range(4):
                assert consumer.committed(TopicPartition(topic, partition)) is None
    finally:
        consumer.close(autocommit=False)


def test_the_cli_replays_a_window_from_kafka(
    settings: Settings, lines: list[bytes], produced: list[int], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from schemas.timefmt import format_us

    start_ms, end_ms = window_of(produced)
    state = write_state_file(settings, tmp_path / "state.json")
    expected = file_slice(lines, produced, start_ms, end_ms)
    account = orjson.loads(expected[0])["account_id"]
    out = tmp_path / "out"
    argv = ["replay", "--from-kafka", "--start", format_us(start_ms * 1000),
            "--end", format_us(end_ms * 1000), "--out", str(out), "--state-file", str(state),
            "--account", account]
    assert main(argv) == 0
    assert f"replayed {len(expected)} records from Kafka" in capsys.readouterr().out
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == outputs_of(
        expected, tmp_path / "file"
    )
    assert account in (out / "report.html").read_text()


def test_the_cli_says_how_many_alerts_a_kafka_replay_wrote(
    settings: Settings, produced: list[int], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = write_state_file(settings, tmp_path / "state.json")
    out = tmp_path / "out"
    assert main(["replay", "--from-kafka", "--out", str(out), "--state-file", str(state)]) == 0
    written = len((out / "alerts.jsonl").read_bytes().splitlines())
    assert f": {written} alerts, " in capsys.readouterr().out


def test_start_after_end_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["replay", "--from-kafka", "--start", "2026-11-29T10:00:00Z",
            "--end", "2026-11-29T09:00:00Z", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "--start is after --end" in capsys.readouterr().err


def test_a_tombstone_on_an_input_topic_is_dead_lettered_invalid(settings: Settings) -> None:
    valid = orjson.dumps({
        "event_id": "e-1", "type": "drawdown.booked", "account_id": "A-1",
        "occurred_at": "2026-11-29T10:00:00.000Z", "schema_version": 1,
        "loan_id": "L1", "principal": 500,
    })
    produce_lines(settings, [valid])
    send_tombstone(settings, b"A-1")
    result, _ = replay_from_kafka(settings, None, None, ReplayOptions(), FAST)
    [letter] = result.dead_letters
    assert (letter["reason"], letter["error"], letter["topic"], result.counts["applied"]) == (
        "invalid", "tombstone: the record value is null", settings.topics["account_events"], 1)
