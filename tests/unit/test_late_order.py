"""Comments that arrive beyond the late window, after a tick already acted on what came before them
(docs/responses.md, "Order beyond the late window"): a page reply after a written withdrawal, an item
after the tick that would have forgotten its reply. The engine is fed directly, ticks in between."""

from __future__ import annotations

from otklik.agents.responses.engine import ResponseEngine
from tests.unit.test_responses import VK, G, Run, W, at, item


def _withdrawn_then_late_reply(reply_at: int, deleter: int = 5001) -> Run:
    """Item 1, deleted at +120 (by ``deleter``), its withdrawal written by a tick; then a page reply to
    it written at ``reply_at`` arrives beyond the deletion's window."""
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run().send(vk.comment(1, 5001, t))
    run.send(vk.delete(1, deleter), received_at=t + 120)
    written = run.tick(t + 120 + W + 1)
    assert [(r.item, r.outcome) for r in written] == [(item(1), "withdrawn" if deleter == 5001 else "moderated")]
    run.send(vk.comment(2, -G, t + reply_at, parents=(1,), to_comment=1, to_user=5001), received_at=t + 120 + 2 * W)
    return run


def test_a_reply_written_before_the_withdrawal_answers_the_item_when_it_arrives_after_the_record() -> None:
    # The first answer while the item was visible answers it (docs/responses.md, "Deletions and restorations").
    t = at("2025-11-26T10:00")
    run = _withdrawn_then_late_reply(60)
    final = run.final()[item(1)]
    assert (final.outcome, final.closed_at, final.responder, final.version) == ("answered", t + 60, f"vk:{G}", 2)
    assert [r.outcome for r in run.records] == ["withdrawn", "answered"]


def test_a_reply_written_before_a_moderation_answers_the_item_too() -> None:
    final = _withdrawn_then_late_reply(60, deleter=7001).final()[item(1)]
    assert (final.outcome, final.version) == ("answered", 2)


def test_a_reply_written_after_the_withdrawal_changes_nothing() -> None:
    run = _withdrawn_then_late_reply(180)  # the item was already deleted when it was written
    run.final()
    assert [(r.outcome, r.version) for r in run.records] == [("withdrawn", 1)]


def test_a_withdrawn_item_survives_a_restart_and_a_restoration_reopens_it() -> None:
    """Held after its record (to take a late answer), the withdrawn item is saved with its page: a
    restart neither writes its record again nor loses it."""
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run().send(vk.comment(1, 5001, t))
    run.send(vk.delete(1, 5001), received_at=t + 120)
    assert [r.outcome for r in run.tick(t + 120 + W + 1)] == ["withdrawn"]
    fresh = ResponseEngine(run.reg.page)
    fresh.load_page(f"vk:{G}", run.engine.dump_page(f"vk:{G}"))
    fresh.watermark = run.engine.watermark
    run.engine = fresh
    assert run.tick(t + 3 * W) == []
    assert run.engine.open_items(f"vk:{G}") == []
    run.send(vk.restore(1, 5001, t), received_at=t + 4 * W)
    assert [v.item for v in run.engine.open_items(f"vk:{G}")] == [item(1)]
    run.send(vk.comment(2, -G, t + 5 * W, parents=(1,), to_comment=1, to_user=5001))
    final = run.final()[item(1)]
    assert (final.outcome, final.closed_at, final.version) == ("answered", t + 5 * W, 2)


def test_an_item_that_arrives_after_the_tick_that_would_drop_its_reply_is_answered() -> None:
    """The reply came first and answered nothing (an orphan); ticks went past its window; the item it
    answers (found by a catch-up, say) arrives afterwards."""
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run()
    run.send(vk.comment(2, -G, t + 60, parents=(1,), to_comment=1, to_user=5001))
    for now in range(t + 120, t + 4 * W, 60):
        assert run.tick(now) == []  # the timer runs on; each tick prunes what its window no longer needs
    run.send(vk.comment(1, 5001, t), received_at=t + 4 * W)
    final = run.final()[item(1)]
    assert (final.outcome, final.closed_at, final.version) == ("answered", t + 60, 1)


def test_a_reply_that_answered_an_item_in_its_window_is_not_kept_beyond_it() -> None:
    """Only orphans are kept past the window: a reply that answered an item is forgotten after it, so
    memory grows with the replies that answered nothing, not with every reply."""
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run().send(vk.comment(1, 5001, t))
    run.send(vk.comment(2, -G, t + 60, parents=(1,), to_comment=1, to_user=5001))  # answers 1
    run.send(vk.comment(3, -G, t + 70, parents=(9,), to_comment=9, to_user=5009))  # 9 not seen: an orphan
    run.tick(t + 3 * W)
    kept = [r.item for replies in run.engine.pages[f"vk:{G}"].replies.values() for r in replies]
    assert kept == [item(3)]


def test_an_orphan_reply_is_forgotten_at_the_retention_horizon() -> None:
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run(retention_s=86400)
    run.send(vk.comment(2, -G, t + 60, parents=(1,), to_comment=1, to_user=5001))
    run.tick(t + 86400)
    assert run.engine.pages[f"vk:{G}"].replies  # still kept: an item it answers may still come
    run.tick(t + 60 + 86400 + 60)
    assert not run.engine.pages[f"vk:{G}"].replies
    assert not run.engine.pages[f"vk:{G}"].reply_ids
