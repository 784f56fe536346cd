"""Archive segments without a broker: naming, the line format, writing, and replaying them.

The archive is only worth keeping if a replay of it judges the same log as a replay of the
original file, byte for byte, so the last tests build an archive the way the archiver does
(topics, partitions, offsets, record timestamps) and replay it through the CLI.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from eventlog import drawdown
from eventlog import line as jsonl

from config.settings import Settings
from consumers.archive import FlushedOffsets, SegmentWriter
from consumers.merge import LogRecord
from consumers.segments import (
    SegmentError,
    decode_line,
    encode_line,
    hour_of,
    iter_archive,
    iter_segment,
    parse_segment_path,
    segment_path,
)
from limitsync.cli import main
from limitsync.inputs import InputError, open_input, resolve_input
from limitsync.producing import RecordRouter
from limitsync.simulate import simulate

LAST_MS_OF_10 = int(datetime(2026, 11, 29, 11, tzinfo=UTC).timestamp()) * 1000 - 1  # 10:59:59.999


def rec(
    partition: int, offset: int, ts: int, value: bytes | None = b"{}", topic: str = "t"
) -> LogRecord:
    return LogRecord(topic, partition, offset, ts, b"acct", value)


# -- naming ------------------------------------------------------------------------------------


def test_segments_are_named_by_topic_partition_and_utc_hour(tmp_path: Path) -> None:
    path = segment_path(tmp_path, "limit.account-events", 3, LAST_MS_OF_10)
    assert path == tmp_path / "limit.account-events" / "p3" / "20261129T10.jsonl.gz"
    assert segment_path(tmp_path, "x", 0, LAST_MS_OF_10 + 1).name == "20261129T11.jsonl.gz"
    assert parse_segment_path(path) == ("limit.account-events", 3, "20261129T10")
    assert parse_segment_path(tmp_path / "x" / "3" / "20261129T10.jsonl.gz") is None
    assert parse_segment_path(tmp_path / "x" / "p3" / "20261129T10.jsonl") is None


def test_a_record_without_timestamp_goes_to_the_epoch_hour() -> None:
    assert hour_of(-1) == "19700101T00"


# -- the line format ---------------------------------------------------------------------------


def test_a_line_keeps_the_value_as_text_and_round_trips() -> None:
    record = LogRecord("t", 1, 7, 123, b"A-1", '{"note":"é"}'.encode())
    line = encode_line(record)
    assert line.endswith(b"\n")
    assert orjson.loads(line) == {
        "topic": "t", "partition": 1, "offset": 7, "timestamp_ms": 123,
        "key": "A-1", "value": '{"note":"é"}',
    }
    assert decode_line(line) == record


def test_bytes_that_are_not_utf8_survive_in_b64() -> None:
    record = LogRecord("t", 0, 0, 1, b"\xfe", b"this is \xff not json")
    row = orjson.loads(encode_line(record))
    assert row["value"] is None and row["key"] is None
    assert "value_b64" in row and "key_b64" in row
    assert decode_line(encode_line(record)) == record


def test_a_record_without_key_round_trips() -> None:
    record = LogRecord("t", 0, 0, 1, None, b"{")
    assert decode_line(encode_line(record)) == record


def test_a_tombstone_round_trips_as_a_null_value() -> None:
    record = LogRecord("t", 0, 3, 1, b"A-1", None)
    assert decode_line(encode_line(record)) == record


def test_a_line_that_is_not_an_archive_record_is_an_error() -> None:
    with pytest.raises(SegmentError):
        decode_line(b'{"event_id": "x"}')


def test_a_line_without_a_value_field_is_an_error() -> None:
    with pytest.raises(SegmentError, match="no value"):
        decode_line(b'{"topic": "t", "partition": 0, "offset": 0, "timestamp_ms": 1, "key": null}')


# -- writing -----------------------------------------------------------------------------------


def test_the_writer_rotates_by_hour_and_bounds_open_files(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, open_files_max=2)
    hour_ms = 3_600_000
    for offset in range(12):  # 4 hours, interleaved: every write after the 2nd evicts one
        writer.write(rec(0, offset, (offset % 4) * hour_ms))
        assert writer.open_files <= 2
    writer.flush()
    assert writer.open_files == 0
    files = sorted((tmp_path / "t" / "p0").glob("*.jsonl.gz"))
    assert [f.name for f in files] == [f"19700101T0{h}.jsonl.gz" for h in range(4)]
    for hour, path in enumerate(files):
        with gzip.open(path, "rb") as fh:  # many members, but plain gzip reads it
            offsets = [orjson.loads(line)["offset"] for line in fh]
        assert offsets == [o for o in range(12) if o % 4 == hour]


def test_flush_leaves_valid_gzip_and_writing_goes_on_in_a_new_member(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path)
    writer.write(rec(0, 0, 0))
    writer.flush()
    path = tmp_path / "t" / "p0" / "19700101T00.jsonl.gz"
    assert len(gzip.decompress(path.read_bytes()).splitlines()) == 1
    writer.write(rec(0, 1, 1))
    writer.flush()
    assert [r.offset for r in iter_segment(path)] == [0, 1]


def test_the_same_records_give_the_same_bytes(tmp_path: Path) -> None:
    for name in ("a", "b"):
        writer = SegmentWriter(tmp_path / name)
        writer.write(rec(0, 0, 0))
        writer.flush()
    file_a, file_b = (tmp_path / n / "t" / "p0" / "19700101T00.jsonl.gz" for n in "ab")
    assert file_a.read_bytes() == file_b.read_bytes()


def test_the_marker_remembers_the_next_offset_per_partition(tmp_path: Path) -> None:
    markers = FlushedOffsets(tmp_path)
    assert markers.get("t", 0) == 0
    markers.store("t", 0, 42)
    assert FlushedOffsets(tmp_path).get("t", 0) == 42
    assert FlushedOffsets(tmp_path).get("t", 1) == 0


# -- reading -----------------------------------------------------------------------------------


def test_a_truncated_segment_keeps_its_complete_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = SegmentWriter(tmp_path)
    for offset in range(3):
        writer.write(rec(0, offset, 0))
    writer.flush()
    path = tmp_path / "t" / "p0" / "19700101T00.jsonl.gz"
    good = path.read_bytes()
    # A crash in the middle of the next member: a header and part of a line.
    partial = zlib.compressobj(wbits=31)
    tail = partial.compress(encode_line(rec(0, 3, 0)) * 50) + partial.flush(zlib.Z_SYNC_FLUSH)
    path.write_bytes(good + tail[: len(tail) // 2])
    with caplog.at_level(logging.WARNING):
        offsets = [r.offset for r in iter_segment(path)]
    assert offsets[:3] == [0, 1, 2]
    assert set(offsets) <= {0, 1, 2, 3}
    assert "truncated" in caplog.text


def test_corrupt_data_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"garbage that is not deflate")
    with pytest.raises(SegmentError):
        list(iter_segment(path))


def test_the_archive_is_merged_across_partitions_and_copies_are_dropped(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path)
    for partition, offset, ts in [(0, 0, 10), (1, 0, 5), (0, 1, 20), (1, 1, 15)]:
        writer.write(rec(partition, offset, ts))
    writer.flush()
    writer.write(rec(0, 1, 20))  # rewritten by an archiver that crashed before committing
    writer.flush()
    paths = sorted(tmp_path.rglob("*.jsonl.gz"))
    merged = [(r.partition, r.offset) for r in iter_archive(paths)]
    assert merged == [(1, 0), (0, 0), (1, 1), (0, 1)]


def test_a_renamed_segment_is_grouped_by_its_records(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path / "arch")
    writer.write(rec(0, 0, 0))
    writer.write(rec(0, 1, 3_600_000))  # the next hour: a second file of the same partition
    writer.flush()
    moved = []
    for index, path in enumerate(sorted((tmp_path / "arch").rglob("*.jsonl.gz"))):
        target = tmp_path / f"copy{index}.jsonl.gz"
        path.rename(target)
        moved.append(target)
    assert [r.offset for r in iter_archive(moved)] == [0, 1]


# -- replay input ------------------------------------------------------------------------------


def archive_of(lines: list[bytes], root: Path, partitions: int = 4) -> None:
    """What the archiver would write for ``lines`` produced by ``limitsync produce``."""
    settings = Settings(topic_prefix="arch.")
    router = RecordRouter(settings)
    offsets: Counter[tuple[str, int]] = Counter()
    writer = SegmentWriter(root, open_files_max=3)
    for n, line in enumerate(lines):
        topic, key, ts = router.route(line)
        partition = (zlib.crc32(key) if key else n) % partitions
        offset = offsets[(topic, partition)]
        offsets[(topic, partition)] += 1
        writer.write(LogRecord(topic, partition, offset, ts, key, line))
        if n % 97 == 0:
            writer.flush()
    writer.flush()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("archive")
    lines = list(simulate(accounts=30, hours=3, seed=11, faults=0.1, bad=0.02))
    log = root / "events.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    archive_of(lines, root / "arch")
    return log, root / "arch"


def replay(spec: str | Path, out: Path) -> Path:
    assert main(["replay", "--input", str(spec), "--out", str(out)]) == 0
    return out


def test_replaying_the_archive_gives_the_same_outputs_as_the_file(
    simulated: tuple[Path, Path], tmp_path: Path
) -> None:
    log, arch = simulated
    from_file = replay(log, tmp_path / "file")
    from_dir = replay(arch, tmp_path / "dir")
    from_glob = replay(f"{arch}/*/p*/*.jsonl.gz", tmp_path / "glob")
    for name in ("alerts.jsonl", "accounts.jsonl"):
        assert (from_file / name).read_bytes() == (from_dir / name).read_bytes()
        assert (from_file / name).read_bytes() == (from_glob / name).read_bytes()
    assert (from_file / "alerts.jsonl").read_bytes()  # the comparison is not of two empties


def test_archive_records_carry_their_kafka_coordinates(simulated: tuple[Path, Path]) -> None:
    _, arch = simulated
    records = list(open_input(str(arch)))
    assert all(r.topic and r.partition is not None and r.offset is not None for r in records)
    keys = [(r.topic, r.partition, r.offset) for r in records]
    assert len(keys) == len(set(keys))


def test_one_segment_is_an_input_on_its_own(simulated: tuple[Path, Path]) -> None:
    _, arch = simulated
    segment = sorted(arch.rglob("*.jsonl.gz"))[0]
    assert resolve_input(str(segment)) == [segment]
    assert list(open_input(str(segment)))


def test_a_directory_without_segments_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no archive segments"):
        resolve_input(str(tmp_path))


def test_a_glob_matching_nothing_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no file matches"):
        resolve_input(str(tmp_path / "*.jsonl.gz"))


def test_segments_and_plain_files_do_not_mix(simulated: tuple[Path, Path], tmp_path: Path) -> None:
    _, arch = simulated
    segment = sorted(arch.rglob("*.jsonl.gz"))[0]
    (tmp_path / "a.jsonl.gz").write_bytes(segment.read_bytes())
    (tmp_path / "b.jsonl").write_bytes(b"{}\n")
    with pytest.raises(InputError, match="both"):
        resolve_input(str(tmp_path / "*"))


def test_plain_files_matched_by_a_glob_are_read_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_bytes(b'"second"\n')
    (tmp_path / "a.jsonl").write_bytes(b'"first"\n')
    assert [r.value for r in open_input(str(tmp_path / "*.jsonl"))] == [b'"first"', b'"second"']


def test_an_archived_tombstone_is_dead_lettered_invalid_by_the_replay(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path / "arch")
    writer.write(rec(0, 0, 1_000, jsonl(drawdown("A", 0, 500))))
    writer.write(rec(0, 1, 2_000, None))
    writer.flush()
    out = replay(tmp_path / "arch", tmp_path / "out")
    [letter] = [orjson.loads(x) for x in (out / "dead_letters.jsonl").read_bytes().splitlines()]
    assert (letter["offset"], letter["reason"], letter["error"]) == (
        1, "invalid", "tombstone: the record value is null")


def test_a_corrupt_segment_fails_the_replay_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(gzip.compress(b'{"not": "an archive line"}\n'))
    assert main(["replay", "--input", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
