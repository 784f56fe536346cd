"""The repository reads on its own: no reference to a file outside it, no dangling link in the
documentation, and a README short enough to read (issue 16).

The contract and the design are ``docs/contract.md`` and ``docs/design.md``; a clone has
nothing beside the repository, so a tracked file that points at a shared folder beside it, or
at the specification's upper-case file names, points at nothing.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_BYTES_MAX = 12 * 1024

# Spelled in pieces so that this file does not match itself.
_OUTSIDE = re.compile(
    r"\.\./" + r"shared" + r"|(?<![\w/])" + r"(?:CONTRACT|DESIGN)" + r"\.md"
)
# A Markdown link or image: [text](target) or ![alt](target "title").
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def _docs() -> list[Path]:
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [p for p in pages if p.exists()]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _CODE_SPAN.sub(lambda m: m.group(0)[1:-1], heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    anchors = set()
    for line in text.splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(page: Path) -> list[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    text = _CODE_SPAN.sub("", text)
    return _LINK.findall(text)


def test_no_tracked_file_refers_outside_the_repository() -> None:
    found = []
    for path in _tracked():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if _OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "references to files outside the repository:\n" + "\n".join(found)


def test_relative_links_in_the_docs_resolve() -> None:
    broken = []
    for page in _docs():
        for target in _links(page):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not dest.exists():
                broken.append(f"{where}: no such file")
            elif not str(dest).startswith(str(ROOT)):
                broken.append(f"{where}: outside the repository")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{where}: no heading #{anchor}")
    assert not broken, "dangling links:\n" + "\n".join(broken)


def test_the_readme_is_short() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size < README_BYTES_MAX, f"README.md is {size} bytes; keep it under {README_BYTES_MAX}"


def test_the_slugs_follow_github() -> None:
    assert _slug("Drift, SLA and alerts") == "drift-sla-and-alerts"
    assert _slug("`limit.inquiries`") == "limitinquiries"
    assert _slug("Replay clock, exactly") == "replay-clock-exactly"
