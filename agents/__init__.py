"""The measurement: pure cores grouped by concern, plus the thin faust agents that wire them.

- ``ingest/``: platform bodies (VK, Telegram, MAX) → interaction records;
- ``responses/``: what answers what, and each item's outcome;
- ``clock/``: working time by a page's schedule and the Russian production calendar;
- ``text/``: text normalization, triage (needs an answer?) and the moderation detector;
- ``registry.py``: the page registry in force; ``moderation_watch.py``; ``replay.py``: the cores without Kafka;
- ``wiring/``: the faust agents (the only code here that knows faust).

The hot modules of the pure core (:data:`NATIVE_MODULES`) may be compiled by ``build_native.py``
(mypyc, opt-in: ``make native``): the same source, as C extensions beside it. A compiled module is used only
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

# Dotted names below otklik.agents.
NATIVE_MODULES = (
    "clock.working",
    "ingest.vk",
    "replay",
    "responses.engine",
    "responses.rules",
    "responses.state",
    "responses.views",
    "text.normalize",
    "text.triage",
)
NATIVE_MANIFEST = "_native_build.json"
_HERE = Path(__file__).resolve().parent


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def module_path(package_dir: Path, module: str, suffix: str = ".py") -> Path:
    """Where a module of :data:`NATIVE_MODULES` lives: ``text.triage`` → ``text/triage.py``."""
    return package_dir.joinpath(*module.split(".")).with_suffix(suffix)


def _compiled(package_dir: Path) -> list[str]:
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return [m for m in NATIVE_MODULES if any(module_path(package_dir, m, s).exists() for s in suffixes)]


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
        m for m in NATIVE_MODULES if m not in compiled or built.get(m) != source_digest(module_path(package_dir, m))
    ]


class _SourceOnly:
    """A finder that loads :data:`NATIVE_MODULES` from their ``.py`` files, never a compiled copy."""

    def __init__(self, package: str, package_dir: Path) -> None:
        self._files = {f"{package}.{m}": module_path(package_dir, m) for m in NATIVE_MODULES}

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        source = self._files.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


# pydantic's true spellings, as streams/settings.py's CoreSettings reads the same variable. This is the one
# variable the core reads itself: it must be decided before any hot module is imported, in every process.
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})


def _native_status() -> str:
    """ "compiled"; "pure" (nothing built, or OTKLIK_PURE_PYTHON true); or "stale: <modules>" (run as pure)."""
    if os.environ.get("OTKLIK_PURE_PYTHON", "").strip().lower() in _TRUE:
        sys.meta_path.insert(0, _SourceOnly(__name__, _HERE))
        return "pure"
    stale = stale_native_modules()
    if stale:
        sys.meta_path.insert(0, _SourceOnly(__name__, _HERE))
        logging.getLogger(__name__).warning(
            "%s changed since it was compiled; running the pure-Python modules (`make native` compiles them again)",
            ", ".join(str(module_path(Path("agents"), m)) for m in stale),
        )
        return "stale: " + ", ".join(stale)
    return "compiled" if _compiled(_HERE) else "pure"


# How the hot modules run in this process: see the module doc.
NATIVE_STATUS = _native_status()
