"""limitsync/compiled.py: which hot modules are compiled, and when compiled code is stale.

A stale extension is imported in place of its edited source, so the check must see an edit,
must not cry stale where times mean nothing (an installed wheel), and must find the extension
a module dropped from ``HOT_MODULES`` left behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from limitsync import compiled

ENGINE = "streams.core.engine"


@pytest.fixture(autouse=True)
def _no_build_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """The status of a tree does not depend on the build the suite itself runs on (CI runs the
    unit tests on the pure-Python build too, with LIMITSYNC_COMPILE=0 set)."""
    monkeypatch.delenv("LIMITSYNC_COMPILE", raising=False)


def _tree(root: Path, *, checkout: bool = True) -> Path:
    """A copy of the hot modules' layout with empty sources, no extensions yet; what they are
    built against was last edited an hour ago."""
    if checkout:
        (root / "setup.py").write_text("")
        (root / "pyproject.toml").write_text("")
    for module in compiled.HOT_MODULES + compiled.BUILT_AGAINST:
        source = compiled.source_path(module, root)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("")
        if module in compiled.BUILT_AGAINST:
            _age(source, 3600)
    return root


def _age(path: Path, seconds: float) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime - seconds, stat.st_mtime - seconds))


def _compile(root: Path, *modules: str) -> None:
    """Shims for ``modules`` and the shared library they load, as one build writes them."""
    for module in modules:
        compiled.extension_path(module, root).write_bytes(b"")
    compiled.shared_library_path(root).write_bytes(b"")


def test_every_hot_module_is_a_source_in_a_package() -> None:
    for module in compiled.HOT_MODULES:
        assert module.split(".")[0] in compiled.PACKAGES, module
        assert compiled.source_path(module).is_file(), module
    assert len(set(compiled.HOT_MODULES)) == len(compiled.HOT_MODULES)


def test_extension_sits_beside_its_source() -> None:
    path = compiled.extension_path(ENGINE, Path("/r"))
    assert path.parent == Path("/r/streams/core")
    assert path.name == "engine" + compiled.extension_suffix()


def test_pure_tree(tmp_path: Path) -> None:
    found = compiled.status(_tree(tmp_path))
    assert found.compiled == ()
    assert found.pure == compiled.HOT_MODULES
    assert compiled.problem(found) is None
    assert found.summary.startswith("pure Python")


def test_fresh_build_is_not_stale(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    for module in compiled.HOT_MODULES + compiled.BUILT_AGAINST:
        _age(compiled.source_path(module, root), 60)
    _compile(root, *compiled.HOT_MODULES)
    found = compiled.status(root)
    assert found.compiled == compiled.HOT_MODULES
    assert found.stale == ()
    assert compiled.problem(found) is None


def test_edited_source_makes_its_module_stale(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _compile(root, *compiled.HOT_MODULES)
    for module in compiled.HOT_MODULES:
        _age(compiled.extension_path(module, root), 60)
        _age(compiled.source_path(module, root), 120)
    compiled.source_path(ENGINE, root).write_text("# edited\n")
    found = compiled.status(root)
    assert found.stale == (ENGINE,)
    problem = compiled.problem(found)
    assert problem is not None
    assert "older than their sources" in problem
    assert "make compile" in problem
    assert "LIMITSYNC_COMPILE=0" in problem


def test_edited_source_after_the_library_was_built_is_stale(tmp_path: Path) -> None:
    """The shims of unchanged modules may be rewritten later than the library that holds the
    code; the older of the two is what counts."""
    root = _tree(tmp_path)
    _compile(root, *compiled.HOT_MODULES)
    _age(compiled.shared_library_path(root), 120)
    _age(compiled.source_path(ENGINE, root), 60)
    for module in compiled.HOT_MODULES:
        if module != ENGINE:
            _age(compiled.source_path(module, root), 180)
    assert compiled.status(root).stale == (ENGINE,)


def test_shims_without_their_library_are_stale(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _compile(root, ENGINE)
    compiled.shared_library_path(root).unlink()
    assert compiled.status(root).stale == (ENGINE,)


def test_times_mean_nothing_outside_a_checkout(tmp_path: Path) -> None:
    root = _tree(tmp_path, checkout=False)
    _compile(root, ENGINE)
    _age(compiled.extension_path(ENGINE, root), 60)
    assert compiled.status(root).stale == ()


def test_extension_of_a_module_no_longer_listed(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    dropped = root / "streams" / "core" / "explain.py"
    dropped.write_text("")
    dropped.with_name("explain" + compiled.extension_suffix()).write_bytes(b"")
    found = compiled.status(root)
    assert found.unlisted == ("streams.core.explain",)
    assert compiled.problem(found) is not None
    # An extension with no source beside it shadows nothing.
    (root / "schemas" / ("orphan" + compiled.extension_suffix())).write_bytes(b"")
    assert compiled.status(root).unlisted == ("streams.core.explain",)


def test_compiled_code_when_pure_python_was_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    _compile(root, *compiled.HOT_MODULES)
    monkeypatch.setenv("LIMITSYNC_COMPILE", "0")
    assert not compiled.compile_wanted()
    problem = compiled.problem(compiled.status(root))
    assert problem is not None and "LIMITSYNC_COMPILE=0" in problem
    monkeypatch.setenv("LIMITSYNC_COMPILE", "1")
    assert compiled.compile_wanted()
    monkeypatch.delenv("LIMITSYNC_COMPILE")
    assert compiled.compile_wanted()


def test_an_edit_to_what_they_are_built_against_makes_them_all_stale(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    for module in compiled.HOT_MODULES + compiled.BUILT_AGAINST:
        _age(compiled.source_path(module, root), 60)
    _compile(root, *compiled.HOT_MODULES)
    _age(compiled.shared_library_path(root), 30)
    for module in compiled.HOT_MODULES:
        _age(compiled.extension_path(module, root), 30)
    os.utime(compiled.source_path("schemas.events", root))  # edited after the build
    assert compiled.status(root).stale == compiled.HOT_MODULES


def test_sources_for_the_makefile(capsys: pytest.CaptureFixture[str]) -> None:
    assert compiled.main(["sources"]) == 0
    paths = capsys.readouterr().out.split()
    modules = compiled.HOT_MODULES + compiled.BUILT_AGAINST
    assert paths == [compiled.source_path(m, Path()).as_posix() for m in modules]
    assert {"streams/core/engine.py", "schemas/events.py"} <= set(paths)
    paths = paths[: len(compiled.HOT_MODULES)]
    assert compiled.main(["outputs"]) == 0
    outputs = capsys.readouterr().out.split()
    suffix = compiled.extension_suffix()
    assert outputs[:-1] == [p.removesuffix(".py") + suffix for p in paths]
    assert outputs[-1] == "limitsync/hot_modules__mypyc" + suffix
