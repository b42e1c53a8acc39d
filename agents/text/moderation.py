"""Moderation labels for Russian comments: obscene, insult, threat, spam, flood (pure core).

A :class:`Detector` turns one text into a set of labels from :data:`LABELS`. The default,
:class:`RuleDetector`, is built from maintained packages plus small, documented rules; any
better model (a classifier, a remote service behind a cache) can replace it by implementing
``labels(text)``. Two small trackers add what one text cannot show: the same text spread over
many pages (:class:`SpamRepeatTracker`) and one author repeating himself (:class:`FloodTracker`).

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
    violence announced by the writer (убью, сожгу, приду с ножом), a call to kill (надо
    расстрелять), a bomb hoax (школа заминирована). Legal pressure (подам в суд, напишу в
    прокуратуру, вы за это ответите) and reports of violence (сына избили) are not threats.
``spam``
    advertising (продам, заработок, промокод, вступайте в группу, ссылка в профиле), links other
    than official government sites, telegram handles, phone numbers unless the writer asks to be
    called back, and (via :class:`SpamRepeatTracker`) the same text on three or more pages.
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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import orjson

from otklik.agents.text.moderation_lexicon import (
    AD_CUES,
    BODY_PARTS,
    BODY_VERBS,
    CALL_CUES,
    HANDLE,
    INSULT_OBSCENE,
    INSULT_STRONG,
    INSULT_WEAK,
    KEYBOARD_4GRAMS,
    KILL_CALL_VERBS,
    MASK_FILL,
    NOUN_PERSONS,
    OBSCENE_FORMS,
    OFFICIAL_LINK,
    OWN_CONTACT,
    PERSON_CUES,
    PHONE,
    RUN4,
    THREAT_FORMS,
    THREAT_PHRASES,
    THREAT_VERBS,
    UNIT_REPEAT,
    URL,
    VOWELS,
    WEAPONS,
    looks_obscene,
)
from otklik.agents.text.normalize import collapse_repeats, fold, normalized_key, tokenize

__all__ = [
    "LABELS",
    "Detector",
    "FloodTracker",
    "RuleDetector",
    "SpamRepeatTracker",
    "default_detector",
    "moderate_lines",
]

LABELS: tuple[str, ...] = ("obscene", "insult", "threat", "spam", "flood")


class Detector(Protocol):
    """Anything that labels a text; must be cheap to call and safe to share."""

    def labels(self, text: str) -> frozenset[str]: ...


# --------------------------------------------------------------------------- morphology


_PARSABLE = re.compile(r"[а-яё][а-яё-]*")


class _Morph:
    """A cached view of pymorphy3: the lemmas a word may have, and whether the dictionary knows it."""

    def __init__(self) -> None:
        import pymorphy3  # imported here: loading the dictionary is the only slow step (~0.1 s)

        self._analyzer = pymorphy3.MorphAnalyzer()
        self.parse = lru_cache(maxsize=200_000)(self._parse)

    def _parse(self, word: str) -> tuple[tuple[str, str, bool], ...]:
        """(lemma, tag, known) for each likely parse; lemma folded (ё → е)."""
        if not _PARSABLE.fullmatch(word):
            # pymorphy3 raises on characters without a Unicode name (it asks unicodedata.name),
            # and nothing outside Russian letters is in its dictionary anyway.
            return ()
        return tuple(
            (p.normal_form.replace("ё", "е"), str(p.tag), bool(p.is_known)) for p in self._analyzer.parse(word)[:4]
        )

    def lemmas(self, word: str) -> frozenset[str]:
        return frozenset(lemma for lemma, _, _ in self.parse(word))

    def known_lemmas(self, word: str) -> frozenset[str]:
        return frozenset(lemma for lemma, _, known in self.parse(word) if known)


@dataclass(frozen=True, slots=True)
class _Text:
    """One text prepared once for all rules."""

    folded: str
    words: tuple[str, ...]
    joined: tuple[str, ...]


class RuleDetector:
    """The default detector: pymorphy3 lemmas, stem rules for мат on de-disguised words, pattern lists.

    Build it once (``default_detector()``); it caches word analyses, so repeated vocabulary is cheap.
    """

    def __init__(self) -> None:
        self._morph = _Morph()
        self._obscene_word = lru_cache(maxsize=200_000)(self._obscene_word_uncached)

    # ------------------------------------------------------------------ public

    def labels(self, text: str) -> frozenset[str]:
        if not text or text.isspace():
            return frozenset()
        tokens = tokenize(text)
        prepared = _Text(fold(text), tokens.words, tokens.joined)
        found: set[str] = set()
        if self._is_obscene(prepared):
            found.add("obscene")
        if self._is_insult(prepared):
            found.add("insult")
        if self._is_threat(prepared):
            found.add("threat")
        if self._is_spam(prepared):
            found.add("spam")
        if self._is_flood(prepared):
            found.add("flood")
        return frozenset(found)

    # ------------------------------------------------------------------ obscene

    def _is_obscene(self, t: _Text) -> bool:
        return any(self._obscene_word(w) for w in itertools.chain(t.words, t.joined))

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

    def _is_insult(self, t: _Text) -> bool:
        words = t.words
        lemma_sets = [self._morph.lemmas(w) for w in words]
        for i, word in enumerate(words):
            if INSULT_OBSCENE.search(collapse_repeats(word)):
                return True
            lemmas = lemma_sets[i]
            if lemmas & INSULT_STRONG and not self._innocent_reading(word, INSULT_STRONG):
                return True
            if lemmas & INSULT_WEAK and self._aimed_at_people(words, lemma_sets, i):
                return True
        return False

    def _innocent_reading(self, word: str, lexicon: frozenset[str]) -> bool:
        """The dictionary's most likely reading of the word is not in the lexicon (сучки → сучок)."""
        parses = self._morph.parse(word)
        return bool(parses) and parses[0][2] and parses[0][0] not in lexicon

    def _aimed_at_people(self, words: tuple[str, ...], lemma_sets: list[frozenset[str]], i: int) -> bool:
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

    def _is_threat(self, t: _Text) -> bool:
        plain = " ".join(t.words)
        if THREAT_PHRASES.search(plain):
            return True
        words = t.words
        lemma_sets = [self._morph.lemmas(w) for w in words]
        has_call_cue = any(w in CALL_CUES for w in words)
        for i, word in enumerate(words):
            if word in THREAT_FORMS:
                return True
            lemmas = lemma_sets[i]
            if not (lemmas & (THREAT_VERBS | BODY_VERBS | KILL_CALL_VERBS)) and lemmas.isdisjoint({"прийти"}):
                continue
            for lemma, tag, _known in self._morph.parse(word):
                if "VERB" in tag and "1per" in tag and "past" not in tag:
                    if lemma in THREAT_VERBS:
                        return True
                    if lemma in BODY_VERBS and self._near(lemma_sets, i, BODY_PARTS):
                        return True
                    if lemma == "прийти" and self._near(lemma_sets, i, WEAPONS, span=5):
                        return True
                if "INFN" in tag and lemma in KILL_CALL_VERBS and has_call_cue:
                    return True
        return False

    @staticmethod
    def _near(lemma_sets: list[frozenset[str]], i: int, lexicon: frozenset[str], span: int = 3) -> bool:
        window = range(max(0, i - span), min(len(lemma_sets), i + span + 1))
        return any(lemma_sets[j] & lexicon for j in window if j != i)

    # ------------------------------------------------------------------ spam

    def _is_spam(self, t: _Text) -> bool:
        text = t.folded
        for match in URL.finditer(text):
            if not OFFICIAL_LINK.search(match.group(0)):
                return True
        if HANDLE.search(text) or AD_CUES.search(text):
            return True
        return bool(PHONE.search(text)) and not OWN_CONTACT.search(text)

    # ------------------------------------------------------------------ flood

    def _is_flood(self, t: _Text) -> bool:
        dense = "".join(t.folded.split())
        if len(dense) < 5:
            return False
        # Runs of one character ("аааааа", "!!!!!!", "😡😡😡😡") or of a short unit ("хахаха").
        covered = sum(len(m.group(0)) for m in RUN4.finditer(dense))
        if covered >= 0.7 * len(dense):
            return True
        covered = sum(len(m.group(0)) for m in UNIT_REPEAT.finditer(dense))
        if covered >= 0.7 * len(dense):
            return True
        raw_words = [w for w in re.split(r"[\W_]+", t.folded) if w]
        if not raw_words:
            return False
        # The same word or two over and over ("ответьте ответьте ответьте …").
        if len(raw_words) >= 8 and len(set(raw_words)) <= 0.3 * len(raw_words):
            return True
        # Keyboard mash: unknown words of a few letters or along a keyboard row.
        mash_letters = sum(len(w) for w in raw_words if self._is_mash(w))
        return mash_letters >= 0.6 * sum(len(w) for w in raw_words)

    def _is_mash(self, word: str) -> bool:
        if len(word) < 5 or word.isdigit():
            return False
        on_row = any(word[i : i + 4] in KEYBOARD_4GRAMS for i in range(len(word) - 3))
        few_letters = len(word) >= 8 and len(set(word)) <= 3
        vowel_share = sum(ch in VOWELS for ch in word) / len(word)
        if not (on_row or few_letters or vowel_share < 0.15):
            return False
        return not any(known for _, _, known in self._morph.parse(word))


@lru_cache(maxsize=1)
def default_detector() -> Detector:
    """The shared default detector, built once per process (loading pymorphy3 takes ~0.1 s)."""
    return RuleDetector()


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


def moderate_lines(lines: Iterable[bytes | str], detector: Detector | None = None) -> Iterator[str]:
    """``otklik moderate``: JSON Lines ``{"id", "text"}`` in, ``{"id", "labels": [...]}`` out, one per line.

    Labels are sorted, ``[]`` when clean. A line that cannot be used yields
    ``{"id": null, "error": "<reason>"}`` and processing goes on. Blank lines are skipped. The
    yielded strings carry no trailing newline.
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
        labels = sorted(det.labels(text))
        yield orjson.dumps({"id": record["id"], "labels": labels}).decode()
