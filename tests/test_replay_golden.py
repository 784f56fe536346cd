"""A replay's outputs stay byte-identical for the same input and options (docs/contract.md,
"Replay").

The logs under tests/data/replay_golden/ were written by ``limitsync simulate`` (faults and bad
records; ``long`` has accounts with more records than a timeline keeps) and replayed by the code
of main at 518d609, before replay streamed its outputs and kept compact state: outputs.json holds
the SHA-256 of each output of those runs. The report names its input, so each run is made from
the folder that holds the log, under the name it was recorded with. Each is replayed in one
process and in shards (``--shards``): a shard holds some accounts, and the shards' outputs are
merged into the one replay's. And pipelined (``--pipeline``): read and parsed in one process,
applied in another.
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
# One process; pipelined (read and parse in a second process, apply in the first); and split by
# account over two and three shards: the same outputs. Each with what its summary line says.
MODES: dict[str, tuple[list[str], str]] = {
    "one": (["--no-pipeline"], "/s): "),
    "pipelined": (["--pipeline"], "/s) in 2 processes: "),
    "2-shards": (["--shards", "2"], "/s) on 2 shards: "),
    "3-shards": (["--shards", "3"], "/s) on 3 shards: "),
}
CASES = [(run, name, mode) for run in RUNS for name in RUNS[run]["sha256"] for mode in MODES]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("golden")
    for log in ("day.jsonl", "long.jsonl"):
        (folder / log).write_bytes(gzip.decompress((GOLDEN / f"{log}.gz").read_bytes()))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for run, spec in RUNS.items():
            for mode, (mode_args, summary) in MODES.items():
                args = [*spec["args"], *mode_args]
                out = f"{run}-{mode}"
                with contextlib.redirect_stdout(io.StringIO()) as said:
                    assert main(["replay", "--input", spec["input"], "--out", out, *args]) == 0
                # in that mode indeed (not replayed again in one process after a failed split)
                assert summary in said.getvalue()
    return folder


@pytest.mark.parametrize(("run", "name", "mode"), CASES, ids=[f"{r}/{n}/{m}" for r, n, m in CASES])
def test_output_is_byte_identical_to_the_recorded_one(
    replayed: Path, run: str, name: str, mode: str
) -> None:
    digest = hashlib.sha256((replayed / f"{run}-{mode}" / name).read_bytes()).hexdigest()
    assert digest == RUNS[run]["sha256"][name]
