"""A replay's outputs stay byte-identical for the same input and options (docs/contract.md,
"Replay").

The logs under tests/data/replay_golden/ were written by ``limitsync simulate`` (faults and bad
records; ``long`` has accounts with more records than a timeline keeps) and replayed by the code
of main at 518d609, before replay streamed its outputs and kept compact state: outputs.json holds
the SHA-256 of each output of those runs. The report names its input, so each run is made from
the folder that holds the log, under the name it was recorded with. Each is replayed in one
process and in shards (``--shards``): a shard holds some accounts, and the shards' outputs are
merged into the one replay's.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from limitsync.cli import main

GOLDEN = Path(__file__).resolve().parent / "data" / "replay_golden"
RUNS: dict[str, dict[str, Any]] = json.loads((GOLDEN / "outputs.json").read_text())
CASES = [(run, name) for run in RUNS for name in RUNS[run]["sha256"]]


SHARDS = (1, 2, 3)  # one process, and split by account over two and three (the same outputs)
CASES = [(run, name, shards) for run in RUNS for name in RUNS[run]["sha256"] for shards in SHARDS]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("golden")
    for log in ("day.jsonl", "long.jsonl"):
        (folder / log).write_bytes(gzip.decompress((GOLDEN / f"{log}.gz").read_bytes()))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for run, spec in RUNS.items():
            for shards in SHARDS:
                args = [*spec["args"], "--shards", str(shards)]
                out = f"{run}-{shards}"
                with contextlib.redirect_stdout(io.StringIO()) as said:
                    assert main(["replay", "--input", spec["input"], "--out", out, *args]) == 0
                # in shards indeed, not replayed again in one process after a failed split
                assert (f"on {shards} shards" in said.getvalue()) == (shards > 1)
    return folder


@pytest.mark.parametrize(
    ("run", "name", "shards"), CASES, ids=[f"{r}/{n}/{s}-shards" for r, n, s in CASES]
)
def test_output_is_byte_identical_to_the_recorded_one(
    replayed: Path, run: str, name: str, shards: int
) -> None:
    digest = hashlib.sha256((replayed / f"{run}-{shards}" / name).read_bytes()).hexdigest()
    assert digest == RUNS[run]["sha256"][name]
