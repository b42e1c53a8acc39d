"""The response engine and what a catch-up after a gap hands it
(docs/responses.md, "Late history: catch-up after a gap"): bodies read with the VK API
(agents/ingest/vk_api_bodies.py), received long after their own times, with event ids of their own."""

from __future__ import annotations

from typing import Any

from otklik.agents.ingest.vk_api_bodies import wall_reply_body
from tests.unit.test_responses import VK, G, Run, at, item, registry

H = 3600
DEADLINE = "30m calendar"


def run() -> Run:
    return Run(registry(schedule={"mon-sun": "00:00-24:00"}, calendar="none", deadline=DEADLINE))


def api(body: dict[str, Any]) -> dict[str, Any]:
    """The same comment as the VK API gives it to a catch-up: its own event id, the API's object."""
    obj = dict(body["object"])
    return wall_reply_body(G, obj.pop("post_id"), obj)


def test_an_item_delivered_by_callback_and_again_by_catch_up_is_one_item_with_one_record() -> None:
    vk, t = VK(), at("2026-12-04T10:00")
    r = run()
    question = vk.comment(1, 5001, t)
    answer = vk.comment(2, -G, t + 600, parents=(1,), to_comment=1, to_user=5001)
    r.send(question).send(answer)
    # The catch-up of a gap that overlaps them, much later: new event ids, the same items.
    r.send(api(question), received_at=t + 2 * H).send(api(answer), received_at=t + 2 * H)
    final = r.final()
    assert [rec.item for rec in r.records] == [item(1)]
    assert (final[item(1)].outcome, final[item(1)].latency_s, final[item(1)].version) == ("answered", 600, 1)


def test_an_open_item_redelivered_by_catch_up_stays_one_item() -> None:
    vk, t = VK(), at("2026-12-04T10:00")
    r = run()
    question = vk.comment(1, 5001, t)
    r.send(question)
    r.send(api(question), received_at=t + 10 * 60)
    r.tick(t + H)
    assert [(rec.item, rec.outcome) for rec in r.records] == [(item(1), "open")]


def test_an_answer_found_by_catch_up_closes_an_item_reported_overdue_by_its_own_time() -> None:
    vk, t = VK(), at("2026-12-04T10:00")
    r = run()
    r.send(vk.comment(1, 5001, t))
    # Callbacks stop; the stream time passes the deadline: reported overdue, as the page seemed silent.
    overdue = r.tick(t + H)
    assert [(rec.outcome, rec.breached) for rec in overdue] == [("open", True)]
    # The catch-up finds the answer given in the gap, within the deadline.
    r.send(api(vk.comment(2, -G, t + 1200, parents=(1,), to_comment=1, to_user=5001)), received_at=t + 2 * H)
    final = r.final()[item(1)]
    assert (final.outcome, final.closed_at, final.latency_s, final.breached) == ("answered", t + 1200, 1200, False)
    assert final.version == 2  # after the `open` record: consumers keep the highest version


def test_an_item_and_its_answer_found_together_are_not_reported_overdue_in_between() -> None:
    vk, t = VK(), at("2026-12-04T10:00")
    r = run()
    late = t + 3 * H  # both were written in the gap; the catch-up reads them long after their deadline
    r.send(api(vk.comment(1, 5001, t)), received_at=late)
    assert r.tick(late + 1) == []  # a tick between the two bodies reports nothing yet
    r.send(api(vk.comment(2, -G, t + 900, parents=(1,), to_comment=1, to_user=5001)), received_at=late + 2)
    final = r.final()
    assert [rec.outcome for rec in r.records] == ["answered"]
    assert (final[item(1)].latency_s, final[item(1)].breached) == (900, False)


def test_an_unanswered_item_found_by_catch_up_is_reported_once_the_late_window_has_passed() -> None:
    vk, t = VK(), at("2026-12-04T10:00")
    r = run()
    late = t + 3 * H
    r.send(api(vk.comment(1, 5001, t)), received_at=late)
    assert r.tick(late + 600) == []  # the late window after its arrival, for replies read with it
    records = r.tick(late + 601)
    assert [(rec.item, rec.outcome, rec.breached) for rec in records] == [(item(1), "open", True)]
