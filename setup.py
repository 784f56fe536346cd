"""Builds limitsync, with the hot modules compiled by mypyc when it can (metadata: pyproject.toml).

Replay spends its time in a few pure, typed modules (``HOT_MODULES`` in limitsync/compiled.py);
compiled, the same code replays about 1.5x faster. Compiling is never required: with
``LIMITSYNC_COMPILE=0``, without mypyc, or when the C build fails, this builds the same package
as pure Python and says why in one line.

One shared library (``separate=False``) rather than one per module: calls between the hot
modules (engine -> ledger/state/alerts, parse -> fastpath -> timefmt) stay native C calls, and
a build can never mix a fresh module with a stale neighbour it was compiled against; the price
is that any edit recompiles the whole group (about 20 s). ``group_name`` puts that library in
the ``limitsync`` package: under mypyc's default name, a top-level module, an editable install
made while pure Python could not find it once ``make compile`` had built it. mypyc assumes such
a library sits above the packages, so a module first imported by another compiled module gets a
wrong ``__file__`` (``limitsync/streams/core/ledger...``); nothing in limitsync reads it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError

HERE = Path(__file__).resolve().parent
# The commands that build code: only they run mypyc (pip runs setup.py for egg_info/dist_info,
# with option values such as "--output-dir DIR", before every build).
_BUILD_COMMANDS = frozenset(
    {"build", "build_ext", "bdist", "bdist_wheel", "editable_wheel", "install", "develop"}
)


def _load_compiled() -> ModuleType:
    """limitsync/compiled.py by path: importing ``limitsync`` could find an installed copy."""
    spec = importlib.util.spec_from_file_location(
        "_limitsync_compiled", HERE / "limitsync" / "compiled.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks the module up while making a class
    spec.loader.exec_module(module)
    return module


compiled = _load_compiled()


def _say(message: str) -> None:
    print(f"limitsync setup.py: {message}", file=sys.stderr, flush=True)


class _BuildFailed(Exception):
    pass


class _AllOrNothingBuildExt(build_ext):
    """Any extension that fails fails the whole compiled build, so it can start again pure:
    the per-module shims without their shared library would install and then not import."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, BaseError, OSError) as exc:
            # The compiler's own output above says what went wrong; one line is enough here.
            raise _BuildFailed(f"{type(exc).__name__}: {str(exc)[:120]}") from exc


def _builds_code(argv: list[str]) -> bool:
    return not _BUILD_COMMANDS.isdisjoint(argv)


def _remove(paths: list[Path], why: str) -> None:
    for path in paths:
        path.unlink()
    if paths:
        suffix = compiled.extension_suffix()
        names = ", ".join(p.relative_to(HERE).as_posix().removesuffix(suffix) for p in paths)
        _say(f"removed {len(paths)} compiled file(s) {why}: {names}")


def _mypyc_extensions() -> list[Any]:
    """The extensions to build, or [] (with the reason said) when the build is pure."""
    if not compiled.compile_wanted():
        _say(f"{compiled.COMPILE_ENV}=0: building pure Python")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        _say(f"mypyc is not importable ({exc}): building pure Python (replay will be slower)")
        return []
    sources = [compiled.source_path(m, Path()).as_posix() for m in compiled.HOT_MODULES]
    try:
        extensions: list[Any] = mypycify(
            sources, opt_level="3", separate=False, group_name=compiled.SHARED_LIB
        )
    except (Exception, SystemExit) as exc:  # mypy errors exit; a mypyc crash raises anything
        _say(f"mypyc could not compile the hot modules ({exc!r}): building pure Python")
        return []
    return extensions


def main() -> None:
    if not _builds_code(sys.argv[1:]):
        setup()
        return
    extensions = _mypyc_extensions()
    if extensions:
        listed = {compiled.extension_path(m, HERE) for m in compiled.HOT_MODULES}
        leftovers = [p for p in compiled.shadowing_extensions(HERE) if p not in listed]
        _remove(leftovers, "that are no longer in HOT_MODULES")
        try:
            setup(ext_modules=extensions, cmdclass={"build_ext": _AllOrNothingBuildExt})
            return
        except _BuildFailed as exc:
            _say(f"compiling the hot modules failed ({exc}): building pure Python")
    # Left in place, an earlier build's extensions would be imported instead of these sources
    # (and its shared library would be dead weight).
    library = compiled.shared_library_path(HERE)
    shared = [library] if library.is_file() else []
    _remove(compiled.shadowing_extensions(HERE) + shared, "so that the pure sources are what runs")
    setup()


main()
