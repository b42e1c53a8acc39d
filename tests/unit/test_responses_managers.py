"""A page's VK managers: their replies are the page's while their role lasts (docs/responses.md,
"Page replies"). Bodies go through the real normalizer; pages come from the real registry."""

from __future__ import annotations

import orjson
import pytest

from otklik.agents.ingest.vk import NormalizeError, normalize_vk, officers_edit
from otklik.agents.responses.engine import ResponseEngine
from otklik.schemas.managers import ManagerChange, ManagerList, decode_manager_record, encode_manager_record
from tests.unit.test_responses import PAGE, VK, Run, at, item

SMM = 6001  # the new SMM specialist's personal account: not in the registry's administrators
CITIZEN = 5001


def officers_edit_body(vk: VK, user: int, old: int, new: int) -> dict:
    return vk._env("group_officers_edit", {"admin_id": 1, "user_id": user, "level_old": old, "level_new": new})


def apply(run: Run, body: dict, received_at: int) -> None:
    assert normalize_vk(body, received_at) == []  # a role change is no interaction
    change = officers_edit(body, received_at)
    assert change is not None
    run.engine.apply_managers(change)


def test_a_manager_added_mid_day_answers_for_the_page_only_after_it() -> None:
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run().send(vk.comment(1, CITIZEN, t))
    # Before the role: a citizen's comment in the thread, which waits for an answer itself.
    run.send(vk.comment(2, SMM, t + 1800, parents=(1,), to_comment=1, to_user=CITIZEN))
    apply(run, officers_edit_body(vk, SMM, 0, 2), t + 7200)
    # After it: the page's answer.
    run.send(vk.comment(3, SMM, t + 9000, parents=(1,), to_comment=1, to_user=CITIZEN))
    final = run.final()
    first = final[item(1)]
    assert (first.outcome, first.responder, first.closed_at) == ("answered", f"vk:user:{SMM}", t + 9000)
    assert final[item(2)].author == f"vk:user:{SMM}"  # counted as a citizen's item
    assert final[item(2)].outcome != "answered"
    assert item(3) not in final  # the page's reply is not an item


def test_a_reply_written_before_the_role_but_received_after_it_is_still_a_citizens() -> None:
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run().send(vk.comment(1, CITIZEN, t))
    apply(run, officers_edit_body(vk, SMM, 0, 1), t + 3600)
    run.send(vk.comment(2, SMM, t + 1800, parents=(1,), to_comment=1, to_user=CITIZEN), received_at=t + 3700)
    final = run.final()
    assert final[item(1)].outcome != "answered"
    assert final[item(2)].author == f"vk:user:{SMM}"


def test_after_the_role_ends_their_replies_are_a_citizens_again() -> None:
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run()
    apply(run, officers_edit_body(vk, SMM, 0, 3), t - 3600)
    apply(run, officers_edit_body(vk, SMM, 3, 0), t + 600)
    run.send(vk.comment(1, CITIZEN, t))
    run.send(vk.comment(2, SMM, t + 300, parents=(1,), to_comment=1, to_user=CITIZEN))
    run.send(vk.comment(3, CITIZEN, t + 900, post=89))
    run.send(vk.comment(4, SMM, t + 1200, post=89, parents=(3,), to_comment=3, to_user=CITIZEN))
    final = run.final()
    assert final[item(1)].outcome == "answered"  # while a manager
    assert item(2) not in final
    assert final[item(3, post=89)].outcome != "answered"  # no longer one
    assert final[item(4, post=89)].author == f"vk:user:{SMM}"


def test_a_level_change_between_roles_changes_nothing() -> None:
    vk = VK()
    assert officers_edit(officers_edit_body(vk, SMM, 1, 3), 100) is None
    assert officers_edit(vk.comment(1, CITIZEN, 100), 100) is None
    change = officers_edit(officers_edit_body(vk, SMM, 0, 1), 100)
    assert change == ManagerChange(PAGE, f"vk:user:{SMM}", True, 100, "callback", 1, f"e{vk.n}")


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"user_id": SMM, "level_old": 0}, "object.level_new: missing"),
        ({"user_id": SMM, "level_old": 0, "level_new": 7}, "object.level_new: expected 0 to 3"),
        ({"user_id": "6001", "level_old": 0, "level_new": 1}, "object.user_id: expected an integer"),
    ],
)
def test_a_malformed_officers_edit_is_rejected_naming_the_field(obj: dict, reason: str) -> None:
    body = VK()._env("group_officers_edit", obj)
    with pytest.raises(NormalizeError, match=reason):
        officers_edit(body, 100)


def test_a_complete_list_begins_and_ends_roles() -> None:
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run()
    other = 6002
    assert run.engine.apply_managers(ManagerList(PAGE, [f"vk:user:{SMM}"], t - 60)) == [f"vk:user:{SMM}"]
    assert run.engine.apply_managers(ManagerList(PAGE, [f"vk:user:{SMM}"], t)) == []  # nothing new
    changed = run.engine.apply_managers(ManagerList(PAGE, [f"vk:user:{other}"], t + 600))
    assert changed == [f"vk:user:{other}", f"vk:user:{SMM}"]
    run.send(vk.comment(1, CITIZEN, t + 700))
    run.send(vk.comment(2, SMM, t + 800, parents=(1,), to_comment=1, to_user=CITIZEN))
    run.send(vk.comment(3, other, t + 900, parents=(1,), to_comment=1, to_user=CITIZEN))
    final = run.final()
    assert (final[item(1)].outcome, final[item(1)].responder) == ("answered", f"vk:user:{other}")
    assert final[item(2)].author == f"vk:user:{SMM}"


def test_a_page_without_rules_keeps_no_managers() -> None:
    reg = Run().reg

    def registered_only(page: str):  # type: ignore[no-untyped-def]
        config = reg.get(page)
        if config is None:
            raise LookupError(page)
        return config

    engine = ResponseEngine(registered_only)
    assert engine.apply_managers(ManagerChange("vk:999", f"vk:user:{SMM}", True, 100)) == []
    assert "vk:999" not in engine.pages
    assert engine.apply_managers(ManagerChange(PAGE, f"vk:user:{SMM}", True, 100)) == [f"vk:user:{SMM}"]


def _engine_with_managers() -> tuple[Run, int]:
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run().send(vk.comment(1, CITIZEN, t))
    apply(run, officers_edit_body(vk, SMM, 0, 2), t + 60)
    apply(run, officers_edit_body(vk, SMM, 2, 0), t + 120)
    apply(run, officers_edit_body(vk, SMM, 0, 1), t + 180)
    return run, t


def test_managers_survive_a_restart_from_a_whole_page_dump() -> None:
    run, t = _engine_with_managers()
    data = run.engine.dump_page(PAGE)
    assert orjson.loads(data)["managers"] == {f"vk:user:{SMM}": [[t + 60, t + 120], [t + 180, None]]}
    fresh = ResponseEngine(run.reg.page)
    fresh.load_page(PAGE, data)
    assert fresh.dump_page(PAGE) == data
    assert fresh.pages[PAGE].managers == run.engine.pages[PAGE].managers


def test_managers_survive_a_restart_from_pieces() -> None:
    run, _ = _engine_with_managers()
    pieces, _ = run.engine.page_pieces(PAGE, full=True)  # type: ignore[misc]
    fresh = ResponseEngine(run.reg.page)
    fresh.load_pieces(PAGE, pieces)
    assert fresh.pages[PAGE].managers == run.engine.pages[PAGE].managers
    # A later change goes out in the "s" piece.
    run.engine.apply_managers(ManagerChange(PAGE, "vk:user:6009", True, 10**9))
    later, _ = run.engine.page_pieces(PAGE)  # type: ignore[misc]
    assert [slot for slot, _ in later] == ["s"]


def test_a_state_saved_before_managers_were_kept_loads_without_them() -> None:
    vk, t = VK(), at("2025-11-26T10:00")
    run = Run().send(vk.comment(1, CITIZEN, t))
    data = run.engine.dump_page(PAGE)
    assert b'"managers"' not in data  # a page with none saves what it saved before
    fresh = ResponseEngine(run.reg.page)
    fresh.load_page(PAGE, data)
    assert fresh.pages[PAGE].managers == {}


def test_records_round_trip_and_are_checked() -> None:
    for record in (ManagerChange(PAGE, "vk:user:1", False, 5, "cli"), ManagerList(PAGE, ["vk:user:1"], 5)):
        assert decode_manager_record(encode_manager_record(record)) == record
    with pytest.raises(ValueError, match="user"):
        decode_manager_record(b'{"kind":"change","page":"vk:1","manager":true,"at":1}')
