"""The whole alert chain on real parts: Kafka → worker → Prometheus → Alertmanager → notifier → SMTP.

A citizen's comment on a page whose deadline is one working minute (24/7, no calendar) stays
unanswered: that page's administrator gets an e-mail naming the page, the count, the oldest item's
working age against the deadline and a link to it — and nobody else gets anything (not the other
page's administrator, not the supervisor, not the operations team). The page then replies: the
alert resolves and the administrator gets the "no more overdue items" notice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from otklik.schemas.records import RawEnvelope
from tests.conftest import produce, run
from tests.e2e.conftest import alertmanager_config, prometheus_config

pytestmark = pytest.mark.e2e

LATE, CALM = 300000001, 300000002
REGISTRY = f"""
defaults:
  timezone: Asia/Novosibirsk
  calendar: none
  schedule: {{mon-sun: "00:00-24:00"}}
  region: Новосибирская область
pages:
  - id: vk:{LATE}
    title: Школа № 7
    municipality: Бердск
    sector: education
    deadline: 1m working
    contacts: [{{name: Администратор школы, email: admin-school@example.ru}}]
    supervisors: [{{name: Управление образования, email: supervisor@example.ru}}]
  - id: vk:{CALM}
    title: Библиотека
    municipality: Искитим
    deadline: 8h working
    contacts: [{{email: admin-library@example.ru}}]
    supervisors: [{{email: culture@example.ru}}]
"""


def comment(group: int, cid: int, date: int, from_id: int, **extra: object) -> bytes:
    body = {
        "type": "wall_reply_new",
        "group_id": group,
        "event_id": f"e{group}-{cid}",
        "v": "5.199",
        "object": {
            "id": cid,
            "from_id": from_id,
            "date": date,
            "text": "Когда починят крышу?",
            "post_id": 88,
            "owner_id": -group,
            **extra,
        },
    }
    return RawEnvelope("vk", "vk-callback", time.time(), body).to_json()


def chain(tmp_path: Path, worker_factory, kafka, prometheus, alertmanager, notifier, smtp, *, shipped: bool):  # type: ignore[no-untyped-def]
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY, encoding="utf-8")
    worker = worker_factory(registry, OTKLIK_LATE_WINDOW="5", OTKLIK_TICK_INTERVAL="1")
    worker.start()
    note = notifier(registry, worker.web, smtp)
    am = alertmanager(alertmanager_config(note.url + "/alertmanager", f"{smtp.host}:{smtp.port}", fast=not shipped))
    prom = prometheus(
        prometheus_config(
            worker.web.removeprefix("http://"),
            note.url.removeprefix("http://"),
            am.url.removeprefix("http://"),
            None if shipped else "1s",
        )
    )
    return worker, note, am, prom


def wait_target_up(prom, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = prom.get_json("/api/v1/targets")["data"]["activeTargets"]
        if targets and all(t["health"] == "up" for t in targets):
            return
        time.sleep(0.5)
    pytest.fail(f"Prometheus targets not up: {prom.get_json('/api/v1/targets')}\n{prom.log_tail()}")


def scenario(tmp_path, worker_factory, kafka, prometheus, alertmanager, notifier, smtp, *, shipped: bool) -> float:  # type: ignore[no-untyped-def]
    """Runs the acceptance scenario; returns seconds from the item's deadline to the e-mail."""
    worker, note, am, prom = chain(
        tmp_path, worker_factory, kafka, prometheus, alertmanager, notifier, smtp, shipped=shipped
    )
    wait_target_up(prom)
    created = int(time.time())
    run(
        produce(
            kafka,
            worker.topic("otklik.raw"),
            [
                (f"vk:{LATE}".encode(), comment(LATE, 1024, created, 5001)),
                (f"vk:{CALM}".encode(), comment(CALM, 77, created, 5002)),
            ],
        )
    )
    due = created + 60

    passed = smtp.wait_for(lambda m: "срок ответа прошёл" in m.subject, timeout=150)
    assert passed is not None, (
        f"no 'deadline passed' e-mail; mails: {smtp.snapshot()}\nalerts: {am.get_json('/api/v2/alerts')}\n"
        f"notifier:\n{note.log_tail()}\nworker:\n{worker.log_tail(20)}"
    )
    latency = passed.received_at - due
    # The page answers the comment.
    run(
        produce(
            kafka,
            worker.topic("otklik.raw"),
            [
                (
                    f"vk:{LATE}".encode(),
                    comment(
                        LATE,
                        1100,
                        int(time.time()),
                        -LATE,
                        reply_to_comment=1024,
                        reply_to_user=5001,
                        parents_stack=[1024],
                    ),
                ),
            ],
        )
    )

    assert passed.rcpt_tos == ["admin-school@example.ru"]
    assert passed.subject == "«Школа № 7»: срок ответа прошёл"
    assert "ждут ответа 1 сообщение" in passed.text
    assert "рабочего времени из 1 мин" in passed.text
    assert f"https://vk.com/wall-{LATE}_88?reply=1024" in passed.text

    resolved = smtp.wait_for(lambda m: "больше нет" in m.subject, timeout=150)
    assert resolved is not None, f"no resolved notice; mails: {smtp.snapshot()}\nnotifier:\n{note.log_tail()}"
    assert resolved.rcpt_tos == ["admin-school@example.ru"]
    assert resolved.subject == "«Школа № 7»: просроченных сообщений больше нет"
    # The alert is gone from Alertmanager too.
    firing = [a for a in am.get_json("/api/v2/alerts") if a["labels"].get("page") == f"vk:{LATE}"]
    assert firing == [], firing

    # Nobody else heard anything: every e-mail went to the late page's administrator only.
    recipients = {r for mail in smtp.snapshot() for r in mail.rcpt_tos}
    assert recipients == {"admin-school@example.ru"}, [(m.rcpt_tos, m.subject) for m in smtp.snapshot()]
    # The notifier's journal records what it sent to whom.
    journal = [json.loads(line) for line in (tmp_path / "notifier" / "deliveries.jsonl").read_text().splitlines()]
    sent = [(e["alertname"], e["status"], e["address"]) for e in journal if e["event"] == "sent"]
    assert ("OtklikPageDeadlinePassed", "firing", "admin-school@example.ru") in sent
    assert ("OtklikPageDeadlinePassed", "resolved", "admin-school@example.ru") in sent
    return latency


def test_unanswered_comment_emails_its_administrator_only_and_the_reply_resolves(
    tmp_path, worker_factory, kafka, prometheus, alertmanager, notifier, smtp
):  # type: ignore[no-untyped-def]
    # How fast it is with the shipped intervals is measured by `make bench` (bench/alert_latency.py),
    # not asserted here.
    scenario(tmp_path, worker_factory, kafka, prometheus, alertmanager, notifier, smtp, shipped=False)
