"""Triage's vocabulary: word lists (exact words and prefixes) and the patterns of its own conservative
check for offensive content and spam. The rules that use them are ``otklik.agents.text.triage``."""

from __future__ import annotations

import re
from dataclasses import dataclass

# --- lexicons --------------------------------------------------------------------------------------------
# A lexicon is a set of exact words plus a tuple of prefixes (cheap stemming: Russian inflects the ending).
# Lexicons are consulted only when a word is seen for the first time: see "word features" below.


@dataclass(frozen=True)
class Lexicon:
    exact: frozenset[str]
    prefixes: tuple[str, ...]

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and (word in self.exact or word.startswith(self.prefixes))


def lexicon(words: str, prefixes: str = "") -> Lexicon:
    return Lexicon(frozenset(words.split()), tuple(prefixes.split()))


# Thanks.
THANKS = lexicon(
    "спс пасиб пасибо спасибки сенкс мерси thanks thank thx",
    "спасиб благодар",
)
# Praise, congratulations and good wishes.
PRAISE = lexicon(
    "класс классно классный классная супер браво ура круто крутые крутой красота прелесть шикарно "
    "здорово молодец молодцы молодчина умница умницы умнички умничка отлично отличная отличный "
    "отличное отличные лучшие лучший лучшая гордимся горжусь здоровья счастья удачи успехов добра "
    "сил терпения мира благополучия вау wow cool super такдержать поклон "
    # "рад-" as a prefix would also take "радиатор", "радио", "радиация": the forms are listed instead
    "рад рада рады радуют радует радуемся радуюсь порадовали порадовал порадовала",
    "прекрасн замечательн чудесн великолепн восхит шикарн красив интересн трогательн понрав нравит "
    "приятн поздрав праздн восторг счастлив радост довольн любим хорош",
)
# Acknowledgements. "хорошо" (the adverb) acknowledges; other forms of "хорош-" praise.
ACK = lexicon(
    "ок окей оке ok okay okey хорошо понятно понятненько ясно ясненько понял поняла поняли пон "
    "принято принял приняла приняли жду ждем ждать подождем подожду буду будем ага угу да ладно "
    "договорились учту учтем учтено услышал услышала услышали получилось получили получил получила "
    "позвоню позвоним подойду подойдем приду придем зайду зайдем сделаю сделаем верно точно "
    "дозвонилась дозвонился дозвонились записалась записался записались разобралась разобрался "
    "разобрались нашла нашел нашли вопросснят неактуально такисделаю",
)
# Words that carry no need by themselves: they may accompany thanks, praise or an acknowledgement.
# Not "уже", "еще", "всегда": "Жду уже" and "Спасибо, как всегда" are nudges and sarcasm.
FILLER = lexicon(
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
PRAISE_OBJECTS = lexicon(
    "ответ ответа ответы ответили ответил ответила помощь помогли помог помогла работу работа труд "
    "заботу внимание информацию информация новость новости разъяснение разъяснения подсказку "
    "фото фотографии видео все всем дети детей ребята ребятам ребят коллектив коллективу",
    "оперативн быстр подробн праздник концерт мероприяти экскурси выставк встреч поздравлен "
    "организатор сотрудник учител педагог воспитател врач доктор медсестр медработник медик "
    "медицинск работник библиотек школ администраци тренер руководител персонал терапевт участков "
    "отделени программ площадк город район участник победител выпускник ветеран детск нов "
    "девочк мальчик команд спектакл фестивал конкурс",
)
LAUGH = lexicon("хах хаха ахах ахаха хехе лол ору", "ахах хаха хехе")

# Markers that a text addressed to the page wants something, used to veto lenient recognition of long
# thanks. Broad on purpose: a false veto costs one needless alert, a missed one hides a complaint.
NEGATION_PREFIXES = ("не", "ни")
CONTRAST = lexicon("но а однако только хотя зато правда жаль лишь бы ли ну ага конечно прям просто вообще")
REQUEST_WORDS = lexicon(
    "прошу просим просьба пожалуйста пжл плиз нужно надо необходимо нужен нужна нужны требую требуем "
    "можно помогите хотелось",
    "пожалуйст",
)
QUESTION_WORDS = lexicon(
    "когда сколько почему зачем где куда кто что как какой какая какие каким какого откуда чей чья "
    "чьи разве неужели ли скажите подскажите",
)
# Repetition and duration: "опять", "третий день", "до сих пор", "так и не".
PERSISTENCE = lexicon(
    "опять снова уже еще ещё наконец сих пор теперь вновь обещали обещаете обещания",
    "трет втор четверт пят очередн день дня дней недел месяц сутк суток час ждал жду ждем ждать постоянн вечно всегда",
)
# Problems of the places otklik watches: housing and utilities, roads and transport, schools, clinics.
PROBLEM = lexicon(
    "вода воды воду водой свет света светом газ газа дорога дороги дорогу дороге дорогам дорогами дорогах боль болит",
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
INSTITUTION = lexicon(
    "ук жкх мфц",
    "администрац глав мэр власт чиновник депутат управляющ поликлиник больниц врач регистратур "
    "библиотек музе садик детсад сад школ лагер госуслуг обращен отвечает ответят ответ "
    # staff: what they do is the institution's work
    "директор заведующ начальств руководств сотрудник учител педагог воспитател медсестр терапевт "
    "педиатр фельдшер дворник диспетчер",
)
# A question between citizens is personal when it uses "ты" or a 2nd person singular verb, or greets.
PERSONAL = lexicon(
    "ты тебя тебе тобой твой твоя твое твои твоего твоей твоих привет приветик",
)
# In talk between citizens, these say the problem persists or is shared: "у нас тоже", "так и не", "опять".
SHARED_OR_PERSISTING_PHRASES = (
    r"опять|снова|вновь|до сих пор|так и не|очередн\w*|постоянно|вечно|никто|ничего|никак|"
    r"(?:у нас|у меня|нас|нам)\s+(?:тоже|так же|также|та же|то же|такая же|такой же|такие же)|"
    r"(?:второй|третий|четвертый|пятый|который)\s+(?:день|раз|месяц|год)|"
    r"(?:вторую|третью|четвертую|пятую)\s+неделю|через\s+(?:месяц|неделю|год|полгода|две|три)|"
    r"не\s+(?:в\s+)?перв\w+|когда\s+уже|за\s+нос|"
    r"(?:два|две|три|четыре|пять|шесть|несколько|много)\s+(?:дня|дней|недел\w*|месяц\w*|года|лет|раз)|"
    r"полгода|целый\s+(?:день|месяц|год)|целую\s+неделю"
)
SHARED_OR_PERSISTING = re.compile(rf"\b(?:{SHARED_OR_PERSISTING_PHRASES})")
# The same search in its fast form, run on " " + text: every phrase starts with a letter, and before a letter
# "\b" means "start of text or a non-word character" (see SPAM_AFTER_NON_WORD below for why it is faster).
SHARED_OR_PERSISTING_AFTER_NON_WORD = re.compile(rf"\W(?:{SHARED_OR_PERSISTING_PHRASES})")
PERSONAL_VERB = re.compile(r"[аеиоуыя](?:ешь|ишь)(?:ся)?$")

# Emoji that turn thanks into sarcasm or a complaint ("Спасибо 😡", "Молодцы 🤡").
NEGATIVE_EMOJI = frozenset("😡🤬😠😤🙄🤡💩👎😒😑🤦😭😢😞😔☹🙁😩😫🤮🤢😱😰😨")
# A call for help or attention is never a mere reaction.
ALARM_EMOJI = frozenset("🆘⚠❗‼❓")
NEGATIVE_EMOJI_RE = re.compile("[" + "".join(sorted(NEGATIVE_EMOJI)) + "]")
# A class of two dozen emoji is tested one by one at every character; a single range that holds them all is
# one comparison, and finds nothing in most texts.
MAYBE_NEGATIVE_EMOJI = re.compile(f"[{min(NEGATIVE_EMOJI)}-\U0010ffff]")
SAD_EMOTICON = re.compile(r"\({2,}|[:;=]-?\(")
QUOTES = re.compile(r"[«»„“”\"]")  # quoted praise is ironic: Ну «молодцы»
ELLIPSIS = ("...", "…")
IMPERATIVE = re.compile(r"(?:ите|йте|ьте)$")
# Endings of finite verbs and infinitives. In lenient thanks an unknown verb starts a new statement
# ("Спасибо за ответ сын заболел после столовой", written without a comma); nouns that share an ending
# ("кабинет", "зал") only cost a needless alert.
VERB_LIKE = re.compile(r"(?:ют|ут|ят|ат|ет|ит|ешь|ишь|ете|л|ла|ли|ло|лся|лась|лись|лось|ться|ть)$")

# Phrases folded into one token before matching, each with a piece of text it cannot match without: a
# substring test is far cheaper than a regex that finds nothing, which is what happens to most texts.
PHRASES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("вопрос", re.compile(r"\bвопрос\s+(?:снят|решен|закрыт)\w*"), " вопросснят "),
    ("актуальн", re.compile(r"\b(?:уже\s+)?не\s*актуальн\w*"), " неактуально "),
    ("сдела", re.compile(r"\bтак\s+и\s+сдела(?:ю|ем)\b"), " такисделаю "),
    ("держать", re.compile(r"\bтак\s+держать\b"), " такдержать "),
)
# "С днём учителя!", "С днём медицинского работника": congratulations; consume up to three genitive words
# within the sentence.
CONGRATS = re.compile(
    r"\bс\s+(?:днем|праздник\w*|новым\s+годом|рождеством|юбилеем|победой|выпускным|началом|"
    r"\d{1,2}\s+(?:января|февраля|марта|апреля|мая|июня|сентября|октября|ноября|декабря))"
    r"((?:\s+[a-zа-я]+(?:а|я|ы|и|ого|его|ей|ов|ев|ий|ых|их|го|ия)){0,3})"
)
# Every congratulation holds "с" and a space. A pattern that opens with a letter is found by a fast scan,
# and most texts have none, so the full pattern runs on few.
CONGRATS_HINT = re.compile(r"с\s")

# --- offensive content and spam (own conservative check) --------------------------------------------------

URL = re.compile(
    r"https?://|www\.|\b(?:t\.me|vk\.com|vk\.cc|ok\.ru|wa\.me|clck\.ru)/|"
    r"\b[a-z0-9-]{2,}\.(?:ru|com|net|org|su|info|me|io|biz|online|site|shop|рф)\b"
)
# A phone number: 10+ digits (+7 / 8 and the area code), possibly with spaces, dashes, dots or brackets
# between them, or a local 123-45-67. Opening hours ("9.00-18.00") and dates have fewer digits.
PHONE = re.compile(r"(?:\+?\d[\s\-().]{0,2}){10,}|(?<!\d)\d{3}-\d{2}-\d{2}(?!\d)")
# Advertising vocabulary; every stem starts with a letter.
SPAM_STEMS = (
    r"заработ\w*|доход\w*|без\s+вложени\w*|кредит\w*|займ\w*|промокод\w*|скидк\w*|ставк[иа]\s+на|"
    r"казино|подписывай\w*|подпишись|подпишитесь|прода[юм]\w*|продам|куплю|купим|скупк\w*|сдам|"
    r"недорого|дешево|низки\w*\s+цен\w*|лучши\w*\s+цен\w*|вебинар\w*|похуде\w*|работа\s+на\s+дому|"
    r"под\s+ключ|в\s+директ|в\s+профиле|инвест\w*|бонус\w*|розыгрыш\w*|крипт\w*|пиши\s+мне|пишите\s+мне\s+в"
)
SPAM_WORDS = re.compile(rf"\b(?:{SPAM_STEMS})")
# Obscene, insulting and threatening roots, each at the start of a word (after anything but a Cyrillic
# letter); "пизд" counts anywhere. An optional prefix is written "(?:на|по|)" rather than "(?:на|по)?": the
# same matches tried in the same order, but Python's regex engine runs a group with "?" through its slow
# repeat machinery at every word.
OBSCENE_STEMS = (
    r"(?:на|по|о|от|за|до|ни|)ху[йеяию]|(?:на|по|от|за|)хер(?:ов|н|а\b|\b)|"
    r"(?:о|на|по|)хрен(?:ел|ов|ь|\b)|"
    r"(?:за|на|по|у|вы|от|до|при|раз|разъ|подъ|съ|въ|долбо|)еб(?:а|у|л|н|и|ок|ет|лан|ись|ош|\b)|"
    r"бля(?!ш)|сук(?:а|и|у|ой|ин)\b|сучар|муд[аои]|пид[оа]р|педик|г[ао]ндон|залуп|шлюх|охрене"
)
INSULT_STEMS = (
    r"идиот|дебил|кретин|придур|урод|мраз|твар[ьие]|козл|козел|дур(?:ак|а\b|ы\b|ех|ачь)|"
    r"туп(?:ые|ой|ая|ица|орыл|ых|ым)\b|быдл|дегенерат|скотин|сволоч|ублюд|чмо|гнид|падл|паскуд|"
    r"жополиз|лох(?:и|ов|\b)|шакал|заткни|сдохн|скотск|свинот|ничтожеств"
)
THREAT_STEMS = (
    r"(?:у|при|пере)бь(?:ю|ем)\b|убить|зареж|подожг|подожж|сожг|сожж|взорв|застрел|"
    r"закопа|порешу|расстрел|заминир|бомб|найду\s+(?:и|вас|тебя)"
)
OBSCENE = re.compile(rf"(?<![а-я])(?:{OBSCENE_STEMS})|пизд")
INSULT = re.compile(rf"(?<![а-я])(?:{INSULT_STEMS})")
THREAT = re.compile(rf"(?<![а-я])(?:{THREAT_STEMS})")

# The six patterns above define the check; _own_moderation runs faster forms of them that find exactly the
# same texts (tests/unit/test_triage_speed.py compares the two on corpora and random text):
# - the three offensive lists are one alternation, so one scan instead of three;
# - "(?<![а-я])stem" becomes "[^а-я]stem" searched in " " + text (the space stands for the start of the text).
#   A pattern that opens with a character class lets the regex engine jump from candidate to candidate
#   (a space, a sign) instead of trying every position; it finds the same texts because no stem looks
#   behind its own first letter;
# - for the same reason "\bstem" becomes "\Wstem": every spam stem starts with a letter, and before a letter
#   "\b" means "start of text or a non-word character";
# - links and phone numbers are searched for only in texts that hold what every match needs: a Latin
#   letter, digit, "-" or ":" right before "." or "/" (a link); seven digits (a phone number: the local
#   123-45-67 has seven, a full one ten). The street numbers and counts of ordinary complaints have fewer.
OFFENSIVE_AFTER_NON_LETTER = re.compile(rf"[^а-я](?:{OBSCENE_STEMS}|{INSULT_STEMS}|{THREAT_STEMS})")
SPAM_AFTER_NON_WORD = re.compile(rf"\W(?:{SPAM_STEMS})")
LINK_HINT = re.compile(r"[a-z0-9:\-][./]")
DIGIT = re.compile(r"\d")  # the same \d as in PHONE
PHONE_MIN_DIGITS = 7
