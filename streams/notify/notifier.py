"""`otklik notifier`: Alertmanager's webhook → the page's administrators or supervisors, in Russian.

Flow: Alertmanager POSTs one alert group (grouped per page and alert name). The notifier answers at
once and queues one notice per recipient and channel, each under a dedupe key, in a JSON Lines
journal (``deliveries.jsonl`` in the data folder): the record of what it sent to whom, which also
survives a restart. A delivery loop sends what is due, composing each message at delivery time from
the worker's read API (title, how many items wait, the oldest one's working age against the deadline,
a link to it), with retries and exponential backoff.

Rules (docs/metrics-and-alerts.md, "Notifications"):

* Once per alert group and status. A webhook redelivered by Alertmanager sends nothing new; a firing
  group seen again after ``dedupe_window_s`` (shorter than Alertmanager's repeat interval) is a
  reminder and is sent. A resolved group is announced once per firing episode.
* Notices that may wait (alerts labelled ``hold=working_hours``; every "resolved" notice) are held until
  the page's next working minute by the page's own clock (schedule, production calendar, time zone).
* A resolved notice is sent only if its firing notice was sent, and only when the worker confirms that
  nothing on the page is past its deadline any more (an alert also resolves when the worker stops).
  If the firing notice was still held, both are dropped: nobody hears of a problem already gone.
* "Nearing the deadline" resolves either by an answer or by turning into "past the deadline": its
  resolution is not announced.

The pure core (:func:`plan`, :func:`compose`, :func:`format_duration`, :class:`Journal`) has no I/O
besides the journal file; :class:`Notifier` is the aiohttp shell.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson
from aiohttp import ClientSession, ClientTimeout, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from otklik.streams.notify.senders import (
    MaxSender,
    Message,
    PermanentError,
    Sender,
    SmtpSender,
    TelegramSender,
    TransientError,
)
from otklik.streams.settings import NotifierSettings, SettingsError, command_error

log = logging.getLogger("otklik.notifier")

__all__ = [
    "Backlog",
    "Journal",
    "Notice",
    "Notifier",
    "NotifierSettings",
    "compose",
    "format_duration",
    "notifier_command",
    "plan",
    "plural",
    "senders_from",
]

NEAR, PASSED, LONG_PAST = "OtklikPageDeadlineNear", "OtklikPageDeadlinePassed", "OtklikPageDeadlineLongPast"
OFFENSIVE = "OtklikOffensiveContentVisible"
CHANNELS = ("email", "telegram", "max")


# ---- Russian text -----------------------------------------------------------------------------------


def plural(n: int, one: str, few: str, many: str) -> str:
    """Russian plural: 1 сообщение, 2 сообщения, 5 сообщений, 21 сообщение, 11 сообщений."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def format_duration(seconds: int) -> str:
    """``8100`` → ``"2 ч 15 мин"``; whole hours and minutes, rounded down; under a minute → ``"меньше минуты"``."""
    seconds = max(0, int(seconds))
    hours, minutes = divmod(seconds // 60, 60)
    if hours and minutes:
        return f"{hours} ч {minutes} мин"
    if hours:
        return f"{hours} ч"
    if minutes:
        return f"{minutes} мин"
    return "меньше минуты"


def format_deadline(seconds: int) -> str:
    return format_duration(seconds)


# ---- what the notifier knows of a page at delivery time ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backlog:
    """The page's open items as the worker's read API reports them (or as well as the alert tells)."""

    open_items: int | None
    oldest_age_s: int | None  # in the deadline's kind: working seconds for a working deadline
    link: str | None
    title: str | None = None

    @classmethod
    def from_read_api(cls, data: Mapping[str, Any], deadline_working: bool) -> Backlog:
        items = data.get("items") or []
        oldest = items[0] if items else None
        age = None
        if oldest is not None:
            age = oldest.get("business_age_s") if deadline_working else oldest.get("age_s")
        return cls(
            open_items=int(data.get("open_items", len(items))),
            oldest_age_s=None if age is None else int(age),
            link=oldest.get("link") if oldest else None,
            title=data.get("title"),
        )


@dataclass(frozen=True, slots=True)
class PageFacts:
    """What the message needs of the registry entry."""

    page: str
    title: str | None
    deadline_seconds: int
    deadline_working: bool


def compose(alertname: str, status: str, facts: PageFacts, backlog: Backlog) -> Message | None:
    """The Russian message for one notice, or None when there is nothing to say (see the module doc)."""
    title = backlog.title or facts.title or facts.page
    name = f"«{title}»"
    deadline = format_deadline(facts.deadline_seconds)
    kind = "рабочего времени " if facts.deadline_working else ""
    if alertname == OFFENSIVE:
        if status == "resolved":
            return None  # removed: nothing to ask of anyone
        return Message(
            subject=f"{name}: комментарий для модерации виден дольше срока",
            text=(
                f"На странице {name} дольше срока модерации виден комментарий с матом, оскорблением, угрозой "
                "или рекламой.\nУдалите его (или ответьте, если в нём есть вопрос по существу).\n"
                f"Страница: {facts.page}\n"
            ),
        )
    if status == "resolved":
        if alertname == NEAR:
            return None
        overdue = backlog.oldest_age_s is not None and backlog.oldest_age_s >= facts.deadline_seconds
        if backlog.open_items is None or overdue:
            return None  # the worker cannot confirm the page caught up: say nothing rather than wrong
        waiting = (
            "Других сообщений, ждущих ответа, нет."
            if backlog.open_items == 0
            else f"Ждут ответа в пределах срока: {backlog.open_items} {plural(backlog.open_items, 'сообщение', 'сообщения', 'сообщений')}."
        )
        return Message(
            subject=f"{name}: просроченных сообщений больше нет",
            text=f"На странице {name} больше нет сообщений, ждущих ответа дольше срока ({deadline}).\n{waiting}\n",
        )
    lines = []
    if backlog.open_items is not None:
        count = backlog.open_items
        lines.append(f"На странице {name} ждут ответа {count} {plural(count, 'сообщение', 'сообщения', 'сообщений')}.")
    else:
        lines.append(f"На странице {name} есть сообщения, ждущие ответа.")
    if backlog.oldest_age_s is not None:
        lines.append(f"Самое старое ждёт {format_duration(backlog.oldest_age_s)} {kind}из {deadline} (срок ответа).")
    if alertname == NEAR:
        subject = f"{name}: скоро истекает срок ответа"
        lines.append("Срок ответа скоро истечёт.")
    elif alertname == LONG_PAST:
        subject = f"{name}: сообщение без ответа вдвое дольше срока"
        lines.append("Сообщение ждёт ответа больше двух сроков: вы получили это письмо как руководитель.")
    else:
        subject = f"{name}: срок ответа прошёл"
        lines.append("Срок ответа прошёл.")
    lines.append(f"Ответить: {backlog.link}" if backlog.link else f"Страница: {facts.page}")
    return Message(subject=subject, text="\n".join(lines) + "\n")


# ---- planning: one webhook → notices --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to one person on one channel; ``key`` identifies the group, status and episode."""

    key: str
    group_key: str
    page: str
    alertname: str
    status: str
    audience: str
    channel: str
    address: str
    name: str | None
    not_before: int
    queued_at: int
    episode: str  # the alerts' start times: a new firing episode is a new notice
    deadline_ratio: float | None = None

    @property
    def recipient(self) -> tuple[str, str]:
        return (self.channel, self.address)

    def dedupe_id(self) -> str:
        return f"{self.key}|{self.channel}|{self.address}"


def _episode(alerts: Iterable[Mapping[str, Any]]) -> str:
    starts = sorted(f"{a.get('fingerprint', '')}@{a.get('startsAt', '')}" for a in alerts)
    return hashlib.sha256("\n".join(starts).encode()).hexdigest()[:16]


def _contacts(config: Any, audience: str) -> list[tuple[str, str, str | None]]:
    people = config.supervisors if audience == "supervisors" else config.contacts
    out = []
    for person in people:
        for channel in CHANNELS:
            address = getattr(person, channel, None)
            if address:
                out.append((channel, str(address), person.name))
    return out


def plan(payload: Mapping[str, Any], page_config: Callable[[str], Any], now: int) -> list[Notice]:
    """The notices one Alertmanager webhook asks for: per page of the group, per recipient and channel.

    ``page_config(page_id)`` is the registry's lookup (a PageConfig). Alerts without a page or an
    audience the notifier serves are ignored.
    """
    if not isinstance(payload, Mapping) or not isinstance(payload.get("alerts"), list):
        raise ValueError("not an Alertmanager webhook: no 'alerts' list")
    status = payload.get("status")
    if status not in ("firing", "resolved"):
        raise ValueError(f"not an Alertmanager webhook: status {status!r}")
    group_key = str(payload.get("groupKey", ""))
    by_page: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for alert in payload["alerts"]:
        labels = alert.get("labels") or {}
        if alert.get("status", status) != status:
            continue  # a firing group may list alerts already resolved: they are not this notice
        page, audience = labels.get("page"), labels.get("audience")
        if not page or audience not in ("administrators", "supervisors"):
            continue
        by_page.setdefault((page, audience, labels.get("alertname", "")), []).append(alert)
    notices = []
    for (page, audience, alertname), alerts in sorted(by_page.items()):
        config = page_config(page)
        if config is None:
            continue
        hold = status == "resolved" or any((a.get("labels") or {}).get("hold") == "working_hours" for a in alerts)
        not_before = config.clock.next_working_moment(now) if hold else now
        episode = _episode(alerts)
        key = hashlib.sha256(f"{group_key}|{page}|{alertname}|{status}|{episode}".encode()).hexdigest()[:24]
        ratio = None
        for a in alerts:
            try:
                ratio = float((a.get("annotations") or {}).get("deadline_ratio"))
            except (TypeError, ValueError):
                pass
        for channel, address, name in _contacts(config, audience):
            notices.append(
                Notice(
                    key=key,
                    group_key=group_key,
                    page=page,
                    alertname=alertname,
                    status=status,
                    audience=audience,
                    channel=channel,
                    address=address,
                    name=name,
                    not_before=not_before,
                    queued_at=now,
                    episode=episode,
                    deadline_ratio=ratio,
                )
            )
    return notices


# ---- the journal: what was queued, sent, failed, dropped — to whom ------------------------------------


@dataclass
class Pending:
    notice: Notice
    attempts: int = 0
    next_attempt: float = 0.0
    in_flight: bool = False  # being sent now: never picked twice


@dataclass
class Journal:
    """An append-only JSON Lines record of every notice and its fate; replayed at start-up.

    Events: ``queued`` (with the notice), ``sent``, ``failed`` (gave up), ``dropped`` (nothing to say
    or superseded). A notice queued but with no final event is pending again after a restart.
    """

    path: Path | None
    dedupe_window_s: int = 3600
    pending: dict[str, Pending] = field(default_factory=dict)
    # dedupe id -> (queued_at, final event or None)
    seen: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    # (group_key, page, alertname, episode) of firing notices sent, for resolved notices
    sent_firing: set[tuple[str, str, str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.path is not None and self.path.exists():
            with open(self.path, "rb") as file:
                for line in file:
                    if line.strip():
                        try:
                            self._apply(orjson.loads(line))
                        except (ValueError, TypeError, KeyError) as exc:
                            log.warning("journal %s: skipped a bad line: %s", self.path, exc)

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = event["event"]
        if kind == "queued":
            notice = Notice(**event["notice"])
            self.pending[notice.dedupe_id()] = Pending(notice)
            self.seen[notice.dedupe_id()] = (notice.queued_at, None)
            return
        ident = event["id"]
        queued_at = self.seen.get(ident, (int(event.get("at", 0)), None))[0]
        self.seen[ident] = (queued_at, kind)
        self.pending.pop(ident, None)
        if kind == "sent" and "firing_of" in event:
            self.sent_firing.add(tuple(event["firing_of"]))  # type: ignore[arg-type]

    def _write(self, event: dict[str, Any]) -> None:
        self._apply(event)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as file:
                file.write(orjson.dumps(event) + b"\n")

    def is_duplicate(self, notice: Notice) -> bool:
        """Queued before: for ever for a resolved notice, within the dedupe window for a firing one
        (a later one is Alertmanager's reminder)."""
        previous = self.seen.get(notice.dedupe_id())
        if previous is None:
            return False
        if notice.status == "resolved":
            return True
        return notice.queued_at - previous[0] < self.dedupe_window_s

    def queue(self, notice: Notice) -> bool:
        if self.is_duplicate(notice):
            return False
        self._write({"event": "queued", "at": notice.queued_at, "notice": asdict(notice)})
        return True

    def finish(self, notice: Notice, event: str, at: float, **details: Any) -> None:
        record: dict[str, Any] = {
            "event": event,
            "at": round(at, 3),
            "id": notice.dedupe_id(),
            "page": notice.page,
            "alertname": notice.alertname,
            "status": notice.status,
            "channel": notice.channel,
            "address": notice.address,
            **details,
        }
        if event == "sent" and notice.status == "firing":
            record["firing_of"] = [notice.group_key, notice.page, notice.alertname, notice.episode]
        self._write(record)

    def record(self, ident: str, event: str, at: float, **details: Any) -> None:
        """A final event (``sent``, ``failed``) of a delivery outside the alert flow, such as the monthly
        rating (``streams/store/delivery.py``): one journal says what was sent to whom."""
        self._write({"event": event, "at": round(at, 3), "id": ident, **details})

    def final(self, ident: str) -> str | None:
        """The final event recorded under ``ident`` (``sent``, ``failed``, ``dropped``), or None."""
        entry = self.seen.get(ident)
        return None if entry is None else entry[1]

    def firing_was_sent(self, notice: Notice) -> bool:
        """Whether the firing notice that this resolved one closes was delivered to anyone."""
        return (notice.group_key, notice.page, notice.alertname, notice.episode) in self.sent_firing

    def pending_firing(self, notice: Notice) -> list[Pending]:
        return [
            p
            for p in self.pending.values()
            if p.notice.status == "firing"
            and p.notice.page == notice.page
            and p.notice.alertname == notice.alertname
            and p.notice.group_key == notice.group_key
            and p.notice.episode == notice.episode
        ]


# ---- settings ------------------------------------------------------------------------------------


# The variables are NotifierSettings (streams/settings.py); how often the delivery loop looks for due notices:
POLL_S = 0.5


def senders_from(settings: NotifierSettings) -> dict[str, Sender]:
    """The channels the settings configure: e-mail, Telegram, MAX (each only when its host or token is set)."""
    out: dict[str, Sender] = {}
    if settings.smtp_host:
        password = settings.smtp_password
        out["email"] = SmtpSender(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            user=settings.smtp_user,
            password=password.get_secret_value() if password is not None else None,
            starttls=settings.smtp_starttls,
            use_ssl=settings.smtp_ssl,
        )
    if settings.telegram_token is not None:
        out["telegram"] = TelegramSender(settings.telegram_token.get_secret_value(), settings.telegram_api)
    if settings.max_token is not None:
        out["max"] = MaxSender(settings.max_token.get_secret_value(), settings.max_api)
    return out


# ---- the service ------------------------------------------------------------------------------------


class Notifier:
    """The aiohttp service: ``POST /alertmanager`` (the webhook), ``GET /metrics``, ``GET /health``."""

    def __init__(
        self,
        settings: NotifierSettings,
        senders: Mapping[str, Sender] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        background: bool = True,
    ) -> None:
        from otklik.agents.registry import RegistryWatcher  # the worker's own reload-on-change logic

        self.settings = settings
        self.senders = dict(senders_from(settings) if senders is None else senders)
        self.clock = clock
        self.background = background  # False: the caller drives delivery with run_once (tests)
        self.watcher = RegistryWatcher(settings.registry)
        self.journal = Journal(settings.data_dir / "deliveries.jsonl", settings.dedupe_window_s)
        self.metrics = CollectorRegistry()
        self.notices = Counter(
            "otklik_notifier_notices_total",
            "Notices by channel and fate: sent, failed (gave up after retries or refused), dropped "
            "(nothing to say any more), duplicate (a redelivered webhook), no_sender (channel not configured).",
            ["channel", "result"],
            registry=self.metrics,
        )
        self.webhooks = Counter(
            "otklik_notifier_webhooks_total",
            "Alertmanager webhooks received, by status.",
            ["status"],
            registry=self.metrics,
        )
        self.pending_gauge = Gauge(
            "otklik_notifier_pending_notices",
            "Notices queued and not yet delivered (held or retrying).",
            registry=self.metrics,
        )
        self.pending_gauge.set_function(lambda: len(self.journal.pending))
        self._http: ClientSession | None = None
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    # ---- webhook -------------------------------------------------------------------------------------

    def page_config(self, page: str) -> Any:
        return self.watcher.registry.get(page)

    def accept(self, payload: Mapping[str, Any]) -> dict[str, int]:
        """Plan and queue the notices of one webhook; returns counts (pure but for the journal)."""
        self.watcher.check()
        now = int(self.clock())
        queued = duplicates = dropped = 0
        for notice in plan(payload, self.page_config, now):
            if notice.status == "resolved":
                held = self.journal.pending_firing(notice)
                if held or not self.journal.firing_was_sent(notice):
                    # Nobody heard of the problem yet (or it was never ours to tell): tell nothing.
                    for pending in held:
                        self.journal.finish(pending.notice, "dropped", now, reason="resolved before delivery")
                        self.notices.labels(pending.notice.channel, "dropped").inc()
                    if not self.journal.is_duplicate(notice):
                        dropped += 1
                    continue
            if notice.channel not in self.senders:
                log.warning(
                    "no %s sender configured: %s not notified about %s", notice.channel, notice.address, notice.page
                )
                self.notices.labels(notice.channel, "no_sender").inc()
                continue
            if self.journal.queue(notice):
                queued += 1
            else:
                duplicates += 1
                self.notices.labels(notice.channel, "duplicate").inc()
        if queued:
            self._wake.set()
        return {"queued": queued, "duplicates": duplicates, "dropped": dropped}

    async def handle_webhook(self, request: web.Request) -> web.Response:
        try:
            payload = orjson.loads(await request.read())
            result = self.accept(payload)
        except ValueError as exc:
            self.webhooks.labels("invalid").inc()
            return web.json_response({"error": str(exc)}, status=400)
        self.webhooks.labels(str(payload.get("status"))).inc()
        return web.json_response(result)

    # ---- delivery ------------------------------------------------------------------------------------

    async def backlog(self, notice: Notice, config: Any) -> Backlog:
        """The page's backlog from the worker's read API; from the alert alone when the worker is away."""
        url = f"{self.settings.worker_url.rstrip('/')}/api/pages/{notice.page}/open-items"
        try:
            if self._http is None or self._http.closed:
                self._http = ClientSession(timeout=ClientTimeout(total=5))
            async with self._http.get(url, params={"limit": "1"}) as resp:
                if resp.status == 200:
                    return Backlog.from_read_api(await resp.json(content_type=None), config.deadline.working)
                log.warning("read API %s: HTTP %s", url, resp.status)
        except Exception as exc:  # the worker may be restarting: the message goes out without its link
            log.warning("read API %s: %s: %s", url, type(exc).__name__, exc)
        age = None if notice.deadline_ratio is None else int(notice.deadline_ratio * config.deadline.seconds)
        return Backlog(open_items=None, oldest_age_s=age, link=None)

    async def deliver(self, pending: Pending) -> None:
        notice = pending.notice
        now = self.clock()
        config = self.page_config(notice.page)
        if config is None:
            self.journal.finish(notice, "dropped", now, reason="page no longer in the registry")
            self.notices.labels(notice.channel, "dropped").inc()
            return
        backlog = await self.backlog(notice, config)
        facts = PageFacts(notice.page, config.title, config.deadline.seconds, config.deadline.working)
        message = compose(notice.alertname, notice.status, facts, backlog)
        if message is None:
            self.journal.finish(notice, "dropped", now, reason="nothing to say")
            self.notices.labels(notice.channel, "dropped").inc()
            return
        sender = self.senders[notice.channel]
        pending.attempts += 1
        try:
            await sender.send(notice.address, message)
        except TransientError as exc:
            if pending.attempts >= self.settings.max_attempts:
                self.journal.finish(notice, "failed", self.clock(), reason=str(exc), attempts=pending.attempts)
                self.notices.labels(notice.channel, "failed").inc()
                return
            delay = min(self.settings.max_backoff_s, self.settings.backoff_s * 2 ** (pending.attempts - 1))
            delay = max(delay * random.uniform(0.8, 1.2), exc.retry_after or 0.0)  # jitter; honour the server
            pending.next_attempt = self.clock() + delay
            log.warning(
                "%s to %s failed (attempt %d), retry in %.1fs: %s",
                notice.channel,
                notice.address,
                pending.attempts,
                delay,
                exc,
            )
            return
        except PermanentError as exc:
            self.journal.finish(notice, "failed", self.clock(), reason=str(exc), attempts=pending.attempts)
            self.notices.labels(notice.channel, "failed").inc()
            log.error("%s to %s refused: %s", notice.channel, notice.address, exc)
            return
        self.journal.finish(notice, "sent", self.clock(), subject=message.subject, attempts=pending.attempts)
        self.notices.labels(notice.channel, "sent").inc()
        log.info(
            "sent %s %s about %s to %s (%s)",
            notice.alertname,
            notice.status,
            notice.page,
            notice.address,
            notice.channel,
        )

    def due(self) -> list[Pending]:
        now = self.clock()
        return sorted(
            (
                p
                for p in self.journal.pending.values()
                if p.notice.not_before <= now and p.next_attempt <= now and not p.in_flight
            ),
            key=lambda p: (p.notice.not_before, p.notice.queued_at),
        )

    async def run_once(self) -> int:
        """Deliver every notice that is due now; returns how many were attempted."""
        batch = self.due()
        for pending in batch:
            pending.in_flight = True
            try:
                await self.deliver(pending)
            except Exception:  # a bug must cost one notice's attempt, not the loop
                log.exception("delivering %s failed", pending.notice.dedupe_id())
                pending.attempts += 1
                pending.next_attempt = self.clock() + self.settings.max_backoff_s
            finally:
                pending.in_flight = False
        return len(batch)

    async def delivery_loop(self) -> None:
        while True:
            await self.run_once()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=POLL_S)
            except TimeoutError:
                pass

    # ---- the web app ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/alertmanager", self.handle_webhook)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "pending": len(self.journal.pending),
                "channels": sorted(self.senders),
                "registry": self.watcher.registry.source,
                "registry_error": self.watcher.last_error,
            }
        )

    async def _start(self, app: web.Application) -> None:
        if self.background:
            self._loop_task = asyncio.create_task(self.delivery_loop())

    async def _stop(self, app: web.Application) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
        if self._http is not None:
            await self._http.close()
        for sender in self.senders.values():
            await sender.close()


@click.command("notifier")
@click.option("--host", default=None, help="Address to listen on [env OTKLIK_NOTIFIER_HOST, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port of the webhook [env OTKLIK_NOTIFIER_PORT, 9095].")
@click.option(
    "--registry",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Page registry YAML [env OTKLIK_REGISTRY].",
)
@click.option(
    "--worker-url", default=None, help="The worker's read API [env OTKLIK_WORKER_URL, http://127.0.0.1:6066]."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where deliveries.jsonl is kept [env OTKLIK_NOTIFIER_DATA_DIR, .run/notifier].",
)
def notifier_command(
    host: str | None, port: int | None, registry: Path | None, worker_url: str | None, data_dir: Path | None
) -> None:
    """Receive Alertmanager's webhooks and write to the page's administrators and supervisors.

    Alertmanager's receiver `notifier` posts to http://HOST:PORT/alertmanager. Channels: e-mail when
    OTKLIK_SMTP_HOST is set (OTKLIK_SMTP_PORT, OTKLIK_SMTP_FROM, OTKLIK_SMTP_USER, OTKLIK_SMTP_PASSWORD,
    OTKLIK_SMTP_STARTTLS, OTKLIK_SMTP_SSL), Telegram when OTKLIK_TELEGRAM_TOKEN is set, MAX when
    OTKLIK_MAX_TOKEN is set. What was sent to whom is recorded in DATA_DIR/deliveries.jsonl."""
    from otklik.schemas.registry import RegistryError

    try:
        settings = NotifierSettings.from_env(
            host=host, port=port, registry=registry, worker_url=worker_url, data_dir=data_dir
        )
    except SettingsError as exc:
        raise command_error(exc) from None
    settings.configure_logging()
    if settings.registry is None:
        raise click.ClickException("no page registry: set OTKLIK_REGISTRY or pass --registry")
    try:
        notifier = Notifier(settings)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    if not notifier.senders:
        log.warning(
            "no channel configured (OTKLIK_SMTP_HOST, OTKLIK_TELEGRAM_TOKEN, OTKLIK_MAX_TOKEN): nothing will be sent"
        )
    web.run_app(notifier.app(), host=settings.host, port=settings.port, print=None, handle_signals=True)
