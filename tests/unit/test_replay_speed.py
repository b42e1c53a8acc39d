"""The replay's fast path gives what the plain one gives.

``run_replay`` runs the engine with two replay-only options (``keep_event_ids``: dedupe by the id
itself; ``record``: build output rows in place of ResponseRecords), formats times through caches and
builds rows from templates. Each test here compares it with the plain way: the engine as the live
worker builds it, its ResponseRecords turned into rows one by one, sorted by an obvious key.
"""

from __future__ import annotations

import random
import time
from dataclasses import astuple
from typing import Any

import orjson
import pytest

from otklik.agents import replay as replay_module
from otklik.agents.clock.working import WorkingClock
from otklik.agents.ingest.vk import NormalizeError, normalize_vk
from otklik.agents.registry import Registry
from otklik.agents.replay import ROW_FIELDS, iso, replay_engine, run_replay
from otklik.agents.responses.engine import ResponseEngine
from otklik.agents.text.triage import decide
from otklik.schemas.records import ResponseRecord
from otklik.schemas.schedule import Schedule
from otklik.streams.tools.simulate.traffic import generate, registry_mapping
from otklik.streams.tools.simulate.world import SimConfig
from tests.clock_helpers import is_working
from tests.unit.responses_helpers import open_records


def _plain_iso(t: int | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _plain_replay(
    lines: list[bytes], registry: Registry, triage: Any, retention_s: int = 30 * 86400
) -> list[dict[str, Any]]:
    """run_replay written plainly: every line {"received_at": int, "body": ...}, the live engine's
    ResponseRecords, rows as dict displays, one sort by (created, item)."""
    interactions = []
    for line in lines:
        data = orjson.loads(line)
        interactions += normalize_vk(data["body"], data["received_at"])
    interactions.sort(key=lambda ia: ia.received_at)
    engine = ResponseEngine(registry.page, watch_deadlines=False, triage=triage, retention_s=retention_s)
    final: dict[str, dict[str, Any]] = {}

    def keep(records: list[ResponseRecord]) -> None:
        for r in records:
            final[r.item] = {
                "item": r.item,
                "page": r.page,
                "kind": r.kind,
                "author": r.author,
                "created_at": _plain_iso(r.created_at),
                "outcome": r.outcome,
                "closed_at": _plain_iso(r.closed_at),
                "latency_s": r.latency_s,
                "business_latency_s": r.business_latency_s,
                "age_s": None,
                "business_age_s": None,
                "deadline": r.deadline,
                "breached": r.breached,
                "responder": r.responder,
                "reason": r.reason,
            }

    next_tick = interactions[0].received_at + 3600
    for ia in interactions:
        if ia.received_at >= next_tick:
            keep(engine.tick(ia.received_at, report_breaches=False))
            next_tick = ia.received_at + 3600
        keep(engine.process(ia))
    now = interactions[-1].received_at
    keep(engine.settle_all())
    keep(engine.tick(now, report_breaches=False))
    for record, age, business in open_records(engine, now):
        row = dict(zip(ROW_FIELDS, (None,) * len(ROW_FIELDS)))
        row.update(
            item=record.item,
            page=record.page,
            kind=record.kind,
            author=record.author,
            created_at=_plain_iso(record.created_at),
            outcome="open",
            age_s=age,
            business_age_s=business,
            deadline=record.deadline,
            breached=record.breached,
        )
        final[record.item] = row
    return sorted(final.values(), key=lambda row: (row["created_at"], row["item"]))


def _sample(seed: int, events: int, pages: int, shuffle: bool) -> tuple[list[bytes], Registry]:
    cfg = SimConfig(pages=pages, rate=3.0, duration=events / 3.0, seed=seed, start=1764230400, duplicate_rate=0.05)
    timed = list(generate(cfg))[:events]
    if shuffle:  # late by up to five minutes: the replay sorts by received_at
        rnd = random.Random(seed)
        timed = [(t + rnd.randint(0, 300) if rnd.random() < 0.2 else t, body) for t, body in timed]
    mapping = registry_mapping(cfg)
    for i, entry in enumerate(mapping["pages"]):
        if i % 3 == 1:
            entry["triage"] = False
        if i % 4 == 2:
            entry["bot_replies_count"] = True
    lines = [orjson.dumps({"received_at": t, "body": body}) for t, body in timed]
    return lines, Registry.from_mapping(mapping, source="<simulated>")


def _interactions(lines: list[bytes]) -> list[Any]:
    out = []
    for line in lines:
        data = orjson.loads(line)
        out += normalize_vk(data["body"], data["received_at"])
    return out


@pytest.mark.parametrize(("seed", "shuffle", "triage"), [(3, False, None), (4, True, None), (5, True, decide)])
def test_the_fast_replay_gives_the_plain_replays_rows(seed: int, shuffle: bool, triage: Any) -> None:
    lines, registry = _sample(seed, 4000, 25, shuffle)
    rows = run_replay(lines, registry, triage=triage)
    assert orjson.dumps(rows) == orjson.dumps(_plain_replay(lines, registry, triage))
    assert {r["outcome"] for r in rows} >= {"answered", "open"}


def test_the_fast_replay_gives_the_plain_replays_expiries() -> None:
    lines, registry = _sample(6, 3000, 10, True)
    rows = run_replay(lines, registry, retention_s=1200, triage=None)
    assert orjson.dumps(rows) == orjson.dumps(_plain_replay(lines, registry, None, retention_s=1200))
    assert any(r["outcome"] == "expired" for r in rows)


def test_triage_none_judges_every_item_like_pages_with_triage_off() -> None:
    lines, registry = _sample(7, 2000, 10, False)
    mapping = registry_mapping(SimConfig(pages=10, rate=3.0, duration=2000 / 3.0, seed=7, start=1764230400))
    for entry in mapping["pages"]:
        entry["triage"] = False
    off = Registry.from_mapping(mapping, source="<triage off>")
    assert run_replay(lines, registry, triage=None) == run_replay(lines, off)
    assert not any(r["outcome"] == "no_answer_needed" for r in run_replay(lines, registry, triage=None))


def test_an_engine_keeping_event_ids_dedupes_like_one_keeping_digests() -> None:
    lines, registry = _sample(8, 3000, 10, False)
    interactions = _interactions(lines)
    assert len({ia.event_id for ia in interactions}) < len(interactions)  # redeliveries are in the sample
    digests = ResponseEngine(registry.page)
    ids = ResponseEngine(registry.page, keep_event_ids=True)
    for ia in interactions:
        assert digests.process(ia) == ids.process(ia)
    end = interactions[-1].received_at + 40 * 86400
    assert digests.tick(end) == ids.tick(end)


def test_an_engine_keeping_event_ids_cannot_be_persisted() -> None:
    engine = ResponseEngine(lambda page: None, keep_event_ids=True)
    with pytest.raises(ValueError, match="cannot be persisted"):
        engine.dump_page("vk:1")
    with pytest.raises(ValueError, match="cannot be persisted"):
        engine.load_page("vk:1", b"null")


def test_a_record_factory_gets_a_records_fields_in_order() -> None:
    lines, registry = _sample(9, 3000, 10, False)
    interactions = _interactions(lines)
    plain = ResponseEngine(registry.page)
    tuples = ResponseEngine(registry.page, record=lambda *fields: fields)
    seen = 0
    for ia in interactions:
        expected = [astuple(r) for r in plain.process(ia)]
        assert [tuple(t) for t in tuples.process(ia)] == expected
        seen += len(expected)
    end = interactions[-1].received_at + 40 * 86400
    assert [tuple(t) for t in tuples.tick(end)] == [astuple(r) for r in plain.tick(end)]
    assert seen > 0


def test_replay_engine_is_the_one_run_replay_uses() -> None:
    engine = replay_engine(lambda page: None, triage=None)
    assert engine.keep_event_ids and not engine.watch_deadlines


def test_iso_caches_agree_with_strftime_also_when_they_are_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_module, "_SECONDS_KEPT", 50)
    monkeypatch.setattr(replay_module, "_MINUTES_KEPT", 3)
    rnd = random.Random(1)
    times = [rnd.randrange(0, 4_102_444_800) for _ in range(500)] + list(range(1764230400, 1764230400 + 400, 7))
    for t in times + times:
        assert iso(t) == _plain_iso(t)
    assert iso(None) is None


def test_page_ids_are_shared_and_booleans_still_rejected() -> None:
    def body(group_id: Any, cid: int) -> dict[str, Any]:
        obj = {"id": cid, "from_id": 5, "date": 100, "post_id": 1, "text": "Когда?"}
        return {"type": "wall_reply_new", "group_id": group_id, "event_id": f"e{cid}", "object": obj}

    (first,) = normalize_vk(body(1, 1), 100)
    (second,) = normalize_vk(body(1, 2), 100)
    assert first.page == second.page == "vk:1" and first.page is second.page
    with pytest.raises(NormalizeError, match="group_id: expected a positive integer, got True"):
        normalize_vk(body(True, 3), 100)
    with pytest.raises(NormalizeError, match="group_id: expected a positive integer, got 1.0"):
        normalize_vk(body(1.0, 3), 100)


def test_message_fields_are_checked_as_before() -> None:
    def body(**message: Any) -> dict[str, Any]:
        fields = {"peer_id": 7, "conversation_message_id": 3, "date": 100, "from_id": 7, "text": "?", **message}
        return {"type": "message_new", "group_id": 1, "object": {"message": fields}}

    (ia,) = normalize_vk(body(), 100)
    assert (ia.item, ia.author, ia.created_at) == ("vk:1:dm:7:3", "vk:user:7", 100)
    for field, value, reason in [
        ("peer_id", None, "object.message.peer_id: missing"),
        ("peer_id", True, "object.message.peer_id: expected an integer, got bool"),
        ("conversation_message_id", "3", "conversation_message_id: expected an integer, got str"),
        ("conversation_message_id", 0, "conversation_message_id: expected a positive integer, got 0"),
        ("date", 1.5, "object.message.date: expected an integer, got float"),
        ("date", -1, "object.message.date: negative"),
        ("text", None, "object.message.text: expected a string, got NoneType"),
        ("from_id", None, "object.message.from_id: missing"),
        ("from_id", 0, "object.message.from_id: 0 is no author"),
    ]:
        with pytest.raises(NormalizeError, match=reason):
            normalize_vk(body(**{field: value}), 100)
    assert normalize_vk(body(peer_id=2_000_000_001), 100) == []  # a group chat


def test_the_clock_remembers_its_last_year_table_without_changing_answers() -> None:
    moscow = WorkingClock("Europe/Moscow", Schedule.office())
    rnd = random.Random(2)
    spans = []
    for _ in range(300):
        start = rnd.randrange(1_700_000_000, 1_800_000_000)
        spans.append((start, start + rnd.randrange(0, 3 * 365 * 86400)))
    for start, end in spans:
        fresh = WorkingClock("Europe/Moscow", Schedule.office())
        assert moscow.working_seconds(start, end) == fresh.working_seconds(start, end)
        assert moscow.add_working(start, 8 * 3600) == fresh.add_working(start, 8 * 3600)
        assert is_working(moscow, end) == is_working(fresh, end)


@pytest.mark.parametrize("triage", [None, decide])
def test_settle_all_settles_exactly_the_tentative_items(triage: Any) -> None:
    lines, registry = _sample(10, 3000, 10, True)
    engine = ResponseEngine(registry.page, watch_deadlines=False, triage=triage)
    for ia in sorted(_interactions(lines), key=lambda ia: ia.received_at):
        engine.process(ia)
    tentative = {
        it.item
        for state in engine.pages.values()
        for it in state.items.values()
        # Dormant items (excluded and reported, or closed by a deletion) have their record out.
        if it.tentative is not None and not (it.excluded is not None and it.reported) and not it.written
    }
    assert tentative
    records = engine.settle_all()
    assert sorted(r.item for r in records) == sorted(tentative)
    assert not any(
        it.tentative is not None and not (it.excluded is not None and it.reported) and not it.written
        for state in engine.pages.values()
        for it in state.items.values()
    )
    assert engine.settle_all() == []
