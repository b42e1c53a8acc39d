"""The notifier: planning, Russian text, dedupe, hold until working hours, retries, the journal, and the
Telegram / MAX / SMTP senders against local servers on loopback that check their requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from otklik.agents.registry import Registry
from otklik.streams.notify.notifier import (
    Backlog,
    Journal,
    Notifier,
    NotifierSettings,
    PageFacts,
    compose,
    format_duration,
    plan,
    plural,
    senders_from,
)
from otklik.streams.notify.senders import MaxSender, Message, PermanentError, SmtpSender, TelegramSender, TransientError

REGISTRY = """
defaults:
  timezone: Europe/Moscow
pages:
  - id: vk:1
    title: Школа № 1
    schedule: {mon-sun: "00:00-24:00"}
    calendar: none
    deadline: 8h working
    contacts: [{name: Анна, email: anna@school1.ru, telegram: "123456"}]
    supervisors: [{name: Начальник, email: boss@edu.ru}]
  - id: vk:2
    title: Библиотека
    timezone: Asia/Novosibirsk
    deadline: 4h working
    contacts: [{email: lib@library.ru}]
    supervisors: [{email: culture@nso.ru}]
  - id: vk:3
    title: Без контактов
"""
# Saturday 2026-11-28 12:00 in Novosibirsk: the library (Mon–Fri 09–18, Russian calendar) is closed.
SATURDAY_NSK = int(datetime(2026, 11, 28, 12, 0, tzinfo=ZoneInfo("Asia/Novosibirsk")).timestamp())
MONDAY_9_NSK = int(datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo("Asia/Novosibirsk")).timestamp())


def payload(
    status: str,
    alertname: str,
    page: str,
    audience: str = "administrators",
    *,
    starts: str = "2026-11-28T05:00:00Z",
    hold: bool = False,
    ratio: float = 1.0,
) -> dict[str, Any]:
    labels = {"alertname": alertname, "audience": audience, "page": page, "platform": "vk"}
    if hold:
        labels["hold"] = "working_hours"
    return {
        "version": "4",
        "status": status,
        "receiver": "notifier",
        "groupKey": f'{{}}/{{audience="{audience}"}}:{{alertname="{alertname}", page="{page}"}}',
        "groupLabels": {"alertname": alertname, "page": page},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://am",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"deadline_ratio": str(ratio)},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"fp-{page}-{alertname}",
            }
        ],
    }


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY, encoding="utf-8")
    return path


@pytest.fixture
def reg(registry_file: Path) -> Registry:
    from otklik.agents.registry import load_registry

    return load_registry(registry_file)


# ---- Russian text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "word"),
    [
        (1, "сообщение"),
        (2, "сообщения"),
        (4, "сообщения"),
        (5, "сообщений"),
        (11, "сообщений"),
        (12, "сообщений"),
        (21, "сообщение"),
        (22, "сообщения"),
        (111, "сообщений"),
        (0, "сообщений"),
    ],
)
def test_plural(n: int, word: str) -> None:
    assert plural(n, "сообщение", "сообщения", "сообщений") == word


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(8100, "2 ч 15 мин"), (28800, "8 ч"), (60, "1 мин"), (119, "1 мин"), (59, "меньше минуты"), (90000, "25 ч")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=60, max_value=10**7))
def test_format_duration_round_trips_to_whole_minutes(seconds: int) -> None:
    text = format_duration(seconds)
    parts = text.split()
    hours = int(parts[0]) if parts[1] == "ч" else 0
    minutes = int(parts[-2]) if parts[-1] == "мин" else 0
    assert hours * 3600 + minutes * 60 == seconds // 60 * 60


def test_compose_names_page_count_working_age_against_deadline_and_link() -> None:
    facts = PageFacts("vk:1", "Школа № 1", 8 * 3600, True)
    backlog = Backlog(open_items=3, oldest_age_s=8100, link="https://vk.com/wall-1_88?reply=1024")
    message = compose("OtklikPageDeadlinePassed", "firing", facts, backlog)
    assert message is not None
    assert message.subject == "«Школа № 1»: срок ответа прошёл"
    assert "ждут ответа 3 сообщения" in message.text
    assert "2 ч 15 мин рабочего времени из 8 ч" in message.text
    assert "https://vk.com/wall-1_88?reply=1024" in message.text


def test_compose_calendar_deadline_does_not_say_working_time() -> None:
    facts = PageFacts("vk:1", "Школа", 24 * 3600, False)
    message = compose("OtklikPageDeadlineNear", "firing", facts, Backlog(1, 20 * 3600, None))
    assert message is not None and "20 ч из 24 ч" in message.text and "рабочего" not in message.text
    assert "vk:1" in message.text  # no link: the page id at least


def test_resolved_is_announced_only_when_the_worker_confirms_nothing_is_overdue() -> None:
    facts = PageFacts("vk:1", "Школа", 3600, True)
    assert compose("OtklikPageDeadlinePassed", "resolved", facts, Backlog(0, None, None)) is not None
    assert compose("OtklikPageDeadlinePassed", "resolved", facts, Backlog(2, 600, "l")) is not None
    assert compose("OtklikPageDeadlinePassed", "resolved", facts, Backlog(2, 4000, "l")) is None  # still overdue
    assert compose("OtklikPageDeadlinePassed", "resolved", facts, Backlog(None, None, None)) is None  # worker away
    assert compose("OtklikPageDeadlineNear", "resolved", facts, Backlog(0, None, None)) is None


# ---- planning ------------------------------------------------------------------------------------------


def test_plan_sends_administrator_alerts_to_the_page_contacts_on_each_channel(reg: Registry) -> None:
    notices = plan(payload("firing", "OtklikPageDeadlinePassed", "vk:1"), reg.get, SATURDAY_NSK)
    assert sorted(n.recipient for n in notices) == [("email", "anna@school1.ru"), ("telegram", "123456")]
    assert all(n.not_before == SATURDAY_NSK for n in notices)  # firing page alerts are not held


def test_plan_sends_supervisor_alerts_to_supervisors_only(reg: Registry) -> None:
    notices = plan(payload("firing", "OtklikPageDeadlineLongPast", "vk:1", "supervisors"), reg.get, SATURDAY_NSK)
    assert [n.recipient for n in notices] == [("email", "boss@edu.ru")]


def test_plan_ignores_unknown_pages_pages_without_contacts_and_operations_alerts(reg: Registry) -> None:
    assert plan(payload("firing", "OtklikPageDeadlinePassed", "vk:999"), reg.get, SATURDAY_NSK) == []
    assert plan(payload("firing", "OtklikPageDeadlinePassed", "vk:3"), reg.get, SATURDAY_NSK) == []
    assert plan(payload("firing", "OtklikWorkerDown", "vk:1", "operations"), reg.get, SATURDAY_NSK) == []
    with pytest.raises(ValueError):
        plan({"status": "firing"}, reg.get, SATURDAY_NSK)


def test_notices_that_may_wait_are_held_until_the_pages_next_working_minute(reg: Registry) -> None:
    held = plan(
        payload("firing", "OtklikPageDeadlineLongPast", "vk:2", "supervisors", hold=True), reg.get, SATURDAY_NSK
    )
    assert [n.not_before for n in held] == [MONDAY_9_NSK]
    resolved = plan(payload("resolved", "OtklikPageDeadlinePassed", "vk:2"), reg.get, SATURDAY_NSK)
    assert [n.not_before for n in resolved] == [MONDAY_9_NSK]
    # A 24/7 page without a calendar is always working: nothing waits.
    assert [
        n.not_before for n in plan(payload("resolved", "OtklikPageDeadlinePassed", "vk:1"), reg.get, SATURDAY_NSK)
    ] == [SATURDAY_NSK, SATURDAY_NSK]


# ---- the service with fake channels and a fake worker ---------------------------------------------------


class FakeSender:
    def __init__(self, channel: str, failures: list[Exception] | None = None) -> None:
        self.channel = channel
        self.sent: list[tuple[str, Message]] = []
        self.failures = list(failures or [])
        self.attempts = 0

    async def send(self, address: str, message: Message) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((address, message))

    async def close(self) -> None:
        return None


class World:
    """A notifier on a fake clock, with fake senders and a fake worker read API."""

    def __init__(
        self,
        notifier: Notifier,
        client: TestClient,
        email: FakeSender,
        telegram: FakeSender,
        clock: list[float],
        backlog: dict[str, Any],
    ) -> None:
        self.notifier, self.client, self.email, self.telegram = notifier, client, email, telegram
        self.clock, self.backlog = clock, backlog

    async def post(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self.client.post("/alertmanager", data=json.dumps(body))
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def deliver(self) -> int:
        return await self.notifier.run_once()


async def make_world(
    registry_file: Path, data_dir: Path, email_failures: list[Exception] | None = None, start: float = SATURDAY_NSK
) -> AsyncIterator[World]:
    backlog: dict[str, Any] = {
        "vk:1": {
            "page": "vk:1",
            "title": "Школа № 1",
            "deadline": "8h working",
            "open_items": 2,
            "items": [
                {
                    "item": "vk:1:wall:88:1024",
                    "age_s": 30000,
                    "business_age_s": 30000,
                    "link": "https://vk.com/wall-1_88?reply=1024",
                }
            ],
        },
    }

    async def read_api(request: web.Request) -> web.Response:
        page = request.match_info["page"]
        assert request.query["limit"] == "1"
        return web.json_response(backlog.get(page, {"page": page, "open_items": 0, "items": []}))

    worker = web.Application()
    worker.router.add_get("/api/pages/{page}/open-items", read_api)
    worker_server = TestServer(worker)
    await worker_server.start_server()
    clock = [float(start)]
    email, telegram = FakeSender("email", email_failures), FakeSender("telegram")
    settings = NotifierSettings(
        registry=registry_file,
        worker_url=str(worker_server.make_url("")),
        data_dir=data_dir,
        backoff_s=10,
        max_attempts=3,
        dedupe_window_s=3600,
    )
    notifier = Notifier(settings, {"email": email, "telegram": telegram}, clock=lambda: clock[0], background=False)
    client = TestClient(TestServer(notifier.app()))
    await client.start_server()
    try:
        yield World(notifier, client, email, telegram, clock, backlog)
    finally:
        await client.close()
        await worker_server.close()


@pytest.fixture
async def world(registry_file: Path, tmp_path: Path) -> AsyncIterator[World]:
    async for w in make_world(registry_file, tmp_path / "data"):
        yield w


async def test_webhook_sends_one_russian_email_with_link_and_a_redelivery_sends_nothing(world: World) -> None:
    firing = payload("firing", "OtklikPageDeadlinePassed", "vk:1")
    assert (await world.post(firing))["queued"] == 2
    await world.deliver()
    assert len(world.email.sent) == 1 and len(world.telegram.sent) == 1
    address, message = world.email.sent[0]
    assert address == "anna@school1.ru"
    assert message.subject == "«Школа № 1»: срок ответа прошёл"
    assert "ждут ответа 2 сообщения" in message.text
    assert "8 ч 20 мин рабочего времени из 8 ч" in message.text
    assert "https://vk.com/wall-1_88?reply=1024" in message.text
    # Alertmanager redelivers the same webhook (it timed out waiting for us): nothing new.
    world.clock[0] += 30
    assert (await world.post(firing))["duplicates"] == 2
    await world.deliver()
    assert len(world.email.sent) == 1
    # After the dedupe window, the same group is Alertmanager's reminder (its repeat interval): sent again.
    world.clock[0] += 4 * 3600
    assert (await world.post(firing))["queued"] == 2
    await world.deliver()
    assert len(world.email.sent) == 2


async def test_resolution_is_announced_once_after_a_delivered_firing(world: World) -> None:
    await world.post(payload("firing", "OtklikPageDeadlinePassed", "vk:1"))
    await world.deliver()
    world.backlog["vk:1"] = {"page": "vk:1", "title": "Школа № 1", "open_items": 0, "items": []}
    resolved = payload("resolved", "OtklikPageDeadlinePassed", "vk:1")
    assert (await world.post(resolved))["queued"] == 2
    await world.deliver()
    subjects = [m.subject for _, m in world.email.sent]
    assert subjects == ["«Школа № 1»: срок ответа прошёл", "«Школа № 1»: просроченных сообщений больше нет"]
    await world.post(resolved)
    await world.deliver()
    assert len(world.email.sent) == 2


async def test_a_resolved_group_never_announced_as_firing_stays_silent(world: World) -> None:
    assert (await world.post(payload("resolved", "OtklikPageDeadlinePassed", "vk:1")))["queued"] == 0
    await world.deliver()
    assert world.email.sent == []


async def test_held_notice_resolved_before_working_hours_is_dropped_with_its_resolution(world: World) -> None:
    await world.post(payload("firing", "OtklikPageDeadlineLongPast", "vk:2", "supervisors", hold=True))
    assert await world.deliver() == 0  # Saturday: held
    assert len(world.notifier.journal.pending) == 1
    await world.post(payload("resolved", "OtklikPageDeadlineLongPast", "vk:2", "supervisors", hold=True))
    world.clock[0] = MONDAY_9_NSK + 1
    await world.deliver()
    assert world.email.sent == [] and world.notifier.journal.pending == {}


async def test_held_notice_goes_out_at_the_pages_next_working_minute(world: World) -> None:
    await world.post(payload("firing", "OtklikPageDeadlineLongPast", "vk:2", "supervisors", hold=True))
    world.clock[0] = MONDAY_9_NSK - 60
    assert await world.deliver() == 0
    world.clock[0] = MONDAY_9_NSK
    assert await world.deliver() == 1
    assert [a for a, _ in world.email.sent] == ["culture@nso.ru"]
    assert "вдвое дольше срока" in world.email.sent[0][1].subject


async def test_transient_failures_are_retried_with_backoff_then_given_up(registry_file: Path, tmp_path: Path) -> None:
    failures: list[Exception] = [TransientError("421 try later")] * 5
    async for w in make_world(registry_file, tmp_path / "data", email_failures=failures):
        await w.post(payload("firing", "OtklikPageDeadlinePassed", "vk:1"))
        await w.deliver()
        assert w.email.attempts == 1
        await w.deliver()  # too early for the retry
        assert w.email.attempts == 1
        w.clock[0] += 13  # first backoff: 10 s ± 20 %
        await w.deliver()
        assert w.email.attempts == 2
        w.clock[0] += 15  # second: 20 s ± 20 % (16 to 24 s) is not due yet
        await w.deliver()
        assert w.email.attempts == 2
        w.clock[0] += 10  # 25 s after the second attempt: due whatever the jitter
        await w.deliver()
        assert w.email.attempts == 3  # max_attempts reached: recorded as failed
        w.clock[0] += 1000
        await w.deliver()
        assert w.email.attempts == 3 and w.email.sent == []
        events = [json.loads(line) for line in (tmp_path / "data" / "deliveries.jsonl").read_text().splitlines()]
        failed = [e for e in events if e["event"] == "failed"]
        assert [(e["channel"], e["address"], e["attempts"]) for e in failed] == [("email", "anna@school1.ru", 3)]


async def test_a_permanent_failure_is_recorded_at_once(registry_file: Path, tmp_path: Path) -> None:
    async for w in make_world(registry_file, tmp_path / "data", email_failures=[PermanentError("550 no such user")]):
        await w.post(payload("firing", "OtklikPageDeadlinePassed", "vk:1"))
        await w.deliver()
        w.clock[0] += 10_000
        await w.deliver()
        assert w.email.attempts == 1
        assert w.notifier.journal.pending == {}


async def test_the_journal_records_who_got_what_and_survives_a_restart(registry_file: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    async for w in make_world(registry_file, data):
        await w.post(payload("firing", "OtklikPageDeadlinePassed", "vk:1"))
        await w.post(payload("firing", "OtklikPageDeadlineLongPast", "vk:2", "supervisors", hold=True))
        await w.deliver()  # vk:1 sent; vk:2 held till Monday
    events = [json.loads(line) for line in (data / "deliveries.jsonl").read_text().splitlines()]
    sent = {(e["channel"], e["address"]) for e in events if e["event"] == "sent"}
    assert sent == {("email", "anna@school1.ru"), ("telegram", "123456")}
    assert all(e["subject"] for e in events if e["event"] == "sent")
    # A new process: the held notice is still pending, the sent ones are not sent again.
    async for w in make_world(registry_file, data, start=SATURDAY_NSK + 60):
        assert [p.notice.address for p in w.notifier.journal.pending.values()] == ["culture@nso.ru"]
        assert (await w.post(payload("firing", "OtklikPageDeadlinePassed", "vk:1")))["duplicates"] == 2
        await w.deliver()
        assert w.email.sent == []
        w.clock[0] = MONDAY_9_NSK
        await w.deliver()
        assert [a for a, _ in w.email.sent] == ["culture@nso.ru"]


async def test_worker_unreachable_still_sends_with_the_alerts_own_figures(registry_file: Path, tmp_path: Path) -> None:
    async for w in make_world(registry_file, tmp_path / "data"):
        w.notifier.settings = NotifierSettings(**{**w.notifier.settings.__dict__, "worker_url": "http://127.0.0.1:9"})
        await w.post(payload("firing", "OtklikPageDeadlinePassed", "vk:1", ratio=1.25))
        await w.deliver()
        ((_, message),) = w.email.sent
        assert "10 ч рабочего времени из 8 ч" in message.text and "Страница: vk:1" in message.text


async def test_bad_webhook_is_refused(world: World) -> None:
    resp = await world.client.post("/alertmanager", data=b"{not json")
    assert resp.status == 400
    resp = await world.client.post("/alertmanager", data=json.dumps({"status": "weird", "alerts": []}))
    assert resp.status == 400


async def test_registry_is_reloaded_on_change(world: World, registry_file: Path) -> None:
    import os

    registry_file.write_text(REGISTRY.replace("anna@school1.ru", "anna.new@school1.ru"), encoding="utf-8")
    stat = registry_file.stat()
    os.utime(registry_file, (stat.st_atime, stat.st_mtime + 5))
    await world.post(payload("firing", "OtklikPageDeadlinePassed", "vk:1"))
    await world.deliver()
    assert [a for a, _ in world.email.sent] == ["anna.new@school1.ru"]


def test_journal_dedupe_window_separates_redeliveries_from_reminders() -> None:
    from dataclasses import replace

    from otklik.streams.notify.notifier import Notice

    journal = Journal(None, dedupe_window_s=100)
    first = Notice("k", "g", "vk:1", "A", "firing", "administrators", "email", "a@b.ru", None, 0, 1000, "e")
    assert journal.queue(first)
    assert not journal.queue(replace(first, queued_at=1099))  # a redelivery
    assert journal.queue(replace(first, queued_at=1100))  # a reminder
    resolved = replace(first, key="r", status="resolved")
    assert journal.queue(resolved)
    assert not journal.queue(replace(resolved, queued_at=10**6))  # announced once, ever


# ---- senders against local servers that check the requests --------------------------------------------


async def serve(handler: Any, path: str) -> TestServer:
    app = web.Application()
    app.router.add_post(path, handler)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_telegram_sender_posts_send_message_with_its_token() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        assert request.match_info["token"] == "bot42:SECRET"
        seen.append(await request.json())
        return web.json_response({"ok": True, "result": {"message_id": 1}})

    server = await serve(handler, "/{token}/sendMessage")
    sender = TelegramSender("42:SECRET", str(server.make_url("")))
    try:
        await sender.send("123456", Message("Тема", "Текст со ссылкой"))
    finally:
        await sender.close()
        await server.close()
    assert seen == [{"chat_id": "123456", "text": "Тема\n\nТекст со ссылкой", "disable_web_page_preview": True}]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, {"ok": False, "description": "Too Many Requests", "parameters": {"retry_after": 7}}, TransientError),
        (502, {"ok": False}, TransientError),
        (400, {"ok": False, "description": "Bad Request: chat not found"}, PermanentError),
        (403, {"ok": False, "description": "Forbidden: bot was blocked by the user"}, PermanentError),
    ],
)
async def test_telegram_errors_are_sorted_into_transient_and_permanent(status: int, body: dict, error: type) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    server = await serve(handler, "/{token}/sendMessage")
    sender = TelegramSender("1:x", str(server.make_url("")))
    try:
        with pytest.raises(error) as caught:
            await sender.send("1", Message("s", "t"))
    finally:
        await sender.close()
        await server.close()
    if status == 429:
        assert caught.value.retry_after == 7  # type: ignore[attr-defined]


async def test_max_sender_posts_messages_with_authorization_header() -> None:
    seen: list[tuple[dict[str, str], str | None, dict[str, Any]]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((dict(request.query), request.headers.get("Authorization"), await request.json()))
        return web.json_response({"message": {"body": {"mid": "m1"}}})

    server = await serve(handler, "/messages")
    sender = MaxSender("max-token", str(server.make_url("")))
    try:
        await sender.send("5001", Message("Тема", "Текст"))
        await sender.send("chat:-77", Message("Тема", "Текст"))
    finally:
        await sender.close()
        await server.close()
    assert seen == [
        ({"user_id": "5001"}, "max-token", {"text": "Тема\n\nТекст", "notify": True}),
        ({"chat_id": "-77"}, "max-token", {"text": "Тема\n\nТекст", "notify": True}),
    ]


async def test_max_sender_unreachable_is_transient() -> None:
    sender = MaxSender("t", "http://127.0.0.1:9")
    try:
        with pytest.raises(TransientError):
            await sender.send("1", Message("s", "t"))
    finally:
        await sender.close()


async def test_smtp_sender_delivers_utf8_mail_to_a_local_server() -> None:
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port

    received: list[Any] = []

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
            if address.endswith("@nowhere.invalid"):
                return "550 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sender = SmtpSender("127.0.0.1", port, "otklik@example.ru")
        await sender.send("anna@school1.ru", Message("«Школа № 1»: срок ответа прошёл", "Самое старое ждёт 2 ч 15 мин"))
        with pytest.raises(PermanentError):
            await sender.send("ghost@nowhere.invalid", Message("s", "t"))
    finally:
        controller.stop()
    from email import message_from_bytes
    from email.header import decode_header, make_header
    from email.policy import default

    (envelope,) = received
    assert envelope.rcpt_tos == ["anna@school1.ru"] and envelope.mail_from == "otklik@example.ru"
    mail = message_from_bytes(envelope.content, policy=default)
    assert str(make_header(decode_header(mail["Subject"]))) == "«Школа № 1»: срок ответа прошёл"
    assert "Самое старое ждёт 2 ч 15 мин" in mail.get_content()


async def test_smtp_sender_connection_refused_is_transient() -> None:
    from tests.conftest import free_port

    with pytest.raises(TransientError):
        await SmtpSender("127.0.0.1", free_port(), timeout=2).send("a@b.ru", Message("s", "t"))


def test_settings_from_env() -> None:
    settings = NotifierSettings.from_env(
        {
            "OTKLIK_SMTP_HOST": "mail",
            "OTKLIK_SMTP_PORT": "2525",
            "OTKLIK_SMTP_FROM": "x@y.ru",
            "OTKLIK_WORKER_URL": "http://w:6066",
            "OTKLIK_SMTP_STARTTLS": "true",
            "OTKLIK_TELEGRAM_TOKEN": "t",
        }
    )
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_from) == ("mail", 2525, "x@y.ru")
    assert settings.smtp_starttls is True and settings.worker_url == "http://w:6066"
    assert sorted(senders_from(settings)) == ["email", "telegram"]
    with pytest.raises(Exception, match="OTKLIK_SMTP_PORT"):
        NotifierSettings.from_env({"OTKLIK_SMTP_PORT": "many"})


def test_compose_offensive_content_asks_for_removal_and_says_nothing_when_resolved() -> None:
    facts = PageFacts("vk:1", "Школа № 1", 8 * 3600, True)
    message = compose("OtklikOffensiveContentVisible", "firing", facts, Backlog(3, 8100, None))
    assert message is not None
    assert "«Школа № 1»" in message.subject and "модерации" in message.subject
    assert "Удалите" in message.text and "ждут ответа" not in message.text
    assert compose("OtklikOffensiveContentVisible", "resolved", facts, Backlog(0, None, None)) is None
