"""The simulated world: its configuration, the administrators' working hours, places, institutions and texts."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from functools import lru_cache
from itertools import accumulate
from zoneinfo import ZoneInfo

import holidays

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
    # Each comment's and message's text (and each edit's) made unique by a counter after it (in
    # emoji: triage's decisions stay as they were), so that a cache keyed by the text (triage's memo
    # of decisions, moderation's verdicts in it) never meets one twice.
    unique_texts: bool = False

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
