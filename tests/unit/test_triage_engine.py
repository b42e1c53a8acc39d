"""Triage inside the response engine: items that need no answer, the `triage: false` switch, and
corrections (overrides) that re-judge an item from its original times — through `otklik replay`'s
core and through the engine's saved state."""

from __future__ import annotations

import orjson

from otklik.agents.registry import Registry
from otklik.agents.replay import run_replay
from otklik.agents.responses.engine import ResponseEngine
from otklik.agents.text.triage import decide
from otklik.schemas.records import Interaction

G = 200000555
PAGE = f"vk:{G}"
ADMIN = 5001
# Thursday 2025-11-27 10:00 Moscow: working time all around.
T0 = 1764226800
H = 3600


def registry(**defaults) -> Registry:  # type: ignore[no-untyped-def]
    return Registry.from_mapping(
        {
            "defaults": {"timezone": "Europe/Moscow", "deadline": "1h working", **defaults},
            "pages": [{"id": PAGE, "administrators": [f"vk:user:{ADMIN}"]}],
        }
    )


def comment(cid: int, text: str, at: int, author: int = 9001, **extra) -> bytes:  # type: ignore[no-untyped-def]
    obj = {"id": cid, "from_id": author, "date": at, "text": text, "post_id": 7, "owner_id": -G, **extra}
    return orjson.dumps(
        {
            "received_at": at,
            "body": {"type": "wall_reply_new", "group_id": G, "event_id": f"e{cid}", "v": "5.199", "object": obj},
        }
    )


def reply(cid: int, to_cid: int, to_user: int, at: int) -> bytes:
    return comment(
        cid,
        "Здравствуйте! Ямочный ремонт запланирован на май.",
        at,
        author=-G,
        reply_to_comment=to_cid,
        reply_to_user=to_user,
        parents_stack=[to_cid],
    )


def override(item_cid: int, needs: bool, at: int, by: str = "Петрова (ЦУР)") -> bytes:
    return orjson.dumps(
        {
            "received_at": at,
            "override": {
                "item": f"{PAGE}:wall:7:{item_cid}",
                "needs_answer": needs,
                "by": by,
                "note": "проверено вручную",
            },
        }
    )


def rows(lines: list[bytes], reg: Registry | None = None, now: int | None = None) -> dict[str, dict]:
    return {r["item"].rsplit(":", 1)[1]: r for r in run_replay(lines, reg or registry(), now)}


def test_thanks_and_reactions_need_no_answer_with_their_reason_and_are_never_judged():
    out = rows(
        [
            comment(1, "Спасибо большое за концерт!", T0),
            comment(2, "👍👍", T0 + 1),
            comment(3, "Когда починят дорогу на Садовой?", T0 + 2),
        ],
        now=T0 + 5 * H,
    )
    assert (out["1"]["outcome"], out["1"]["reason"], out["1"]["breached"]) == ("no_answer_needed", "gratitude", False)
    assert (out["2"]["outcome"], out["2"]["reason"]) == ("no_answer_needed", "reaction")
    assert out["1"]["closed_at"] == out["1"]["created_at"] and out["1"]["business_age_s"] is None
    assert (out["3"]["outcome"], out["3"]["breached"], out["3"]["reason"]) == ("open", True, None)


def test_a_bare_photo_is_a_report_not_a_reaction():
    out = rows(
        [comment(1, "", T0, attachments=[{"type": "photo", "photo": {"id": 1, "owner_id": 9001}}]), comment(2, "", T0)],
        now=T0 + H // 2,
    )
    assert out["1"]["outcome"] == "open"
    assert (out["2"]["outcome"], out["2"]["reason"]) == ("no_answer_needed", "reaction")


def test_offensive_text_is_never_excluded():
    out = rows([comment(1, "Спасибо, идиоты, третий день без воды", T0)], now=T0 + 10)
    assert out["1"]["outcome"] == "open"


def test_triage_false_judges_every_item():
    out = rows([comment(1, "Спасибо большое!", T0)], reg=registry(triage=False), now=T0 + 2 * H)
    assert (out["1"]["outcome"], out["1"]["breached"]) == ("open", True)


def test_a_correction_reopens_an_excluded_item_from_its_original_time_and_counts_the_reply_given_meanwhile():
    # "Спасибо, а когда дадут воду?" would need an answer anyway; this one is plain thanks that a
    # person decides was in fact a complaint (sarcasm the rules missed).
    lines = [comment(1, "Спасибо, очень рады", T0), reply(2, 1, 9001, T0 + 2 * H), override(1, True, T0 + 3 * H)]
    out = rows(lines, now=T0 + 4 * H)
    assert out["1"]["outcome"] == "answered"
    assert out["1"]["latency_s"] == 2 * H and out["1"]["breached"] is True  # 1 working hour deadline
    assert out["1"]["responder"] == PAGE and out["1"]["reason"] is None


def test_a_correction_reopens_an_unanswered_excluded_item_breached_by_its_original_time():
    out = rows([comment(1, "Спасибо, очень рады", T0), override(1, True, T0 + 3 * H)], now=T0 + 4 * H)
    assert (out["1"]["outcome"], out["1"]["breached"]) == ("open", True)
    assert out["1"]["business_age_s"] == 4 * H


def test_a_correction_excludes_an_open_item_with_the_reason_override():
    out = rows([comment(1, "Когда починят дорогу на Садовой?", T0), override(1, False, T0 + H // 2)], now=T0 + 5 * H)
    assert (out["1"]["outcome"], out["1"]["reason"], out["1"]["breached"]) == ("no_answer_needed", "override", False)


def test_a_correction_that_arrives_before_its_item_is_applied_when_the_item_comes():
    out = rows([override(1, True, T0 - 10), comment(1, "Спасибо, очень рады", T0)], now=T0 + 2 * H)
    assert (out["1"]["outcome"], out["1"]["breached"]) == ("open", True)


def ia(cid: int, text: str, at: int, author: str = "vk:user:9001", reply_to: int | None = None) -> Interaction:
    item = f"{PAGE}:wall:7:{cid}"
    return Interaction(
        platform="vk",
        page=PAGE,
        action="new",
        object_kind="wall",
        object_id=f"{PAGE}:wall:7",
        item=item,
        seq=cid,
        received_at=at,
        event_id=f"e{cid}",
        created_at=at,
        author=author,
        thread_root=f"{PAGE}:wall:7:{reply_to or cid}",
        reply_to_item=f"{PAGE}:wall:7:{reply_to}" if reply_to else None,
        reply_to_author="vk:user:9001" if reply_to else None,
        text=text,
    )


def test_the_engine_records_an_excluded_item_once_keeps_it_dormant_and_a_correction_survives_a_restart():
    reg = registry()
    engine = ResponseEngine(reg.page, late_window_s=60, triage=decide)
    assert engine.process(ia(1, "Спасибо!", T0)) == []
    [record] = engine.tick(T0 + 120)
    assert (record.outcome, record.reason, record.breached) == ("no_answer_needed", "gratitude", False)
    assert engine.open_items(PAGE) == [] and engine.summary(PAGE, T0 + 120).open_count == 0
    # A page reply to it is still recorded (on the item, for a correction) but makes no new record.
    assert engine.process(ia(2, "Пожалуйста!", T0 + 200, author=PAGE, reply_to=1)) == []
    assert engine.tick(T0 + 400) == []
    # The worker restarts from its saved state; a correction then re-judges the item.
    saved = engine.dump_page(PAGE)
    fresh = ResponseEngine(reg.page, late_window_s=60, triage=decide)
    fresh.load_page(PAGE, saved)
    assert fresh.open_items(PAGE) == [] and fresh.tick(T0 + 500) == []
    assert fresh.override(PAGE, f"{PAGE}:wall:7:1", True, "Петрова", T0 + 600, "это вопрос") is True
    [rejudged] = fresh.tick(T0 + 1000)
    assert (rejudged.outcome, rejudged.closed_at, rejudged.responder) == ("answered", T0 + 200, PAGE)
    assert rejudged.extra["override"] == {
        "needs_answer": True,
        "by": "Петрова",
        "at": T0 + 600,
        "note": "это вопрос",
        "previous": "no_answer_needed:gratitude",
    }
    # The correction itself is saved: after another restart the item stays judged.
    again = ResponseEngine(reg.page, late_window_s=60, triage=decide)
    again.load_page(PAGE, fresh.dump_page(PAGE))
    assert f"{PAGE}:wall:7:1" in again.pages[PAGE].overrides


def test_replay_keeps_the_records_settled_by_its_hourly_tick():
    # An answer settles after the late window; the next event comes hours later, after a tick: the
    # answered item must still be in the output (it once went missing).
    out = rows(
        [
            comment(1, "Когда откроют библиотеку после ремонта?", T0),
            reply(2, 1, 9001, T0 + 60),
            comment(3, "Где взять справку для бассейна?", T0 + 3 * H),
            comment(4, "Когда будет расписание кружков?", T0 + 7 * H),
        ],
        now=T0 + 8 * H,
    )
    assert (out["1"]["outcome"], out["1"]["latency_s"]) == ("answered", 60)
    assert set(out) == {"1", "3", "4"}


def test_a_malformed_correction_line_is_reported_with_its_line_and_field():
    errors: list[tuple[int, str]] = []
    bad = orjson.dumps(
        {"received_at": T0, "override": {"item": f"{PAGE}:wall:7:1", "needs_answer": "maybe", "by": "x", "note": "y"}}
    )
    run_replay([comment(1, "Спасибо!", T0), bad], registry(), on_error=lambda n, reason: errors.append((n, reason)))
    assert len(errors) == 1 and errors[0][0] == 2 and "needs_answer" in errors[0][1]


def test_an_excluded_item_is_recorded_once_when_its_reply_was_received_before_it():
    # The item comes late (received 10 s after it was written); the page's reply was received before the
    # item but is processed after it. Both re-judge the item to the same settling time: one record only.
    import msgspec

    engine = ResponseEngine(registry().page, late_window_s=60, triage=decide)
    item = msgspec.structs.replace(ia(1, "Спасибо!", T0), received_at=T0 + 10)
    answer = ia(2, "Пожалуйста!", T0 + 5, author=PAGE, reply_to=1)
    assert engine.process(item) == [] and engine.process(answer) == []
    records = engine.tick(T0 + 120) + engine.tick(T0 + 400)
    assert [(r.item, r.outcome) for r in records] == [(f"{PAGE}:wall:7:1", "no_answer_needed")]
    assert engine.settle_all() == []
