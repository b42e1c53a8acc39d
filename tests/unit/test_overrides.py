"""Corrections of triage: validation at the edge (the engine's re-judging is tested with the engine)."""

from __future__ import annotations

import subprocess

import orjson
import pytest

from otklik.schemas.overrides import Override, OverrideError
from tests.conftest import OTKLIK


def test_a_valid_correction_names_its_page_and_serialises_whole():
    o = Override.parse(
        {"item": "vk:123456:wall:88:1024", "needs_answer": True, "by": " Иванова ", "note": "Это вопрос"}
    )
    assert o.page == "vk:123456" and o.by == "Иванова" and o.requested_at > 0
    assert Override.parse(orjson.loads(o.to_json())) == o


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"item": "vk:1:wall:2", "needs_answer": True, "by": "a", "note": "b"}, "item"),
        ({"item": "123", "needs_answer": True, "by": "a", "note": "b"}, "item"),
        ({"item": "vk:1:wall:2:3", "needs_answer": "maybe", "by": "a", "note": "b"}, "needs_answer"),
        ({"item": "vk:1:wall:2:3", "needs_answer": True, "by": "  ", "note": "b"}, "by"),
        ({"item": "vk:1:wall:2:3", "needs_answer": True, "by": "a"}, "note"),
        ({"item": "vk:1:wall:2:3", "needs_answer": True, "by": "a", "note": "b", "extra": 1}, "extra"),
    ],
)
def test_bad_corrections_name_the_field(data, problem):
    with pytest.raises(OverrideError, match=problem):
        Override.parse(data)


def test_the_cli_refuses_a_bad_item_with_a_clear_message():
    done = subprocess.run(
        [OTKLIK, "override", "vk:1", "--needs-answer", "no", "--by", "a", "--note", "b"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "is not an item id" in done.stderr


def test_every_item_id_the_normalizers_make_can_be_corrected():
    """A correction names an item by the id its normalizer gave it, on every platform."""
    import json
    from pathlib import Path

    from otklik.agents.ingest.max import normalize_max
    from otklik.agents.ingest.telegram import normalize_tg
    from otklik.agents.ingest.vk import NormalizeError, normalize_vk

    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    normalizers = {"vk": normalize_vk, "tg": normalize_tg, "max": normalize_max}
    items = set()
    for platform, normalize in normalizers.items():
        for path in sorted((fixtures / platform).glob("*.json")):
            try:
                records = normalize(json.loads(path.read_text()), 1_764_144_000)
            except NormalizeError:
                continue
            items.update(r.item for r in records if r.item)
    assert {item.split(":", 1)[0] for item in items} == set(normalizers)
    for item in sorted(items):
        correction = Override(item=item, needs_answer=True, by="Петрова (ЦУР)", note="проверено")
        assert correction.item == item
