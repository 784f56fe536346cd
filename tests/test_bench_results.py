"""``make bench`` keeps bench/RESULTS.md bounded: each bench's section holds its latest runs,
and a run touches no other section (bench/results_file.py)."""

from __future__ import annotations

from pathlib import Path

from bench.results_file import RUNS_KEPT, record_run

FILE = """# Benchmark results

## Earlier figures

### kept as written

## Replay floors

What the replay bench measures.

### old run

| x |

## Live pipeline floors

### live run

| y |
"""


def test_a_section_keeps_its_latest_runs_and_the_others_stay_as_they_were(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(FILE, encoding="utf-8")
    for n in range(RUNS_KEPT + 1):
        record_run("## Replay floors", "## Replay floors\n", f"### run {n}\n\n| {n} |", path)
    text = path.read_text(encoding="utf-8")
    replay = text.split("## Replay floors\n")[1].split("## Live pipeline floors")[0]
    assert [line for line in replay.splitlines() if line.startswith("### ")] == [
        f"### run {n}" for n in range(1, RUNS_KEPT + 1)
    ]
    assert "What the replay bench measures." in replay
    assert text.startswith("# Benchmark results\n\n## Earlier figures\n\n### kept as written\n")
    assert text.endswith("## Live pipeline floors\n\n### live run\n\n| y |\n")


def test_a_new_section_goes_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(FILE, encoding="utf-8")
    record_run("## Kafka replay", "## Kafka replay\n\nIntro.\n", "### run\n\n| z |", path)
    assert path.read_text(encoding="utf-8").endswith(
        "| y |\n\n## Kafka replay\n\nIntro.\n\n### run\n\n| z |\n"
    )
