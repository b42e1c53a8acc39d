"""The monthly delivery: the previous month's rating, as XLSX, to the people the registry's `reports` names.

When it is due (docs/registry.md, "Monthly reports"): from the first working moment of a month (the
defaults' clock: their time zone, schedule and the production calendar) to the month's end, the
previous month's rating is due for every ``reports`` entry and e-mail address not yet delivered. So
the rating of December 2026 goes out on 11 January 2027, after the New Year holidays, and a run later
in January still sends what an earlier run could not.

What was delivered is the notifier's deliveries journal (``deliveries.jsonl``,
:class:`~otklik.streams.notify.notifier.Journal`): each e-mail is recorded there as ``sent``, or
``failed`` when the server refused it for good (a bad address: not retried); a transient failure records
nothing, so the next run tries again. A second run the same day therefore sends nothing twice.

:func:`due_deliveries` is the pure planner; :func:`deliver_due` sends through the notifier's e-mail
sender; :func:`run_monthly_delivery` wires both to the notifier's settings. The rating itself comes
from a callable (``rating_for(month, by, where) -> (rows, meta)``), the store's in production.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

from otklik.agents.history.rating import Month, RatingRow, month_bounds
from otklik.streams.notify.senders import Attachment, Message, PermanentError, Sender, TransientError
from otklik.streams.store.formats import RatingMeta, write_rating

if TYPE_CHECKING:
    from otklik.agents.clock.working import WorkingClock
    from otklik.agents.registry import Registry
    from otklik.schemas.registry import ReportEntry
    from otklik.streams.notify.notifier import Journal
    from otklik.streams.settings import NotifierSettings

__all__ = [
    "XLSX_TYPE",
    "DeliveryResult",
    "RatingSource",
    "ReportDelivery",
    "deliver_due",
    "due_deliveries",
    "report_message",
    "run_monthly_delivery",
    "run_monthly_delivery_sync",
]

log = logging.getLogger("otklik.reports")

XLSX_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# rating_for(month, by, where) -> (rows, meta); ``where`` narrows the items, e.g. {"region": "Татарстан"}.
RatingSource = Callable[[Month, str, Mapping[str, str]], tuple[Sequence[RatingRow], RatingMeta]]


@dataclass(frozen=True, slots=True)
class ReportDelivery:
    """One e-mail due: the rating of ``month`` for one ``reports`` entry, to one address."""

    month: Month
    report: ReportEntry
    address: str
    name: str | None

    @property
    def key(self) -> str:
        """The journal's id of this delivery: month, scope, unit and address."""
        kind, value = self.report.scope
        return f"report|{self.month.label}|{kind}={value}|by={self.report.by}|email|{self.address}"


def _previous_month(year: int, month: int) -> str:
    return f"{year - 1}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def due_deliveries(
    now: int, clock: WorkingClock, journal: Journal, reports: Sequence[ReportEntry]
) -> list[ReportDelivery]:
    """The e-mails due at ``now`` (unix seconds): the previous month's rating for each entry and address
    the journal has no final event for, once the month's first working moment by ``clock`` has come."""
    zone = clock.timezone
    local = datetime.fromtimestamp(now, ZoneInfo(zone))
    this_month = month_bounds(f"{local.year:04d}-{local.month:02d}", zone)
    try:
        first_working = clock.next_working_moment(this_month.start)
    except ValueError:  # a clock with no working time at all: no working day to deliver on
        return []
    if not first_working <= now < this_month.end:
        return []
    month = month_bounds(_previous_month(local.year, local.month), zone)
    due = []
    seen: set[str] = set()
    for report in reports:
        for contact in report.contacts:
            if not contact.email:
                continue  # the rating is a file: only e-mail carries it
            delivery = ReportDelivery(month, report, contact.email, contact.name)
            if delivery.key in seen or journal.final(delivery.key) in ("sent", "failed"):
                continue
            seen.add(delivery.key)
            due.append(delivery)
    return due


# ---- the e-mail --------------------------------------------------------------------------------------


def _share(on_time: int, judged: int) -> str:
    return f"{on_time / judged * 100:.1f}".replace(".", ",") + " %" if judged else "—"


def report_message(report: ReportEntry, rows: Sequence[RatingRow], meta: RatingMeta, xlsx: bytes) -> Message:
    """The Russian e-mail carrying one entry's rating as an XLSX attachment."""
    kind, value = report.scope
    where = f"{'регион' if kind == 'region' else 'муниципалитет'} {value}"
    judged = sum(row.judged for row in rows)
    on_time = sum(row.on_time for row in rows)
    rated = sum(1 for row in rows if row.rated)
    lines = [
        "Здравствуйте!",
        "",
        f"{meta.heading()} ({where}) — во вложении, в формате Excel.",
        "",
    ]
    if rows:
        lines += [
            f"В рейтинге: {rated} из {len(rows)} (оценено не менее {meta.min_judged} сообщений).",
            f"Требовали ответа и оценены по сроку: {judged}, из них в срок: {on_time} ({_share(on_time, judged)}).",
        ]
    else:
        lines.append("За этот месяц сообщений нет: проверьте, что страницы указаны в реестре с этим значением.")
    lines += ["", meta.details(), "", "Письмо отправлено автоматически (otklik)."]
    filename = re.sub(r'[\\/:*?"<>|]+', " ", f"Рейтинг {meta.month} — {value}.xlsx")
    return Message(
        subject=f"Рейтинг за {meta.period()}: {value}",
        text="\n".join(lines) + "\n",
        attachments=(Attachment(filename, xlsx, XLSX_TYPE),),
    )


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivery: ReportDelivery
    result: str  # sent, failed (refused for good), retry (a transient failure), error (no rating)
    reason: str | None = None


async def deliver_due(
    deliveries: Sequence[ReportDelivery],
    rating_for: RatingSource,
    sender: Sender,
    journal: Journal,
    *,
    clock: Callable[[], float] = time.time,
) -> list[DeliveryResult]:
    """Send each delivery through the e-mail ``sender``, computing each entry's rating once, and record
    each outcome in ``journal``."""
    results: list[DeliveryResult] = []
    messages: dict[tuple[str, str, str, str], Message | Exception] = {}
    for delivery in deliveries:
        kind, value = delivery.report.scope
        group = (delivery.month.label, kind, value, delivery.report.by)
        if group not in messages:
            try:
                rows, meta = rating_for(delivery.month, delivery.report.by, {kind: value})
                rows = list(rows)
                buffer = io.BytesIO()
                write_rating(rows, meta, "xlsx", buffer)
                messages[group] = report_message(delivery.report, rows, meta, buffer.getvalue())
            except Exception as exc:  # a store that is down costs this run, not the others' e-mails
                log.exception("monthly rating %s for %s %s could not be made", delivery.month.label, kind, value)
                messages[group] = exc
        message = messages[group]
        if isinstance(message, Exception):
            results.append(DeliveryResult(delivery, "error", f"{type(message).__name__}: {message}"))
            continue
        details = {
            "kind": "monthly_report",
            "month": delivery.month.label,
            "scope": f"{kind}={value}",
            "by": delivery.report.by,
            "channel": "email",
            "address": delivery.address,
        }
        try:
            await sender.send(delivery.address, message)
        except TransientError as exc:
            log.warning("monthly rating %s to %s: will retry: %s", delivery.month.label, delivery.address, exc)
            results.append(DeliveryResult(delivery, "retry", str(exc)))
            continue
        except PermanentError as exc:
            log.error("monthly rating %s to %s refused: %s", delivery.month.label, delivery.address, exc)
            journal.record(delivery.key, "failed", clock(), reason=str(exc), **details)
            results.append(DeliveryResult(delivery, "failed", str(exc)))
            continue
        journal.record(delivery.key, "sent", clock(), subject=message.subject, **details)
        log.info("monthly rating %s (%s=%s) sent to %s", delivery.month.label, kind, value, delivery.address)
        results.append(DeliveryResult(delivery, "sent"))
    return results


async def run_monthly_delivery(
    settings: NotifierSettings,
    registry: Registry,
    rating_for: RatingSource,
    *,
    now: int | None = None,
    sender: Sender | None = None,
) -> list[DeliveryResult]:
    """What is due now, sent with the notifier's SMTP settings and recorded in its journal
    (``settings.data_dir / "deliveries.jsonl"``). Safe to run as often as wanted (e.g. hourly)."""
    from otklik.streams.notify.notifier import Journal, senders_from

    journal = Journal(settings.data_dir / "deliveries.jsonl", settings.dedupe_window_s)
    due = due_deliveries(int(time.time()) if now is None else now, registry.defaults.clock, journal, registry.reports)
    if not due:
        return []
    if sender is not None:
        return await deliver_due(due, rating_for, sender, journal)
    own = senders_from(settings).get("email")
    if own is None:
        log.warning("monthly ratings due but OTKLIK_SMTP_HOST is not set: nothing sent")
        return [DeliveryResult(d, "retry", "no SMTP server configured") for d in due]
    try:
        return await deliver_due(due, rating_for, own, journal)
    finally:
        await own.close()


def run_monthly_delivery_sync(
    settings: NotifierSettings, registry: Registry, rating_for: RatingSource, *, now: int | None = None
) -> list[DeliveryResult]:
    """:func:`run_monthly_delivery` for a command (``asyncio.run``)."""
    return asyncio.run(run_monthly_delivery(settings, registry, rating_for, now=now))
