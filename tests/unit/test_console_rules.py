"""The console's pure rules (agents/console/rules.py) and its signed sessions (streams/console/auth.py)."""

from __future__ import annotations

import re

import pytest

from otklik.agents.console.rules import DisputeError, SignInLimiter, Viewer, decide, explain, share_used
from otklik.agents.registry import Registry
from otklik.streams.console.auth import Session, SessionSigner, hash_password, verify_password

MONDAY_9 = 1_764_568_800  # 2025-12-01 09:00 Moscow, a Monday


def test_each_role_sees_what_it_should() -> None:
    curator = Viewer("c", "curator", municipalities=frozenset({"Тара"}))
    admin = Viewer("a", "page_admin", pages=frozenset({"vk:1"}))
    assert curator.may_see("vk:9", "Тара") and not curator.may_see("vk:1", "Омск")
    assert admin.may_see("vk:1", "Омск") and not admin.may_see("vk:2", "Омск")
    assert Viewer("o", "operator").may_see("vk:2", "Омск") and Viewer("n", "analyst").may_see("vk:2", "Омск")
    assert [(v.may_correct, v.may_dispute, v.may_decide) for v in (Viewer("o", "operator"), curator, admin)] == [
        (True, False, True),
        (True, False, False),
        (False, True, False),
    ]
    analyst = Viewer("n", "analyst")
    assert not (analyst.may_correct or analyst.may_dispute or analyst.may_decide)


def test_urgency_is_the_share_of_the_deadline_used_in_working_time() -> None:
    registry = Registry.from_mapping(
        {
            "defaults": {"timezone": "Europe/Moscow", "schedule": {"mon-fri": "09:00-18:00"}},
            "pages": [{"id": "vk:1", "deadline": "4h working"}, {"id": "vk:2", "deadline": "8h working"}],
        }
    )
    short, long = registry.page("vk:1"), registry.page("vk:2")
    now = MONDAY_9 + 2 * 3600
    assert share_used(short.deadline, short.clock, MONDAY_9, now) == 0.5
    assert share_used(long.deadline, long.clock, MONDAY_9, now) == 0.25
    # Written on Saturday: nothing is used before Monday's working hours begin.
    assert share_used(short.deadline, short.clock, MONDAY_9 - 2 * 86400, MONDAY_9) == 0
    # A full working day later the 4-hour item is overdue.
    assert share_used(short.deadline, short.clock, MONDAY_9, MONDAY_9 + 9 * 3600) == 9 / 4


def test_a_dispute_is_decided_once() -> None:
    assert decide("open", "accept") == "accepted"
    assert decide("open", "reject") == "rejected"
    with pytest.raises(DisputeError):
        decide("accepted", "reject")
    with pytest.raises(DisputeError):
        decide("open", "maybe")


def test_ten_wrong_passwords_lock_the_login_and_the_address_for_a_while() -> None:
    limiter = SignInLimiter(limit=10, lockout=900)
    keys = SignInLimiter.keys("Petrova", "10.0.0.1")
    for attempt in range(9):
        limiter.failed(keys, 100 + attempt)
    assert not limiter.refused(keys, 110)
    limiter.failed(keys, 110)
    assert limiter.refused(keys, 111)
    assert limiter.refused(SignInLimiter.keys("petrova", "10.9.9.9"), 111)  # the login, from anywhere
    assert limiter.refused(SignInLimiter.keys("other", "10.0.0.1"), 111)  # the address, for any login
    assert not limiter.refused(keys, 110 + 900)
    # A right password resets the count.
    other = SignInLimiter.keys("ivanov", "10.0.0.2")
    for _ in range(9):
        limiter.failed(other, 200)
    limiter.succeeded(other)
    limiter.failed(other, 201)
    assert not limiter.refused(other, 202)


def test_sessions_are_signed_and_expire() -> None:
    signer = SessionSigner(b"s" * 32, max_age=3600)
    session = Session.signed_in("petrova", 1000, "stamp")
    value = signer.dumps(session)
    assert signer.loads(value, 1500) == session
    assert signer.loads(value, 1000 + 3601) is None
    payload, mac = value.split(".")
    assert signer.loads(payload[:-2] + "AA." + mac, 1500) is None
    assert SessionSigner(b"t" * 32, max_age=3600).loads(value, 1500) is None
    assert signer.loads("garbage", 1500) is None
    assert session.csrf_matches(session.csrf) and not session.csrf_matches("x") and not session.csrf_matches(None)


def test_passwords_are_hashed_with_argon2() -> None:
    stored = hash_password("секрет-12345")
    assert stored.startswith("$argon2id$") and "секрет" not in stored
    assert verify_password(stored, "секрет-12345")
    assert not verify_password(stored, "секрет-12346")
    assert not verify_password(None, "секрет-12345")


def test_the_console_loads_nothing_from_elsewhere() -> None:
    # Scripts, styles and images come from the console itself; the only outside links are the items'
    # and pages' own addresses on their platforms (values, never literals in a template).
    from pathlib import Path

    import otklik.streams.console as console

    folder = Path(console.__file__).parent
    files = [*folder.glob("templates/*.html"), *folder.glob("static/*")]
    assert len(files) > 5
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href|action)\s*=\s*["']?(https?:)?//""", text), path.name
        assert "@import" not in text and "url(http" not in text, path.name


def test_the_judgement_names_the_outcomes_rule_and_how_it_stands_against_the_deadline() -> None:
    late_answer = explain("answered", True, "question", {})
    assert (late_answer.code, late_answer.rule, late_answer.deadline) == (
        "answered",
        "отвечено страницей",
        "ответ после срока: нарушение",
    )
    assert explain("answered", False, "question", {}).deadline == "ответ в срок"
    assert explain("moderated", True, None, {}).deadline == "срок прошёл до удаления: нарушение"
    # Withdrawn: a breach only when the deadline had passed at the deletion.
    assert explain("withdrawn", False, None, {"deleted_by": "vk:user:5"}).deadline == "удалено до срока: не нарушение"
    assert explain("withdrawn", True, None, {}).deadline == "срок прошёл до удаления: нарушение"
    assert explain("moderated", False, None, {}).rule == "удалено без ответа не автором"
    assert explain("expired", True, None, {}).code == "expired"
    # Open: overdue once the worker wrote it so; before that, by the console's clock.
    assert explain("open", True, None, {}).rule == "просрочено: срок прошёл без ответа"
    assert explain("open", False, None, {}).deadline == "срок ещё не прошёл"
    assert "не записал" in explain("open", False, None, {}, due_passed=True).deadline
    # No answer needed: triage's reason in words, or the correction; a reply given anyway is mentioned.
    thanks = explain("no_answer_needed", False, "gratitude", {"replied_at": 5})
    assert "благодарность" in thanks.why and "всё же ответила" in thanks.why
    assert thanks.deadline == "не оценивается по сроку"
    assert "исправлению разбора" in explain("no_answer_needed", False, "override", {}).why
