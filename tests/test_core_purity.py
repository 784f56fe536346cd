"""The core is pure (docs/design.md "The core is pure"): every module under ``streams/core``
imports only pure standard-library modules, pydantic, ``schemas`` and ``streams.core``, and
never reads the system clock or touches files, sockets or the event loop.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "streams" / "core"
MODULES = sorted(CORE.rglob("*.py"))

PURE_STDLIB = {
    "__future__", "abc", "array", "bisect", "collections", "contextlib", "copy", "dataclasses",
    "datetime", "decimal", "enum", "functools", "hashlib", "heapq", "itertools", "math",
    "numbers", "operator", "re", "string", "struct", "types", "typing", "typing_extensions",
}
ALLOWED_PACKAGES = {"pydantic", "schemas", "streams"}
FORBIDDEN_CALLS = [
    r"\btime\.(time|monotonic|perf_counter|sleep)\w*\(",
    r"\bdatetime\.(now|utcnow|today)\(",
    r"\bdate\.today\(",
    r"(?<![\w.])open\(",
    r"\bPath\(",
    r"\bprint\(",
    r"\brandom\.",
    r"\buuid\.uuid[14]\(",
]


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside streams.core
                names.append("streams.core")
            elif node.module:
                names.append(node.module)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__"):
            names.append("__import__")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module"):
            names.append("importlib.import_module")
    return names


def allowed(module: str) -> bool:
    top = module.split(".")[0]
    if top == "streams":
        return module == "streams" or module.startswith("streams.core")
    return top in PURE_STDLIB or top in ALLOWED_PACKAGES


def test_the_core_has_modules_to_check() -> None:
    assert len(MODULES) >= 5


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_module_imports_only_pure_modules(path: Path) -> None:
    bad = [m for m in imported_modules(path) if not allowed(m)]
    assert bad == [], f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_module_does_no_io_and_reads_no_clock(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    found = [pattern for pattern in FORBIDDEN_CALLS if re.search(pattern, source)]
    assert found == [], f"{path.name} matches {found}"


@pytest.mark.parametrize(
    ("source", "ok"),
    [("import socket", False), ("from asyncio import sleep", False), ("import time", False),
     ("import os.path", False), ("from streams.cache import x", False),
     ("from schemas.events import Event", True), ("from .state import X", True),
     ("import heapq", True), ("from pydantic import BaseModel", True)],
)
def test_the_import_check_itself(source: str, ok: bool, tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(source)
    assert all(allowed(m) for m in imported_modules(path)) is ok
