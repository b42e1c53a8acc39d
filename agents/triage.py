"""Triage: does a citizen's comment need an answer from the page?

Pure, deterministic rules on normalised text; every decision carries a reason from a small closed set.
The rules are asymmetric on purpose: an item is excluded from the deadline only when the *whole* text is
recognised as harmless (thanks, a reaction, an acknowledgement, talk between citizens). Anything the rules
do not recognise needs an answer, because hiding a real complaint is worse than one needless alert.

Reasons (stable strings; they appear in ``otklik.responses`` and in replay output):

No answer needed (``needs_answer=False``):
  ``gratitude``         thanks, praise, congratulations, good wishes only
  ``reaction``          emoji, ``+``, ``)))``, laughter, or an empty text without attachments (a sticker)
  ``acknowledgement``   a short acknowledgement: "ок", "понятно", "спасибо, жду", "вопрос снят"
  ``between_citizens``  addressed to another citizen, with nothing for the page to answer

Needs an answer (``needs_answer=True``):
  ``question``          asks something ("?", or opens with a question word)
  ``request``           asks the page to do something ("прошу", "пожалуйста", an imperative)
  ``complaint``         complains, including sarcastic thanks ("Спасибо, что третий день без отопления")
  ``report``            reports a problem as a statement ("Опять на Ленина яма на дороге")
  ``offensive``         obscene language, insults, threats: needs removal or an answer within the deadline
  ``spam``              links, phone numbers, advertising: needs removal within the deadline
  ``attachment``        a photo / video / document with no text, or with text that says nothing more
                        (a photo of a pothole); with an attachment only plainly harmless words are excluded
  ``needs_answer``      anything else the rules do not recognise as harmless

Offensive content and spam are never excluded (DESIGN.md, "What counts as a response"). The check here is
a small conservative one of our own (links, phone numbers, ad phrases, obvious obscene and insulting roots,
threats), which runs first and names the reason. When ``otklik.agents.moderation`` is importable, its
``default_detector().labels(text)`` (loaded lazily, once) is consulted *in addition* for every text our
rules would exclude: any label but ``flood`` turns "no answer" into "needs answer" (reason ``spam`` for
its spam label, ``offensive`` for the others). It never turns "needs answer" into "no answer", it does
not rename the reason of a text that needs an answer anyway (its labels go to ``otklik.moderation``),
and if it is missing or fails, our own check stands alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

AddressedTo = Literal["page", "citizen"]

# --- the closed set of reasons ---------------------------------------------------------------------------

GRATITUDE = "gratitude"
REACTION = "reaction"
ACKNOWLEDGEMENT = "acknowledgement"
BETWEEN_CITIZENS = "between_citizens"
QUESTION = "question"
REQUEST = "request"
COMPLAINT = "complaint"
REPORT = "report"
OFFENSIVE = "offensive"
SPAM = "spam"
ATTACHMENT = "attachment"
NEEDS_ANSWER = "needs_answer"

NO_ANSWER_REASONS: frozenset[str] = frozenset({GRATITUDE, REACTION, ACKNOWLEDGEMENT, BETWEEN_CITIZENS})
ANSWER_REASONS: frozenset[str] = frozenset(
    {QUESTION, REQUEST, COMPLAINT, REPORT, OFFENSIVE, SPAM, ATTACHMENT, NEEDS_ANSWER}
)
REASONS: frozenset[str] = NO_ANSWER_REASONS | ANSWER_REASONS


@dataclass(frozen=True)
class TriageDecision:
    needs_answer: bool
    reason: str


# --- normalisation ---------------------------------------------------------------------------------------

# VK writes a reply's addressee as "[id123|Иван]" (a person) or "[club123|Name]" (a community);
# users also type "@id123 (Иван)" or "@nickname".
_VK_MENTION = re.compile(r"\[(id|club|public)\d+\|[^\]]*\]")
_AT_MENTION = re.compile(r"@[\w.]+(?:\s*\([^)]*\))?")
_WORD = re.compile(r"[a-zа-я0-9]+")
_INNER_HYPHEN = re.compile(r"(?<=[a-zа-я])-(?=[a-zа-я])")


# Zero-width characters and soft hyphens split a word without showing it ("спа\u200bсибо").
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff\u180e"), None)


def normalise(text: str) -> str:
    """NFKC (folds full-width and styled letters), invisible characters dropped, lowercase, ё→е,
    inner hyphens removed ("ха-ха" → "хаха")."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).lower().replace("ё", "е")
    return _INNER_HYPHEN.sub("", text)


def _words(norm: str) -> list[str]:
    return _WORD.findall(norm)


# --- lexicons --------------------------------------------------------------------------------------------
# A lexicon is a set of exact words plus a tuple of prefixes (cheap stemming: Russian inflects the ending).


_LOOKUP_CACHE_LIMIT = 200_000


@dataclass(frozen=True)
class _Lexicon:
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    _seen: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        found = self._seen.get(word)
        if found is None:
            found = word in self.exact or word.startswith(self.prefixes)
            if len(self._seen) >= _LOOKUP_CACHE_LIMIT:  # bounded: a long-running worker sees endless words
                self._seen.clear()
            self._seen[word] = found
        return found


def _lex(words: str, prefixes: str = "") -> _Lexicon:
    return _Lexicon(frozenset(words.split()), tuple(prefixes.split()))


# Thanks.
_THANKS = _lex(
    "спс пасиб пасибо спасибки сенкс мерси thanks thank thx",
    "спасиб благодар",
)
# Praise, congratulations and good wishes.
_PRAISE = _lex(
    "класс классно классный классная супер браво ура круто крутые крутой красота прелесть шикарно "
    "здорово молодец молодцы молодчина умница умницы умнички умничка отлично отличная отличный "
    "отличное отличные лучшие лучший лучшая гордимся горжусь здоровья счастья удачи успехов добра "
    "сил терпения мира благополучия вау wow cool super такдержать поклон",
    "прекрасн замечательн чудесн великолепн восхит шикарн красив интересн трогательн понрав нравит "
    "приятн поздрав праздн восторг счастлив радост довольн любим рады рад хорош",
)
# Acknowledgements. "хорошо" (the adverb) acknowledges; other forms of "хорош-" praise.
_ACK = _lex(
    "ок окей оке ok okay okey хорошо понятно понятненько ясно ясненько понял поняла поняли пон "
    "принято принял приняла приняли жду ждем ждать подождем подожду буду будем ага угу да ладно "
    "договорились учту учтем учтено услышал услышала услышали получилось получили получил получила "
    "позвоню позвоним подойду подойдем приду придем зайду зайдем сделаю сделаем верно точно "
    "дозвонилась дозвонился дозвонились записалась записался записались разобралась разобрался "
    "разобрались нашла нашел нашли вопросснят неактуально такисделаю",
)
# Words that carry no need by themselves: they may accompany thanks, praise or an acknowledgement.
# Not "уже", "еще", "всегда": "Жду уже" and "Спасибо, как всегда" are nudges and sarcasm.
_FILLER = _lex(
    "и вам вас вы всем всех вами тебе за очень так большое огромное огромная огромный большая "
    "выражаю выражаем выразить хочу хотим хочется сказать отдельное это этот эта эту все всё было была был "
    "были есть что как какой какая какие какое же сегодня завтра позже вечером утром тогда "
    "мы нам нас я мне просто вот много самые самый самая теплый теплое душевно искренне "
    "от всей души сердца всего и с в на по о об для к у наш наша наше наши нашим нашей нашего нашему "
    "ваш ваша ваше ваши вашим вашей вашего вашему вашу мой моя мое мои моей моему моего мою свой "
    "своим дай бог низкий",
)
# What people thank for or whom they praise; allowed only next to thanks or praise, never with a bare
# acknowledgement ("Жду ответ" is a nudge, not an acknowledgement).
_PRAISE_OBJECTS = _lex(
    "ответ ответа ответы ответили ответил ответила помощь помогли помог помогла работу работа труд "
    "заботу внимание информацию информация новость новости разъяснение разъяснения подсказку "
    "фото фотографии видео все всем дети детей ребята ребятам ребят коллектив коллективу",
    "оперативн быстр подробн праздник концерт мероприяти экскурси выставк встреч поздравлен "
    "организатор сотрудник учител педагог воспитател врач доктор медсестр медработник медик "
    "медицинск работник библиотек школ администраци тренер руководител персонал терапевт участков "
    "отделени программ площадк город район участник победител выпускник ветеран детск нов "
    "девочк мальчик команд спектакл фестивал конкурс",
)
_LAUGH = _lex("хах хаха ахах ахаха хехе лол ору", "ахах хаха хехе")

# Markers that a text addressed to the page wants something, used to veto lenient recognition of long
# thanks. Broad on purpose: a false veto costs one needless alert, a missed one hides a complaint.
_NEGATION_PREFIXES = ("не", "ни")
_CONTRAST = _lex("но а однако только хотя зато правда жаль лишь бы ли ну ага конечно прям просто вообще")
_REQUEST = _lex(
    "прошу просим просьба пожалуйста пжл плиз нужно надо необходимо нужен нужна нужны требую требуем "
    "можно помогите хотелось",
    "пожалуйст",
)
_QUESTION_WORDS = _lex(
    "когда сколько почему зачем где куда кто что как какой какая какие каким какого откуда чей чья "
    "чьи разве неужели ли скажите подскажите",
)
# Repetition and duration: "опять", "третий день", "до сих пор", "так и не".
_PERSISTENCE = _lex(
    "опять снова уже еще ещё наконец сих пор теперь вновь обещали обещаете обещания",
    "трет втор четверт пят очередн день дня дней недел месяц сутк суток час ждал жду ждем ждать "
    "постоянн вечно всегда",
)
# Problems of the places otklik watches: housing and utilities, roads and transport, schools, clinics.
_PROBLEM = _lex(
    "вода воды воду водой свет света светом газ газа дорога дороги дорогу дороге дорогам дорогами "
    "дорогах боль болит",
    "ям выбоин луж грязь грязн мусор свалк снег сугроб гололед налед сосульк холод мерзн замерз "
    "отключ отопл батаре канализ прорыв прорвал затоп течет теч протек авари слома сломан разбит "
    "разруш развал обвал дыр трещин крыш плесен грибок вон запах шум крыс тарака собак клещ "
    "тротуар асфальт фонар освещ темн светофор переход остановк автобус маршрут транспорт очеред "
    "запис дозвон трубк хам груб нахам крич оскорб игнор безобраз позор ужас кошмар отвратит "
    "издева беспредел бардак халатн равнодуш возмущ жалоб жалу претенз проблем беда бедств опасн "
    "угроз травм упал упад сгорел пожар дым умер смерт лекарств рецепт направлен справк талон "
    "компенсац выплат пособ начисл перерасчет квитанц тариф долг штраф деньг денег бюджет взятк "
    "коррупц ворова украл обман задерж перенес перенос отмен закрыт карантин отсутств нехватк "
    "сократ уволи ремонт подвеск бездомн бродяч пьян драк хулиган вандал кури наркот закладк "
    "сорва срыв срок хуже плох ужасн обидн стыд сломал лифт пандус труб текут течь потек "
    # escalation: "схожу в прокуратуру", "будем писать губернатору"
    "прокурат суд полици роспотребнадзор минздрав губернатор президент инспекц мвд следствен "
    "омбудсмен уполномоченн приемн "
    # health: "сын заболел после столовой"
    "болеют болел заболе болез отрав температур госпитал скорую скорой инфекц "
    # contempt that is not an insult in itself
    "клоун цирк балаган шарашк лентя бездельник дармоед халтур отписк показух толку толк занят "
    "бесполез "
    # the building: "потолок мокрый", "в подъезде лампочки нет"
    "потол подъезд лампоч мокр сырост электрич",
)
# Institutions and services: in talk between citizens, a question or remark about these is for the page.
_INSTITUTION = _lex(
    "ук жкх мфц",
    "администрац глав мэр власт чиновник депутат управляющ поликлиник больниц врач регистратур "
    "библиотек музе садик детсад сад школ лагер госуслуг обращен отвечает ответят ответ "
    # staff: what they do is the institution's work
    "директор заведующ начальств руководств сотрудник учител педагог воспитател медсестр терапевт "
    "педиатр фельдшер дворник диспетчер",
)
# A question between citizens is personal when it uses "ты" or a 2nd person singular verb, or greets.
_PERSONAL = _lex(
    "ты тебя тебе тобой твой твоя твое твои твоего твоей твоих привет приветик",
)
# In talk between citizens, these say the problem persists or is shared: "у нас тоже", "так и не", "опять".
_SHARED_OR_PERSISTING = re.compile(
    r"\b(?:опять|снова|вновь|до сих пор|так и не|очередн\w*|постоянно|вечно|никто|ничего|никак|"
    r"(?:у нас|у меня|нас|нам)\s+(?:тоже|так же|также|та же|то же|такая же|такой же|такие же)|"
    r"(?:второй|третий|четвертый|пятый|который)\s+(?:день|раз|месяц|год)|"
    r"(?:вторую|третью|четвертую|пятую)\s+неделю|через\s+(?:месяц|неделю|год|полгода|две|три)|"
    r"не\s+(?:в\s+)?перв\w+|когда\s+уже|за\s+нос|"
    r"(?:два|две|три|четыре|пять|шесть|несколько|много)\s+(?:дня|дней|недел\w*|месяц\w*|года|лет|раз)|"
    r"полгода|целый\s+(?:день|месяц|год)|целую\s+неделю)"
)
_PERSONAL_VERB = re.compile(r"[аеиоуыя](?:ешь|ишь)(?:ся)?$")

# Emoji that turn thanks into sarcasm or a complaint ("Спасибо 😡", "Молодцы 🤡").
_NEGATIVE_EMOJI = frozenset("😡🤬😠😤🙄🤡💩👎😒😑🤦😭😢😞😔☹🙁😩😫🤮🤢😱😰😨")
# A call for help or attention is never a mere reaction.
_ALARM_EMOJI = frozenset("🆘⚠❗‼❓")
_NEGATIVE_EMOJI_RE = re.compile("[" + "".join(sorted(_NEGATIVE_EMOJI)) + "]")
_SAD_EMOTICON = re.compile(r"\({2,}|[:;=]-?\(")
_QUOTES = re.compile(r"[«»„“”\"]")  # quoted praise is ironic: Ну «молодцы»
_ELLIPSIS = re.compile(r"\.\.\.|…")
_IMPERATIVE = re.compile(r"(?:ите|йте|ьте)$")
# Endings of finite verbs and infinitives. In lenient thanks an unknown verb starts a new statement
# ("Спасибо за ответ сын заболел после столовой", written without a comma); nouns that share an ending
# ("кабинет", "зал") only cost a needless alert.
_VERB_LIKE = re.compile(r"(?:ют|ут|ят|ат|ет|ит|ешь|ишь|ете|л|ла|ли|ло|лся|лась|лись|лось|ться|ть)$")

# Phrases folded into one token before matching.
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bвопрос\s+(?:снят|решен|закрыт)\w*"), " вопросснят "),
    (re.compile(r"\b(?:уже\s+)?не\s*актуальн\w*"), " неактуально "),
    (re.compile(r"\bтак\s+и\s+сдела(?:ю|ем)\b"), " такисделаю "),
    (re.compile(r"\bтак\s+держать\b"), " такдержать "),
)
# "С днём учителя!", "С днём медицинского работника": congratulations; consume up to three genitive words
# within the sentence.
_CONGRATS = re.compile(
    r"\bс\s+(?:днем|праздник\w*|новым\s+годом|рождеством|юбилеем|победой|выпускным|началом|"
    r"\d{1,2}\s+(?:января|февраля|марта|апреля|мая|июня|сентября|октября|ноября|декабря))"
    r"((?:\s+[a-zа-я]+(?:а|я|ы|и|ого|его|ей|ов|ев|ий|ых|их|го|ия)){0,3})"
)

# --- offensive content and spam (own conservative check) --------------------------------------------------

_URL = re.compile(
    r"https?://|www\.|\b(?:t\.me|vk\.com|vk\.cc|ok\.ru|wa\.me|clck\.ru)/|"
    r"\b[a-z0-9-]{2,}\.(?:ru|com|net|org|su|info|me|io|biz|online|site|shop|рф)\b"
)
# A phone number: 10+ digits (+7 / 8 and the area code), possibly with spaces, dashes, dots or brackets
# between them, or a local 123-45-67. Opening hours ("9.00-18.00") and dates have fewer digits.
_PHONE = re.compile(r"(?:\+?\d[\s\-().]{0,2}){10,}|(?<!\d)\d{3}-\d{2}-\d{2}(?!\d)")
_SPAM_WORDS = re.compile(
    r"\b(?:заработ\w*|доход\w*|без\s+вложени\w*|кредит\w*|займ\w*|промокод\w*|скидк\w*|ставк[иа]\s+на|"
    r"казино|подписывай\w*|подпишись|подпишитесь|прода[юм]\w*|продам|куплю|купим|скупк\w*|сдам|"
    r"недорого|дешево|низки\w*\s+цен\w*|лучши\w*\s+цен\w*|вебинар\w*|похуде\w*|работа\s+на\s+дому|"
    r"под\s+ключ|в\s+директ|в\s+профиле|инвест\w*|бонус\w*|розыгрыш\w*|крипт\w*|пиши\s+мне|пишите\s+мне\s+в)"
)
_OBSCENE = re.compile(
    r"(?<![а-я])(?:(?:на|по|о|от|за|до|ни)?ху[йеяию]|(?:на|по|от|за)?хер(?:ов|н|а\b|\b)|"
    r"(?:о|на|по)?хрен(?:ел|ов|ь|\b)|"
    r"(?:за|на|по|у|вы|от|до|при|раз|разъ|подъ|съ|въ|долбо)?еб(?:а|у|л|н|и|ок|ет|лан|ись|ош|\b)|"
    r"бля(?!ш)|сук(?:а|и|у|ой|ин)\b|сучар|муд[аои]|пид[оа]р|педик|г[ао]ндон|залуп|шлюх|охрене)|пизд"
)
_INSULT = re.compile(
    r"(?<![а-я])(?:идиот|дебил|кретин|придур|урод|мраз|твар[ьие]|козл|козел|дур(?:ак|а\b|ы\b|ех|ачь)|"
    r"туп(?:ые|ой|ая|ица|орыл|ых|ым)\b|быдл|дегенерат|скотин|сволоч|ублюд|чмо|гнид|падл|паскуд|"
    r"жополиз|лох(?:и|ов|\b)|шакал|заткни|сдохн|скотск|свинот|ничтожеств)"
)
_THREAT = re.compile(
    r"(?<![а-я])(?:(?:у|при|пере)бь(?:ю|ем)\b|убить|зареж|подожг|подожж|сожг|сожж|взорв|застрел|"
    r"закопа|порешу|расстрел|заминир|бомб|найду\s+(?:и|вас|тебя))"
)


def _own_moderation(norm: str) -> str | None:
    if _OBSCENE.search(norm) or _INSULT.search(norm) or _THREAT.search(norm):
        return OFFENSIVE
    if _URL.search(norm) or _PHONE.search(norm) or _SPAM_WORDS.search(norm):
        return SPAM
    return None


_IGNORED_LABELS = frozenset({"flood"})
_SPAM_LABELS = frozenset({"spam", "ads", "advertising", "link"})
_UNSET: Any = object()
_detector_labels: Any = _UNSET  # Callable[[str], Iterable[str]] | None once resolved


def _external_moderation(text: str) -> str | None:
    """Ask ``otklik.agents.moderation`` when it exists; never fail because of it."""
    global _detector_labels
    if _detector_labels is _UNSET:
        try:
            from otklik.agents import moderation  # lazy: another engineer's module, maybe not ready

            _detector_labels = moderation.default_detector().labels
        except Exception:  # noqa: BLE001 - absent or broken: fall back to our own check
            _detector_labels = None
    if _detector_labels is None:
        return None
    try:
        labels = [str(label).lower() for label in _detector_labels(text) or ()]
    except Exception:  # noqa: BLE001
        return None
    # "flood" (content-free text: "хахаха", ")))))") is what triage already judges as a reaction.
    labels = [label for label in labels if label not in _IGNORED_LABELS]
    if not labels:
        return None
    if any(label in _SPAM_LABELS for label in labels):
        return SPAM
    return OFFENSIVE  # obscene, insult, threat, and any label we do not know yet


def use_moderation_detector(labels: Callable[[str], Iterable[str]] | None) -> None:
    """Set (or with None, switch off) the external moderation check; for tests and for explicit wiring."""
    global _detector_labels
    _detector_labels = labels


# --- the rules -------------------------------------------------------------------------------------------


def _fold_phrases(norm: str) -> str:
    norm = _CONGRATS.sub(" поздравляю ", norm)
    for pattern, token in _PHRASES:
        norm = pattern.sub(token, norm)
    return norm


def _has_negative_tone(raw: str, norm: str) -> bool:
    return (
        bool(_NEGATIVE_EMOJI_RE.search(raw))
        or bool(_SAD_EMOTICON.search(norm))
        or bool(_QUOTES.search(norm))
    )


def _is_negation(word: str) -> bool:
    # Broad on purpose ("не", "нет", "никто", "невозможно", also "неделю"): a false hit costs one alert.
    return word.startswith(_NEGATION_PREFIXES)


def _strict_harmless(words: list[str]) -> str | None:
    """The whole text is thanks / praise / acknowledgement / laughter: return its reason, else None."""
    thanks = praise = ack = laugh = objects = False
    for word in words:
        if word in _ACK:
            ack = True
        elif word in _THANKS:
            thanks = True
        elif word in _PRAISE:
            praise = True
        elif word in _LAUGH:
            laugh = True
        elif word in _FILLER:
            continue
        elif word in _PRAISE_OBJECTS:
            objects = True
        else:
            return None
    if objects and not (thanks or praise):
        return None
    if ack:
        return ACKNOWLEDGEMENT
    if thanks or praise:
        return GRATITUDE
    if laugh:
        return REACTION
    return None


def _strict_harmless_text(words: list[str], norm: str) -> str | None:
    reason = _strict_harmless(words)
    # "Спасибо за заботу..." trails off into irony; a trailing "ok..." is still an acknowledgement.
    if reason == GRATITUDE and _ELLIPSIS.search(norm):
        return None
    return reason


_MAX_LENIENT_WORDS = 30
# Clauses end at punctuation; a dot after a capital letter is an initial ("Петрову А.С."), not an end.
_CLAUSE_END = re.compile(r"[,!;:\n—–]+|(?<![А-ЯЁA-Z])\.+|\s-\s")


def _is_known(word: str) -> bool:
    return (
        word in _THANKS or word in _PRAISE or word in _FILLER or word in _PRAISE_OBJECTS or word in _ACK
    )


def _clauses_stay_thankful(raw: str) -> bool:
    """Every clause thanks or praises, is made of known words only, or is a short name ("Спасибо, Мария Ивановна").

    "Спасибо за концерт, звук подвёл" and "Благодарю за информацию. Мой сын тоже пострадал" fail: the second
    clause says something else, and that something may need an answer.
    """
    for clause in _CLAUSE_END.split(raw):
        words = _words(_fold_phrases(normalise(clause)))
        if not words:
            continue
        if any(w in _THANKS or w in _PRAISE for w in words) or all(_is_known(w) for w in words):
            continue
        names = clause.split()
        # Title case only: shouting ("СПАСИБО, КЛОУНЫ") is not a name.
        if len(names) <= 3 and all(name.istitle() for name in names):
            continue
        return False
    return True


def _lenient_thanks(words: list[str], raw: str, norm: str) -> bool:
    """Longer thanks naming people and places ("Хочу выразить благодарность Марии Ивановне за ...").

    Unknown words are tolerated here, but only after an opening thank-you, only in clauses that thank, and
    only when nothing in the text hints at a need: no negation, contrast, request, imperative, question
    word, repetition or duration, problem vocabulary, digits, ellipsis.
    """
    if len(words) > _MAX_LENIENT_WORDS or _ELLIPSIS.search(norm):
        return False
    opener = next((i for i, word in enumerate(words[:4]) if word in _THANKS), None)
    if opener is None:
        return False
    # "Спасибо, что третий день без отопления": the "thanks that ..." frame is the usual form of sarcasm.
    if opener + 1 < len(words) and words[opener + 1] == "что":
        return False
    for word in words:
        if word in _THANKS or word in _PRAISE or word in _FILLER or word in _PRAISE_OBJECTS:
            continue
        if (
            _is_negation(word)
            or word.isdigit()
            or any(ch.isdigit() for ch in word)
            or word in _CONTRAST
            or word in _REQUEST
            or word in _QUESTION_WORDS
            or word in _PERSISTENCE
            or word in _PROBLEM
            or word == "без"
            or (len(word) >= 5 and _IMPERATIVE.search(word))
            or (not _is_known(word) and _VERB_LIKE.search(word))
        ):
            return False
    return _clauses_stay_thankful(raw)


def _needs_reason(raw: str, norm: str, words: list[str], thankful: bool, has_attachments: bool) -> str:
    """Name what the text that needs an answer is, cheaply; the decision itself is already made."""
    if "?" in norm or "❓" in raw:
        return QUESTION
    if thankful and (_has_negative_tone(raw, norm) or any(w in _PROBLEM or w in _PERSISTENCE for w in words)):
        return COMPLAINT  # sarcastic thanks
    if any(w in _REQUEST for w in words) or any(len(w) >= 5 and _IMPERATIVE.search(w) for w in words):
        return REQUEST
    if words and words[0] in _QUESTION_WORDS:
        return QUESTION
    if _has_negative_tone(raw, norm) or any(w in _PERSISTENCE for w in words):
        return COMPLAINT
    if any(w in _PROBLEM for w in words):
        return REPORT
    return ATTACHMENT if has_attachments else NEEDS_ANSWER


_SUBJECT_PRONOUNS = frozenset({"я", "мы", "вы", "ты", "они", "он", "она"})
_WAITING = frozenset({"жду", "ждем", "ждали", "ждала", "ждал", "ждать", "ожидаем", "ожидаю"})
_CITIZEN_REQUEST = frozenset({"прошу", "просим", "требую", "требуем", "просьба"})


def _citizen_talk_needs_page(raw: str, norm: str, words: list[str]) -> bool:
    """A reply to another citizen still needs the page when it asks or complains about the institution's work.

    Talk between citizens is the default here, so the signals are broad: the vocabulary of problems and
    institutions, "у нас тоже" / "опять" / "так и не", a question that is not personal, something not done
    ("не взяли", "ничего не ответили"), what "they" did ("сказали", "потеряли" with no subject of ours),
    waiting, a formal request.
    """
    if any(w in _PROBLEM or w in _INSTITUTION for w in words) or _SHARED_OR_PERSISTING.search(norm):
        return True
    personal = any(w in _PERSONAL or _PERSONAL_VERB.search(w) for w in words)
    if personal:
        return False  # "Ты идёшь на концерт?", "Аня, ты уже забрала детей?"
    if "?" in norm or "❓" in raw or words[0] in _QUESTION_WORDS:
        return True
    if any(w.isdigit() for w in words):  # "в классе 35 человек", "дом 14": facts about the service
        return True
    for before, word in zip(words, words[1:]):
        if before == "не" and not _is_known(word) and _VERB_LIKE.search(word):
            return True
    if not _SUBJECT_PRONOUNS.intersection(words) and any(
        len(w) >= 5 and w.endswith("ли") and not _is_known(w) for w in words
    ):
        return True
    # "с этим надо что-то делать", "прошу разобраться", "жду ответа"
    return bool(_WAITING.intersection(words) or _CITIZEN_REQUEST.intersection(words)) or any(
        w in _REQUEST for w in words
    )


def triage(
    text: str,
    addressed_to: AddressedTo | None = None,
    has_attachments: bool = False,
) -> TriageDecision:
    """Decide whether a citizen's text needs an answer from the page, and why (see the module's reasons)."""
    decision = _triage_by_rules(text or "", addressed_to, has_attachments)
    if decision.needs_answer or not (text or "").strip():
        return decision
    # The moderation module, when present, vetoes an exclusion: what it flags must be handled in time.
    flagged = _external_moderation(text)
    return TriageDecision(True, flagged) if flagged else decision


def _triage_by_rules(raw: str, addressed_to: AddressedTo | None, has_attachments: bool) -> TriageDecision:
    """Our own rules; the reasons' order of precedence is: empty text, offensive/spam, the rest."""
    if not raw.strip():
        # A sticker arrives as an empty text; a bare photo may show a pothole.
        return TriageDecision(True, ATTACHMENT) if has_attachments else TriageDecision(False, REACTION)

    norm = normalise(raw)
    flagged = _own_moderation(norm)
    if flagged:
        return TriageDecision(True, flagged)

    # The addressee's name says nothing about the content; VK's reply prefix tells us who is addressed.
    leading = _VK_MENTION.match(norm.lstrip())
    if addressed_to is None and leading is not None:
        addressed_to = "page" if leading.group(1) in ("club", "public") else "citizen"
    norm = _AT_MENTION.sub(" ", _VK_MENTION.sub(" ", norm))

    folded = _fold_phrases(norm)
    words = _words(folded)
    asks = "?" in norm or "❓" in raw

    if not words or all(w == "1" for w in words):  # emoji, "+", "+1", ")))", "!!!"
        if asks:
            return TriageDecision(True, QUESTION)
        if any(ch in _ALARM_EMOJI for ch in raw):
            return TriageDecision(True, NEEDS_ANSWER)
        if has_attachments:
            return TriageDecision(True, ATTACHMENT)
        return TriageDecision(False, BETWEEN_CITIZENS if addressed_to == "citizen" else REACTION)

    harmless: str | None = None
    if not asks and not _has_negative_tone(raw, norm):
        harmless = _strict_harmless_text(words, norm)
        # With a photo attached, only plainly harmless words are let through: the photo may show the problem.
        if harmless is None and not has_attachments and _lenient_thanks(words, raw, norm):
            harmless = GRATITUDE

    if addressed_to == "citizen":
        if harmless is not None:
            return TriageDecision(False, BETWEEN_CITIZENS)
        if has_attachments or _citizen_talk_needs_page(raw, norm, words):
            return TriageDecision(True, _needs_reason(raw, norm, words, False, has_attachments))
        return TriageDecision(False, BETWEEN_CITIZENS)

    if harmless is not None:
        return TriageDecision(False, harmless)
    thankful = any(w in _THANKS or w in _PRAISE for w in words)
    return TriageDecision(True, _needs_reason(raw, norm, words, thankful, has_attachments))


# --- the CLI contract (`otklik triage`) -----------------------------------------------------------------

_ADDRESSEES = (None, "page", "citizen")


def _error(number: int, reason: str) -> str:
    return orjson.dumps({"id": None, "error": f"line {number}: {reason}"}).decode()


def triage_lines(lines: Iterable[bytes | str]) -> Iterator[str]:
    """Triage JSON Lines: ``{"id", "text"[, "addressed_to"][, "has_attachments"]}`` in, one JSON object out per line.

    Out: ``{"id": ..., "needs_answer": true|false, "reason": "..."}``, or ``{"id": null, "error": "line N: ..."}``
    for a malformed line, after which processing continues. ``id`` is echoed as given (a string or an
    integer). Blank lines are skipped. Yields strings without a trailing newline.
    """
    for number, line in enumerate(lines, 1):
        if isinstance(line, (bytes, bytearray)):
            line = bytes(line).removeprefix(b"\xef\xbb\xbf")
        else:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield _error(number, f"not valid JSON ({exc})")
            continue
        if not isinstance(record, dict):
            yield _error(number, "expected a JSON object")
            continue
        item_id = record.get("id")
        if isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
            yield _error(number, "'id' must be a string or an integer")
            continue
        text = record.get("text")
        if not isinstance(text, str):
            yield _error(number, "'text' must be a string")
            continue
        addressed_to = record.get("addressed_to")
        if addressed_to not in _ADDRESSEES:
            yield _error(number, "'addressed_to' must be \"page\", \"citizen\" or null")
            continue
        has_attachments = record.get("has_attachments", False)
        if not isinstance(has_attachments, bool):
            yield _error(number, "'has_attachments' must be true or false")
            continue
        try:
            decision = triage(text, addressed_to, has_attachments)
        except Exception as exc:  # noqa: BLE001 - one bad line must not stop a batch
            yield _error(number, f"triage failed ({type(exc).__name__}: {exc})")
            continue
        yield orjson.dumps({"id": item_id, "needs_answer": decision.needs_answer, "reason": decision.reason}).decode()


def decide(text: str, addressed_to: AddressedTo | None, has_attachments: bool) -> tuple[bool, str]:
    """:func:`triage` in the shape the response engine takes: (needs_answer, reason)."""
    decision = triage(text, addressed_to, has_attachments)
    return decision.needs_answer, decision.reason
