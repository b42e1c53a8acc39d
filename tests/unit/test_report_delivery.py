"""The monthly delivery: when the rating is due, and the e-mail through a real SMTP server on loopback."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import orjson
import pytest

from otklik.agents.history.rating import ItemFacts, Month, RatingRow, rate
from otklik.agents.registry import Registry
from otklik.streams.notify.notifier import Journal
from otklik.streams.notify.senders import Message, PermanentError, TransientError
from otklik.streams.settings import NotifierSettings
from otklik.streams.store.delivery import (
    ReportDelivery,
    deliver_due,
    due_deliveries,
    run_monthly_delivery,
)
from otklik.streams.store.formats import RatingMeta
from tests.conftest import free_port

ZONE = "Europe/Moscow"
HOUR = 3600

REGISTRY = {
    "defaults": {"timezone": ZONE},
    "pages": [
        {"id": "vk:1", "title": "Школа № 1", "region": "Татарстан", "municipality": "Казань"},
        {"id": "vk:2", "title": "Библиотека", "region": "Татарстан", "municipality": "Елабуга"},
    ],
    "reports": [
        {
            "region": "Татарстан",
            "contacts": [
                {"name": "ЦУР", "email": "cur@tatar.example.ru", "telegram": "@cur_tatar"},
                {"telegram": "@no_email_here"},
            ],
        },
        {"municipality": "Казань", "by": "page", "contacts": [{"email": "mayor@kazan.example.ru"}]},
    ],
}


def at(*args: int) -> int:
    """Unix seconds of a Moscow wall-clock time."""
    return int(datetime(*args, tzinfo=ZoneInfo(ZONE)).timestamp())


@pytest.fixture
def registry() -> Registry:
    return Registry.from_mapping(REGISTRY, source="test.yaml")


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "deliveries.jsonl")


def due_at(now: int, registry: Registry, journal: Journal) -> list[ReportDelivery]:
    return due_deliveries(now, registry.defaults.clock, journal, registry.reports)


# ---- when it is due ----------------------------------------------------------------------------------


def test_due_on_the_first_working_day_from_the_start_of_work(registry: Registry, journal: Journal) -> None:
    # Tuesday 1 December 2026 is a working day; the office day starts at 09:00.
    assert due_at(at(2026, 12, 1, 8, 59), registry, journal) == []
    due = due_at(at(2026, 12, 1, 9, 0), registry, journal)
    assert [(d.month.label, d.report.scope, d.address) for d in due] == [
        ("2026-11", ("region", "Татарстан"), "cur@tatar.example.ru"),
        ("2026-11", ("municipality", "Казань"), "mayor@kazan.example.ru"),
    ]
    assert due[0].month.zone == ZONE and due[0].month.start == at(2026, 11, 1)


def test_a_holiday_first_of_the_month_moves_delivery_to_the_first_working_day(
    registry: Registry, journal: Journal
) -> None:
    # 1–8 January 2027 are public holidays, 9–10 a weekend: the first working day is Monday 11 January.
    for now in (at(2027, 1, 1, 12), at(2027, 1, 8, 12), at(2027, 1, 10, 23, 59), at(2027, 1, 11, 8, 59)):
        assert due_at(now, registry, journal) == [], datetime.fromtimestamp(now, ZoneInfo(ZONE))
    due = due_at(at(2027, 1, 11, 9, 30), registry, journal)
    assert {d.month.label for d in due} == {"2026-12"} and len(due) == 2


def test_what_a_run_could_not_send_is_still_due_later_in_the_month(registry: Registry, journal: Journal) -> None:
    assert len(due_at(at(2026, 12, 17, 15), registry, journal)) == 2
    # The month's end closes the window: in January it is December's rating that is due.
    assert due_at(at(2026, 12, 31, 23, 59), registry, journal)[0].month.label == "2026-11"


def test_the_journal_says_what_is_done(registry: Registry, journal: Journal, tmp_path: Path) -> None:
    first, second = due_at(at(2026, 12, 1, 10), registry, journal)
    journal.record(first.key, "sent", at(2026, 12, 1, 10))
    journal.record(second.key, "failed", at(2026, 12, 1, 10), reason="550 no such user")
    assert due_at(at(2026, 12, 1, 11), registry, journal) == []
    # The journal is the notifier's file: a fresh one read back from it knows the same.
    assert due_at(at(2026, 12, 2, 11), registry, Journal(tmp_path / "deliveries.jsonl")) == []
    assert len(due_at(at(2027, 1, 11, 10), registry, journal)) == 2  # next month: a new rating


def test_a_registry_without_reports_has_nothing_due(journal: Journal) -> None:
    registry = Registry.from_mapping({"pages": [{"id": "vk:1"}]})
    assert due_at(at(2026, 12, 1, 10), registry, journal) == []


def test_the_defaults_clock_decides(journal: Journal) -> None:
    # Saturday 1 August 2026 is a working day for a Monday–Saturday schedule, not for the office week.
    office = Registry.from_mapping({"defaults": {"timezone": ZONE}, "reports": REGISTRY["reports"]})
    six_days = Registry.from_mapping(
        {"defaults": {"timezone": ZONE, "schedule": {"mon-sat": "09:00-18:00"}}, "reports": REGISTRY["reports"]}
    )
    saturday = at(2026, 8, 1, 10)
    assert due_at(saturday, office, journal) == []
    assert len(due_at(saturday, six_days, journal)) == 2


# ---- sending -------------------------------------------------------------------------------------------


def month_items(month: Month) -> list[ItemFacts]:
    t = month.start + 3 * 24 * HOUR
    return [
        ItemFacts("Казань", t, "answered", False, t + HOUR, HOUR),
        ItemFacts("Казань", t, "answered", True, t + 20 * HOUR, 12 * HOUR),
        ItemFacts("Елабуга", t, "answered", False, t + HOUR, 1800),
        ItemFacts("Елабуга", t, "answered", False, t + HOUR, 2400),
        ItemFacts("Елабуга", month.end + HOUR, "answered", False, None, 60),  # next month's: not counted
    ]


@dataclass
class Ratings:
    """The store's stand-in: the rating rules over a few items, and the calls it got."""

    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def __call__(self, month: Month, by: str, where: Mapping[str, str]) -> tuple[list[RatingRow], RatingMeta]:
        self.calls.append((month.label, by, dict(where)))
        rows = rate(month_items(month), month, min_judged=2)
        meta = RatingMeta(
            month=month.label,
            zone=month.zone,
            by=by,
            min_judged=2,
            rules_version="otklik test rating-1",
            calendar_version="holidays 0.109",
            registry_digest="feedface" * 8,
            generated_at=datetime(2026, 12, 1, 7, 0, tzinfo=UTC),
        )
        return rows, meta


@dataclass
class Sink:
    host: str
    port: int
    mails: list[Any] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)


@pytest.fixture
def smtp() -> Iterator[Sink]:
    """A real SMTP server on loopback (as tests/e2e use), keeping the raw messages it accepts."""
    from aiosmtpd.controller import Controller

    sink = Sink("127.0.0.1", free_port())

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
            if address in sink.refuse:
                return "550 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            sink.mails.append(message_from_bytes(envelope.content, policy=default_policy))
            return "250 OK"

    controller = Controller(Handler(), hostname=sink.host, port=sink.port)
    controller.start()
    yield sink
    controller.stop()


def settings_for(smtp: Sink, data_dir: Path) -> NotifierSettings:
    return NotifierSettings.from_env(
        {
            "OTKLIK_SMTP_HOST": smtp.host,
            "OTKLIK_SMTP_PORT": str(smtp.port),
            "OTKLIK_SMTP_FROM": "otklik@example.ru",
            "OTKLIK_NOTIFIER_DATA_DIR": str(data_dir),
        }
    )


def attachment_of(mail: Any) -> tuple[str, bytes]:
    (part,) = list(mail.iter_attachments())
    return part.get_filename(), part.get_content()


async def test_the_rating_arrives_as_an_xlsx_attachment_once(smtp: Sink, registry: Registry, tmp_path: Path) -> None:
    settings = settings_for(smtp, tmp_path / "notifier")
    ratings = Ratings()
    now = at(2026, 12, 1, 10)
    results = await run_monthly_delivery(settings, registry, ratings, now=now)
    assert [r.result for r in results] == ["sent", "sent"]
    assert ratings.calls == [
        ("2026-11", "municipality", {"region": "Татарстан"}),
        ("2026-11", "page", {"municipality": "Казань"}),
    ]
    assert sorted(m["To"] for m in smtp.mails) == ["cur@tatar.example.ru", "mayor@kazan.example.ru"]
    mail = next(m for m in smtp.mails if m["To"] == "cur@tatar.example.ru")
    assert mail["From"] == "otklik@example.ru"
    assert mail["Subject"] == "Рейтинг за ноябрь 2026 г.: Татарстан"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "регион Татарстан" in text and "во вложении" in text
    # Казань: 1 of 2 in time; Елабуга: 2 of 2; the item of December is not November's.
    assert "из них в срок: 3 (75,0 %)" in text
    filename, content = attachment_of(mail)
    assert filename == "Рейтинг 2026-11 — Татарстан.xlsx"
    ws = openpyxl.load_workbook(io.BytesIO(content)).active
    assert ws["A1"].value.startswith("Рейтинг своевременности ответов за ноябрь 2026 г.")
    assert {ws.cell(row=r, column=2).value: ws.cell(row=r, column=1).value for r in (4, 5)} == {
        "Елабуга": 1,
        "Казань": 2,
    }

    # The journal is the notifier's deliveries.jsonl, one "sent" line per e-mail.
    lines = [orjson.loads(line) for line in (tmp_path / "notifier" / "deliveries.jsonl").read_bytes().splitlines()]
    assert [(e["event"], e["address"], e["month"]) for e in lines] == [
        ("sent", "cur@tatar.example.ru", "2026-11"),
        ("sent", "mayor@kazan.example.ru", "2026-11"),
    ]

    # A second run the same day (a new process: the journal read from the file) sends nothing.
    again = await run_monthly_delivery(settings, registry, ratings, now=now + 2 * HOUR)
    assert again == [] and len(smtp.mails) == 2 and len(ratings.calls) == 2


async def test_a_refused_address_is_recorded_and_not_retried(smtp: Sink, registry: Registry, tmp_path: Path) -> None:
    smtp.refuse.add("mayor@kazan.example.ru")
    settings = settings_for(smtp, tmp_path)
    now = at(2026, 12, 1, 10)
    results = await run_monthly_delivery(settings, registry, Ratings(), now=now)
    assert sorted(r.result for r in results) == ["failed", "sent"]
    assert await run_monthly_delivery(settings, registry, Ratings(), now=now + HOUR) == []
    events = [orjson.loads(line) for line in (tmp_path / "deliveries.jsonl").read_bytes().splitlines()]
    failed = next(e for e in events if e["event"] == "failed")
    assert failed["address"] == "mayor@kazan.example.ru" and "550" in failed["reason"]


class FlakySender:
    channel = "email"

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.sent: list[tuple[str, Message]] = []

    async def send(self, address: str, message: Message) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append((address, message))

    async def close(self) -> None:
        return None


async def test_a_transient_failure_is_tried_again_on_the_next_run(registry: Registry, journal: Journal) -> None:
    now = at(2026, 12, 1, 10)
    due = due_at(now, registry, journal)
    results = await deliver_due(due, Ratings(), FlakySender(TransientError("421 try later")), journal)
    assert [r.result for r in results] == ["retry", "retry"]
    assert due_at(now + HOUR, registry, journal) == due
    sender = FlakySender(None)
    await deliver_due(due, Ratings(), sender, journal)
    assert [address for address, _ in sender.sent] == ["cur@tatar.example.ru", "mayor@kazan.example.ru"]
    assert due_at(now + 2 * HOUR, registry, journal) == []


async def test_a_rating_that_cannot_be_made_sends_nothing_and_stays_due(registry: Registry, journal: Journal) -> None:
    def broken(month: Month, by: str, where: Mapping[str, str]) -> Any:
        raise OSError("the store is down")

    now = at(2026, 12, 1, 10)
    due = due_at(now, registry, journal)
    sender = FlakySender(None)
    results = await deliver_due(due, broken, sender, journal)
    assert [r.result for r in results] == ["error", "error"] and "the store is down" in (results[0].reason or "")
    assert sender.sent == [] and due_at(now, registry, journal) == due


async def test_permanent_errors_from_any_sender_are_final(registry: Registry, journal: Journal) -> None:
    now = at(2026, 12, 1, 10)
    due = due_at(now, registry, journal)
    results = await deliver_due(due, Ratings(), FlakySender(PermanentError("login refused")), journal)
    assert {r.result for r in results} == {"failed"}
    assert due_at(now, registry, journal) == []
