"""The house plan's import rules, read from the source (README, "Layout").

Dependencies run one way, ``schemas`` ← ``agents`` ← ``streams``: a module may import otklik's
packages of its own layer or below, never above. The pure cores (everything in ``schemas/`` and in
``agents/`` but ``agents/wiring/``) import no stream-processing, HTTP or metrics library. Every
import counts, wherever it stands: inside a function, under ``TYPE_CHECKING``, relative or absolute.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LAYERS = ("schemas", "agents", "streams")  # each may import the ones before it
WIRING = ("agents", "wiring")  # the only part of agents/ that may know faust
SHELL_LIBRARIES = frozenset({"faust", "mode", "aiokafka", "kafka", "aiohttp", "prometheus_client"})


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported}: {self.rule}"


def _imports(tree: ast.AST, package: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every import in a module of ``package`` (e.g. ("otklik", "agents"))."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ((node.module,) if node.module else ()))
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from otklik import streams` names a package too
                if module == "otklik":
                    yield node.lineno, f"otklik.{alias.name}"


def check_source(source: str, module: str, path: str = "<source>") -> list[Violation]:
    """The violations of one module, named by its dotted path (``otklik.agents.clock.working``)."""
    parts = tuple(module.split("."))
    layer = parts[1]
    package = parts if path.endswith("__init__.py") else parts[:-1]
    pure = layer == "schemas" or (layer == "agents" and parts[1:3] != WIRING)
    found = []
    for line, name in _imports(ast.parse(source, path), package):
        top = name.split(".")
        if top[0] == "otklik" and len(top) > 1 and top[1] in LAYERS:
            if LAYERS.index(top[1]) > LAYERS.index(layer):
                found.append(Violation(path, line, name, f"{layer} must not depend on {top[1]}"))
        elif pure and top[0] in SHELL_LIBRARIES:
            found.append(Violation(path, line, name, f"the pure core must not import {top[0]}"))
    return found


def check_tree(root: Path) -> list[Violation]:
    """Every module of schemas/, agents/ and streams/ under ``root``."""
    found = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            relative = path.relative_to(root).with_suffix("")
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            module = ".".join(("otklik", *parts))
            found.extend(check_source(path.read_text(encoding="utf-8"), module, str(path.relative_to(root))))
    return found
