"""Moderation labels for Russian comments: obscene, insult, threat, spam, flood (pure core).

A :class:`Detector` turns one text into a set of labels from :data:`LABELS`. :class:`RuleDetector`
(:func:`rule_detector`, triage's fast path) is built from maintained packages plus small, documented
rules; :class:`ModelDetector` (:func:`default_detector`, the moderation agent's and ``otklik
moderate``'s) adds the trained model of :mod:`.moderation_model` for what no rule lists
(docs/moderation.md, "The trained model"). Anything implementing ``labels(text)`` can replace
them. Both strip VK's reply markup first and read the text as ``normalize.tokenize`` does. Two
small trackers add what one text cannot show: the same text spread over many pages
(:class:`SpamRepeatTracker`) and one author repeating himself (:class:`FloodTracker`).

What each label means here (the labelling policy of ``tests/data/moderation_eval.jsonl``):

``obscene``
    мат: words of the roots хуй, пизд-, еб-/ёб-, бляд-/бля, plus мудак, пидор, залупа, манда,
    in any inflection, with prefixes (нахуй, заебали, спиздили), and disguised (``х.у.й``,
    ``х у й``, ``xуй``, ``пи3дец``, ``п*здец``, ``blyat``). Rude but non-obscene words
    (сука, говно, жопа, хер, хрен, срать, тварь) are not мат; aimed at a person they are insults.
    Euphemisms (блин, ёлки, бляха-муха, грёбаный, хлебало) are not мат.
``insult``
    a derogatory name for a person or group (идиот, дебил, мразь, ворюги, also мат ones like
    мудак). Words that also name animals or things (козёл, свинья, курица, скотина, гниды,
    паразиты, клоун, тупой) count only when aimed at people: near ты/вы or a word for a person.
    Harsh criticism of work ("тупая отписка", "позор администрации") is not an insult.
``threat``
    violence announced by the writer (убью, сожгу, приду с ножом), a call for violence or death
    (надо расстрелять, их бы пристрелить, на кол, сдохни), a bomb hoax (школа заминирована). Legal pressure (подам в суд, напишу в
    прокуратуру, вы за это ответите) and reports of violence (сына избили) are not threats.
``spam``
    links other than official government sites, telegram handles, phone numbers unless the writer
    asks to be called back, patterns only ads use (промокод, вступайте в группу, ссылка в профиле),
    an offer (продам, недорого, заработок) only with a contact, and (via
    :class:`SpamRepeatTracker`) the same text on three or more pages. A commercial word alone is talk.
``flood``
    text with no content: runs of one character, a short unit repeated (хахаха…, лалала…),
    keyboard mash (йцукен, фывапролдж), the same word or phrase over and over; and (via
    :class:`FloodTracker`) one author posting the same text on one object again and again.

Why not the packages alone: ``detected-profanity`` 0.1.0 finds disguised мат but matches
substrings with deletions, so it flags ребёнок, хребет, страх, употреблять, кошмар (checked
here); ``safetext`` 0.3.3 scans a 4,947-entry list per word (slow), mixes мат with mild words,
and imports a 96 MB language detector and ``requests``. So мат is found by the stem rules below
on text that :mod:`otklik.agents.text.normalize` has de-disguised, and every hit is checked against
``pymorphy3``'s dictionary: a word the dictionary knows with an innocent lemma (употреблять,
страхуй → страховать, колебля → колебать, хлебало → хлебать, ребята) is never мат. Insults and
threats use short lemma lists over ``pymorphy3`` lemmas. Nothing downloads anything at run time:
the ``pymorphy3-dicts-ru`` dictionaries ship inside the wheel.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import orjson

from otklik.agents.text.moderation_lexicon import (
    AD_CONTACT,
    AD_CUES,
    AD_OFFERS,
    BEAT_ALONE,
    BEAT_VERBS,
    BEATING_PHRASES,
    BODY_PARTS,
    BODY_VERBS,
    BURN_VERBS,
    BURNT_THINGS,
    CALL_CUES,
    CALL_PHRASES,
    EXECUTION_VERBS,
    FUTURE_VIOLENCE,
    HANDLE,
    INSULT_OBSCENE,
    INSULT_PHRASES,
    INSULT_STEMS,
    INSULT_STRONG,
    INSULT_WEAK,
    KEYBOARD_4GRAMS,
    KILL_CALL_ALONE,
    KILL_CALL_PEOPLE,
    KILL_CALL_VERBS,
    KILL_IMPERATIVE,
    MASK_FILL,
    MUTILATION_PARTS,
    MUTILATION_VERBS,
    NEGATION_BRIDGE,
    NOT_A_CALL,
    NOT_A_CALL_BEFORE,
    NOUN_PERSONS,
    OBSCENE_FORMS,
    OFFICIAL_LINK,
    OWN_CONTACT,
    PEOPLE_OBJECTS,
    PERSON_CUES,
    PHONE,
    REGRET_FORMS,
    RUN4,
    SHOOT_MISSPELT,
    THING_SENSE_VERBS,
    THREAT_FORMS,
    THREAT_PHRASES,
    THREAT_VERBS,
    UNIT_REPEAT,
    URL,
    VOWELS,
    WEAPONS,
    looks_obscene,
)
from otklik.agents.text.moderation_model import clear_hash_caches, model_doc
from otklik.agents.text.normalize import (
    Tokens,
    clear_tokenize_cache,
    collapse_repeats,
    fold,
    normalized_key,
    strip_markup,
    tokenize,
)

__all__ = [
    "HEAD_LABEL",
    "LABELS",
    "Detector",
    "FloodTracker",
    "ModelDetector",
    "RuleDetector",
    "SpamRepeatTracker",
    "Verdict",
    "clear_word_caches",
    "default_detector",
    "model_may_add",
    "moderate_lines",
    "rule_detector",
]

LABELS: tuple[str, ...] = ("obscene", "insult", "threat", "spam", "flood")


class Detector(Protocol):
    """Anything that labels a text; must be cheap to call and safe to share."""

    def labels(self, text: str) -> frozenset[str]: ...


# --------------------------------------------------------------------------- morphology


_PARSABLE = re.compile(r"[а-яё][а-яё-]*")
# The lemmas that make a word worth a closer look by the threat rules.
_VIOLENT = (
    THREAT_VERBS
    | BODY_VERBS
    | KILL_CALL_VERBS
    | BEAT_VERBS
    | FUTURE_VIOLENCE
    | MUTILATION_VERBS
    | EXECUTION_VERBS
    | BEAT_ALONE
    | {"прийти"}
)
# "разнести их" is as often criticism, "пришить его" an accusation.
_AIMED_VIOLENCE = (KILL_CALL_VERBS | BEAT_VERBS | THREAT_VERBS) - {"разнести", "пришить"}
_NON_WORD = re.compile(r"[\W_]+")
# Pronouns that name people as a verb's object ("их вешать надо"), for verbs that also take things
# (words come folded: "её" is "ее").
_PERSON_PRONOUNS = frozenset(["их", "его", "ее", "вас", "тебя", "нас", "меня", "всех", "таких", "этих"])
_THING_VERB_TOKENS = frozenset("=" + lemma for lemma in THING_SENSE_VERBS | BURN_VERBS)
# Parts of speech that end a verb's object phrase when looking for the noun it governs.
_CLAUSE_BREAKS = ("PREP", "VERB", "INFN", "CONJ")
# A request before an infinitive makes it a call, not a verb's complement ("дайте пострелять блядей").
_REQUESTS = frozenset(["дай", "дайте", "давай", "давайте"])


class _Morph:
    """A cached view of pymorphy3: the lemmas a word may have, and whether the dictionary knows it."""

    def __init__(self) -> None:
        import pymorphy3  # imported here: loading the dictionary is the only slow step (~0.1 s)

        self._analyzer = pymorphy3.MorphAnalyzer()
        self.parse = lru_cache(maxsize=200_000)(self._parse)
        # Every rule asks for a word's lemmas again: built once per word, not per question.
        self.lemmas = lru_cache(maxsize=200_000)(self._lemmas)
        self.known_lemmas = lru_cache(maxsize=200_000)(self._known_lemmas)

    def _parse(self, word: str) -> tuple[tuple[str, str, bool], ...]:
        """(lemma, tag, known) for each likely parse; lemma folded (ё → е)."""
        if not _PARSABLE.fullmatch(word):
            # pymorphy3 raises on characters without a Unicode name (it asks unicodedata.name),
            # and nothing outside Russian letters is in its dictionary anyway.
            return ()
        return tuple(
            (p.normal_form.replace("ё", "е"), str(p.tag), bool(p.is_known)) for p in self._analyzer.parse(word)[:4]
        )

    def _lemmas(self, word: str) -> frozenset[str]:
        return frozenset(lemma for lemma, _, _ in self.parse(word))

    def _known_lemmas(self, word: str) -> frozenset[str]:
        return frozenset(lemma for lemma, _, known in self.parse(word) if known)


@dataclass(frozen=True, slots=True)
class _Text:
    """One text prepared once for all rules."""

    folded: str
    words: tuple[str, ...]
    joined: tuple[str, ...]
    lemma_sets: tuple[frozenset[str], ...]  # the lemmas of each of ``words``


class RuleDetector:
    """The default detector: pymorphy3 lemmas, stem rules for мат on de-disguised words, pattern lists.

    Build it once (``default_detector()``); it caches word analyses, so repeated vocabulary is cheap.
    """

    def __init__(self) -> None:
        self._morph = _Morph()
        self._obscene_word = lru_cache(maxsize=200_000)(self._obscene_word_uncached)
        self.obscene_word = self._obscene_word  # one normalised word: does a мат rule call it obscene?
        self.model_token = lru_cache(maxsize=200_000)(self._model_token)
        self._is_mash = lru_cache(maxsize=200_000)(self._is_mash_uncached)
        # The same word is asked about in text after text: answered once.
        self._derogatory_word = lru_cache(maxsize=200_000)(self._derogatory_word_uncached)

    def _model_token(self, word: str) -> str:
        """A word as :func:`model_input` shows it to the model."""
        if self._obscene_word(word):
            return MAT_TOKEN
        parses = self._morph.parse(word)
        if parses and parses[0][2]:
            # The insult lexicon is the rules' to judge, in context ("тупая отписка" is criticism, "вы
            # тупые" an insult): the model never sees those words, so it learns the other cues.
            if parses[0][0] in INSULT_WEAK or parses[0][0] in INSULT_STRONG:
                return ""
            return "=" + parses[0][0]
        return word

    def model_tokens(self, words: tuple[str, ...]) -> Iterator[str]:
        """Each word as :func:`model_input` shows it, in context: a verb of killing used of a thing
        gives no token (docs/moderation.md, "The trained model")."""
        for i, word in enumerate(words):
            token = self.model_token(word)
            if token in _THING_VERB_TOKENS and self._used_of_a_thing(words, i, token[1:]):
                continue
            yield token

    # ------------------------------------------------------------------ public

    def labels(self, text: str) -> frozenset[str]:
        return frozenset(self.explain(text))

    def explain(self, text: str) -> dict[str, str]:
        """Each label found, with the rule's evidence (the word or pattern that decided it)."""
        # VK's reply markup names a person, never content: "[id1|Иван], да" is no flood (docs/moderation.md).
        text = strip_markup(text)
        return self.explain_tokens(text, tokenize(text))

    def explain_tokens(self, text: str, tokens: Tokens) -> dict[str, str]:
        """As :meth:`explain`, for a text already stripped of markup and its ``tokenize`` result."""
        if not text or text.isspace():
            return {}
        lemmas = self._morph.lemmas
        prepared = _Text(fold(text), tokens.words, tokens.joined, tuple(map(lemmas, tokens.words)))
        found: dict[str, str] = {}
        for label, check in (
            ("obscene", self._is_obscene),
            ("insult", self._is_insult),
            ("threat", self._is_threat),
            ("spam", self._is_spam),
            ("flood", self._is_flood),
        ):
            evidence = check(prepared)
            if evidence:
                found[label] = evidence
        return found

    # ------------------------------------------------------------------ obscene

    def _is_obscene(self, t: _Text) -> str | None:
        return next((f"мат: {w}" for w in itertools.chain(t.words, t.joined) if self._obscene_word(w)), None)

    def _obscene_word_uncached(self, word: str) -> bool:
        if word in OBSCENE_FORMS:
            return True
        if "*" in word:
            return self._masked_obscene(word)
        if not looks_obscene(collapse_repeats(word)):
            return False
        return not self._innocent_in_dictionary(word)

    def _innocent_in_dictionary(self, word: str) -> bool:
        """True when pymorphy3 knows the word and one of its known lemmas is not мат."""
        for form in {word, collapse_repeats(word, keep=2), collapse_repeats(word)}:
            known = self._morph.known_lemmas(form)
            if known and any(not looks_obscene(collapse_repeats(lemma)) for lemma in known):
                return True
        return False

    def _masked_obscene(self, word: str) -> bool:
        """``п*здец``, ``бл*ть``: fill each mask with likely hidden letters and test the result."""
        letters = word.replace("*", "")
        if len(letters) < 2 or word.count("*") > 3 or not word.strip("*"):
            return False
        slots = word.count("*")
        for fill in itertools.product(MASK_FILL, repeat=slots):
            it = iter(fill)
            candidate = "".join(next(it) if ch == "*" else ch for ch in word)
            if looks_obscene(collapse_repeats(candidate)) and not self._innocent_in_dictionary(candidate):
                return True
        return False

    # ------------------------------------------------------------------ insult

    def _is_insult(self, t: _Text) -> str | None:
        words = t.words
        lemma_sets = t.lemma_sets
        for i, word in enumerate(words):
            if self._derogatory_word(word):
                return f"derogatory name: {word}"
            if lemma_sets[i] & INSULT_WEAK and self._aimed_at_people(words, lemma_sets, i):
                return f"aimed at people: {word}"
        phrase = INSULT_PHRASES.search(" ".join(words))
        if phrase:
            return f"phrase: {phrase.group(0)}"
        for word in t.joined:  # disguised by separators or spelt-out letters: "у.р.о.д"
            if self._morph.lemmas(word) & INSULT_STRONG and not self._innocent_reading(word, INSULT_STRONG):
                return f"derogatory name: {word}"
        return None

    def _derogatory_word_uncached(self, word: str) -> bool:
        """A derogatory name whatever surrounds it: an insulting stem (not a state or a place), or a
        strong lemma the dictionary reads first."""
        squeezed = collapse_repeats(word)
        if (INSULT_OBSCENE.search(squeezed) or INSULT_STEMS.search(squeezed)) and not self._names_no_one(word):
            return True
        return bool(self._morph.lemmas(word) & INSULT_STRONG) and not self._innocent_reading(word, INSULT_STRONG)

    def _names_no_one(self, word: str) -> bool:
        """The dictionary reads a word with an insulting stem as a state or a place, not a person:
        идиотизм, дебилизм (criticism of a thing), Колорадо."""
        parses = self._morph.parse(word)
        if not parses or not parses[0][2]:
            return False
        lemma, tag, _ = parses[0]
        return lemma.endswith(("изм", "ство")) or "Geox" in tag

    def _innocent_reading(self, word: str, lexicon: frozenset[str]) -> bool:
        """The dictionary's most likely reading of the word is not in the lexicon (сучки → сучок)."""
        parses = self._morph.parse(word)
        return bool(parses) and parses[0][2] and parses[0][0] not in lexicon

    def _aimed_at_people(self, words: tuple[str, ...], lemma_sets: tuple[frozenset[str], ...], i: int) -> bool:
        # An adverb names no one: "тупо" is "simply" as often as "stupidly".
        first = self._morph.parse(words[i])
        if first and first[0][1].startswith("ADVB"):
            return False
        # An adjective that qualifies a thing ("тупая отписка") is criticism, not an insult.
        if i + 1 < len(words):
            nxt = self._morph.parse(words[i + 1])
            if nxt and "NOUN" in nxt[0][1] and not (lemma_sets[i + 1] & NOUN_PERSONS):
                first = self._morph.parse(words[i])
                if first and first[0][1].startswith(("ADJF", "ADJS", "PRTF")):
                    return False
        window = range(max(0, i - 3), min(len(words), i + 4))
        return any(j != i and (words[j] in PERSON_CUES or lemma_sets[j] & PERSON_CUES) for j in window)

    # ------------------------------------------------------------------ threat

    def _is_threat(self, t: _Text) -> str | None:
        plain = " ".join(t.words)
        phrase = THREAT_PHRASES.search(plain) or CALL_PHRASES.search(plain) or BEATING_PHRASES.search(plain)
        if phrase:
            return f"phrase: {phrase.group(0)}"
        words = t.words
        lemma_sets = t.lemma_sets
        for i, word in enumerate(words):
            if word in THREAT_FORMS:
                return f"threat: {word}"
            if (
                word.startswith("ра")
                and SHOOT_MISSPELT.match(collapse_repeats(word))
                and not self._not_a_call(words, i)
            ):
                return f"call to kill: {word}"
            if word in REGRET_FORMS and "не" not in words[max(0, i - 2) : i]:
                return f"warning: {word}"
            lemmas = lemma_sets[i]
            if lemmas.isdisjoint(_VIOLENT):
                continue
            for lemma, tag, _known in self._morph.parse(word):
                if "VERB" in tag and "1per" in tag and "past" not in tag:
                    if lemma in THREAT_VERBS:
                        return f"announced violence: {word}"
                    if lemma in BODY_VERBS and self._near(lemma_sets, i, BODY_PARTS):
                        return f"announced violence: {word}"
                    if lemma == "прийти" and self._near(lemma_sets, i, WEAPONS, span=5):
                        return f"announced violence: {word}"
                if "INFN" in tag and lemma in KILL_CALL_VERBS and self._is_call(words, i, lemma):
                    return f"call to kill: {word}"
                if ("INFN" in tag or "impr" in tag) and lemma in BEAT_ALONE and not self._not_a_call(words, i):
                    return f"call for violence: {word}"
                if "INFN" in tag and lemma in FUTURE_VIOLENCE | THREAT_VERBS and self._future_violence(words, i):
                    return f"announced violence: {word}"
                if "INFN" in tag and lemma in MUTILATION_VERBS and self._near(lemma_sets, i, MUTILATION_PARTS, 2):
                    if not self._not_a_call(words, i) and not self._after_verb(words, i):
                        return f"call for violence: {word}"
                if "INFN" in tag and lemma in EXECUTION_VERBS and self._person_before(words, i):
                    return f"call to kill: {word}"
                if "INFN" in tag and lemma in _AIMED_VIOLENCE and self._aimed_call(words, lemma_sets, i, lemma):
                    return f"call for violence: {word}"
                if "INFN" in tag and lemma in BODY_VERBS and self._near(lemma_sets, i, BODY_PARTS):
                    if self._is_call(words, i, lemma):
                        return f"call for violence: {word}"
                if "impr" in tag and lemma in KILL_CALL_VERBS | THREAT_VERBS and not self._negated(words, i):
                    if (
                        lemma in KILL_IMPERATIVE
                        or self._window_has(words, i, PEOPLE_OBJECTS)
                        or self._person_after(words, i, lemma_sets)
                    ):
                        return f"call to kill: {word}"
                if "VERB" in tag and "past" in tag and lemma in THREAT_VERBS | KILL_CALL_VERBS:
                    before = words[max(0, i - 4) : i]
                    if "бы" in before and ("я" in before or "мы" in before):  # "я бы их перестреляла"
                        return f"announced violence: {word}"
                    if words[i + 1 : i + 2] in (("бы",), ("б",)) and self._person_after(words, i + 1, lemma_sets):
                        return f"announced violence: {word}"  # "прибила бы поганца"
                if (
                    "VERB" in tag
                    and "past" in tag
                    and lemma in BODY_VERBS
                    and words[i + 1 : i + 2] in (("бы",), ("б",))
                ):
                    if self._near(lemma_sets, i, BODY_PARTS):
                        return f"announced violence: {word}"  # "разбил бы ему морду"
        return None

    def _aimed_call(self, words: tuple[str, ...], lemma_sets: tuple[frozenset[str], ...], i: int, lemma: str) -> bool:
        """An infinitive of violence whose object, right after it, is a person ("удавить его!", "повесить эту
        сволочь", "бить этих"), said as a call: not after a verb ("мог убить его", "решили бить их") other
        than a request ("дайте пострелять блядей"), nor in a purpose or a report ("чтобы убить его",
        "хотели убить")."""
        if not any(w in PEOPLE_OBJECTS for w in words[i + 1 : i + 3]) and not self._person_after(words, i, lemma_sets):
            return False
        if self._used_of_a_thing(words, i, lemma):  # "повесить эту картину"
            return False
        if self._not_a_call(words, i) or any(w in NOT_A_CALL_BEFORE for w in words[max(0, i - 3) : i]):
            return False
        return not self._after_verb(words, i)

    def _after_verb(self, words: tuple[str, ...], i: int) -> bool:
        """The word before is a verb that governs the infinitive ("мог убить"), not a request ("дайте")."""
        if i == 0 or words[i - 1] in _REQUESTS:
            return False
        prev = self._morph.parse(words[i - 1])
        return bool(prev) and "VERB" in prev[0][1]

    def _person_after(self, words: tuple[str, ...], i: int, lemma_sets: tuple[frozenset[str], ...]) -> bool:
        """The next word is a derogatory name for a person ("мочи пиндосов", "удавить урода"), also мат
        ("пострелять блядей")."""
        if i + 1 >= len(lemma_sets):
            return False
        if lemma_sets[i + 1] & INSULT_STRONG:
            return True
        parses = self._morph.parse(words[i + 1])
        return bool(parses) and "anim" in parses[0][1] and self._obscene_word(words[i + 1])

    def _person_before(self, words: tuple[str, ...], i: int) -> bool:
        """A person is named among the three words before an execution's infinitive ("путина на площади
        повесить", "эту мразь подвесить"), with no verb between that would govern it, and no negation or
        report ("обещал его расстрелять")."""
        if self._not_a_call(words, i) or any(w in NOT_A_CALL_BEFORE for w in words[max(0, i - 3) : i]):
            return False
        for j in range(i - 1, max(-1, i - 4), -1):
            if words[j] in PEOPLE_OBJECTS:
                return True
            parses = self._morph.parse(words[j])
            if not parses:
                continue
            tag = parses[0][1]
            if "VERB" in tag or "INFN" in tag:
                return False
            if "NOUN" in tag and "anim" in tag and ("accs" in tag or "Surn" in tag or "Name" in tag):
                return True
        return False

    def _future_violence(self, words: tuple[str, ...], i: int) -> bool:
        """буду/будем with an infinitive of violence at a person ("юрку будем пиздить", "буду тебя душить"),
        or будут aimed at the reader ("вас скоро вешать будут"); never negated ("не будем убивать")."""
        window = words[max(0, i - 3) : i + 3]
        if "не" in words[max(0, i - 4) : i]:
            return False
        if "будут" in window or "будет" in window:
            return "вас" in window or "тебя" in window
        if "буду" not in window and "будем" not in window:
            return False
        for word in window:
            if word in PEOPLE_OBJECTS:
                return True
            parses = self._morph.parse(word)
            if parses and "NOUN" in parses[0][1] and "anim" in parses[0][1] and "accs" in parses[0][1]:
                return True
        return False

    def _not_a_call(self, words: tuple[str, ...], i: int) -> bool:
        """A negation or a report governs the infinitive (or imperative) at ``i``: "не надо вешать", "не хочу
        убивать", "обещал расстрелять". Only within its clause: another verb or а/но between them takes
        the negation ("их не расстреливать! их вешать надо", "надо не сажать, а отстреливать")."""
        for j in range(i - 1, max(-1, i - 4), -1):
            word = words[j]
            if word in NOT_A_CALL:
                return True
            if word in ("а", "но"):
                return False
            if word in NEGATION_BRIDGE:
                continue
            parses = self._morph.parse(word)
            if parses and ("VERB" in parses[0][1] or "INFN" in parses[0][1]):
                if not (self._morph.lemmas(word) & NEGATION_BRIDGE):
                    return False
        return False

    def _negated(self, words: tuple[str, ...], i: int) -> bool:
        """Negated or reported, or an idiom ("хоть убей, не помню", "убей бог")."""
        if self._not_a_call(words, i):
            return True
        return (i > 0 and words[i - 1] == "хоть") or words[i + 1 : i + 2] in (("бог",), ("не",))

    def _is_call(self, words: tuple[str, ...], i: int, lemma: str) -> bool:
        """An infinitive of killing is a call: alone for executions ("расстрелять!", "казнить на месте"),
        with a cue for verbs that have innocent uses ("их бы просто пристрелить", "сразу вешать"); never
        negated or reported ("не надо вешать", "обещал расстрелять", "хотели убить")."""
        if self._not_a_call(words, i) or self._used_of_a_thing(words, i, lemma):
            return False
        if lemma in KILL_CALL_PEOPLE and not RuleDetector._window_has(words, i, PEOPLE_OBJECTS):
            return False
        return lemma in KILL_CALL_ALONE or RuleDetector._window_has(words, i, CALL_CUES)

    def _used_of_a_thing(self, words: tuple[str, ...], i: int, lemma: str) -> bool:
        """A verb of killing in its sense for things: the nearest noun after it (or before it, unless a
        preposition governs that noun) is inanimate and may be its accusative object ("повесить знак",
        "картину надо повесить", "убить время"; for burning, only what is burnt anyway: "сжечь сухую
        траву"). A person, a pronoun or a derogatory name there is no thing ("повесить эту мразь")."""
        if lemma not in THING_SENSE_VERBS and lemma not in BURN_VERBS:
            return False
        for span in (range(i + 1, min(len(words), i + 4)), range(i - 1, max(-1, i - 4), -1)):
            for j in span:
                if words[j] in _PERSON_PRONOUNS or self._morph.lemmas(words[j]) & INSULT_STRONG:
                    return False
                parses = self._morph.parse(words[j])
                if not parses:
                    break
                tag = parses[0][1]
                if any(part in tag for part in _CLAUSE_BREAKS):
                    break
                if "NOUN" not in tag:
                    continue
                before = self._morph.parse(words[j - 1]) if 0 < j < i else ()
                if before and "PREP" in before[0][1]:
                    break
                if "anim" in tag:
                    return False
                if not any("inan" in other and "accs" in other for _, other, _ in parses):
                    break
                return lemma in THING_SENSE_VERBS or bool(self._morph.lemmas(words[j]) & BURNT_THINGS)
        return False

    @staticmethod
    def _window_has(words: tuple[str, ...], i: int, lexicon: frozenset[str], span: int = 5) -> bool:
        return any(w in lexicon for w in words[max(0, i - span) : i + span + 1])

    @staticmethod
    def _near(lemma_sets: tuple[frozenset[str], ...], i: int, lexicon: frozenset[str], span: int = 3) -> bool:
        window = range(max(0, i - span), min(len(lemma_sets), i + span + 1))
        return any(lemma_sets[j] & lexicon for j in window if j != i)

    # ------------------------------------------------------------------ spam

    def _is_spam(self, t: _Text) -> str | None:
        """A link or a contact, or an offer with a contact, or a pattern only ads use; a commercial word
        alone ("недорого для СПБ", "продают крепкие напитки") is ordinary talk (docs/moderation.md)."""
        text = t.folded
        for match in URL.finditer(text):
            if not OFFICIAL_LINK.search(match.group(0)):
                return f"link: {match.group(0)}"
        handle = HANDLE.search(text)
        if handle:
            return f"handle: {handle.group(0)}"
        pattern = AD_CUES.search(text)
        if pattern:
            return f"ad pattern: {pattern.group(0)}"
        phone = PHONE.search(text)
        # The offer's long pattern only where there is a contact: most texts have none.
        offer = AD_OFFERS.search(text) if phone or AD_CONTACT.search(text) else None
        if offer:
            return f"offer with a contact: {offer.group(0)}"
        if phone and not OWN_CONTACT.search(text):
            return f"phone: {phone.group(0)}"
        return None

    # ------------------------------------------------------------------ flood

    def _is_flood(self, t: _Text) -> str | None:
        dense = "".join(t.folded.split())
        if len(dense) < 5:
            return None
        # Runs of one character ("аааааа", "!!!!!!", "😡😡😡😡") or of a short unit ("хахаха").
        covered = sum(len(m.group(0)) for m in RUN4.finditer(dense))
        if covered >= 0.7 * len(dense):
            return "one character repeated"
        covered = sum(len(m.group(0)) for m in UNIT_REPEAT.finditer(dense))
        if covered >= 0.7 * len(dense):
            return "a short unit repeated"
        raw_words = [w for w in _NON_WORD.split(t.folded) if w]
        if not raw_words:
            return None
        # The same word or two over and over ("ответьте ответьте ответьте …").
        if len(raw_words) >= 8 and len(set(raw_words)) <= 0.3 * len(raw_words):
            return "the same words over and over"
        # Keyboard mash: unknown words of a few letters or along a keyboard row.
        mash_letters = sum(len(w) for w in raw_words if self._is_mash(w))
        return "keyboard mash" if mash_letters >= 0.6 * sum(len(w) for w in raw_words) else None

    def _is_mash_uncached(self, word: str) -> bool:
        if len(word) < 5 or word.isdigit():
            return False
        on_row = any(word[i : i + 4] in KEYBOARD_4GRAMS for i in range(len(word) - 3))
        few_letters = len(word) >= 8 and len(set(word)) <= 3
        vowel_share = sum(ch in VOWELS for ch in word) / len(word)
        if not (on_row or few_letters or vowel_share < 0.15):
            return False
        return not any(known for _, _, known in self._morph.parse(word))


@lru_cache(maxsize=1)
def rule_detector() -> RuleDetector:
    """The rules alone, built once per process (loading pymorphy3 takes ~0.1 s): triage's fast path."""
    return RuleDetector()


@dataclass(frozen=True, slots=True)
class Verdict:
    """One label of one text: what decided it (``rules`` or ``model``), its score and the evidence."""

    label: str
    by: str
    score: float
    evidence: str


# The model's heads and the label each one gives (docs/moderation.md, "The trained model").
# The label each head of the model gives.
HEAD_LABEL = {"toxic": "insult", "threat": "threat"}


def model_may_add(label: str, found: AbstractSet[str]) -> bool:
    """Whether the model may add ``label`` to a text the rules gave ``found``: what no rule found. Its
    toxic head (``insult``) also fires on мат, threats, and on the spam and flood it was never trained on,
    so it labels only a text the rules left unlabelled; its ``threat`` none with a threat, spam or flood
    label (docs/moderation.md, "The trained model"). Training chooses the thresholds by the same rule."""
    if label == "insult":
        return not found
    return found.isdisjoint((label, "spam", "flood"))


class ModelDetector:
    """The full detector: the rules, then the trained model (:mod:`.moderation_model`) for what no rule
    lists. A rule's label scores 1.0; the model adds ``insult`` (its ``toxic`` head) and ``threat`` when
    its score reaches the threshold written in the model file. The model never removes a rule's label."""

    def __init__(self, rules: RuleDetector | None = None, model: Any | None = None) -> None:
        from otklik.agents.text.moderation_model import load_model  # numpy, scikit-learn: only when built

        self.rules = rules if rules is not None else rule_detector()
        self.model = model if model is not None else load_model()

    def labels(self, text: str) -> frozenset[str]:
        return frozenset(v.label for v in self.explain(text))

    def explain(self, text: str) -> list[Verdict]:
        """Every label found, rules first; the model's heads are scored on every text with words."""
        return self.explain_scores(text)[0]

    def explain_scores(self, text: str) -> tuple[list[Verdict], dict[str, float]]:
        """:meth:`explain` and the model's score per head (empty when the text has no words)."""
        # One normalisation for both (docs/moderation.md, "One text pipeline").
        text = strip_markup(text)
        tokens = tokenize(text)
        found_by_rules = self.rules.explain_tokens(text, tokens)
        verdicts = [Verdict(label, "rules", 1.0, why) for label, why in found_by_rules.items()]
        found = set(found_by_rules)
        scores: dict[str, float] = {}
        if tokens.words:
            scores = self.model.scores_doc(model_input(self.rules, tokens))
            for head, label in HEAD_LABEL.items():
                threshold = self.model.thresholds[head]
                if model_may_add(label, found) and scores[head] >= threshold:
                    verdicts.append(
                        Verdict(label, "model", scores[head], f"{head} {scores[head]:.2f} ≥ {threshold:.2f}")
                    )
        return verdicts, scores


MAT_TOKEN = "<мат>"


def model_input(rules: RuleDetector, tokens: Tokens) -> str:
    """The text as the model sees it (training and service alike): every word the мат rules recognise
    becomes one token, the insult lexicon's words are left out, every other word the dictionary knows
    becomes ``=lemma``, and only the rest (disguised, misspelt, slang) is left as written. So the model
    never learns мат's letters and is not fooled where the dictionary knows better (употреблять,
    бляшки, дебаты), while inflections share one feature (and a lemma's first letters are shared with
    the misspellings of its stem). A verb of killing used of a thing ("повесить знак", "убить время") is
    left out: in that sense it is no evidence of anything."""
    words = tuple(t for t in rules.model_tokens(tokens.words) if t)
    return model_doc(words, tuple(t for t in map(rules.model_token, tokens.joined) if t))


def clear_word_caches() -> None:
    """Forget what the process-wide caches hold (tokenize's chunks, the model's hashed tokens), so that a
    fresh detector starts as cold as in a new process; each detector's own word caches start empty."""
    clear_tokenize_cache()
    clear_hash_caches()


@lru_cache(maxsize=1)
def default_detector() -> Detector:
    """The shared full detector (rules + model), built once per process: what the moderation agent and
    ``otklik moderate`` use. Triage uses :func:`rule_detector`, its fast path."""
    return ModelDetector()


# --------------------------------------------------------------------------- repetition trackers


def _text_hash(text: str) -> bytes:
    return hashlib.blake2b(normalized_key(text).encode(), digest_size=16).digest()


class SpamRepeatTracker:
    """The same text posted on many pages: ``seen`` is True from the ``min_pages``-th distinct page in ``window_s``.

    Keyed by a hash of the normalised text, so memory holds no text. Short texts ("Спасибо!",
    "Когда?") are common everywhere and never count. Memory is bounded: at most ``max_texts`` keys
    (least recently seen dropped first), and per key only the ``min_pages`` most recent pages.
    Times may arrive slightly out of order; an event older than the window is ignored.
    """

    def __init__(
        self,
        min_pages: int = 3,
        window_s: int = 24 * 3600,
        max_texts: int = 100_000,
        min_letters: int = 20,
    ) -> None:
        if min_pages < 2:
            raise ValueError("min_pages must be at least 2")
        self.min_pages = min_pages
        self.window_s = window_s
        self.max_texts = max_texts
        self.min_letters = min_letters
        self._pages: OrderedDict[bytes, dict[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def seen(self, text: str, page: str, at: float) -> bool:
        if sum(ch.isalpha() for ch in text) < self.min_letters:
            return False
        key = _text_hash(text)
        pages = self._pages.get(key)
        if pages is None:
            pages = {}
            self._pages[key] = pages
            if len(self._pages) > self.max_texts:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(key)
        newest = max([at, *pages.values()])
        if newest - at > self.window_s:
            return False  # far older than what we already hold: outside the window
        pages[page] = max(at, pages.get(page, at))
        for p in [p for p, seen_at in pages.items() if newest - seen_at > self.window_s]:
            del pages[p]
        if len(pages) > self.min_pages:
            del pages[min(pages, key=pages.__getitem__)]
        return len(pages) >= self.min_pages and all(abs(at - s) <= self.window_s for s in pages.values())


class FloodTracker:
    """One author posting the same (or nearly the same) text on one object: True from the ``min_repeats``-th copy.

    "Nearly the same" is equality after :func:`~otklik.agents.text.normalize.normalized_key` (case,
    punctuation, repeated letters and emoji ignored). Copies count within ``window_s`` (default one
    hour: a citizen asking again the next day is not flooding). At most ``max_keys`` (author, object,
    text) keys are held, least recently used dropped first; each holds at most ``min_repeats`` times.
    """

    def __init__(self, min_repeats: int = 3, window_s: int = 3600, max_keys: int = 200_000) -> None:
        if min_repeats < 2:
            raise ValueError("min_repeats must be at least 2")
        self.min_repeats = min_repeats
        self.window_s = window_s
        self.max_keys = max_keys
        self._times: OrderedDict[bytes, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._times)

    def seen(self, author: str, object_id: str, text: str, at: float) -> bool:
        key = hashlib.blake2b(
            b"\x00".join((author.encode(), object_id.encode(), normalized_key(text).encode())), digest_size=16
        ).digest()
        times = self._times.get(key)
        if times is None:
            times = []
            self._times[key] = times
            if len(self._times) > self.max_keys:
                self._times.popitem(last=False)
        else:
            self._times.move_to_end(key)
        times.append(at)
        times.sort()
        newest = times[-1]
        times[:] = [s for s in times if newest - s <= self.window_s][-self.min_repeats :]
        in_window = [s for s in times if abs(at - s) <= self.window_s]
        return len(in_window) >= self.min_repeats


# --------------------------------------------------------------------------- CLI contract


def _error(reason: str) -> str:
    return orjson.dumps({"id": None, "error": reason}).decode()


def _explained(det: Detector, text: str) -> dict[str, Any]:
    """``--explain``'s fields: per label what decided it, the score and the evidence; the model's scores."""
    if isinstance(det, ModelDetector):
        verdicts, scores = det.explain_scores(text)
    elif isinstance(det, RuleDetector):
        verdicts, scores = [Verdict(label, "rules", 1.0, why) for label, why in det.explain(text).items()], {}
    else:
        verdicts, scores = [Verdict(label, type(det).__name__, 1.0, "") for label in det.labels(text)], {}
    return {
        "labels": sorted({v.label for v in verdicts}),
        "explain": [
            {"label": v.label, "by": v.by, "score": round(v.score, 3), "evidence": v.evidence}
            for v in sorted(verdicts, key=lambda v: v.label)
        ],
        "model_scores": {head: round(score, 3) for head, score in scores.items()},
    }


def moderate_lines(
    lines: Iterable[bytes | str], detector: Detector | None = None, explain: bool = False
) -> Iterator[str]:
    """``otklik moderate``: JSON Lines ``{"id", "text"}`` in, ``{"id", "labels": [...]}`` out, one per line.

    Labels are sorted, ``[]`` when clean. A line that cannot be used yields
    ``{"id": null, "error": "<reason>"}`` and processing goes on. Blank lines are skipped. The
    yielded strings carry no trailing newline. With ``explain``, each output also has ``explain``
    (per label: ``by`` ``rules`` or ``model``, ``score``, ``evidence``) and ``model_scores`` (the
    model's score per head, whether or not it reached its threshold).
    """
    det = detector if detector is not None else default_detector()
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes | bytearray):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield _error(f"line {number}: not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
        if not line.strip():
            continue
        try:
            record: Any = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield _error(f"line {number}: invalid JSON ({exc})")
            continue
        if not isinstance(record, dict):
            yield _error(f"line {number}: expected a JSON object, got {type(record).__name__}")
            continue
        if "id" not in record:
            yield _error(f"line {number}: missing field 'id'")
            continue
        if not isinstance(record["id"], str | int) or isinstance(record["id"], bool):
            yield _error(f"line {number}: field 'id' must be a string or an integer")
            continue
        text = record.get("text")
        if not isinstance(text, str):
            yield _error(f"line {number}: field 'text' must be a string")
            continue
        if explain:
            yield orjson.dumps({"id": record["id"], **_explained(det, text)}).decode()
            continue
        labels = sorted(det.labels(text))
        yield orjson.dumps({"id": record["id"], "labels": labels}).decode()
