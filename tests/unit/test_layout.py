"""The import rules of the house plan hold for the whole tree, and the checker catches what it should."""

from __future__ import annotations

from pathlib import Path

from tests.layout import check_source, check_tree

ROOT = Path(__file__).resolve().parents[2]


def test_the_tree_follows_the_import_rules() -> None:
    violations = check_tree(ROOT)
    assert not violations, "\n".join(map(str, violations))


def test_the_checker_reads_modules() -> None:
    # A tree with no modules would pass vacuously: the real one has the three layers' cores.
    assert len(list((ROOT / "agents").rglob("*.py"))) > 10
    assert check_tree(ROOT) == []


def rules(source: str, module: str, path: str = "x.py") -> list[str]:
    return [v.rule for v in check_source(source, module, path)]


def test_an_upward_import_is_caught() -> None:
    assert rules("from otklik.streams.worker.metrics import PipelineMetrics", "otklik.agents.wiring.pipeline") == [
        "agents must not depend on streams"
    ]
    assert rules("import otklik.agents.clock.working", "otklik.schemas.registry") == [
        "schemas must not depend on agents"
    ]
    assert rules("from otklik import streams", "otklik.schemas.records") == ["schemas must not depend on streams"]


def test_imports_hidden_in_functions_and_type_checking_blocks_count() -> None:
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from otklik.streams.worker.app import OtklikApp

def late():
    from otklik.streams.worker import metrics
"""
    assert rules(source, "otklik.agents.replay") == ["agents must not depend on streams"] * 2


def test_relative_imports_are_resolved() -> None:
    # In otklik/agents/text/triage.py, `from ...streams import cli` is otklik.streams.
    assert rules("from ...streams import cli", "otklik.agents.text.triage") == ["agents must not depend on streams"]
    assert rules("from . import normalize", "otklik.agents.text.triage") == []
    # In a package's __init__.py one dot is the package itself.
    assert rules("from .. import streams", "otklik.agents.text", "agents/text/__init__.py") == []
    assert rules("from ... import streams", "otklik.agents.text", "agents/text/__init__.py") == [
        "agents must not depend on streams"
    ]


def test_downward_and_sideways_imports_are_allowed() -> None:
    assert rules("from otklik.schemas.records import Interaction", "otklik.streams.worker.app") == []
    assert rules("from otklik.agents.registry import Registry", "otklik.streams.notify.notifier") == []
    assert rules("from otklik.agents.clock.working import WorkingClock", "otklik.agents.registry") == []


def test_the_pure_core_imports_no_shell_library() -> None:
    for library in ("faust", "aiokafka", "aiohttp", "prometheus_client"):
        assert rules(f"import {library}", "otklik.agents.responses.engine") == [
            f"the pure core must not import {library}"
        ]
        assert rules(f"from {library} import x", "otklik.schemas.records") == [
            f"the pure core must not import {library}"
        ]
    # The faust wiring and the services may.
    assert rules("import faust", "otklik.agents.wiring.pipeline") == []
    assert rules("from prometheus_client import Counter", "otklik.streams.worker.metrics") == []


def test_the_readme_layout_table_matches_the_tree() -> None:
    """Every package folder has its row in README's "Layout", and every folder named there exists."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([\w/]+)/`", section, flags=re.M))
    packages = {
        str(init.parent.relative_to(ROOT))
        for layer in ("schemas", "agents", "streams")
        for init in (ROOT / layer).rglob("__init__.py")
    }
    assert packages - rows == set(), "packages without a row in README's Layout"
    assert {row for row in rows if not (ROOT / row).is_dir()} == set(), "rows naming no folder"
