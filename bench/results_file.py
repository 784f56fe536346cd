"""``bench/RESULTS.md``: each bench keeps a section of its own, holding its latest runs.

A run's table (headed ``### date · machine · code``) goes at the end of its section, and only
the newest ``RUNS_KEPT`` tables of a section stay: the file is what the benches measure now,
bounded, and older runs are in git history.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

__all__ = ["RESULTS", "RUNS_KEPT", "code_state", "record_run"]

RESULTS = Path(__file__).with_name("RESULTS.md")
RUNS_KEPT = 3
_HEADER = "# Benchmark results\n"


def record_run(section: str, intro: str, entry: str, path: Path = RESULTS) -> Path:
    """Put ``entry`` (a ``### `` table) last in ``section`` (a ``## `` heading line), creating
    the section with ``intro`` (which starts with that heading) at the end of the file."""
    text = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    if section not in text.splitlines():
        text = text.rstrip("\n") + "\n\n" + intro.rstrip("\n") + "\n"
    start = text.index(section + "\n") + len(section) + 1
    following = re.search(r"^## ", text[start:], flags=re.MULTILINE)
    end = start + following.start() if following else len(text)
    body = text[start:end]
    first_run = re.search(r"^### ", body, flags=re.MULTILINE)
    lead = body[: first_run.start()] if first_run else body
    runs = re.split(r"(?m)^(?=### )", body[first_run.start() :]) if first_run else []
    runs = [r.strip("\n") for r in runs if r.strip()] + [entry.strip("\n")]
    kept = runs[-RUNS_KEPT:]
    lead = lead.strip("\n")
    new_body = "\n" + (lead + "\n\n" if lead else "") + "\n\n".join(kept) + "\n"
    text = text[:start] + new_body + ("\n" + text[end:] if following else "")
    path.write_text(text, encoding="utf-8")
    return path


_NOT_RESULTS = ":(top,exclude)bench/RESULTS.md"  # a pathspec: every file but that one


def code_state() -> str:
    """The commit measured, and how many files differ from it (others edit concurrently).
    Not counted: the results file itself, which a bench run before in the same ``make
    bench`` has just written."""
    try:
        head = _git("rev-parse", "--short", "HEAD").strip()
        dirty = _git(
            "status", "--porcelain", "--untracked-files=no", "--", ":/", _NOT_RESULTS
        ).splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{head or 'unknown'}" + (f" + {len(dirty)} modified files" if dirty else "")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, timeout=10, check=False
    ).stdout
