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

Offensive content and spam are never excluded (docs/triage.md, "Offensive content and spam"). The check here is
a small conservative one of our own (links, phone numbers, ad phrases, obvious obscene and insulting roots,
threats), which runs first and names the reason. When ``otklik.agents.text.moderation`` is importable, its
``rule_detector().labels(text)`` (the rules alone, triage's fast path: the trained model runs in the
moderation agent; loaded lazily, once) is consulted *in addition* for every text our
rules would exclude: any label but ``flood`` turns "no answer" into "needs answer" (reason ``spam`` for
its spam label, ``offensive`` for the others). It never turns "needs answer" into "no answer", it does
not rename the reason of a text that needs an answer anyway (its labels go to ``otklik.moderation``),
and if it is missing or fails, our own check stands alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, cast

import orjson

from otklik.agents.text.normalize import AT_MENTION, INVISIBLE_CHARS, VK_MENTION
from otklik.agents.text.normalize import STRIP_INVISIBLE as _INVISIBLE  # the table textnorm.fold uses
from otklik.agents.text.triage_lexicon import (
    ACK,
    ALARM_EMOJI,
    CONGRATS,
    CONGRATS_HINT,
    CONTRAST,
    DIGIT,
    ELLIPSIS,
    FILLER,
    IMPERATIVE,
    INSTITUTION,
    LAUGH,
    LINK_HINT,
    MAYBE_NEGATIVE_EMOJI,
    NEGATION_PREFIXES,
    NEGATIVE_EMOJI_RE,
    OFFENSIVE_AFTER_NON_LETTER,
    PERSISTENCE,
    PERSONAL,
    PERSONAL_VERB,
    PHONE,
    PHONE_MIN_DIGITS,
    PHRASES,
    PRAISE,
    PRAISE_OBJECTS,
    PROBLEM,
    QUESTION_WORDS,
    QUOTES,
    REQUEST_WORDS,
    SAD_EMOTICON,
    SHARED_OR_PERSISTING_AFTER_NON_WORD,
    SPAM_AFTER_NON_WORD,
    THANKS,
    URL,
    VERB_LIKE,
    Lexicon,
)

AddressedTo = Literal["page", "citizen"]
# What the response engine takes: (text, addressed_to, has_attachments) -> (needs_answer, reason).
Triage = Callable[[str, AddressedTo | None, bool], tuple[bool, str]]

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

# VK's reply markup ("[id123|Иван]") and "@id123 (Иван)" / "@nickname": the patterns moderation strips too.
_VK_MENTION = VK_MENTION
_AT_MENTION = AT_MENTION
_WORD = re.compile(r"[a-zа-я0-9]+")
_INNER_HYPHEN = re.compile(r"(?<=[a-zа-я])-(?=[a-zа-я])")


# Zero-width characters and soft hyphens split a word without showing it ("спа\u200bсибо").
_HAS_INVISIBLE = re.compile(f"[{INVISIBLE_CHARS}]")


def normalise(text: str) -> str:
    """NFKC (folds full-width and styled letters), invisible characters dropped, lowercase, ё→е,
    inner hyphens removed ("ха-ха" → "хаха")."""
    text = unicodedata.normalize("NFKC", text)
    # str.translate walks a Cyrillic text character by character (~3 µs); the scan that finds nothing to
    # drop is ten times cheaper, and nothing to drop is the usual case. The same holds for the hyphen.
    if _HAS_INVISIBLE.search(text):
        text = text.translate(_INVISIBLE)
    text = text.lower().replace("ё", "е")
    return _INNER_HYPHEN.sub("", text) if "-" in text else text


def _words(norm: str) -> list[str]:
    return _WORD.findall(norm)


def _own_moderation(norm: str) -> str | None:
    padded = " " + norm
    if "пизд" in norm or OFFENSIVE_AFTER_NON_LETTER.search(padded):
        return OFFENSIVE
    if (
        (LINK_HINT.search(norm) and URL.search(norm))
        or (len(DIGIT.findall(norm)) >= PHONE_MIN_DIGITS and PHONE.search(norm))
        or SPAM_AFTER_NON_WORD.search(padded)
    ):
        return SPAM
    return None


_IGNORED_LABELS = frozenset({"flood"})
_SPAM_LABELS = frozenset({"spam", "ads", "advertising", "link"})
_UNSET: Any = object()
_detector_labels: Any = _UNSET  # Callable[[str], Iterable[str]] | None once resolved


def _external_moderation(text: str) -> str | None:
    """Ask ``otklik.agents.text.moderation`` when it exists; never fail because of it."""
    global _detector_labels
    if _detector_labels is _UNSET:
        try:
            from otklik.agents.text import moderation  # lazy: another engineer's module, maybe not ready

            _detector_labels = moderation.rule_detector().labels
        except Exception:
            _detector_labels = None
    if _detector_labels is None:
        return None
    try:
        labels = [str(label).lower() for label in _detector_labels(text) or ()]
    except Exception:
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
    _forget_decisions()  # they were made with the previous detector


# --- word features ---------------------------------------------------------------------------------------
# The rules ask the same questions about every word of a text: is it thanks, praise, a problem word, a verb?
# Each distinct word is answered once, as the bits of one int, and remembered; a text then costs one dict
# look-up per word, and "does any word ..." is one test on the OR of its words' bits.

_F_THANKS = 1 << 0
_F_PRAISE = 1 << 1
_F_ACK = 1 << 2
_F_FILLER = 1 << 3
_F_OBJECT = 1 << 4  # PRAISE_OBJECTS
_F_LAUGH = 1 << 5
_F_CONTRAST = 1 << 6
_F_REQUEST = 1 << 7
_F_QUESTION_WORD = 1 << 8
_F_PERSISTENCE = 1 << 9
_F_PROBLEM = 1 << 10
_F_INSTITUTION = 1 << 11
_F_PERSONAL = 1 << 12
_F_UNKNOWN = 1 << 13  # not _is_known
_F_UNKNOWN_VERB = 1 << 14  # not _is_known, and looks like a verb
_F_UNKNOWN_LI = 1 << 15  # not _is_known, 5+ letters ending in "ли" ("сказали", "потеряли")
_F_IMPERATIVE = 1 << 16  # 5+ letters with an imperative ending
_F_PERSONAL_VERB = 1 << 17
_F_NUMBER = 1 << 18  # all digits
_F_WAITING = 1 << 19
_F_CITIZEN_REQUEST = 1 << 20
_F_SUBJECT_PRONOUN = 1 << 21
_F_LENIENT_VETO = 1 << 22  # forbids lenient thanks (see _lenient_thanks)
# What the word counts as in strict recognition, which takes the first that fits: acknowledgement, thanks,
# praise, laughter, filler, praise object, anything else.
_F_STRICT_GRATEFUL = 1 << 23  # thanks or praise that is not an acknowledgement ("хорошо" is one)
_F_STRICT_LAUGH = 1 << 24
_F_STRICT_OBJECT = 1 << 25
_F_STRICT_OTHER = 1 << 26

_LEXICON_BITS: tuple[tuple[int, Lexicon], ...] = (
    (_F_THANKS, THANKS),
    (_F_PRAISE, PRAISE),
    (_F_ACK, ACK),
    (_F_FILLER, FILLER),
    (_F_OBJECT, PRAISE_OBJECTS),
    (_F_LAUGH, LAUGH),
    (_F_CONTRAST, CONTRAST),
    (_F_REQUEST, REQUEST_WORDS),
    (_F_QUESTION_WORD, QUESTION_WORDS),
    (_F_PERSISTENCE, PERSISTENCE),
    (_F_PROBLEM, PROBLEM),
    (_F_INSTITUTION, INSTITUTION),
    (_F_PERSONAL, PERSONAL),
)
_THANKS_OR_PRAISE = _F_THANKS | _F_PRAISE

_SUBJECT_PRONOUNS = frozenset({"я", "мы", "вы", "ты", "они", "он", "она"})
_WAITING = frozenset({"жду", "ждем", "ждали", "ждала", "ждал", "ждать", "ожидаем", "ожидаю"})
_CITIZEN_REQUEST = frozenset({"прошу", "просим", "требую", "требуем", "просьба"})

_FEATURES_LIMIT = 200_000  # bounded: a long-running worker sees endless words
_features_seen: dict[str, int] = {}


def _is_negation(word: str) -> bool:
    # Broad on purpose ("не", "нет", "никто", "невозможно", also "неделю"): a false hit costs one alert.
    return word.startswith(NEGATION_PREFIXES)


def _is_known(word: str) -> bool:
    return word in THANKS or word in PRAISE or word in FILLER or word in PRAISE_OBJECTS or word in ACK


def _word_features(word: str) -> int:
    """The bits of one word, computed the first time it is seen."""
    bits = 0
    for bit, lexicon in _LEXICON_BITS:
        if word in lexicon:
            bits |= bit
    known = _is_known(word)
    if not known:
        bits |= _F_UNKNOWN
        if VERB_LIKE.search(word):
            bits |= _F_UNKNOWN_VERB
        if len(word) >= 5 and word.endswith("ли"):
            bits |= _F_UNKNOWN_LI
    if len(word) >= 5 and IMPERATIVE.search(word):
        bits |= _F_IMPERATIVE
    if PERSONAL_VERB.search(word):
        bits |= _F_PERSONAL_VERB
    if word.isdigit():
        bits |= _F_NUMBER
    if word in _WAITING:
        bits |= _F_WAITING
    if word in _CITIZEN_REQUEST:
        bits |= _F_CITIZEN_REQUEST
    if word in _SUBJECT_PRONOUNS:
        bits |= _F_SUBJECT_PRONOUN
    if not bits & (_F_THANKS | _F_PRAISE | _F_FILLER | _F_OBJECT) and (
        _is_negation(word)
        or word.isdigit()
        or any(ch.isdigit() for ch in word)
        or bits & (_F_CONTRAST | _F_REQUEST | _F_QUESTION_WORD | _F_PERSISTENCE | _F_PROBLEM)
        or word == "без"
        or bits & _F_IMPERATIVE
        or bits & _F_UNKNOWN_VERB
    ):
        bits |= _F_LENIENT_VETO
    # Strict recognition: the first of these the word is.
    if bits & _F_ACK:
        pass  # an acknowledgement, whatever else it is
    elif bits & _THANKS_OR_PRAISE:
        bits |= _F_STRICT_GRATEFUL
    elif bits & _F_LAUGH:
        bits |= _F_STRICT_LAUGH
    elif bits & _F_FILLER:
        pass  # allowed beside the others, counts for nothing
    elif bits & _F_OBJECT:
        bits |= _F_STRICT_OBJECT
    else:
        bits |= _F_STRICT_OTHER
    if len(_features_seen) >= _FEATURES_LIMIT:
        _features_seen.clear()
    _features_seen[word] = bits
    return bits


def _features(words: list[str]) -> tuple[list[int], int]:
    """Each word's bits, and their OR."""
    seen = list(map(_features_seen.get, words))
    if None in seen:
        features = [_word_features(word) if bits is None else bits for word, bits in zip(words, seen)]
    else:
        features = cast("list[int]", seen)
    union = 0
    for bits in features:
        union |= bits
    return features, union


# --- the rules -------------------------------------------------------------------------------------------


def _fold_phrases(norm: str) -> str:
    if CONGRATS_HINT.search(norm):
        norm = CONGRATS.sub(" поздравляю ", norm)
    for needle, pattern, token in PHRASES:
        if needle in norm:
            norm = pattern.sub(token, norm)
    return norm


def _trails_off(norm: str) -> bool:
    return ELLIPSIS[0] in norm or ELLIPSIS[1] in norm


def _has_negative_tone(raw: str, norm: str) -> bool:
    return (
        bool(MAYBE_NEGATIVE_EMOJI.search(raw) and NEGATIVE_EMOJI_RE.search(raw))
        or ("(" in norm and bool(SAD_EMOTICON.search(norm)))
        or bool(QUOTES.search(norm))
    )


def _strict_harmless(union: int) -> str | None:
    """The whole text is thanks / praise / acknowledgement / laughter: return its reason, else None.

    ``union`` is the OR of the words' features; each word counts as the first of acknowledgement, thanks,
    praise, laughter, filler, praise object that it is (the ``_F_STRICT_*`` bits).
    """
    if union & _F_STRICT_OTHER:
        return None
    grateful = union & _F_STRICT_GRATEFUL
    if union & _F_STRICT_OBJECT and not grateful:
        return None
    if union & _F_ACK:
        return ACKNOWLEDGEMENT
    if grateful:
        return GRATITUDE
    if union & _F_STRICT_LAUGH:
        return REACTION
    return None


def _strict_harmless_text(union: int, norm: str) -> str | None:
    reason = _strict_harmless(union)
    # "Спасибо за заботу..." trails off into irony; a trailing "ok..." is still an acknowledgement.
    if reason == GRATITUDE and _trails_off(norm):
        return None
    return reason


_MAX_LENIENT_WORDS = 30
# Clauses end at punctuation; a dot after a capital letter is an initial ("Петрову А.С."), not an end.
_CLAUSE_END = re.compile(r"[,!;:\n—–]+|(?<![А-ЯЁA-Z])\.+|\s-\s")


def _clauses_stay_thankful(raw: str) -> bool:
    """Every clause thanks or praises, is made of known words only, or is a short name ("Спасибо, Мария Ивановна").

    "Спасибо за концерт, звук подвёл" and "Благодарю за информацию. Мой сын тоже пострадал" fail: the second
    clause says something else, and that something may need an answer.
    """
    for clause in _CLAUSE_END.split(raw):
        words = _words(_fold_phrases(normalise(clause)))
        if not words:
            continue
        _, union = _features(words)
        if union & _THANKS_OR_PRAISE or not union & _F_UNKNOWN:
            continue
        names = clause.split()
        # Title case only: shouting ("СПАСИБО, КЛОУНЫ") is not a name.
        if len(names) <= 3 and all(name.istitle() for name in names):
            continue
        return False
    return True


def _lenient_thanks(words: list[str], features: list[int], union: int, raw: str, norm: str) -> bool:
    """Longer thanks naming people and places ("Хочу выразить благодарность Марии Ивановне за ...").

    Unknown words are tolerated here, but only after an opening thank-you, only in clauses that thank, and
    only when nothing in the text hints at a need: no negation, contrast, request, imperative, question
    word, repetition or duration, problem vocabulary, digits, ellipsis (the ``_F_LENIENT_VETO`` bit).
    """
    if len(words) > _MAX_LENIENT_WORDS or _trails_off(norm):
        return False
    opener = next((i for i, bits in enumerate(features[:4]) if bits & _F_THANKS), None)
    if opener is None:
        return False
    # "Спасибо, что третий день без отопления": the "thanks that ..." frame is the usual form of sarcasm.
    if opener + 1 < len(words) and words[opener + 1] == "что":
        return False
    if union & _F_LENIENT_VETO:
        return False
    return _clauses_stay_thankful(raw)


def _needs_reason(asks: bool, negative: bool, first: int, union: int, thankful: bool, has_attachments: bool) -> str:
    """Name what the text that needs an answer is, cheaply; the decision itself is already made.

    ``first`` and ``union`` are the features of the first word and of all words; ``negative`` is the text's
    negative tone, which is only looked at when the text does not ask.
    """
    if asks:
        return QUESTION
    if thankful and (negative or union & (_F_PROBLEM | _F_PERSISTENCE)):
        return COMPLAINT  # sarcastic thanks
    if union & (_F_REQUEST | _F_IMPERATIVE):
        return REQUEST
    if first & _F_QUESTION_WORD:
        return QUESTION
    if negative or union & _F_PERSISTENCE:
        return COMPLAINT
    if union & _F_PROBLEM:
        return REPORT
    return ATTACHMENT if has_attachments else NEEDS_ANSWER


def _citizen_talk_needs_page(asks: bool, norm: str, words: list[str], features: list[int], union: int) -> bool:
    """A reply to another citizen still needs the page when it asks or complains about the institution's work.

    Talk between citizens is the default here, so the signals are broad: the vocabulary of problems and
    institutions, "у нас тоже" / "опять" / "так и не", a question that is not personal, something not done
    ("не взяли", "ничего не ответили"), what "they" did ("сказали", "потеряли" with no subject of ours),
    waiting, a formal request.
    """
    if union & (_F_PROBLEM | _F_INSTITUTION) or SHARED_OR_PERSISTING_AFTER_NON_WORD.search(" " + norm):
        return True
    if union & (_F_PERSONAL | _F_PERSONAL_VERB):
        return False  # "Ты идёшь на концерт?", "Аня, ты уже забрала детей?"
    if asks or features[0] & _F_QUESTION_WORD:
        return True
    if union & _F_NUMBER:  # "в классе 35 человек", "дом 14": facts about the service
        return True
    if union & _F_UNKNOWN_VERB:
        for before, bits in zip(words, features[1:]):
            if before == "не" and bits & _F_UNKNOWN_VERB:
                return True
    if not union & _F_SUBJECT_PRONOUN and union & _F_UNKNOWN_LI:
        return True
    # "с этим надо что-то делать", "прошу разобраться", "жду ответа"
    return bool(union & (_F_WAITING | _F_CITIZEN_REQUEST | _F_REQUEST))


# Decisions are immutable and few: build each once.
_ANSWER = {reason: TriageDecision(True, reason) for reason in ANSWER_REASONS}
_NO_ANSWER = {reason: TriageDecision(False, reason) for reason in NO_ANSWER_REASONS}


def _triage_uncached(text: str, addressed_to: AddressedTo | None, has_attachments: bool) -> TriageDecision:
    decision = _triage_by_rules(text or "", addressed_to, has_attachments)
    if decision.needs_answer or not (text or "").strip():
        return decision
    # The moderation module, when present, vetoes an exclusion: what it flags must be handled in time.
    flagged = _external_moderation(text)
    return _ANSWER[flagged] if flagged else decision


def _triage_by_rules(raw: str, addressed_to: AddressedTo | None, has_attachments: bool) -> TriageDecision:
    """Our own rules; the reasons' order of precedence is: empty text, offensive/spam, the rest."""
    if not raw.strip():
        # A sticker arrives as an empty text; a bare photo may show a pothole.
        return _ANSWER[ATTACHMENT] if has_attachments else _NO_ANSWER[REACTION]

    norm = normalise(raw)
    flagged = _own_moderation(norm)
    if flagged:
        return _ANSWER[flagged]

    # The addressee's name says nothing about the content; VK's reply prefix tells us who is addressed.
    if "[" in norm:  # every VK mention has one
        leading = _VK_MENTION.match(norm.lstrip())
        if addressed_to is None and leading is not None:
            addressed_to = "page" if leading.group(1) in ("club", "public") else "citizen"
        norm = _VK_MENTION.sub(" ", norm)
    if "@" in norm:
        norm = _AT_MENTION.sub(" ", norm)

    asks = "?" in norm or "❓" in raw
    if asks and addressed_to != "citizen":
        # Shortcut: asked of the page, a text needs an answer as a question whatever its words say (a question
        # is never harmless, and the question mark comes first in _needs_reason).
        return _ANSWER[QUESTION]

    words = _words(_fold_phrases(norm))
    if not words or all(w == "1" for w in words):  # emoji, "+", "+1", ")))", "!!!"
        if asks:
            return _ANSWER[QUESTION]
        if not ALARM_EMOJI.isdisjoint(raw):
            return _ANSWER[NEEDS_ANSWER]
        if has_attachments:
            return _ANSWER[ATTACHMENT]
        return _NO_ANSWER[BETWEEN_CITIZENS if addressed_to == "citizen" else REACTION]

    features, union = _features(words)
    negative = not asks and _has_negative_tone(raw, norm)
    harmless: str | None = None
    if not asks and not negative:
        harmless = _strict_harmless_text(union, norm)
        # With a photo attached, only plainly harmless words are let through: the photo may show the problem.
        if harmless is None and not has_attachments and _lenient_thanks(words, features, union, raw, norm):
            harmless = GRATITUDE

    if addressed_to == "citizen":
        if harmless is not None:
            return _NO_ANSWER[BETWEEN_CITIZENS]
        if has_attachments or _citizen_talk_needs_page(asks, norm, words, features, union):
            return _ANSWER[_needs_reason(asks, negative, features[0], union, False, has_attachments)]
        return _NO_ANSWER[BETWEEN_CITIZENS]

    if harmless is not None:
        return _NO_ANSWER[harmless]
    thankful = bool(union & _THANKS_OR_PRAISE)
    return _ANSWER[_needs_reason(asks, negative, features[0], union, thankful, has_attachments)]


# --- the decision memo -----------------------------------------------------------------------------------
# Public pages repeat short texts all day ("Спасибо!", "+", "С праздником!" under a congratulation post), and a
# decision depends only on (text, addressed_to, has_attachments) and on the external detector, which must be a
# function of the text (the default one is). So whole decisions are remembered: for texts short enough to
# repeat, up to _MEMO_LIMIT of them (emptied when full: the cheapest bound, and the frequent texts are back
# within seconds), and forgotten whenever the detector changes.

_MEMO_LIMIT = 100_000
_MEMO_MAX_TEXT = 280  # characters; longer texts hardly ever repeat word for word
_memo: Final[dict[tuple[str, Any, Any], TriageDecision]] = {}
_memo_enabled = True
_memo_detector: Any = _UNSET  # the detector _memo's decisions were made with
_memo_hits = 0
_memo_misses = 0


class DecisionCacheInfo(NamedTuple):
    hits: int
    misses: int  # decisions computed while the memo was on (including texts too long to remember)
    size: int
    limit: int
    enabled: bool


def decision_cache_info() -> DecisionCacheInfo:
    """Hits and misses of the decision memo since it was last switched (see :func:`use_decision_cache`)."""
    return DecisionCacheInfo(_memo_hits, _memo_misses, len(_memo), _MEMO_LIMIT, _memo_enabled)


def use_decision_cache(enabled: bool = True) -> None:
    """Switch the decision memo on or off (benchmarks measure distinct texts with it off); either way it
    starts empty, with its counters at zero."""
    global _memo_enabled, _memo_hits, _memo_misses
    _memo_enabled = enabled
    _memo_hits = _memo_misses = 0
    _forget_decisions()


def _forget_decisions() -> None:
    global _memo_detector
    _memo.clear()
    _memo_detector = _detector_labels


def triage(
    text: str,
    addressed_to: AddressedTo | None = None,
    has_attachments: bool = False,
) -> TriageDecision:
    """Decide whether a citizen's text needs an answer from the page, and why (see the module's reasons)."""
    global _memo_hits, _memo_misses
    if not _memo_enabled:
        return _triage_uncached(text, addressed_to, has_attachments)
    if type(text) is not str or len(text) > _MEMO_MAX_TEXT:
        _memo_misses += 1
        return _triage_uncached(text, addressed_to, has_attachments)
    if _memo_detector is not _detector_labels:  # resolved lazily, or set without use_moderation_detector
        _forget_decisions()
    key = (text, addressed_to, has_attachments)
    try:
        decision = _memo.get(key)
    except TypeError:  # an unhashable argument: decide as if there were no memo
        return _triage_uncached(text, addressed_to, has_attachments)
    if decision is not None:
        _memo_hits += 1
        return decision
    _memo_misses += 1
    decision = _triage_uncached(text, addressed_to, has_attachments)
    if len(_memo) >= _MEMO_LIMIT:
        _memo.clear()
    _memo[key] = decision
    return decision


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
            yield _error(number, '\'addressed_to\' must be "page", "citizen" or null')
            continue
        has_attachments = record.get("has_attachments", False)
        if not isinstance(has_attachments, bool):
            yield _error(number, "'has_attachments' must be true or false")
            continue
        try:
            decision = triage(text, addressed_to, has_attachments)
        except Exception as exc:
            yield _error(number, f"triage failed ({type(exc).__name__}: {exc})")
            continue
        yield orjson.dumps({"id": item_id, "needs_answer": decision.needs_answer, "reason": decision.reason}).decode()


def decide(text: str, addressed_to: AddressedTo | None, has_attachments: bool) -> tuple[bool, str]:
    """:func:`triage` in the shape the response engine takes: (needs_answer, reason)."""
    decision = triage(text, addressed_to, has_attachments)
    return decision.needs_answer, decision.reason
