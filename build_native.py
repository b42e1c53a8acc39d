"""Compile the pure core's hot modules (``otklik.agents.NATIVE_MODULES``) with mypyc.

    python build_native.py          # `make venv` runs it when agents/ or schemas/ changed

The compiled modules are C extensions placed beside their sources in agents/ (with
``agents/_native_build.json``, the SHA-256 of each source they were built from); Python imports them
in place of the ``.py`` files. They are the same code, type-checked by mypy and compiled: a replay
runs ~1.3x faster (``python -m bench replay`` prints which kind it measured). Without a C compiler,
or if the build fails, the previous build is removed and everything runs as plain Python; the
command says so and exits 0, since nothing but speed depends on it. ``--strict`` makes a failed
build an error instead.

otklik's packages live in agents/, schemas/ and streams/ but import as ``otklik.*``, and mypy names a
module after its path: the build therefore runs on a copy laid out as ``otklik/<package>/``.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from otklik.agents import NATIVE_MANIFEST, NATIVE_MODULES, module_path, source_digest

ROOT = Path(__file__).resolve().parent
PACKAGES = ("agents", "schemas", "streams")
# mypy's view of the code; the third-party packages without type information are taken as Any.
MYPY_FLAGS = ["--explicit-package-bases", "--ignore-missing-imports", "--follow-imports=silent"]


def compiled_files(package_dir: Path, modules: tuple[str, ...]) -> list[Path]:
    """What a build leaves in agents/: each module's extension and the shared library they use."""
    return [
        path
        for name in (*modules, "native__mypyc")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if (path := module_path(package_dir, name, suffix)).exists()
    ]


def clean(package_dir: Path, modules: tuple[str, ...], manifest: str) -> None:
    for path in compiled_files(package_dir, modules):
        path.unlink()
    (package_dir / manifest).unlink(missing_ok=True)


def build(modules: tuple[str, ...], manifest: str) -> None:
    from mypyc.build import mypycify  # the build's own dependency (pyproject's "native" extra)
    from setuptools import setup

    package_dir = ROOT / "agents"
    with tempfile.TemporaryDirectory(prefix="otklik-native-") as tmp:
        tree = Path(tmp)
        for package in PACKAGES:
            shutil.copytree(
                ROOT / package,
                tree / "otklik" / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.json"),
            )
        # Only the JSON schemas are data the code reads at import; mypy does not need them.
        sources = {m: module_path(tree / "otklik" / "agents", m) for m in modules}
        cwd = os.getcwd()
        os.chdir(tree)
        try:
            extensions = mypycify(
                [*MYPY_FLAGS, *(str(p.relative_to(tree)) for p in sources.values())],
                opt_level="3",
                group_name="otklik.agents.native",
            )
            setup(
                name="otklik-native",
                ext_modules=extensions,
                script_args=[
                    "-q",
                    "build_ext",
                    "--build-lib",
                    str(tree / "out"),
                    "--build-temp",
                    str(tree / "tmp"),
                    "--parallel",
                    str(os.cpu_count() or 1),
                ],
            )
        finally:
            os.chdir(cwd)
        built = compiled_files(tree / "out" / "otklik" / "agents", modules)
        if len(built) != len(modules) + 1:
            raise RuntimeError(
                f"expected {len(modules) + 1} extensions, the build made {sorted(p.name for p in built)}"
            )
        clean(package_dir, modules, manifest)
        out_dir = tree / "out" / "otklik" / "agents"
        for path in built:
            shutil.copy2(path, package_dir / path.relative_to(out_dir))
        digests = {m: source_digest(path) for m, path in sources.items()}  # what was compiled
        (package_dir / manifest).write_text(json.dumps({"sources": digests}, indent=1, sort_keys=True) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--strict", action="store_true", help="a failed build is an error")
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules and stop")
    args = parser.parse_args()
    if args.clean:
        clean(ROOT / "agents", NATIVE_MODULES, NATIVE_MANIFEST)
        return 0
    try:
        build(NATIVE_MODULES, NATIVE_MANIFEST)
    except (Exception, SystemExit) as exc:  # setuptools reports a compiler failure as SystemExit
        clean(ROOT / "agents", NATIVE_MODULES, NATIVE_MANIFEST)
        print(f"build_native: not compiled ({exc}); otklik runs its pure-Python modules", file=sys.stderr)
        return 1 if args.strict else 0
    print(f"build_native: compiled {', '.join(NATIVE_MODULES)} (agents/{NATIVE_MANIFEST})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
