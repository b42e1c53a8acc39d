"""Stream processors: pure cores plus the thin faust agents that wire them.

The hot modules of the pure core (:data:`NATIVE_MODULES`) may be compiled by ``build_native.py``
(mypyc; ``make`` runs it): the same source, as C extensions beside it. A compiled module is used only
while it is known to come from the source next to it: the build writes each source's SHA-256 to
:data:`NATIVE_MANIFEST`, and when any of them no longer matches (the source was edited, a branch was
checked out) or ``OTKLIK_PURE_PYTHON`` is set, every one of them is loaded from its ``.py`` instead.
All or none: the compiled modules call each other directly, so a mix would run stale code.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

NATIVE_MODULES = ("clock", "normalize", "replay", "responses", "textnorm", "triage")
NATIVE_MANIFEST = "_native_build.json"
_HERE = Path(__file__).resolve().parent


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _compiled(package_dir: Path) -> list[str]:
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return [m for m in NATIVE_MODULES if any((package_dir / f"{m}{s}").exists() for s in suffixes)]


def stale_native_modules(package_dir: Path = _HERE) -> list[str]:
    """The modules that must not run compiled: those whose source changed since the build, or that
    have no extension while others have one (all of them without a manifest); ``[]`` when nothing is
    compiled or everything compiled is current."""
    compiled = _compiled(package_dir)
    if not compiled:
        return []
    try:
        built = json.loads((package_dir / NATIVE_MANIFEST).read_text())["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return compiled
    return [
        m for m in NATIVE_MODULES
        if m not in compiled or built.get(m) != source_digest(package_dir / f"{m}.py")
    ]  # fmt: skip


class _SourceOnly:
    """A finder that loads :data:`NATIVE_MODULES` from their ``.py`` files, never a compiled copy."""

    def __init__(self, package: str, package_dir: Path) -> None:
        self._files = {f"{package}.{m}": package_dir / f"{m}.py" for m in NATIVE_MODULES}

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        source = self._files.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


def _native_status() -> str:
    """"compiled"; "pure" (nothing built, or OTKLIK_PURE_PYTHON set); or "stale: <modules>" (run as pure)."""
    if os.environ.get("OTKLIK_PURE_PYTHON"):
        sys.meta_path.insert(0, _SourceOnly(__name__, _HERE))
        return "pure"
    stale = stale_native_modules()
    if stale:
        sys.meta_path.insert(0, _SourceOnly(__name__, _HERE))
        logging.getLogger(__name__).warning(
            "%s changed since it was compiled; running the pure-Python modules "
            "(`make venv` or `python build_native.py` compiles them again)",
            ", ".join(f"agents/{m}.py" for m in stale),
        )
        return "stale: " + ", ".join(stale)
    return "compiled" if _compiled(_HERE) else "pure"


# How the hot modules run in this process: see the module doc.
NATIVE_STATUS = _native_status()
