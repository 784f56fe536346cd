"""Reading a JSON Lines log: where records start and end, and their offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from limitsync import replay
from limitsync.inputs import estimated_records
from limitsync.replay import InputRecord, iter_file_records


def records(tmp_path: Path, data: bytes) -> list[tuple[bytes, int | None]]:
    path = tmp_path / "log.jsonl"
    path.write_bytes(data)
    return [(r.value, r.offset) for r in iter_file_records(path)]


def test_lines_are_records_and_offsets_are_line_indexes(tmp_path: Path) -> None:
    expected = [(b"a", 0), (b"b", 2), (b"c", 3), (b"d", 5)]
    assert records(tmp_path, b"a\n\nb\r\nc\r\r\n\r\nd") == expected


def test_a_last_line_without_newline_is_a_record(tmp_path: Path) -> None:
    assert records(tmp_path, b"a\nb\r") == [(b"a", 0), (b"b", 1)]


def test_an_empty_file_has_no_records(tmp_path: Path) -> None:
    assert records(tmp_path, b"") == []


@pytest.mark.parametrize("block", [1, 2, 3, 7])
def test_lines_spanning_reads_are_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    data = b'{"x": 1}\r\n\n{"y": [1, 2, 3]}\nlast'
    expected = [(line.rstrip(b"\r"), i) for i, line in enumerate(data.split(b"\n"))]
    monkeypatch.setattr(replay, "_BLOCK", block)
    got = records(tmp_path, data)
    assert got == [(v, i) for v, i in expected if v]


def test_records_carry_no_topic_or_partition(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"a\n")
    assert list(iter_file_records(path)) == [InputRecord(b"a", None, None, 0)]


def test_the_records_of_a_file_are_estimated_from_its_first_lines(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"n": 1}\n' * 30_000)
    assert estimated_records(str(path)) == 30_000


def test_an_empty_file_is_estimated_to_hold_no_records(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"")
    assert estimated_records(str(path)) == 0
