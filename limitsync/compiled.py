"""Which hot modules run as mypyc-compiled code, and whether that code is older than its source.

An editable install and ``make compile`` put each compiled extension next to its ``.py``, and
Python imports the extension first: after an edit to ``engine.py`` and before a rebuild, the old
compiled code runs and the edit silently does not. The test session refuses to start then, and
the benches say what they ran. ``setup.py`` and the Makefile read ``HOT_MODULES`` from here, so
dropping a module from the build is one line. Standard library only, and nothing imported from
the project: ``setup.py`` loads this file by path before anything is installed.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# The modules setup.py compiles with mypyc: pure, typed, and on replay's per-event path.
HOT_MODULES: tuple[str, ...] = (
    "streams.core.engine",
    "streams.core.ledger",
    "streams.core.state",
    "streams.core.alerts",
    "streams.core.clock",
    "streams.core.effects",
    "streams.core.ids",
    "streams.core.admission",
    "schemas.wire",
    "schemas.native",
    "schemas.fastpath",
    "schemas.timefmt",
    "schemas.parse",
    "limitsync.replay",
    "limitsync.replay_shard",
    "limitsync.replay_stages",
    "limitsync.report.alerts",
    "limitsync.report.text",
)
# Modules the compiled code was built against without being compiled itself (mypyc reads their
# types): an edit to one of them makes the build stale too.
BUILT_AGAINST: tuple[str, ...] = (
    "schemas.contract",
    "schemas.events",
    "streams.core.errors",
    "streams.core.__init__",
    "schemas.__init__",
    "limitsync.report.__init__",
    "limitsync.report.vocabulary",
)
# The one shared library that holds the compiled code of them all (the per-module extensions
# are shims that load it); inside a package, so an editable install finds it from anywhere.
SHARED_LIB = "limitsync.hot_modules"
# Where a compiled module can sit beside its source (the packages setup.py installs).
PACKAGES: tuple[str, ...] = ("schemas", "streams", "consumers", "limitsync")
# A checkout or an editable install's source tree: the directory holding the packages.
ROOT = Path(__file__).resolve().parent.parent
COMPILE_ENV = "LIMITSYNC_COMPILE"


def compile_wanted() -> bool:
    """Compiling is the default; ``LIMITSYNC_COMPILE=0``, exactly, asks for pure Python (the
    Makefile tests for that one spelling too)."""
    return os.environ.get(COMPILE_ENV) != "0"


def extension_suffix() -> str:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    return suffix if isinstance(suffix, str) else ".so"


def source_path(module: str, root: Path = ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def extension_path(module: str, root: Path = ROOT) -> Path:
    source = source_path(module, root)
    return source.with_name(source.stem + extension_suffix())


def shared_library_path(root: Path = ROOT) -> Path:
    return root.joinpath(*SHARED_LIB.split(".")).with_name(
        SHARED_LIB.rsplit(".", 1)[-1] + "__mypyc" + extension_suffix()
    )


def shadowing_extensions(root: Path = ROOT) -> list[Path]:
    """Every extension in the packages that sits beside a ``.py`` of the same name, listed or
    not: each one is imported instead of that source. Finds what a module dropped from
    ``HOT_MODULES`` left behind, which would otherwise keep running its old compiled code."""
    suffix = extension_suffix()
    found: list[Path] = []
    for package in PACKAGES:
        for extension in sorted((root / package).rglob("*" + suffix)):
            if extension.with_name(extension.name[: -len(suffix)] + ".py").is_file():
                found.append(extension)
    return found


def _is_checkout(root: Path) -> bool:
    """Sources can change after the build only in a checkout (editable or not); a wheel's files
    are written in whatever order pip unpacks them, so their times say nothing there."""
    return (root / "setup.py").is_file() and (root / "pyproject.toml").is_file()


@dataclass(frozen=True)
class CompiledStatus:
    compiled: tuple[str, ...]
    pure: tuple[str, ...]
    # Compiled, but the source changed after the build: the old code is what runs.
    stale: tuple[str, ...]
    # Modules not in HOT_MODULES that still import as a compiled extension.
    unlisted: tuple[str, ...]

    @property
    def summary(self) -> str:
        """One line for benches and install logs."""
        total = len(HOT_MODULES)
        if not self.compiled:
            text = f"pure Python (0 of {total} hot modules compiled)"
        else:
            text = f"mypyc-compiled: {len(self.compiled)} of {total} hot modules"
            if self.pure:
                text += f" (pure: {', '.join(self.pure)})"
        if self.stale:
            text += f"; STALE: {', '.join(self.stale)}"
        if self.unlisted:
            text += f"; compiled but no longer listed: {', '.join(self.unlisted)}"
        return text


def _built_at(path: Path) -> float:
    """When ``path`` was built; a missing one (a shim without its library) counts as never."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("-inf")


def status(root: Path = ROOT) -> CompiledStatus:
    compiled = [m for m in HOT_MODULES if extension_path(m, root).is_file()]
    stale: list[str] = []
    if _is_checkout(root):
        library = _built_at(shared_library_path(root))
        against = max(source_path(m, root).stat().st_mtime for m in BUILT_AGAINST)
        for module in compiled:
            built = min(_built_at(extension_path(module, root)), library)
            if max(source_path(module, root).stat().st_mtime, against) > built:
                stale.append(module)
    suffix = extension_suffix()
    listed = {extension_path(m, root) for m in HOT_MODULES}
    unlisted = [
        ".".join(path.relative_to(root).with_name(path.name[: -len(suffix)]).parts)
        for path in shadowing_extensions(root)
        if path not in listed
    ]
    return CompiledStatus(
        compiled=tuple(compiled),
        pure=tuple(m for m in HOT_MODULES if m not in compiled),
        stale=tuple(stale),
        unlisted=tuple(unlisted),
    )


def problem(found: CompiledStatus) -> str | None:
    """Why tests would not run the code in the sources, or None when they would."""
    fix = (
        "run `make compile` (or `LIMITSYNC_COMPILE=0 make compile` to remove them and run "
        "pure Python)"
    )
    if found.stale:
        return (
            f"compiled modules are older than their sources or what they are built against "
            f"({', '.join(found.stale)}), so "
            f"their old code would run: {fix}"
        )
    if found.unlisted:
        return (
            f"modules no longer in HOT_MODULES are still compiled ({', '.join(found.unlisted)}), "
            f"so their old code would run: {fix}"
        )
    if found.compiled and not compile_wanted():
        return (
            f"{COMPILE_ENV}=0 but {len(found.compiled)} hot modules are compiled and would run: "
            f"run `{COMPILE_ENV}=0 make compile` to remove them"
        )
    return None


def running_compiled() -> tuple[str, ...]:
    """The hot modules this process has imported as compiled extensions (what a bench ran)."""
    suffix = extension_suffix()
    return tuple(
        m for m in HOT_MODULES if str(getattr(sys.modules.get(m), "__file__", "")).endswith(suffix)
    )


def main(argv: list[str]) -> int:
    """No argument: the status line, failing when stale. ``sources``, ``outputs``: the paths a
    build reads (hot modules and what they are built against) and writes, for the Makefile.
    ``require``: fail unless every hot module is compiled (image builds)."""
    if argv == ["sources"]:
        modules = HOT_MODULES + BUILT_AGAINST
        print(" ".join(source_path(m, Path()).as_posix() for m in modules))
        return 0
    if argv == ["outputs"]:
        outputs = [extension_path(m, Path()) for m in HOT_MODULES] + [shared_library_path(Path())]
        print(" ".join(path.as_posix() for path in outputs))
        return 0
    if argv not in ([], ["require"]):
        print("usage: python -m limitsync.compiled [sources|outputs|require]", file=sys.stderr)
        return 2
    found = status()
    print(found.summary)
    if found.stale or found.unlisted:
        return 1
    return 1 if argv == ["require"] and found.pure else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
