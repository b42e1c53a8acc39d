"""The rules live in the repository: docs/ is what code comments cite, and nothing cites anything outside.

A citation is ``docs/<file>.md, "<Section>"`` on one line (docs/README.md, "How the docs relate to the
code"); it must name an existing file and one of its ``## `` headings. No tracked file may refer to the
design notes that lived beside the repository; the reference schemas the tests read from
``../shared/reference`` are the one allowed outside path.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
THIS = Path(__file__).resolve()

# Documents that lived outside the repository, by any spelling the code used, and paths to the folder
# beside it other than its reference schemas.
_OUTSIDE = re.compile(r"\bDESIGN\b|\bDOMAIN\.md|\bSTYLE\.md|(?:\.\./|/work/)shared(?!/reference\b)")
_DOC_NAME = re.compile(r"docs/([A-Za-z0-9_-]+\.md)")
_SECTION_OPEN = re.compile(r",\s*(\\?[\"'])")


def headings(text: str) -> set[str]:
    """The ``## `` headings of a Markdown text, outside fenced code."""
    found, fenced = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            found.add(line[3:].strip())
    return found


def outside_references(text: str) -> list[str]:
    """Lines (numbered from 1) that refer to documents outside the repository."""
    return [f"line {n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if _OUTSIDE.search(line)]


def citation_problems(text: str, sections: dict[str, set[str]]) -> list[str]:
    """Citations of missing docs files or missing sections; ``sections`` maps file name → its headings."""
    problems = []
    for n, line in enumerate(text.splitlines(), 1):
        for match in _DOC_NAME.finditer(line):
            name = match[1]
            if name not in sections:
                problems.append(f"line {n}: docs/{name} does not exist")
                continue
            rest = line[match.end() :]
            quote = _SECTION_OPEN.match(rest)
            if quote is None:
                continue  # the file as a whole
            end = rest.find(quote[1], quote.end())
            if end < 0:
                problems.append(f"line {n}: docs/{name}: the section's name must close on the same line")
                continue
            section = rest[quote.end() : end]
            if section not in sections[name]:
                problems.append(f'line {n}: docs/{name} has no section "{section}"')
    return problems


def _docs_sections() -> dict[str, set[str]]:
    return {path.name: headings(path.read_text(encoding="utf-8")) for path in DOCS.glob("*.md")}


def _repository_texts() -> list[tuple[str, str]]:
    """(path, text) of every tracked text file, plus the docs themselves (tracked or about to be)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    paths = {REPO / name for name in listed.decode().split("\0") if name} | set(DOCS.glob("*.md"))
    texts = []
    for path in sorted(paths):
        if path.resolve() == THIS or not path.is_file():
            continue
        try:
            texts.append((str(path.relative_to(REPO)), path.read_bytes().decode("utf-8")))
        except UnicodeDecodeError:
            continue  # not text
    return texts


# ---- the checkers themselves -------------------------------------------------------------------------


def test_outside_references_are_found_and_the_reference_schemas_are_allowed() -> None:
    assert outside_references('# the rules (DESIGN.md, "Identifiers")')
    assert outside_references("rules are DESIGN's")
    assert outside_references("see ../shared/DOMAIN.md")
    assert outside_references("# (STYLE.md, 'Stable identities')")
    assert outside_references("open /work/shared/data/moderation")
    assert not outside_references('VK_SCHEMA = "/work/shared/reference/vk-api-schema"')
    assert not outside_references("read from `../shared/reference/`")
    assert not outside_references('# (docs/responses.md, "Outcomes"); a design choice')


def test_citations_are_checked_against_files_and_headings() -> None:
    sections = {"responses.md": headings("# Title\n\n## Outcomes\n```\n## Not a heading\n```\n")}
    assert citation_problems('# (docs/responses.md, "Outcomes")', sections) == []
    assert citation_problems("'docs/responses.md, \\\"Outcomes\\\"'", sections) == []
    assert citation_problems("see docs/responses.md", sections) == []
    assert citation_problems('# (docs/responses.md, "Not a heading")', sections)
    assert citation_problems('# (docs/responses.md, "Outcome")', sections)
    assert citation_problems('# (docs/missing.md, "Outcomes")', sections)
    assert citation_problems('# (docs/responses.md, "What counts as\n# a response")', sections)


# ---- the repository --------------------------------------------------------------------------------------


def test_nothing_in_the_repository_refers_outside_it() -> None:
    found = [f"{path}: {hit}" for path, text in _repository_texts() for hit in outside_references(text)]
    assert found == [], 'cite docs/<file>.md, "<Section>" instead:\n' + "\n".join(found)


def test_every_docs_citation_names_a_file_and_a_section_that_exist() -> None:
    sections = _docs_sections()
    found = [f"{path}: {p}" for path, text in _repository_texts() for p in citation_problems(text, sections)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("name", sorted(path.name for path in DOCS.glob("*.md")))
def test_each_docs_file_has_sections_and_is_in_the_index(name: str) -> None:
    assert headings((DOCS / name).read_text(encoding="utf-8")), f"docs/{name} has no ## sections"
    if name != "README.md":
        assert f"]({name})" in (DOCS / "README.md").read_text(encoding="utf-8"), f"docs/README.md does not list {name}"
