"""The archiver against the real broker: every record archived once, and the archive replays
to the same outputs as the file that was produced.

The log is simulated traffic (with duplicates, conflicts and invalid records, some not even
UTF-8), produced to the input topics the way ``limitsync produce`` does.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path

import orjson
import pytest

from config.settings import Settings
from consumers.archive import MARKER_NAME, ArchiveOptions, run_archive
from consumers.segments import hour_of
from limitsync.cli import main
from limitsync.local_services import create_topics
from limitsync.producing import make_producer, produce_lines
from limitsync.simulate import simulate
from tests.integration.live_harness import write_state_file

pytestmark = pytest.mark.integration

NOT_UTF8 = b'{"event_id": "bad-\xff", "type": "drawdown.booked"}'
SEGMENT = re.compile(r"\A(?P<topic>[^/]+)/p(?P<partition>\d+)/(?P<hour>\d{8}T\d{2})\.jsonl\.gz\Z")


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    produced = list(simulate(accounts=40, hours=3, seed=21, faults=0.08, bad=0.02))
    produced.insert(len(produced) // 2, NOT_UTF8)
    return produced


@pytest.fixture
def settings(kafka_bootstrap: str, unique_id: str) -> Settings:
    s = Settings(
        topic_prefix=f"{unique_id}.", bootstrap_servers=kafka_bootstrap, app_id=unique_id,
    )
    create_topics(kafka_bootstrap, [s.topics["account_events"], s.topics["displayed"]],
                  partitions=3)
    return s


def send_tombstone(settings: Settings, key: bytes) -> None:
    """A record with a key and a null value on account-events (what compaction deletes by)."""
    producer = make_producer(settings)
    try:
        producer.send(settings.topics["account_events"], value=None, key=key)
        producer.flush()
    finally:
        producer.close()


def archived_rows(root: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for path in sorted(root.rglob("*.jsonl.gz")):
        with gzip.open(path, "rb") as fh:
            rows.extend(orjson.loads(line) for line in fh)
    return rows


def archive(settings: Settings, root: Path, **options: object) -> object:
    return run_archive(settings, ArchiveOptions(root=root, **options))  # type: ignore[arg-type]


def test_every_record_is_archived_once_in_its_hour_segment(
    settings: Settings, lines: list[bytes], tmp_path: Path
) -> None:
    produce_lines(settings, lines)
    root = tmp_path / "arch"
    archive(settings, root, idle_exit_s=3.0, open_files_max=4)
    rows = archived_rows(root)
    assert len(rows) == len(lines)
    coordinates = Counter((r["topic"], r["partition"], r["offset"]) for r in rows)
    assert max(coordinates.values()) == 1
    for path in root.rglob("*.jsonl.gz"):
        match = SEGMENT.match(path.relative_to(root).as_posix())
        assert match, path
        with gzip.open(path, "rb") as fh:
            for row in map(orjson.loads, fh):
                assert (row["topic"], row["partition"]) == (
                    match["topic"], int(match["partition"])
                )
                assert hour_of(row["timestamp_ms"]) == match["hour"]
    topics = {path.relative_to(root).parts[0] for path in root.rglob("*.jsonl.gz")}
    assert topics == {settings.topics["account_events"], settings.topics["displayed"]}
    [bad] = [r for r in rows if r["value"] is None]
    assert "value_b64" in bad
    assert [p.name for p in root.rglob(MARKER_NAME)]  # each partition remembers its end


def test_the_archive_replays_to_the_same_outputs_as_the_file(
    settings: Settings, lines: list[bytes], tmp_path: Path
) -> None:
    produce_lines(settings, lines)
    root = tmp_path / "arch"
    archive(settings, root, idle_exit_s=3.0)
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    outputs = {}
    for name, spec in (("file", log), ("archive", root),
                       ("glob", f"{root}/*/p*/*.jsonl.gz")):
        out = tmp_path / name
        assert main(["replay", "--input", str(spec), "--out", str(out)]) == 0
        outputs[name] = {f: (out / f).read_bytes() for f in ("alerts.jsonl", "accounts.jsonl")}
    assert outputs["file"]["alerts.jsonl"]
    assert outputs["archive"] == outputs["file"]
    assert outputs["glob"] == outputs["file"]


def test_a_restart_resumes_where_the_commit_was_and_archives_nothing_twice(
    settings: Settings, lines: list[bytes], tmp_path: Path, unique_id: str
) -> None:
    produce_lines(settings, lines)
    root = tmp_path / "arch"
    first = run_archive(settings, ArchiveOptions(root=root, max_records=100))
    assert first.records_written == 100
    second = run_archive(settings, ArchiveOptions(root=root, idle_exit_s=3.0))
    assert second.records_skipped == 0  # resumed at the committed offsets
    assert first.records_written + second.records_written == len(lines)
    # A group with no commits at all (offsets lost) reads everything again: the markers
    # written before each commit keep the archive free of copies.
    third = run_archive(settings, ArchiveOptions(
        root=root, group_id=f"{unique_id}-other", idle_exit_s=3.0,
    ))
    assert (third.records_written, third.records_skipped) == (0, len(lines))
    rows = archived_rows(root)
    assert len(rows) == len(lines)


def test_the_cli_archives_and_reports(
    settings: Settings, lines: list[bytes], tmp_path: Path
) -> None:
    produce_lines(settings, lines)
    state = write_state_file(settings, tmp_path / "state.json")
    root = tmp_path / "arch"
    argv = ["archive", "--dir", str(root), "--state-file", str(state), "--idle-exit-s", "3",
            "--group-id", f"{settings.app_id}-cli"]
    assert main(argv) == 0
    assert len(archived_rows(root)) == len(lines)
    report = tmp_path / "report.html"
    assert main(["report", "--input", str(root), "--out", str(report)]) == 0
    assert "limitsync replay report" in report.read_text()


def test_a_tombstone_is_archived_and_its_replay_dead_letters_it_invalid(
    settings: Settings, lines: list[bytes], tmp_path: Path
) -> None:
    produce_lines(settings, [lines[0]])
    send_tombstone(settings, b"acct-000025")
    root = tmp_path / "arch"
    archive(settings, root, idle_exit_s=3.0)
    assert main(["replay", "--input", str(root), "--out", str(tmp_path / "out")]) == 0
    letters = [orjson.loads(x) for x in (tmp_path / "out" / "dead_letters.jsonl").read_bytes()
               .splitlines()]
    assert [(d["reason"], d["error"]) for d in letters] == [
        ("invalid", "tombstone: the record value is null")]
