"""The compiled core (build_native.py, mypyc; opt-in): used when current, identical in what it computes
to the plain-Python modules, and never used once its source has changed.

The tests marked ``native`` compare a compiled build with the plain modules; `make native` builds the
core and runs them. `make test` deselects them (it builds nothing); the loader's own
rules below run everywhere, on fake builds."""

from __future__ import annotations

import importlib.machinery
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import otklik.agents as agents
from otklik.agents import NATIVE_MANIFEST, NATIVE_MODULES, module_path, source_digest, stale_native_modules
from tests.conftest import OTKLIK

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

# Runs in a fresh interpreter, compiled or pure: the live engine over a simulated day (triage on,
# deadlines watched, a tick a minute), then every page dumped and loaded back; prints the digest.
LIVE_SCRIPT = r"""
import hashlib, orjson
import otklik.agents as agents
from otklik.agents.ingest.vk import NormalizeError, normalize_vk
from otklik.agents.responses.engine import ResponseEngine
from otklik.agents.text.triage import decide
from otklik.agents.registry import Registry
from otklik.streams.tools.simulate.world import SimConfig
from otklik.streams.tools.simulate.traffic import generate, registry_mapping

cfg = SimConfig(pages=40, rate=4.0, duration=6 * 3600, seed=5, start=1764230400)
registry = Registry.from_mapping(registry_mapping(cfg), source="<simulated>")
engine = ResponseEngine(registry.page, triage=decide)
digest = hashlib.sha256()
next_tick = cfg.start + 60
for received_at, body in generate(cfg):
    while received_at >= next_tick:
        for record in engine.tick(next_tick):
            digest.update(record.to_json())
        next_tick += 60
    try:
        interactions = normalize_vk(body, received_at)
    except NormalizeError as exc:
        digest.update(exc.reason.encode())
        continue
    for ia in interactions:
        for record in engine.process(ia):
            digest.update(record.to_json())
for page in sorted(engine.pages):
    dumped = engine.dump_page(page)
    digest.update(dumped)
    engine.load_page(page, dumped)
    digest.update(engine.dump_page(page))
print(agents.NATIVE_STATUS, digest.hexdigest())
"""


def _run(args: list[str], pure: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OTKLIK_PURE_PYTHON"}
    if pure:
        env["OTKLIK_PURE_PYTHON"] = "1"
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True, timeout=600)


def _require_compiled() -> None:
    """Only a build can be compared with the plain modules; `make native` builds one and runs these."""
    if agents.NATIVE_STATUS != "compiled":
        pytest.fail(f"the core is not compiled ({agents.NATIVE_STATUS}); `make native` builds it and runs these")


@pytest.mark.native
def test_the_hot_modules_run_compiled() -> None:
    """`make` compiles them (a failed build fails here); each is imported from its extension."""
    _require_compiled()
    import importlib

    for name in NATIVE_MODULES:
        module = importlib.import_module(f"otklik.agents.{name}")
        assert module.__file__ is not None and module.__file__.endswith(SUFFIX), module.__file__


@pytest.mark.native
def test_compiled_and_pure_replays_give_the_same_bytes(tmp_path: Path) -> None:
    _require_compiled()
    events, registry = tmp_path / "events.jsonl", tmp_path / "registry.yaml"
    _run(
        [
            OTKLIK,
            "simulate",
            "--pages",
            "60",
            "--rate",
            "6",
            "--duration",
            "14400",
            "--seed",
            "3",
            "--start",
            "2025-12-30T06:00:00Z",
            "--out",
            str(events),
            "--registry-out",
            str(registry),
        ],
        pure=True,
    )
    # A malformed line and a correction too: error reports are part of what must agree.
    with events.open("ab") as out:
        out.write(b'{"received_at": 1767100000, "body": {"type": "wall_reply_new", "group_id": "x"}}\n')
    outputs = []
    for pure in (False, True):
        result = _run([OTKLIK, "replay", str(events), "--registry", str(registry)], pure=pure)
        outputs.append((result.stdout, re.sub(r" in [0-9.]+s$", "", result.stderr, flags=re.M)))  # not the timing
    assert outputs[0][0].count("\n") > 1_000
    assert "group_id" in outputs[0][1]
    assert outputs[0] == outputs[1]


@pytest.mark.native
def test_compiled_and_pure_live_engines_agree() -> None:
    _require_compiled()
    compiled = _run([sys.executable, "-c", LIVE_SCRIPT], pure=False).stdout.split()
    pure = _run([sys.executable, "-c", LIVE_SCRIPT], pure=True).stdout.split()
    assert (compiled[0], pure[0]) == ("compiled", "pure")
    assert compiled[1] == pure[1]


def _package(tmp_path: Path) -> Path:
    for name in NATIVE_MODULES:
        module_path(tmp_path, name).parent.mkdir(parents=True, exist_ok=True)
        module_path(tmp_path, name).write_text(f"NAME = {name!r}\n")
    return tmp_path


def _build(package: Path) -> None:
    for name in NATIVE_MODULES:
        module_path(package, name, SUFFIX).write_bytes(b"")
    digests = {name: source_digest(module_path(package, name)) for name in NATIVE_MODULES}
    (package / NATIVE_MANIFEST).write_text(json.dumps({"sources": digests}))


def test_nothing_compiled_is_nothing_stale(tmp_path: Path) -> None:
    assert stale_native_modules(_package(tmp_path)) == []


def test_a_build_is_current_until_a_source_changes(tmp_path: Path) -> None:
    package = _package(tmp_path)
    _build(package)
    assert stale_native_modules(package) == []
    edited = NATIVE_MODULES[-1]
    module_path(package, edited).write_text("NAME = 'edited'\n")
    assert stale_native_modules(package) == [edited]


def test_a_partial_build_is_stale_as_a_whole(tmp_path: Path) -> None:
    """A module without its extension beside compiled ones: the compiled ones would call into nothing."""
    package = _package(tmp_path)
    _build(package)
    missing = NATIVE_MODULES[0]
    module_path(package, missing, SUFFIX).unlink()
    assert stale_native_modules(package) == [missing]  # and so the package loads every module as pure


def test_extensions_without_their_manifest_are_stale(tmp_path: Path) -> None:
    package = _package(tmp_path)
    _build(package)
    (package / NATIVE_MANIFEST).write_text("{not json")
    assert stale_native_modules(package) == list(NATIVE_MODULES)
    (package / NATIVE_MANIFEST).unlink()
    assert stale_native_modules(package) == list(NATIVE_MODULES)


def test_a_stale_build_is_bypassed_for_the_sources(tmp_path: Path) -> None:
    """What the package does when its build is stale: the finder it installs names the .py files."""
    package = _package(tmp_path)
    _build(package)
    finder = agents._SourceOnly("pkg", package)
    for name in NATIVE_MODULES:
        spec = finder.find_spec(f"pkg.{name}")
        assert spec is not None and spec.origin == str(module_path(package, name))  # type: ignore[attr-defined]
    assert finder.find_spec("pkg.wiring.pipeline") is None  # not compiled: the usual finders decide
