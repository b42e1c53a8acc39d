"""Traffic simulator: a realistic, deterministic stream of VK Callback API bodies (API 5.199).

``otklik make run``, the benchmarks and the tests are fed by it when no real source is configured.
It simulates N communities (group ids from ``first_group_id``) and what happens on them:

- citizens' top-level comments on wall posts (mostly), photos, videos, market items and board topics;
  threads (``parents_stack``, ``reply_to_comment``, ``reply_to_user``), citizens talking to each other,
  follow-ups ("ответьте, пожалуйста"), thanks after an answer, comments by other communities;
- page replies after log-normal delays counted in the page's working hours (median about two hours,
  a long tail, some within minutes at any hour), written by the community (``from_id = -group_id``)
  or by an administrator's personal account (listed in the registry the simulator writes); some items
  are never answered; each page has its own diligence and its own (heavy-tailed) activity;
- deletions by the author or by the page (an administrator or the community), restorations, edits;
- direct messages (``message_new`` in the 5.103+ shape) and replies (``message_reply``), from a person
  (``admin_author_id``) or from an auto-reply bot (without it);
- redelivered duplicates (same body, same ``event_id``, a few seconds later).

The core (:func:`generate`, :func:`registry_mapping`) is pure and deterministic for a seed: no clock
is read unless ``start`` is None, no I/O. The edges are :func:`write_jsonl`, :func:`write_registry`,
:func:`produce` (Kafka, aiokafka) and the click command :data:`simulate_command`.

How a run is built: "initiatives" (a citizen starts a conversation: a comment or a direct message)
arrive as a Poisson process spread over pages by their activity weight. Each initiative is planned
as a whole script at once (its follow-ups, the page's reply or silence, deletions, edits), so the
consistency rules (no reply to a comment deleted before it, a reply after what it answers) are
settled in one place. The script's happenings go into a heap keyed by the time they happen; ids are
given when a happening is popped, so ids grow with creation time on every object. Each body then
waits in a second heap keyed by the time VK delivers it (``received_at``), which is how events come
out: in order of delivery, a few of them late and out of order by up to a minute.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import io
import math
import random
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import click
import holidays
import orjson
import yaml

from otklik.schemas.records import RawEnvelope
from otklik.streams.settings import SettingsError, SimulatorSettings, command_error

API_VERSION = "5.199"

# Ranges of the synthetic user ids: citizens, administrators and foreign communities never overlap,
# so a citizen is never mistaken for one of the page's administrators.
CITIZEN_ID_BASE = 700_000_000
ADMIN_ID_BASE = 600_000_000
FOREIGN_COMMUNITY_BASE = 190_000_000

WORKDAY_START = dtime(9, 0)
WORKDAY_END = dtime(18, 0)
WORKDAY_SECONDS = 9 * 3600


@dataclass
class SimConfig:
    pages: int = 50
    rate: float = 20.0  # events per second of simulated time, on average (duplicates included)
    duration: float = 600.0  # simulated seconds; 0 = forever (only sensible for realtime Kafka)
    seed: int = 1
    start: int | None = None  # unix seconds of the simulated clock's start; None = now
    duplicate_rate: float = 0.01  # share of bodies that VK delivers twice
    first_group_id: int = 200000001

    def __post_init__(self) -> None:
        if self.pages < 1:
            raise ValueError(f"pages: {self.pages} is not a positive number of pages")
        if not self.rate > 0:
            raise ValueError(f"rate: {self.rate} is not a positive number of events per second")
        if self.duration < 0:
            raise ValueError(f"duration: {self.duration} is negative (0 means forever)")
        if not 0 <= self.duplicate_rate < 1:
            raise ValueError(f"duplicate_rate: {self.duplicate_rate} is not in [0, 1)")
        if self.first_group_id < 1:
            raise ValueError(f"first_group_id: {self.first_group_id} is not a positive group id")


# ---------------------------------------------------------------------------------------------
# The working-hours clock of the simulated administrators (Mon–Fri 09:00–18:00 local time, the
# Russian production calendar from `holidays`). It only shapes reply delays; the measurement's own
# clock lives in agents/ and is far more thorough (short days, per-page schedules).

_RU_CALENDAR = holidays.country_holidays("RU")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=65536)
def _work_window(tz_name: str, ordinal: int) -> tuple[float, float] | None:
    """The working period of one local day as unix seconds, or None for a day off."""
    day = date.fromordinal(ordinal)
    if not _RU_CALENDAR.is_working_day(day):
        return None
    tz = _zone(tz_name)
    begin = datetime.combine(day, WORKDAY_START, tz).timestamp()
    end = datetime.combine(day, WORKDAY_END, tz).timestamp()
    return begin, end


def _local_ordinal(t: float, tz_name: str) -> int:
    return datetime.fromtimestamp(t, _zone(tz_name)).date().toordinal()


def add_working_seconds(t: float, seconds: float, tz_name: str) -> float:
    """The instant when ``seconds`` of working time have passed after ``t`` (unix seconds)."""
    remaining = seconds
    ordinal = _local_ordinal(t, tz_name)
    while True:
        window = _work_window(tz_name, ordinal)
        if window is not None:
            begin, end = max(t, window[0]), window[1]
            if begin < end:
                if remaining <= end - begin:
                    return begin + remaining
                remaining -= end - begin
        ordinal += 1


def working_seconds_between(a: float, b: float, tz_name: str) -> float:
    """Working time between two instants (0 when ``b <= a``)."""
    if b <= a:
        return 0.0
    total = 0.0
    ordinal = _local_ordinal(a, tz_name)
    last = _local_ordinal(b, tz_name)
    while ordinal <= last:
        window = _work_window(tz_name, ordinal)
        if window is not None:
            begin, end = max(a, window[0]), min(b, window[1])
            if end > begin:
                total += end - begin
        ordinal += 1
    return total


# ---------------------------------------------------------------------------------------------
# Places and institutions. Municipalities are real places; institutions are generic names from
# templates; people are never named (contacts are role addresses at example.org).


@dataclass(frozen=True)
class _Region:
    name: str
    timezone: str
    weight: float
    municipalities: tuple[tuple[str, str], ...]  # (name, genitive form used in titles)


REGIONS: tuple[_Region, ...] = (
    _Region(
        "Новосибирская область",
        "Asia/Novosibirsk",
        0.6,
        (
            ("Бердск", "г. Бердска"),
            ("Искитим", "г. Искитима"),
            ("Обь", "г. Оби"),
            ("Новосибирский район", "Новосибирского района"),
            ("Куйбышевский район", "Куйбышевского района"),
        ),
    ),
    _Region(
        "Тульская область",
        "Europe/Moscow",
        0.3,
        (("Тула", "г. Тулы"), ("Алексин", "г. Алексина"), ("Новомосковск", "г. Новомосковска")),
    ),
    _Region("Омская область", "Asia/Omsk", 0.1, (("Омск", "г. Омска"), ("Тара", "г. Тары"))),
)
DEFAULT_REGION = REGIONS[0]

SECTORS = ("education", "culture", "health", "sport", "social", "administration")
_SECTOR_WEIGHTS = (0.35, 0.18, 0.12, 0.08, 0.1, 0.17)
_NAMES = ("Солнышко", "Радуга", "Олимп", "Юность", "Факел", "Родник", "Гармония", "Берёзка")
_TITLES: dict[str, tuple[str, ...]] = {
    "education": (
        "МБОУ СОШ № {n} {g}",
        "МАОУ «Лицей № {n}» {g}",
        "МАДОУ детский сад № {n} «{name}» {g}",
        "МБУ ДО «Дом детского творчества» {g}",
    ),
    "culture": (
        "МБУК «Централизованная библиотечная система» {g}",
        "МКУК «Дом культуры «{name}»» {g}",
        "Краеведческий музей {g}",
    ),
    "health": (
        "ГБУЗ «Центральная городская больница» {g}",
        "Детская поликлиника № {n} {g}",
        "Стоматологическая поликлиника {g}",
    ),
    "sport": ("МАУ «Спортивная школа «{name}»» {g}", "ФОК «{name}» {g}"),
    "social": (
        "Комплексный центр социального обслуживания населения {g}",
        "Отдел социальной защиты населения {g}",
    ),
    "administration": (
        "Администрация {g}",
        "Совет депутатов {g}",
        "Управление образования администрации {g}",
        "МКУ «Управление ЖКХ» {g}",
    ),
}


@dataclass(slots=True)
class _Page:
    group_id: int
    title: str
    region: _Region
    municipality: str
    sector: str
    admins: tuple[int, ...]
    deadline: str | None
    weight: float  # share of the citizens' activity (heavy-tailed across pages)
    slowness: float  # multiplies the median reply delay: the page's (lack of) diligence
    ignore_p: float  # chance that a question is never answered
    quick_p: float  # chance that an answer comes within minutes, at any hour
    admin_reply_p: float  # share of replies written from an administrator's personal account
    has_bot: bool  # an auto-reply bot answers direct messages at once
    # Mutable state: the page's objects and id counters.
    post_id: int = 0
    photo_ids: list[int] = field(default_factory=list)
    video_ids: list[int] = field(default_factory=list)
    market_ids: list[int] = field(default_factory=list)
    topic_ids: list[int] = field(default_factory=list)
    next_comment_id: dict[str, int] = field(default_factory=dict)
    next_message_id: int = 1
    conversation_ids: dict[int, int] = field(default_factory=dict)

    @property
    def timezone(self) -> str:
        return self.region.timezone


def _build_pages(cfg: SimConfig) -> list[_Page]:
    """The simulated pages: derived from the seed alone, so the registry matches the stream."""
    rng = random.Random(f"otklik-sim-pages:{cfg.seed}")
    region_weights = list(accumulate(r.weight for r in REGIONS))
    sector_weights = list(accumulate(_SECTOR_WEIGHTS))
    pages: list[_Page] = []
    for index in range(cfg.pages):
        group_id = cfg.first_group_id + index
        region = rng.choices(REGIONS, cum_weights=region_weights)[0]
        municipality, genitive = rng.choice(region.municipalities)
        sector = rng.choices(SECTORS, cum_weights=sector_weights)[0]
        title = rng.choice(_TITLES[sector]).format(n=rng.randint(1, 60), name=rng.choice(_NAMES), g=genitive)
        admins = tuple(ADMIN_ID_BASE + index * 8 + k for k in range(rng.choice((1, 1, 2, 2, 3))))
        # Flagship pages (administrations, some others) promise a first response within 4 hours.
        flagship = rng.random() < (0.6 if sector == "administration" else 0.08)
        slowness = min(rng.lognormvariate(0.0, 0.8), 12.0)
        page = _Page(
            group_id=group_id,
            title=title,
            region=region,
            municipality=municipality,
            sector=sector,
            admins=admins,
            deadline="4h working" if flagship else None,
            weight=min(rng.paretovariate(1.2), 300.0),
            slowness=slowness,
            ignore_p=min(0.03 + 0.08 * slowness * rng.random(), 0.7),
            quick_p=min(max(0.12 / slowness, 0.02), 0.3),
            admin_reply_p=rng.choice((0.0, 0.1, 0.3, 0.6, 0.9)),
            has_bot=rng.random() < 0.3,
            post_id=rng.randint(50, 4000),
            photo_ids=[457239000 + rng.randint(1, 5000) + k * 7 for k in range(6)],
            video_ids=[456239000 + rng.randint(1, 900) + k * 3 for k in range(3)],
            market_ids=[rng.randint(100, 9000) + k for k in range(4)],
            topic_ids=[30_000_000 + index * 100 + k for k in range(3)],
            next_comment_id={kind: rng.randint(100, 60000) for kind in ("wall", "photo", "video", "market")},
        )
        # Board post ids count per topic.
        for topic in page.topic_ids:
            page.next_comment_id[f"board:{topic}"] = rng.randint(1, 400)
        pages.append(page)
    return pages


# ---------------------------------------------------------------------------------------------
# Texts: short, plausible Russian comments from templates. No real people's data.

_STREETS = ("Ленина", "Советской", "Школьной", "Садовой", "Молодёжной", "Лесной", "Мира", "Строителей")
_QUESTIONS = (
    "Когда отремонтируют дорогу на улице {street}?",
    "Подскажите, пожалуйста, как записаться на приём?",
    "Будет ли горячая вода на улице {street} на этой неделе?",
    "Когда начнётся запись в кружки на новый год?",
    "Добрый день! Во сколько завтра начало мероприятия?",
    "Можно ли прийти с ребёнком {n} лет?",
    "А где посмотреть расписание на следующую неделю?",
    "Подскажите номер телефона приёмной",
    "Здравствуйте! Какие документы нужны для справки?",
    "Почему не вывозят мусор на улице {street}? Уже {n} дня стоит",
    "Когда будет готов ответ на моё обращение от {n} числа?",
    "Скажите, пожалуйста, автобус №{n} будет ходить по старому расписанию?",
)
_COMPLAINTS = (
    "Уже {n} дней не горят фонари на улице {street}, сколько можно?",
    "Опять яма у дома {n} на улице {street}, колесо пробил 😡",
    "Третий раз пишу, никто не отвечает",
    "Запись по телефону не работает, дозвониться невозможно",
    "Автобус №{n} утром не пришёл, дети опоздали в школу",
    "Снег на улице {street} не чистят вторую неделю",
    "В подъезде дома {n} по улице {street} нет отопления!",
    "Очередь {n} часа, работает одно окно. Безобразие",
)
_THANKS = (
    "Спасибо большое! 👍",
    "Спасибо за оперативный ответ",
    "Благодарю!",
    "Спасибо, всё получилось",
    "Отличное мероприятие, спасибо организаторам! ❤",
)
_REACTIONS = ("ок", "Ок", "👍", "🔥🔥🔥", "+", "❤", "Класс!", "👏👏", "Понятно", "ясно")
_FOLLOW_UPS = (
    "Ответьте, пожалуйста!",
    "Так что с вопросом?",
    "Администрация, вы тут?",
    "Вопрос актуален",
    "Жду ответа",
)
_CITIZEN_TALK = (
    "Тоже интересует",
    "У нас на улице {street} так же",
    "Позвоните в приёмную, там быстрее ответят",
    "Согласна полностью",
    "Вчера звонил, сказали ждать",
    "Не одни вы такие 🙁",
)
_SPAM = (
    "Заработок от {n}000 в день без вложений, пишите в личку",
    "Продам гараж недорого, подробности в лс",
    "Скидки на пластиковые окна! Звоните",
)
_OFFENSIVE = ("Бездельники, гнать вас всех!", "Позор такой работе, дармоеды")
_EDIT_SUFFIXES = (" (исправлено)", "!", " Спасибо.", " Срочно!")
_PAGE_REPLIES = (
    "Здравствуйте! Ваше обращение передано специалисту, ответ будет дан в ближайшее время.",
    "Добрый день! Работы запланированы на следующий месяц.",
    "Здравствуйте! Запись по телефону приёмной, пн–пт с 9:00 до 18:00.",
    "Добрый день, информацию уточняем, вернёмся с ответом.",
    "Здравствуйте! Спасибо за сигнал, вопрос взят на контроль.",
    "Добрый день! Расписание опубликовано в закреплённой записи.",
    "Здравствуйте! Направили запрос в управляющую компанию, о результатах сообщим.",
)
_PAGE_THANKS_REPLIES = ("Спасибо за отзыв! Рады стараться 😊", "Благодарим за тёплые слова!")
_BOT_REPLIES = (
    "Здравствуйте! Ваше сообщение получено. Мы ответим в рабочее время: пн–пт с 9:00 до 18:00.",
    "Спасибо за обращение! Специалист ответит в ближайшее время.",
)
_COMMUNITY_COMMENTS = (
    "Информация передана в профильное ведомство.",
    "Приглашаем всех на мероприятие в субботу!",
    "Присоединяемся к поздравлениям!",
)


def _text(rng: random.Random, templates: tuple[str, ...]) -> str:
    return rng.choice(templates).format(street=rng.choice(_STREETS), n=rng.randint(2, 30))


# ---------------------------------------------------------------------------------------------
# Scripts: what happens around one citizen's initiative, planned at once.


@dataclass(slots=True, eq=False)
class _Node:
    """One comment or message. ``id`` and ``date`` are given when it is created (popped)."""

    kind: str  # wall, photo, video, market, board, dm
    page: _Page
    obj: int  # post / photo / video / market item / topic id; the peer for a direct message
    author: int  # VK from_id
    text: str
    root: _Node | None = None  # thread root (None: top level)
    reply_to: _Node | None = None  # reply_to_comment
    reply_to_user: int | None = None
    admin_author: int | None = None  # direct messages from the community written by a person
    id: int = 0
    conversation_id: int = 0
    date: int = 0


# A happening: (time, op, node, extra). op: "new", "edit" (extra = new text), "delete" (extra =
# deleter id), "restore".
_Happening = tuple[float, str, _Node, Any]

_OBJECT_KINDS = ("wall", "photo", "video", "market", "board")
_OBJECT_WEIGHTS = list(accumulate((0.79, 0.08, 0.05, 0.03, 0.05)))
_THREADED = frozenset(("wall", "photo", "video"))
_DM_SHARE = 0.2  # share of initiatives that are direct messages

# Citizens write mostly in the day and the evening, by the page's local time (relative activity
# by hour, 0 to 23). Initiatives are thinned by it, so nights are quiet and mornings start a queue.
_HOURLY_ACTIVITY = (
    0.25,
    0.12,
    0.07,
    0.05,
    0.05,
    0.1,
    0.3,
    0.6,
    0.9,
    1.2,
    1.35,
    1.4,
    1.4,
    1.4,
    1.4,
    1.4,
    1.45,
    1.5,
    1.6,
    1.7,
    1.7,
    1.5,
    1.1,
    0.6,
)
_PEAK_ACTIVITY = max(_HOURLY_ACTIVITY)


def _activity(page: _Page, t: float) -> float:
    """The chance that a candidate initiative at ``t`` happens: the local hour's share of the peak."""
    return _HOURLY_ACTIVITY[datetime.fromtimestamp(t, _zone(page.timezone)).hour] / _PEAK_ACTIVITY


def _minutes(rng: random.Random, median: float, sigma: float = 0.8) -> float:
    """A log-normal duration in seconds with the given median in minutes."""
    return rng.lognormvariate(math.log(median * 60.0), sigma)


def _reply_time(rng: random.Random, page: _Page, t: float) -> float:
    """When the page answers something written at ``t``: minutes at any hour (a diligent admin on
    the phone), or else a log-normal working-time delay (median 3 working hours times the page's
    slowness, a long tail, capped at 15 working days). As measured (the first reply that answers an
    item, quick ones included): a median of about 2 working hours."""
    if rng.random() < page.quick_p:
        return t + 30.0 + _minutes(rng, 6.0, 0.9)
    work = min(rng.lognormvariate(math.log(3.0 * 3600 * page.slowness), 1.1), 15 * WORKDAY_SECONDS)
    return add_working_seconds(t, work, page.timezone)


def _deleter(rng: random.Random, page: _Page) -> int:
    """Who deletes on the page's behalf: an administrator, or the community itself."""
    return rng.choice(page.admins) if rng.random() < 0.6 else -page.group_id


def _page_author(rng: random.Random, page: _Page) -> int:
    return rng.choice(page.admins) if rng.random() < page.admin_reply_p else -page.group_id


def _citizen(rng: random.Random, cfg_pages: int) -> int:
    return CITIZEN_ID_BASE + rng.randrange(max(2000, cfg_pages * 400))


def _pick_object(rng: random.Random, page: _Page, kind: str) -> int:
    if kind == "wall":
        # New posts appear now and then; people comment mostly on the latest ones.
        if rng.random() < 0.08:
            page.post_id += rng.randint(1, 3)
        return max(1, page.post_id - int(rng.expovariate(0.7)))
    pool = {"photo": page.photo_ids, "video": page.video_ids, "market": page.market_ids, "board": page.topic_ids}[kind]
    return rng.choice(pool)


def _plan_comments(rng: random.Random, page: _Page, pages: list[_Page], t0: float) -> list[_Happening]:
    kind = rng.choices(_OBJECT_KINDS, cum_weights=_OBJECT_WEIGHTS)[0]
    obj = _pick_object(rng, page, kind)
    threaded = kind in _THREADED
    script: list[_Happening] = []

    if rng.random() < 0.04:
        # Another community (a neighbouring page, or one we do not watch) comments: not an item.
        other = rng.choice(pages).group_id if rng.random() < 0.6 else FOREIGN_COMMUNITY_BASE + rng.randrange(40)
        if other == page.group_id:
            other = FOREIGN_COMMUNITY_BASE + rng.randrange(40)
        script.append((t0, "new", _Node(kind, page, obj, -other, _text(rng, _COMMUNITY_COMMENTS)), None))
        return script

    citizen = _citizen(rng, len(pages))
    roll = rng.random()
    if roll < 0.45:
        category, templates = "question", _QUESTIONS
    elif roll < 0.70:
        category, templates = "complaint", _COMPLAINTS
    elif roll < 0.82:
        category, templates = "thanks", _THANKS
    elif roll < 0.94:
        category, templates = "reaction", _REACTIONS
    elif roll < 0.97:
        category, templates = "spam", _SPAM
    else:
        category, templates = "offensive", _OFFENSIVE
    first = _Node(kind, page, obj, citizen, _text(rng, templates))
    script.append((t0, "new", first, None))

    def reply_node(author: int, text: str, to: _Node | None, to_user: int | None) -> _Node:
        if kind == "board":  # board topics have no threads: a flat post
            return _Node(kind, page, obj, author, text)
        if not threaded:  # market items: a reply refers to the comment, no thread
            return _Node(kind, page, obj, author, text, reply_to=to, reply_to_user=to_user)
        root = first
        return _Node(kind, page, obj, author, text, root=root, reply_to=to, reply_to_user=to_user)

    # The citizen's own texts, in time order: the page's reply answers the latest before it.
    own: list[tuple[float, _Node]] = [(t0, first)]

    # Other citizens chime in, and the first citizen sometimes answers them.
    t = t0
    if rng.random() < 0.22:
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            t += _minutes(rng, 20.0, 1.2)
            other = _citizen(rng, len(pages))
            talk = reply_node(other, _text(rng, _CITIZEN_TALK), first, citizen)
            script.append((t, "new", talk, None))
            if rng.random() < 0.4:
                t += _minutes(rng, 10.0, 1.0)
                back = reply_node(citizen, _text(rng, _CITIZEN_TALK), talk, other)
                script.append((t, "new", back, None))
                own.append((t, back))

    # Edits come soon after writing.
    edited_at = t0 + _minutes(rng, 3.0) if rng.random() < 0.04 else None

    # Deletions: the author changes their mind, or the page removes spam and insults (and now and
    # then a fair comment, which the monitor must flag).
    deleted_at: float | None = None
    restored_at: float | None = None
    if rng.random() < 0.03:
        deleted_at = t0 + _minutes(rng, 20.0, 1.2)
        script.append((deleted_at, "delete", first, citizen))
    elif rng.random() < (0.7 if category in ("spam", "offensive") else 0.01):
        deleted_at = _reply_time(rng, page, t0) if rng.random() < 0.5 else t0 + _minutes(rng, 30.0, 1.2)
        script.append((deleted_at, "delete", first, _deleter(rng, page)))
    if deleted_at is not None and rng.random() < 0.12:
        restored_at = deleted_at + _minutes(rng, 8.0, 1.0)
        script.append((restored_at, "restore", first, None))

    def visible_at(moment: float) -> bool:
        return deleted_at is None or moment < deleted_at or (restored_at is not None and moment >= restored_at)

    if edited_at is not None and visible_at(edited_at):  # nobody edits a deleted comment
        script.append((edited_at, "edit", first, first.text + rng.choice(_EDIT_SUFFIXES)))

    # The page's answer, or silence.
    if category in ("question", "complaint"):
        answer_p = 1.0 - page.ignore_p
    elif category == "thanks":
        answer_p = 0.15
    else:
        answer_p = 0.0
    answered_at: float | None = None
    if rng.random() < answer_p:
        answered_at = _reply_time(rng, page, t0)
    if answered_at is None or answered_at - t0 > 4 * 3600:
        # An unanswered citizen asks again, in the thread.
        if category in ("question", "complaint") and rng.random() < 0.3:
            t_again = t0 + _minutes(rng, 240.0, 1.0)
            if answered_at is None or t_again < answered_at:
                again = reply_node(citizen, _text(rng, _FOLLOW_UPS), first, citizen)
                script.append((t_again, "new", again, None))
                own.append((t_again, again))
    if answered_at is not None and visible_at(answered_at):
        target = max((entry for entry in own if entry[0] < answered_at), key=lambda entry: entry[0])[1]
        responder = _page_author(rng, page)
        text = rng.choice(_PAGE_THANKS_REPLIES if category == "thanks" else _PAGE_REPLIES)
        form = rng.random()
        if kind == "board" or form < 0.72:
            reply = reply_node(responder, text, target, citizen)  # rule 1: replies to the comment
        elif threaded and form < 0.86:
            reply = reply_node(responder, text, first, citizen)  # rule 2: in the thread, to the author
        else:
            # rule 3: top level, addressed to the author
            reply = _Node(kind, page, obj, responder, text, reply_to_user=citizen)
        script.append((answered_at, "new", reply, None))
        if category != "thanks" and rng.random() < 0.25:
            t_thanks = answered_at + _minutes(rng, 30.0, 1.2)
            thanks = reply_node(citizen, _text(rng, _THANKS), reply, responder)
            if threaded and reply.root is None:
                thanks.root = reply  # the page answered at top level: the thanks goes into that thread
            script.append((t_thanks, "new", thanks, None))
    return script


def _plan_messages(rng: random.Random, page: _Page, pages: list[_Page], t0: float) -> list[_Happening]:
    citizen = _citizen(rng, len(pages))
    script: list[_Happening] = []
    t = t0
    for k in range(rng.choice((1, 1, 1, 2, 2, 3))):
        if k:
            t += _minutes(rng, 0.7, 1.0)
        text = _text(rng, _QUESTIONS if rng.random() < 0.6 else _COMPLAINTS) if k == 0 else _text(rng, _FOLLOW_UPS)
        script.append((t, "new", _Node("dm", page, citizen, citizen, text), None))
    if page.has_bot:
        # The auto-reply bot answers at once; no admin_author_id, so it answers nothing by itself.
        script.append(
            (
                t0 + rng.uniform(1.0, 6.0),
                "new",
                _Node("dm", page, citizen, -page.group_id, rng.choice(_BOT_REPLIES)),
                None,
            )
        )
    if rng.random() < 1.0 - 0.7 * page.ignore_p:
        answered_at = max(_reply_time(rng, page, t0), t + 1.0)
        reply = _Node(
            "dm", page, citizen, -page.group_id, rng.choice(_PAGE_REPLIES), admin_author=rng.choice(page.admins)
        )
        script.append((answered_at, "new", reply, None))
        if rng.random() < 0.3:
            script.append(
                (
                    answered_at + _minutes(rng, 15.0),
                    "new",
                    _Node("dm", page, citizen, citizen, _text(rng, _THANKS)),
                    None,
                )
            )
    return script


def _plan(rng: random.Random, page: _Page, pages: list[_Page], t0: float) -> list[_Happening]:
    if rng.random() < _DM_SHARE:
        return _plan_messages(rng, page, pages, t0)
    return _plan_comments(rng, page, pages, t0)


# ---------------------------------------------------------------------------------------------
# Bodies exactly as VK's Callback API sends them.

_CLIENT_INFO = {
    "button_actions": [
        "text",
        "vkpay",
        "open_app",
        "location",
        "open_link",
        "callback",
        "intent_subscribe",
        "intent_unsubscribe",
    ],
    "keyboard": True,
    "inline_keyboard": True,
    "carousel": True,
    "lang_id": 0,
}


def _comment_object(node: _Node, text: str) -> dict[str, Any]:
    owner = -node.page.group_id
    obj: dict[str, Any] = {"id": node.id, "from_id": node.author, "date": node.date, "text": text}
    if node.kind == "board":
        obj["topic_owner_id"] = owner
        obj["topic_id"] = node.obj
        return obj
    if node.kind == "market":
        obj["market_owner_id"] = owner
        obj["item_id"] = node.obj
    else:
        obj["parents_stack"] = [node.root.id] if node.root is not None else []
        if node.root is None:
            obj["thread"] = {"count": 0}
        if node.kind == "wall":
            obj["post_id"] = node.obj
            obj["owner_id"] = owner
            obj["post_owner_id"] = owner
        elif node.kind == "photo":
            obj["photo_id"] = node.obj
            obj["photo_owner_id"] = owner
        else:
            obj["video_id"] = node.obj
            obj["video_owner_id"] = owner
    if node.reply_to is not None:
        obj["reply_to_comment"] = node.reply_to.id
    if node.reply_to_user is not None:
        obj["reply_to_user"] = node.reply_to_user
    return obj


_EVENT_PREFIX = {
    "wall": "wall_reply",
    "photo": "photo_comment",
    "video": "video_comment",
    "market": "market_comment",
    "board": "board_post",
}
_OBJECT_FIELD = {"wall": "post_id", "photo": "photo_id", "video": "video_id", "market": "item_id"}


def _delete_object(rng: random.Random, node: _Node, deleter: int) -> dict[str, Any]:
    owner = -node.page.group_id
    if node.kind == "board":
        return {"topic_owner_id": owner, "topic_id": node.obj, "id": node.id, "deleter_id": deleter}
    obj: dict[str, Any] = {"owner_id": owner, "id": node.id}
    if node.kind == "wall":
        # VK's docs list deleter_id, its schema user_id; real bodies carry either or both.
        roll = rng.random()
        if roll < 0.85:
            obj["deleter_id"] = deleter
            obj["user_id"] = deleter
        elif roll < 0.95:
            obj["deleter_id"] = deleter
        else:
            obj["user_id"] = deleter
    else:
        obj["user_id"] = deleter
        obj["deleter_id"] = deleter
    obj[_OBJECT_FIELD[node.kind]] = node.obj
    return obj


def _message_object(node: _Node, page: _Page) -> dict[str, Any]:
    incoming = node.author > 0
    message: dict[str, Any] = {
        "date": node.date,
        "from_id": node.author,
        "id": node.id,
        "out": 0 if incoming else 1,
        "version": 10_000_000 + node.id * 3,
        "attachments": [],
        "conversation_message_id": node.conversation_id,
        "fwd_messages": [],
        "important": False,
        "is_hidden": False,
        "peer_id": node.obj,
        "random_id": 0 if incoming else (node.id * 7919) % 2_000_000_000 + 1,
        "text": node.text,
    }
    if node.admin_author is not None:
        message["admin_author_id"] = node.admin_author
    return message


# ---------------------------------------------------------------------------------------------
# The generator.


def _delivery_delay(rng: random.Random) -> float:
    """VK delivers within a second or two; sometimes a few seconds later; rarely up to a minute."""
    roll = rng.random()
    if roll < 0.88:
        return rng.uniform(0.05, 1.5)
    if roll < 0.985:
        return rng.uniform(1.5, 8.0)
    return rng.uniform(8.0, 60.0)


def _calibrate(cfg: SimConfig, start: float, end: float) -> float:
    """Expected events per candidate initiative that fall inside the run (thinned by the hour's
    activity; replies later than the end do not count), by planning a sample of scripts on a
    private copy of the pages. With it the observed rate matches ``cfg.rate`` over the run, short
    or long: a short run at night holds the rate too; the day's rhythm shows in runs of days."""
    rng = random.Random(f"otklik-sim-calibrate:{cfg.seed}")
    pages = _build_pages(cfg)
    cum = list(accumulate(p.weight for p in pages))
    span = end - start if math.isfinite(end) else 7 * 86400.0
    samples = 600
    inside = 0.0
    for _ in range(samples):
        page = pages[min(bisect_right(cum, rng.random() * cum[-1]), len(pages) - 1)]
        t0 = start + rng.random() * span
        count = sum(1 for happening in _plan(rng, page, pages, t0) if happening[0] <= end)
        inside += _activity(page, t0) * count
    return max(inside / samples, 1e-3) * (1.0 + cfg.duplicate_rate)


def resolve_start(cfg: SimConfig) -> int:
    return int(time.time()) if cfg.start is None else int(cfg.start)


def generate(cfg: SimConfig) -> Iterator[tuple[int, dict[str, Any]]]:
    """(received_at, body) pairs in order of received_at, deterministic for ``cfg.seed`` (and a
    given ``cfg.start``). Infinite when ``cfg.duration`` is 0. Memory holds only the scheduled future
    happenings (proportional to the rate times the reply delays)."""
    start = resolve_start(cfg)
    end = start + cfg.duration if cfg.duration > 0 else math.inf
    pages = _build_pages(cfg)
    cum = list(accumulate(p.weight for p in pages))
    total_weight = cum[-1]
    rng = random.Random(f"otklik-sim:{cfg.seed}")
    initiative_rate = cfg.rate / _calibrate(cfg, start, end)

    happenings: list[tuple[float, int, str, _Node, Any]] = []  # by the time they happen
    deliveries: list[tuple[float, int, dict[str, Any]]] = []  # by the time VK delivers them
    seq = 0
    event_counter = 0
    event_salt = f"otklik-sim:{cfg.seed}:".encode()

    def event_id() -> str:
        nonlocal event_counter
        event_counter += 1
        return hashlib.blake2b(event_salt + str(event_counter).encode(), digest_size=20).hexdigest()

    def deliver(moment: float, body: dict[str, Any]) -> None:
        nonlocal seq
        received = moment + _delivery_delay(rng)
        seq += 1
        heapq.heappush(deliveries, (received, seq, body))
        if rng.random() < cfg.duplicate_rate:
            # A redelivery: the very same body (a copy, so that consumers may mutate what they get).
            seq += 1
            heapq.heappush(deliveries, (received + rng.uniform(2.0, 30.0), seq, orjson.loads(orjson.dumps(body))))

    def body_for(op: str, node: _Node, extra: Any, moment: float) -> dict[str, Any]:
        page = node.page
        if node.kind == "dm":
            if node.author > 0:
                event_type, obj = (
                    "message_new",
                    {"message": _message_object(node, page), "client_info": dict(_CLIENT_INFO)},
                )
            else:
                event_type, obj = "message_reply", _message_object(node, page)
        else:
            prefix = _EVENT_PREFIX[node.kind]
            if op == "new":
                event_type, obj = f"{prefix}_new", _comment_object(node, node.text)
            elif op == "edit":
                node.text = extra
                event_type, obj = f"{prefix}_edit", _comment_object(node, node.text)
            elif op == "delete":
                event_type, obj = f"{prefix}_delete", _delete_object(rng, node, extra)
            else:
                event_type, obj = f"{prefix}_restore", _comment_object(node, node.text)
        return {"type": event_type, "object": obj, "group_id": page.group_id, "event_id": event_id(), "v": API_VERSION}

    def create(node: _Node, moment: float) -> None:
        page = node.page
        node.date = int(moment)
        if node.kind == "dm":
            node.id = page.next_message_id
            page.next_message_id += 1
            node.conversation_id = page.conversation_ids.get(node.obj, 0) + 1
            page.conversation_ids[node.obj] = node.conversation_id
            return
        counter = f"board:{node.obj}" if node.kind == "board" else node.kind
        node.id = page.next_comment_id[counter]
        page.next_comment_id[counter] = node.id + 1

    next_initiative = start + rng.expovariate(initiative_rate)
    while True:
        initiative = not (happenings and happenings[0][0] < next_initiative)
        moment = next_initiative if initiative else happenings[0][0]
        if moment > end:
            break
        # Everything VK delivers before this moment can go out: later happenings deliver later still.
        while deliveries and deliveries[0][0] <= moment:
            received, _, body = heapq.heappop(deliveries)
            yield int(received), body
        if initiative:
            page = pages[min(bisect_right(cum, rng.random() * total_weight), len(pages) - 1)]
            if rng.random() < _activity(page, moment):
                for when, op, node, extra in _plan(rng, page, pages, moment):
                    seq += 1
                    heapq.heappush(happenings, (when, seq, op, node, extra))
            next_initiative = moment + rng.expovariate(initiative_rate)
            continue
        when, _, op, node, extra = heapq.heappop(happenings)
        if op == "new":
            create(node, when)
        deliver(when, body_for(op, node, extra, when))
    while deliveries and deliveries[0][0] <= end:
        received, _, body = heapq.heappop(deliveries)
        yield int(received), body


# ---------------------------------------------------------------------------------------------
# The registry of the simulated pages.


def registry_mapping(cfg: SimConfig) -> dict[str, Any]:
    """The page registry (the YAML's content) describing the pages :func:`generate` simulates."""
    entries: list[dict[str, Any]] = []
    for page in _build_pages(cfg):
        entry: dict[str, Any] = {
            "id": f"vk:{page.group_id}",
            "title": page.title,
            "timezone": page.timezone,
            "administrators": [f"vk:user:{admin}" for admin in page.admins],
            "municipality": page.municipality,
            "sector": page.sector,
            "region": page.region.name,
            "contacts": [{"name": "Ответственный за ведение страницы", "email": f"smm-{page.group_id}@example.org"}],
        }
        if page.deadline is not None:
            entry["deadline"] = page.deadline
        entries.append(entry)
    return {
        "defaults": {
            "timezone": DEFAULT_REGION.timezone,
            "region": DEFAULT_REGION.name,
            "deadline": "8h working",
        },
        "pages": entries,
    }


def write_registry(cfg: SimConfig, path: str | Path) -> None:
    text = yaml.safe_dump(registry_mapping(cfg), allow_unicode=True, sort_keys=False, width=120)
    Path(path).write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Edges: JSON Lines and Kafka.


def write_jsonl(events: Iterable[tuple[int, dict[str, Any]]], path_or_file: str | Path | IO[Any]) -> int:
    """Writes ``{"received_at": ..., "body": ...}`` lines (the replay format); returns the count.
    Accepts a path or an open file (text or binary)."""
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "wb") as handle:
            return write_jsonl(events, handle)
    binary = isinstance(path_or_file, (io.RawIOBase, io.BufferedIOBase)) or "b" in getattr(path_or_file, "mode", "")
    count = 0
    for received_at, body in events:
        line = orjson.dumps({"received_at": received_at, "body": body}) + b"\n"
        path_or_file.write(line if binary else line.decode("utf-8"))
        count += 1
    path_or_file.flush()
    return count


def _shift_dates(body: dict[str, Any], to_real: Callable[[int], int]) -> dict[str, Any]:
    """A copy of ``body`` with its ``date`` fields moved onto the real clock."""
    copy = dict(body)
    obj = copy.get("object")
    if isinstance(obj, dict):
        obj = dict(obj)
        copy["object"] = obj
        if isinstance(obj.get("date"), int):
            obj["date"] = to_real(obj["date"])
        message = obj.get("message")
        if isinstance(message, dict) and isinstance(message.get("date"), int):
            obj["message"] = {**message, "date": to_real(message["date"])}
    return copy


async def produce(
    events: Iterable[tuple[int, dict[str, Any]]],
    bootstrap: str,
    topic: str = "otklik.raw",
    realtime: bool = True,
    speed: float = 1.0,
) -> int:
    """Sends each body to Kafka as a :class:`RawEnvelope` (key ``vk:<group_id>``); returns the count.

    Realtime: paced to the simulated clock divided by ``speed``; ``received_at`` is the real time
    of sending and the bodies' dates move onto the real clock by the same mapping, so that a live
    worker sees a live stream. Otherwise: as fast as possible, with the simulated times."""
    from aiokafka import AIOKafkaProducer  # imported here: the pure core must not need Kafka

    if speed <= 0:
        raise ValueError(f"speed: {speed} is not positive")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    count = 0
    pending: list[asyncio.Future[Any]] = []
    sim_origin: float | None = None
    real_origin = 0.0
    try:
        for received_at, body in events:
            if realtime:
                if sim_origin is None:
                    sim_origin, real_origin = float(received_at), time.time()
                due = real_origin + (received_at - sim_origin) / speed
                wait = due - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                origin = sim_origin
                body = _shift_dates(body, lambda d: int(math.floor(real_origin + (d - origin) / speed)))
                stamp = time.time()
            else:
                stamp = float(received_at)
            envelope = RawEnvelope(platform="vk", source="simulator", received_at=stamp, body=body)
            pending.append(await producer.send(topic, envelope.to_json(), key=f"vk:{body['group_id']}".encode()))
            count += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)  # surfaces delivery errors, bounds memory
                pending.clear()
        await producer.flush()
        if pending:
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


def _parse_start(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither unix seconds nor an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a bare date-time is UTC
    return int(moment.timestamp())


@click.command(
    "simulate",
    help=(
        "Simulate VK Callback API traffic (API 5.199) of N official pages: citizens' comments, threads, "
        "page replies after realistic working-hours delays, deletions, edits, direct messages and "
        "redelivered duplicates. Deterministic for a seed.\n\n"
        'With --out FILE it writes JSON Lines {"received_at", "body"} (the format of `otklik replay`; '
        "'-' is stdout). Otherwise it sends to Kafka (--bootstrap, default from OTKLIK_KAFKA_BROKER or "
        "127.0.0.1:9092) paced to the simulated clock, dates moved onto the real clock (--speed runs "
        "faster); --fast sends as fast as possible with the simulated times. --duration 0 runs until "
        "Ctrl-C (realtime Kafka only). --registry-out writes the page registry (YAML) that matches the "
        "simulated pages and their administrators."
    ),
)
@click.option(
    "--pages",
    type=click.IntRange(min=1),
    default=None,
    help="Number of simulated communities [env OTKLIK_SIM_PAGES, 50].",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Events per simulated second, on average [env OTKLIK_SIM_RATE, 20].",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Simulated seconds; 0 = forever (realtime Kafka only).",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Random seed: the same seed and start give the same stream."
)
@click.option(
    "--start", "start_text", default=None, help="Start of the simulated clock: unix seconds or ISO 8601 (default: now)."
)
@click.option("--out", "out_path", default=None, help="Write JSON Lines to FILE ('-' for stdout) instead of Kafka.")
@click.option(
    "--bootstrap", default=None, help="Kafka bootstrap HOST:PORT (default: OTKLIK_KAFKA_BROKER or 127.0.0.1:9092)."
)
@click.option("--topic", default="otklik.raw", show_default=True, help="Kafka topic.")
@click.option("--fast", is_flag=True, help="Kafka: send as fast as possible with the simulated times.")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Realtime Kafka: simulated seconds per real second [env OTKLIK_SIM_SPEED, 1].",
)
@click.option("--registry-out", default=None, help="Also write the simulated pages' registry (YAML) to FILE.")
@click.option(
    "--duplicate-rate",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=0.01,
    show_default=True,
    help="Share of bodies delivered twice.",
)
@click.option(
    "--first-group-id",
    type=click.IntRange(min=1),
    default=200000001,
    show_default=True,
    help="Group id of the first page.",
)
def simulate_command(
    pages: int | None,
    rate: float | None,
    duration: float,
    seed: int,
    start_text: str | None,
    out_path: str | None,
    bootstrap: str | None,
    topic: str,
    fast: bool,
    speed: float | None,
    registry_out: str | None,
    duplicate_rate: float,
    first_group_id: int,
) -> None:
    if out_path is not None and bootstrap is not None:
        raise click.UsageError("give either --out or --bootstrap, not both")
    try:
        settings = SimulatorSettings.from_env(sim_pages=pages, sim_rate=rate, sim_speed=speed)
    except SettingsError as exc:
        raise command_error(exc) from None
    pages, rate, speed = settings.sim_pages, settings.sim_rate, settings.sim_speed
    if duration == 0 and (out_path is not None or fast):
        raise click.UsageError("--duration 0 (forever) works only when sending to Kafka in real time")
    cfg = SimConfig(
        pages=pages,
        rate=rate,
        duration=duration,
        seed=seed,
        start=_parse_start(start_text),
        duplicate_rate=duplicate_rate,
        first_group_id=first_group_id,
    )
    if cfg.start is None:
        cfg.start = resolve_start(cfg)  # fixed once, so the registry and stream agree on "now"
    if registry_out:
        write_registry(cfg, registry_out)
    began = time.perf_counter()
    if out_path is not None:
        if out_path == "-":
            try:
                count = write_jsonl(generate(cfg), sys.stdout.buffer)
            except BrokenPipeError:  # `otklik simulate --out - | head`: the reader had enough
                sys.stderr.close()
                return
        else:
            count = write_jsonl(generate(cfg), out_path)
        target = out_path
    else:
        target = bootstrap or settings.bootstrap
        try:
            count = asyncio.run(produce(generate(cfg), target, topic=topic, realtime=not fast, speed=speed))
        except KeyboardInterrupt:
            click.echo("simulate: stopped", err=True)
            return
    elapsed = time.perf_counter() - began
    click.echo(f"simulate: {count} events for {pages} pages to {target} in {elapsed:.1f} s", err=True)
