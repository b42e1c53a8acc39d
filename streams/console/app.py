"""The console's web application (aiohttp, Jinja2 templates with autoescaping, every asset served here).

Routes (README, "The operations console"): sign-in and out, the queue and its self-refreshing rows, an
item's story with its corrections and disputes, a page, the monthly rating with CSV and XLSX downloads,
moderation, open disputes, and ``/health``. Who sees and may do what is `agents/console/rules.py`.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
import orjson
from aiohttp import web
from markupsafe import Markup, escape

from otklik.agents.console.charts import latency_histogram, month_latencies
from otklik.agents.console.rules import (
    DISPUTE_REASONS,
    ROLE_TITLES,
    DisputeError,
    SignInLimiter,
    Viewer,
    decide,
    explain,
    share_used,
)
from otklik.agents.history.rating import month_bounds
from otklik.schemas.overrides import Override, OverrideError
from otklik.streams.console.auth import COOKIE, Session, SessionSigner, password_stamp, verify_password
from otklik.streams.console.data import ConsoleStore, QueueGroup, RegistrySource

__all__ = ["PAGE_SIZE", "ConsoleConfig", "make_app"]

_log = logging.getLogger("otklik.console")

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
FILTERS = ("municipality", "sector", "platform", "page", "kind")
Producer = Callable[[Override], Awaitable[None]]

CONFIG: web.AppKey[ConsoleConfig] = web.AppKey("config")
SESSION: web.RequestKey[Session] = web.RequestKey("session", Session)
VIEWER: web.RequestKey[Viewer | None] = web.RequestKey("viewer")
CHANGED: web.RequestKey[bool] = web.RequestKey("session_changed", bool)
SIGNED_OUT: web.RequestKey[bool] = web.RequestKey("signed_out", bool)

OUTCOME_TITLES = {
    "open": "ждёт ответа",
    "answered": "отвечено",
    "moderated": "удалено страницей без ответа",
    "withdrawn": "удалено автором",
    "expired": "истёк срок хранения",
    "no_answer_needed": "ответ не нужен",
}
EVENT_TITLES = {
    "received": "получено",
    "edited": "изменено",
    "replied": "ответ страницы",
    "deleted": "удалено",
    "restored": "восстановлено",
    "breached": "срок ответа истёк",
    "judged": "оценено",
    "corrected": "исправлено",
}
ACTION_TITLES = {
    "corrected": "исправление разбора",
    "disputed": "оспорено",
    "accepted": "спор принят",
    "rejected": "спор отклонён",
}
WEEKDAYS = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")


class ConsoleConfig:
    """What the handlers share: the store, the registry, the signer, the limiter and the producer."""

    def __init__(
        self,
        store: ConsoleStore,
        registry: RegistrySource,
        produce: Producer,
        *,
        secret: bytes | None = None,
        session_s: int = 12 * 3600,
        lockout_s: float = 900.0,
        secure_cookies: bool = False,
        behind_proxy: bool = False,
        user_header: str | None = None,
        zone: str = "Europe/Moscow",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.registry = registry
        self.produce = produce
        self.signer = SessionSigner(secret or secrets.token_bytes(32), session_s)
        self.limiter = SignInLimiter(limit=10, lockout=lockout_s)
        self.secure_cookies = secure_cookies
        self.behind_proxy = behind_proxy
        self.user_header = user_header
        self.zone = zone
        self.clock = clock
        self._groups: tuple[Any, list[QueueGroup]] | None = None
        self._options: dict[tuple[int, str], tuple[list[Any], Markup]] = {}

    def queue_groups(self) -> list[QueueGroup]:
        """:func:`queue_groups` of the current registry, made again only when the registry changes."""
        registry = self.registry.current()
        if self._groups is None or self._groups[0] is not registry:
            self._groups = (registry, queue_groups(registry))
        return self._groups[1]

    def options(self, facets: list[tuple[Any, Any, int]], chosen: str) -> Markup:
        """The ``<option>`` elements of one filter (value, shown, count; ``chosen`` selected), escaped,
        made once per counts kept and choice: with two thousand pages they are most of the queue
        page, and rendering them value by value in the template took longer than reading the rows."""
        key = (id(facets), chosen)
        kept = self._options.get(key)
        if kept is not None and kept[0] is facets:  # the same list, not another at a reused address
            return kept[1]
        html = Markup(
            "".join(
                f'<option value="{escape(value)}"{" selected" if value == chosen else ""}>{escape(shown)} ({n})</option>'
                for value, shown, n in facets
            )
        )
        if len(self._options) >= 256:
            self._options.clear()
        self._options[key] = (facets, html)
        return html


def _config(request: web.Request) -> ConsoleConfig:
    return request.app[CONFIG]


async def _blocking(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


# ---- sessions, CSRF, sign-in required -------------------------------------------------------------------

_OPEN_PATHS = ("/login", "/health")


@web.middleware
async def _security(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    config = _config(request)
    now = config.clock()
    session = config.signer.loads(request.cookies.get(COOKIE), now)
    fresh = session is None
    request[SESSION] = session = session or Session.anonymous(now)
    request[VIEWER] = None
    if session.login is not None:
        found = await _blocking(config.store.user, session.login)
        if found is not None and hmac.compare_digest(session.stamp, password_stamp(found[1])):
            request[VIEWER] = found[0]
    elif config.user_header and config.behind_proxy and (name := request.headers.get(config.user_header)):
        # The authenticating proxy signed the user in (README, "The operations console"); a user the
        # store does not know gets nothing.
        found = await _blocking(config.store.user, name.strip())
        if found is not None:
            request[VIEWER] = found[0]
    try:
        if request.method == "POST":
            form = await request.post()
            if not session.csrf_matches(form.get("csrf")):
                raise web.HTTPForbidden(text="403: форма без действительного CSRF-токена")
        if request[VIEWER] is None and not request.path.startswith(("/static/", *_OPEN_PATHS)):
            if request.method == "GET":
                raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
            raise web.HTTPForbidden(text="403: войдите в систему")
        response = await handler(request)
    except web.HTTPException as exc:
        _headers(exc)
        if fresh or request.get(CHANGED):
            _set_cookie(request, exc)
        raise
    _headers(response)
    if fresh or request.get(CHANGED):
        _set_cookie(request, response)
    return response


def _headers(response: web.StreamResponse) -> None:
    # Nothing from elsewhere: scripts, styles and images are the console's own.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"


def _set_cookie(request: web.Request, response: web.StreamResponse) -> None:
    config = _config(request)
    session: Session = request[SESSION]
    secure = config.secure_cookies or request.secure or _forwarded(request, "X-Forwarded-Proto") == "https"
    if request.get(SIGNED_OUT):
        response.del_cookie(COOKIE, path="/")
        return
    response.set_cookie(
        COOKIE,
        config.signer.dumps(session),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure,
        max_age=config.signer.max_age,
    )


def _forwarded(request: web.Request, header: str) -> str | None:
    """What the reverse proxy says about the client (the last entry: the one the proxy itself added),
    only when the console is configured to sit behind one; otherwise anyone could set it."""
    if not _config(request).behind_proxy:
        return None
    values = [v.strip() for v in request.headers.get(header, "").split(",") if v.strip()]
    return values[-1] if values else None


def _viewer(request: web.Request) -> Viewer:
    viewer = request[VIEWER]
    assert viewer is not None  # the middleware let only signed-in users through
    return viewer


def _render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    viewer = request.get(VIEWER)
    base = {
        "viewer": viewer,
        "role_title": ROLE_TITLES.get(viewer.role, viewer.role) if viewer else "",
        "csrf": request[SESSION].csrf,
        "path": request.path,
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def _not_found(request: web.Request, what: str = "Не найдено") -> web.Response:
    return _render(request, "error.html", {"title": "404", "message": what}, status=404)


# ---- sign-in ----------------------------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    # Only a path on this site: never //other.host or a scheme.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/queue"


async def login_form(request: web.Request) -> web.Response:
    return _render(request, "login.html", {"next": _safe_next(request.query.get("next")), "error": None})


async def login(request: web.Request) -> web.Response:
    config = _config(request)
    form = await request.post()
    login_name = str(form.get("login", "")).strip()
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    address = _forwarded(request, "X-Forwarded-For") or request.remote or "unknown"
    keys = SignInLimiter.keys(login_name, address)
    now = config.clock()
    if config.limiter.refused(keys, now):
        _log.warning("sign-in refused for a while: too many wrong passwords")
        return _render(
            request,
            "login.html",
            {"next": target, "error": "Слишком много неудачных попыток. Попробуйте позже."},
            status=429,
        )
    found = await _blocking(config.store.user, login_name) if login_name else None
    ok = await _blocking(verify_password, found[1] if found else None, password)
    if not ok or found is None:
        config.limiter.failed(keys, now)
        return _render(request, "login.html", {"next": target, "error": "Неверный логин или пароль."}, status=401)
    config.limiter.succeeded(keys)
    request[SESSION] = Session.signed_in(found[0].login, now, password_stamp(found[1]))
    request[CHANGED] = True
    raise web.HTTPSeeOther(target)


async def logout(request: web.Request) -> web.Response:
    request[SIGNED_OUT] = True
    request[CHANGED] = True
    raise web.HTTPSeeOther("/login")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/queue")


# ---- the queue ----------------------------------------------------------------------------------------


def queue_groups(registry: Any) -> list[QueueGroup]:
    """The registry's pages grouped by clock and deadline (see :meth:`ConsoleStore.queue`); the pages it
    does not name are judged on its defaults and join the defaults' group."""
    groups: dict[tuple[int, int, bool], tuple[Any, list[str]]] = {}
    for page in registry:
        key = (id(page.clock), page.deadline.seconds, page.deadline.working)
        groups.setdefault(key, (page, []))[1].append(page.id)
    fallback = registry.defaults
    rest_key = (id(fallback.clock), fallback.deadline.seconds, fallback.deadline.working)
    groups.setdefault(rest_key, (fallback, []))

    def urgency(page: Any) -> Callable[[int, int], float]:
        return lambda created_at, now: share_used(page.deadline, page.clock, created_at, now)

    if len(groups) == 1:  # one clock and one deadline for every page: no condition on pages at all
        return [QueueGroup((), urgency(fallback), rest=True)]
    # The defaults' group is every page but the other groups' (usually the many): named by exclusion.
    others = tuple(page_id for key, (_, pages) in groups.items() if key != rest_key for page_id in pages)
    return [
        QueueGroup(tuple(pages), urgency(page), rest=True, others_than=others)
        if key == rest_key
        else QueueGroup(tuple(pages), urgency(page))
        for key, (page, pages) in groups.items()
    ]


async def _queue_context(request: web.Request) -> dict[str, Any]:
    """Urgency, filters with their counts, and the page of rows asked for."""
    config = _config(request)
    chosen = {name: request.query.get(name, "") for name in FILTERS}
    overdue_only = request.query.get("overdue") == "1"
    try:
        number = max(1, min(10_000, int(request.query.get("p", "1"))))
    except ValueError:
        number = 1
    result = await _blocking(
        config.store.queue,
        _viewer(request),
        chosen,
        overdue_only,
        int(config.clock()),
        config.queue_groups(),
        (number - 1) * PAGE_SIZE,
        PAGE_SIZE,
    )
    texts = await _blocking(config.store.texts, [row["item"] for row in result["rows"]])
    for row in result["rows"]:
        row["text"] = texts.get(row["item"])
    pages = max(1, -(-result["total"] // PAGE_SIZE))
    query = {name: value for name, value in chosen.items() if value}
    if overdue_only:
        query["overdue"] = "1"
    return {
        **result,
        "chosen": chosen,
        "overdue_only": overdue_only,
        "number": number,
        "pages": pages,
        "query": urlencode(query),
        "query_with": lambda **kw: urlencode({**query, **kw}),
        "counts_ttl": round(config.store.counts_ttl_s),
    }


async def queue(request: web.Request) -> web.Response:
    context = await _queue_context(request)
    # The filters' options: only the whole page has them (the rows it refreshes on its own do not).
    config = _config(request)
    context["options"] = {name: config.options(context["facets"][name], context["chosen"][name]) for name in FILTERS}
    return _render(request, "queue.html", context)


async def queue_rows(request: web.Request) -> web.Response:
    return _render(request, "queue_rows.html", await _queue_context(request))


# ---- one item -------------------------------------------------------------------------------------------


def _working_days(page: Any, start: int, end: int, limit: int = 14) -> list[dict[str, Any]]:
    """The page's working hours on each local day from ``start`` to ``end`` (days off included)."""
    zone = ZoneInfo(page.timezone)
    first = datetime.fromtimestamp(start, zone).date()
    last = datetime.fromtimestamp(max(start, end), zone).date()
    days = []
    day = first
    while day <= last and len(days) < limit:
        ranges = page.clock.local_ranges(day)
        days.append(
            {
                "date": day,
                "weekday": WEEKDAYS[day.weekday()],
                "ranges": [f"{s // 60:02d}:{s % 60:02d}–{e // 60:02d}:{e % 60:02d}" for s, e in ranges],
            }
        )
        day += timedelta(days=1)
    return days


async def item_page(request: web.Request) -> web.Response:
    config = _config(request)
    viewer = _viewer(request)
    item = await _blocking(config.store.item, request.match_info["item"], viewer)
    if item is None:
        return _not_found(request, "Обращение не найдено.")
    story = await _blocking(config.store.story, item["item"])
    registry = config.registry.current()
    page = registry.page(item["page"])
    now = int(config.clock())
    end = item["closed_at"] or now
    extra = orjson.loads(item["extra"]) if item["extra"] else {}
    worked = page.deadline.elapsed(page.clock, item["created_at"], end)
    for event in story["events"]:
        event["detail"] = orjson.loads(event["detail"]) if event["detail"] else {}
    for action in story["actions"]:
        action["before"] = orjson.loads(action["before"]) if action["before"] else None
        action["after"] = orjson.loads(action["after"]) if action["after"] else None
    return _render(
        request,
        "item.html",
        {
            "item": item,
            "extra": extra,
            "page_config": page,
            "story": story,
            "share": share_used(page.deadline, page.clock, item["created_at"], now)
            if item["outcome"] == "open"
            else None,
            "worked": worked,
            "judgement": explain(
                item["outcome"],
                bool(item["breached"]),
                item["reason"],
                extra,
                due_passed=item["due_at"] is not None and item["due_at"] <= now,
            ),
            "days": _working_days(page, item["created_at"], end),
            "reasons": DISPUTE_REASONS,
            "message": request.query.get("done"),
        },
    )


async def _form(request: web.Request) -> Any:
    return await request.post()


async def correct(request: web.Request) -> web.Response:
    config = _config(request)
    viewer = _viewer(request)
    item = await _blocking(config.store.item, request.match_info["item"], viewer)
    if item is None:
        return _not_found(request, "Обращение не найдено.")
    if not viewer.may_correct:
        raise web.HTTPForbidden(text="403: исправлять разбор могут оператор и куратор")
    form = await _form(request)
    choice = form.get("needs_answer")
    note = str(form.get("note", "")).strip()
    if choice not in ("yes", "no") or not note:
        raise web.HTTPBadRequest(text="400: укажите решение и примечание")
    now = config.clock()
    try:
        override = Override.parse(
            {
                "item": item["item"],
                "needs_answer": choice == "yes",
                "by": viewer.login,
                "note": note,
                "requested_at": now,
            }
        )
    except OverrideError as exc:
        raise web.HTTPBadRequest(text=f"400: {exc}") from None
    await _produce(config, override)
    await _blocking(config.store.add_correction, item, viewer.login, override.needs_answer, override.note, now)
    raise web.HTTPSeeOther(f"/items/{item['item']}?done=corrected")


async def _produce(config: ConsoleConfig, override: Override) -> None:
    try:
        await config.produce(override)
    except Exception as exc:
        _log.error("the correction of %s was not written to otklik.overrides: %r", override.item, exc)
        raise web.HTTPServiceUnavailable(text="503: исправление не записано в Kafka; повторите позже") from None


async def dispute(request: web.Request) -> web.Response:
    config = _config(request)
    viewer = _viewer(request)
    item = await _blocking(config.store.item, request.match_info["item"], viewer)
    if item is None:
        return _not_found(request, "Обращение не найдено.")
    if not viewer.may_dispute:
        raise web.HTTPForbidden(text="403: оспаривать может администратор страницы")
    form = await _form(request)
    reason = str(form.get("reason", ""))
    text = str(form.get("text", "")).strip()
    if reason not in DISPUTE_REASONS or (reason == "other" and not text) or len(text) > 2000:
        raise web.HTTPBadRequest(text="400: укажите причину (и текст для «другое»)")
    await _blocking(config.store.add_dispute, item, viewer.login, reason, text, config.clock())
    raise web.HTTPSeeOther(f"/items/{item['item']}?done=disputed")


async def decide_dispute(request: web.Request) -> web.Response:
    config = _config(request)
    viewer = _viewer(request)
    try:
        dispute_id = int(request.match_info["dispute"])
    except ValueError:
        return _not_found(request)
    found = await _blocking(config.store.dispute, dispute_id)
    item = await _blocking(config.store.item, found["item"], viewer) if found else None
    if found is None or item is None:
        return _not_found(request, "Спор не найден.")
    if not viewer.may_decide:
        raise web.HTTPForbidden(text="403: решение по спору принимает оператор")
    form = await _form(request)
    note = str(form.get("note", "")).strip() or "без примечания"
    try:
        state = decide(found["state"], str(form.get("decision", "")))
    except DisputeError as exc:
        raise web.HTTPConflict(text=f"409: {exc}") from None
    now = config.clock()
    if state == "accepted":
        # An accepted dispute says the item needed no answer from the page: the worker re-judges it so.
        reason = DISPUTE_REASONS.get(found["reason"], found["reason"])
        text = f"спор №{found['id']} ({found['by']}): {reason}" + (f": {found['text']}" if found["text"] else "")
        override = Override.parse(
            {
                "item": found["item"],
                "needs_answer": False,
                "by": viewer.login,
                "note": f"{text}; решение: {note}"[:2000],
                "requested_at": now,
            }
        )
        await _produce(config, override)
    if not await _blocking(config.store.decide_dispute, found, state, viewer.login, note, now):
        raise web.HTTPConflict(text="409: спор уже рассмотрен")
    raise web.HTTPSeeOther(f"/items/{found['item']}?done={state}")


async def disputes_page(request: web.Request) -> web.Response:
    config = _config(request)
    rows = await _blocking(config.store.open_disputes, _viewer(request))
    return _render(request, "disputes.html", {"rows": rows, "reasons": DISPUTE_REASONS})


# ---- a page, the rating, moderation -------------------------------------------------------------------


def _months(zone: str, now: float, count: int) -> list[str]:
    today = datetime.fromtimestamp(now, ZoneInfo(zone)).date().replace(day=1)
    labels = []
    for _ in range(count):
        labels.append(f"{today.year:04d}-{today.month:02d}")
        today = (today - timedelta(days=1)).replace(day=1)
    return labels


async def page_view(request: web.Request) -> web.Response:
    from otklik.streams.store.reports import rating

    config = _config(request)
    viewer = _viewer(request)
    page_id = request.match_info["page"]
    registry = config.registry.current()
    known = await _blocking(config.store.page_known, page_id)
    page = registry.get(page_id)
    if page is None and known is None:
        return _not_found(request, "Страница не найдена.")
    municipality = page.municipality if page is not None else known["municipality"]  # type: ignore[index]
    if not viewer.may_see(page_id, municipality):
        return _not_found(request, "Страница не найдена.")
    config_page = registry.page(page_id)
    now = int(config.clock())
    open_rows = await _blocking(config.store.page_items_open, page_id)
    overdue = sum(
        1 for row in open_rows if share_used(config_page.deadline, config_page.clock, row["created_at"], now) >= 1
    )
    months = [month_bounds(label, config.zone) for label in _months(config.zone, now, 6)]  # this month first
    figures = []
    for month in months:
        rows = await _blocking(
            lambda m=month: rating(config.store.engine, m, by="page", min_judged=1, where={"page": page_id})
        )
        figures.append({"month": month.label, "row": rows[0] if rows else None})
    deadline = config_page.deadline
    this_month = months[0]
    latencies = await _blocking(
        config.store.page_latencies, page_id, this_month.start, this_month.end, deadline.working
    )
    oldest_first = [
        (f["month"], f["row"].median_business_s if f["row"] else None, f["row"].p90_business_s if f["row"] else None)
        for f in reversed(figures)
    ]
    return _render(
        request,
        "page.html",
        {
            "page_id": page_id,
            "page": config_page,
            "registered": page is not None,
            "known": known,
            "schedule": config_page.schedule.to_mapping(),
            "backlog": len(open_rows),
            "overdue": overdue,
            "figures": figures,
            "chart": _chart(figures),
            "latency": month_latencies(oldest_first, deadline.seconds, deadline.working),
            "histogram": latency_histogram(latencies, deadline.seconds),
        },
    )


def _chart(figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bars of the on-time share per month, oldest first, for the page's SVG (drawn by the template)."""
    bars = []
    for index, figure in enumerate(reversed(figures)):
        row = figure["row"]
        share = row.on_time_share if row is not None and row.on_time_share is not None else None
        height = 0 if share is None else round(share * 100)
        bars.append(
            {"x": 10 + index * 60, "height": height, "y": 110 - height, "month": figure["month"], "share": share}
        )
    return bars


def _rating_request(request: web.Request) -> tuple[Any, str]:
    config = _config(request)
    by = request.query.get("by", "municipality")
    if by not in ("page", "municipality", "sector", "region"):
        by = "municipality"
    label = request.query.get("month") or _months(config.zone, config.clock(), 1)[0]
    try:
        month = month_bounds(label, config.zone)
    except ValueError:
        month = month_bounds(_months(config.zone, config.clock(), 1)[0], config.zone)
    return month, by


async def rating_page(request: web.Request) -> web.Response:
    from otklik.streams.store.reports import rating

    config = _config(request)
    month, by = _rating_request(request)
    rows = await _blocking(lambda: rating(config.store.engine, month, by=by))
    return _render(
        request,
        "rating.html",
        {
            "rows": rows,
            "month": month.label,
            "by": by,
            "months": _months(config.zone, config.clock(), 12),
            "query": urlencode({"month": month.label, "by": by}),
        },
    )


async def rating_download(request: web.Request) -> web.Response:
    from otklik.streams.store.formats import write_rating
    from otklik.streams.store.reports import rating, rating_meta

    config = _config(request)
    fmt = request.match_info["fmt"]
    month, by = _rating_request(request)

    def build() -> bytes:
        rows = rating(config.store.engine, month, by=by)
        titles = {page.id: page.title for page in config.registry.current() if page.title} if by == "page" else None
        meta = rating_meta(config.store.engine, month, by, 2, titles=titles)
        out = io.BytesIO()
        write_rating(rows, meta, fmt, out)
        return out.getvalue()

    body = await _blocking(build)
    types = {
        "csv": "text/csv; charset=utf-8",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
    return web.Response(
        body=body,
        headers={
            "Content-Type": types[fmt],
            "Content-Disposition": f'attachment; filename="rating-{month.label}-{by}.{fmt}"',
        },
    )


async def moderation(request: web.Request) -> web.Response:
    config = _config(request)
    viewer = _viewer(request)
    offensive = await _blocking(config.store.offensive_visible, viewer)
    for row in offensive:
        row["labels"] = orjson.loads(row["labels"]) if row["labels"] else []
    removed = await _blocking(config.store.removed_for_review, viewer)
    return _render(request, "moderation.html", {"offensive": offensive, "removed": removed})


# ---- the application ------------------------------------------------------------------------------------


def _formatter(zone: str, pattern: str = "%d.%m.%Y %H:%M") -> Callable[[Any], str]:
    tz = ZoneInfo(zone)

    def when(value: Any, page_zone: str | None = None) -> str:
        if value is None:
            return "—"
        return datetime.fromtimestamp(int(value), ZoneInfo(page_zone) if page_zone else tz).strftime(pattern)

    return when


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours} ч {rest // 60:02d} мин"


def make_app(config: ConsoleConfig) -> web.Application:
    app = web.Application(middlewares=[_security], client_max_size=64 * 1024)
    app[CONFIG] = config
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise (none does)
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["when"] = _formatter(config.zone)
    environment.filters["clock"] = _formatter(config.zone, "%H:%M:%S")
    environment.filters["duration"] = _duration
    environment.filters["percent"] = lambda v: "—" if v is None else f"{v * 100:.0f}%"
    environment.globals.update(
        outcome_titles=OUTCOME_TITLES,
        event_titles=EVENT_TITLES,
        action_titles=ACTION_TITLES,
        today=date.today,
    )
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/queue", queue)
    app.router.add_get("/queue/rows", queue_rows)
    app.router.add_get("/items/{item}", item_page)
    app.router.add_post("/items/{item}/correct", correct)
    app.router.add_post("/items/{item}/dispute", dispute)
    app.router.add_get("/disputes", disputes_page)
    app.router.add_post("/disputes/{dispute}/decide", decide_dispute)
    app.router.add_get("/pages/{page}", page_view)
    app.router.add_get("/rating", rating_page)
    app.router.add_get("/rating.{fmt:csv|xlsx}", rating_download)
    app.router.add_get("/moderation", moderation)
    app.router.add_static("/static/", HERE / "static", append_version=False)
    return app
