"""Each record of an item carries the item's next version, so a consumer of otklik.responses can keep the
last state (docs/data-flow.md, "Consuming otklik.responses"; issue 19, finding 7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from otklik.agents.ingest.vk import normalize_vk
from otklik.agents.registry import Registry
from otklik.agents.responses.engine import ResponseEngine
from otklik.schemas.records import ResponseRecord

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Draft202012Validator(json.loads((ROOT / "schemas" / "json" / "response.json").read_text()))
G = 41001
PAGE = f"vk:{G}"
ITEM = f"vk:{G}:wall:1:1"
W = 600
T = 1764140400  # 2025-11-26 10:00 Moscow


def registry() -> Registry:
    return Registry.from_mapping(
        {
            "defaults": {
                "timezone": "Europe/Moscow",
                "calendar": "none",
                "schedule": {"mon-sun": "00:00-24:00"},
                "deadline": "30m calendar",
            },
            "pages": [{"id": PAGE}],
        }
    )


class Events:
    def __init__(self) -> None:
        self.n = 0

    def body(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        return {"type": kind, "group_id": G, "event_id": f"v{self.n}", "v": "5.199", "object": obj}

    def comment(self, cid: int, author: int, date: int, kind: str = "wall_reply_new", **extra: Any) -> dict[str, Any]:
        return self.body(
            kind, {"id": cid, "from_id": author, "date": date, "text": "?", "post_id": 1, "owner_id": -G, **extra}
        )

    def delete(self, cid: int, deleter: int) -> dict[str, Any]:
        return self.body("wall_reply_delete", {"id": cid, "owner_id": -G, "post_id": 1, "deleter_id": deleter})


def restart(engine: ResponseEngine, reg: Registry) -> ResponseEngine:
    """The page saved and loaded into a fresh engine, as after a worker restart."""
    fresh = ResponseEngine(reg.page, late_window_s=W)
    fresh.load_page(PAGE, engine.dump_page(PAGE))
    return fresh


def send(engine: ResponseEngine, body: dict[str, Any], received_at: int) -> list[ResponseRecord]:
    out: list[ResponseRecord] = []
    for ia in normalize_vk(body, received_at):
        out += engine.process(ia)
    return out


def latest(records: list[ResponseRecord]) -> dict[str, ResponseRecord]:
    """What a consumer keeps: the record with the highest version per item."""
    kept: dict[str, ResponseRecord] = {}
    for r in records:
        if r.item not in kept or r.version > kept[r.item].version:
            kept[r.item] = r
    return kept


def test_open_withdrawn_restored_open_gives_increasing_versions_and_the_last_state_wins() -> None:
    reg, ev = registry(), Events()
    engine = ResponseEngine(reg.page, late_window_s=W)
    records: list[ResponseRecord] = []
    records += send(engine, ev.comment(1, 5001, T), T)
    records += send(engine, ev.delete(1, 5001), T + 60)  # withdrawn by its author, in time
    records += engine.tick(T + 60 + W + 1)
    engine = restart(engine, reg)
    restored = ev.comment(1, 5001, T, kind="wall_reply_restore")
    records += send(engine, restored, T + 3600)  # open again, its deadline long past
    records += engine.tick(T + 3600 + 60)
    assert [(r.outcome, r.breached, r.version) for r in records] == [("withdrawn", False, 1), ("open", True, 2)]
    # Keyed by (item, outcome, breached), the withdrawn record would stand beside the open one; by
    # version, the item is open.
    assert latest(records)[ITEM].outcome == "open"
    engine = restart(engine, reg)
    records += send(engine, ev.comment(2, -G, T + 7200, reply_to_comment=1, reply_to_user=5001), T + 7200)
    records += engine.tick(T + 7200 + W + 1)
    assert [r.version for r in records] == [1, 2, 3]
    last = latest(records)[ITEM]
    assert (last.outcome, last.breached, last.version) == ("answered", True, 3)
    for r in records:
        assert not list(SCHEMA.iter_errors(orjson.loads(r.to_json()))), r


def test_a_redelivered_record_after_a_crash_repeats_its_version() -> None:
    """Records are written before the page is saved: after a crash the same record comes again, with the
    same version, and a consumer keeping the highest version keeps one state."""
    reg, ev = registry(), Events()
    engine = ResponseEngine(reg.page, late_window_s=W)
    send(engine, ev.comment(1, 5001, T), T)
    saved = engine.dump_page(PAGE)  # the last save before the crash
    first = engine.tick(T + 1900)
    again = ResponseEngine(reg.page, late_window_s=W)
    again.load_page(PAGE, saved)
    assert [orjson.loads(r.to_json()) for r in again.tick(T + 1900)] == [orjson.loads(r.to_json()) for r in first]
    assert first[0].version == 1


def test_a_state_saved_before_versions_loads_and_numbers_the_next_records_from_there() -> None:
    reg, ev = registry(), Events()
    engine = ResponseEngine(reg.page, late_window_s=W)
    send(engine, ev.comment(1, 5001, T), T)
    send(engine, ev.comment(3, 5003, T + 10), T + 10)
    send(engine, ev.delete(3, 5003), T + 20)
    engine.tick(T + 1900)  # item 1 reported open past its deadline; item 3 withdrawn
    saved = orjson.loads(engine.dump_page(PAGE))
    # The same state as a release without versions wrote it: no version in rows or closed entries.
    for row in saved["items"]:
        del row[13:]
    saved["closed"] = {k: v[:2] for k, v in saved["closed"].items()}
    old = ResponseEngine(reg.page, late_window_s=W)
    old.load_page(PAGE, orjson.dumps(saved))
    out = send(old, ev.comment(2, -G, T + 2000, reply_to_comment=1, reply_to_user=5001), T + 2000)
    out += old.tick(T + 2000 + W + 1)
    assert [(r.item, r.outcome, r.version) for r in out] == [(ITEM, "answered", 1)]  # after the unnumbered one (0)
    assert engine.pages[PAGE].items[ITEM].version == 1
