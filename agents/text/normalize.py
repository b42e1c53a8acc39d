"""Russian text normalisation shared by moderation and triage: pure, small, fast.

Comment writers disguise words to get past filters. This module undoes the common disguises so
that a detector can look at plain lowercase Cyrillic words:

* case and compatibility forms: NFKC, ``lower()``, ``ё`` → ``е``; zero-width characters, soft
  hyphens and combining accents are dropped;
* Latin look-alikes and digits inside a Cyrillic word: ``xуй`` → ``хуй``, ``пи3дец`` → ``пиздец``,
  ``бл@ть`` → ``блать`` (only in words that also hold a Cyrillic letter, so ``5000`` stays ``5000``);
* whole Latin words are transliterated: ``blyat`` → ``блят``, ``pizdets`` → ``пиздец``;
* separators inside a word: ``п.и.з.д.е.ц``, ``пи-здец`` → ``пиздец`` (offered as an extra
  candidate next to the parts, so ``бляха-муха`` still yields ``бляха`` and ``муха``);
* letters spelt out with spaces: ``х у й`` → ``хуй`` (a run of three or more single letters);
* repeated letters: :func:`collapse_repeats` squeezes ``хууууй`` → ``хуй`` for matching stems;
* platform markup: :func:`strip_markup` drops VK's reply markup (``[id123|Иван]``, ``[club1|…]``) and
  ``@id123 (Иван)`` mentions, which name a person and say nothing about the content (triage reads
  the same patterns, :data:`VK_MENTION` and :data:`AT_MENTION`, to learn who is addressed).

Masking characters (``*``, ``#``) stand for hidden letters and are kept as ``*`` so a detector can
decide what they hide. Nothing here knows any word list: it only changes spelling.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "AT_MENTION",
    "INVISIBLE_CHARS",
    "STRIP_INVISIBLE",
    "VK_MENTION",
    "Tokens",
    "clear_tokenize_cache",
    "collapse_repeats",
    "fold",
    "normalized_key",
    "strip_markup",
    "tokenize",
    "transliterate",
    "unmask_lookalikes",
]

# Invisible characters used to split a word without showing it.
INVISIBLE_CHARS = "\u00ad\u200b\u200c\u200d\u2060\ufeff\u180e"  # soft hyphen, zero-width ones, BOM …
STRIP_INVISIBLE = dict.fromkeys(map(ord, INVISIBLE_CHARS), None)  # a str.translate table

# VK writes a reply's addressee as "[id123|Иван]" (a person) or "[club123|Name]" (a community);
# users also type "@id123 (Иван)" or "@nickname". Group 1 of VK_MENTION is the kind of addressee.
VK_MENTION = re.compile(r"\[(id|club|public)\d+\|[^\]]*\]", re.IGNORECASE)
AT_MENTION = re.compile(r"@[\w.]+(?:\s*\([^)]*\))?")
# Only numeric VK ids are markup for moderation: "@nickname" may be a Telegram handle in an ad.
_AT_VK_ID = re.compile(r"@(?:id|club|public)\d+(?:\s*\([^)]*\))?", re.IGNORECASE)

# Latin letters, digits and symbols that look like a Cyrillic letter (after lowercasing).
# Only applied inside words that already contain Cyrillic, where the intent is unambiguous.
_LOOKALIKE = str.maketrans(
    {
        "a": "а",
        "b": "б",
        "c": "с",
        "e": "е",
        "k": "к",
        "m": "м",
        "n": "п",
        "o": "о",
        "p": "р",
        "r": "г",
        "t": "т",
        "u": "и",
        "x": "х",
        "y": "у",
        "z": "з",
        "h": "н",
        "i": "и",
        "0": "о",
        "3": "з",
        "4": "ч",
        "6": "б",
        "1": "и",
        "@": "а",
        "$": "с",
    }
)

# Phonetic transliteration of Latin-only words, longest sequences first.
_TRANSLIT_MULTI = (
    ("shch", "щ"),
    ("sch", "щ"),
    ("zh", "ж"),
    ("kh", "х"),
    ("ch", "ч"),
    ("sh", "ш"),
    ("ts", "ц"),
    ("yu", "ю"),
    ("ju", "ю"),
    ("ya", "я"),
    ("ja", "я"),
    ("yo", "е"),
    ("jo", "е"),
    ("ye", "е"),
    ("je", "е"),
)
_TRANSLIT_SINGLE = {
    "a": "а",
    "b": "б",
    "v": "в",
    "g": "г",
    "d": "д",
    "e": "е",
    "z": "з",
    "i": "и",
    "j": "й",
    "k": "к",
    "l": "л",
    "m": "м",
    "n": "н",
    "o": "о",
    "p": "п",
    "r": "р",
    "s": "с",
    "t": "т",
    "u": "у",
    "f": "ф",
    "h": "х",
    "c": "ц",
    "w": "в",
    "x": "кс",
    "q": "к",
    "'": "ь",
    "’": "ь",
}
_VOWELS_LATIN = frozenset("aeiouy")

# Characters that writers put between the letters of one word.
_SEPARATORS = ".-_'’`·•|/\\~^+,:"
_SEP_SPLIT = re.compile("[" + re.escape(_SEPARATORS) + "]+")
_MASK = re.compile(r"[*#%]")
# "3.14" read aloud is "пи": "3.14дорас" → "пидорас".
_PI = re.compile(r"3[.,]14(?=[^\W\d_])")
_DOTS_MASK = re.compile(r"(?<=[^\W\d_])(?:\.{2,}|…)(?=[^\W\d_])")
_HAS_CYRILLIC = re.compile(r"[а-я]")
_HAS_LATIN = re.compile(r"[a-z]")
_WORD_CHARS = re.compile(r"[^\W_]|[*@$]")
# A run of three or more single letters separated by spaces or separators: "х у й", "б.л.я".
_SPELLED_OUT = re.compile(r"(?<![^\W_])(?:[^\W\d_][\s.\-_*·•]+){2,}[^\W\d_](?![^\W_])")
_REPEATS = re.compile(r"(.)\1+")
_REPEATS_3 = re.compile(r"(.)\1{2,}")
_NON_WORD = re.compile(r"[\W_]+")


# Latin, Greek, Cyrillic (less its combining marks U+0483–U+0489), punctuation, currency: no combining
# character there (checked with unicodedata by a unit test).
_SAFE_BLOCKS = "\x00-\u02ff\u0370-\u0482\u048a-\u052f\u2010-\u20cf"
_MAYBE_COMBINING = re.compile(f"[^{_SAFE_BLOCKS}]")


def fold(text: str) -> str:
    """NFKC, lowercase, ``ё`` → ``е``; drop invisible characters and combining accents."""
    text = unicodedata.normalize("NFKC", text).translate(STRIP_INVISIBLE).lower()
    # The scan by character is costly; only a character outside the usual blocks can be a combining one.
    if _MAYBE_COMBINING.search(text) and any(unicodedata.combining(ch) for ch in text):
        # Stress marks and diacritics ("у́" "ё") are decoration; "й" survives NFC recomposition.
        text = unicodedata.normalize(
            "NFC", "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))
        )
    return text.replace("ё", "е")


def strip_markup(text: str) -> str:
    """Drop VK's reply markup and ``@id123 (Имя)`` mentions; the rest of the text is unchanged."""
    if "[" in text:
        text = VK_MENTION.sub(" ", text)
    if "@" in text:
        text = _AT_VK_ID.sub(" ", text)
    return text


def collapse_repeats(word: str, keep: int = 1) -> str:
    """Squeeze runs of one character: ``keep=1`` makes ``хууууй`` → ``хуй``; ``keep=2`` only runs of 3+."""
    if keep == 1:
        return _REPEATS.sub(r"\1", word)
    return _REPEATS_3.sub(r"\1\1", word)


def transliterate(word: str) -> str:
    """Latin → Cyrillic by sound, as Russians type without a Cyrillic keyboard (``huy`` → ``хуй``)."""
    out: list[str] = []
    i = 0
    while i < len(word):
        for latin, cyr in _TRANSLIT_MULTI:
            if word.startswith(latin, i):
                out.append(cyr)
                i += len(latin)
                break
        else:
            ch = word[i]
            if ch == "y":
                # "y" after a vowel is "й" (huy, ohuy), elsewhere "ы" (ty, vy).
                out.append("й" if i > 0 and word[i - 1] in _VOWELS_LATIN else "ы")
            else:
                out.append(_TRANSLIT_SINGLE.get(ch, ch))
            i += 1
    return "".join(out)


def unmask_lookalikes(chunk: str) -> str:
    """Map Latin look-alikes and digits to Cyrillic in a chunk that already holds a Cyrillic letter."""
    if _HAS_CYRILLIC.search(chunk):
        return chunk.translate(_LOOKALIKE)
    return chunk


@dataclass(frozen=True, slots=True)
class Tokens:
    """Words of a text after normalisation.

    ``words``: the words as written (folded, look-alikes undone, Latin transliterated), in order;
    separators split them, so ``что-то`` gives ``что`` and ``то``. ``joined``: extra candidates
    that a disguise may hide: words with their inner separators removed (``пи-здец`` → ``пиздец``)
    and letters spelt out with spaces (``х у й`` → ``хуй``). Masks stay as ``*``.
    """

    words: tuple[str, ...]
    joined: tuple[str, ...]


@lru_cache(maxsize=100_000)
def _chunk_words(chunk: str) -> tuple[tuple[str, ...], str | None]:
    """Split one whitespace-free chunk into words and, when it had inner separators, the joined word.
    Cached: most chunks (common words with their punctuation) recur from text to text."""
    chunk = chunk.strip(_SEPARATORS + '"«»()[]{}<>!?;…—–')
    if not chunk or not _WORD_CHARS.search(chunk):
        return (), None
    if "3" in chunk:
        chunk = _PI.sub("пи", chunk)
    alternative = None
    if _HAS_CYRILLIC.search(chunk):
        if "h" in chunk:
            # "h" is "н" by shape and "х" by sound ("шлюhа"): offer the second reading too.
            alternative = chunk.replace("h", "х").translate(_LOOKALIKE)
        chunk = chunk.translate(_LOOKALIKE)
    elif _HAS_LATIN.search(chunk) and not any(ch.isdigit() for ch in chunk):
        # A Latin-only word: read it as transliterated Russian (English words rarely matter here).
        chunk = transliterate(chunk)
    # Two or more dots inside a word hide letters as a mask does: "пи..дец".
    chunk = _MASK.sub("*", _DOTS_MASK.sub("*", chunk))
    # Drop anything that is neither a letter, a digit, a mask nor a separator (emoji, quotes).
    chunk = "".join(ch for ch in chunk if ch.isalnum() or ch == "*" or ch in _SEPARATORS)
    parts = tuple(p for p in _SEP_SPLIT.split(chunk) if p)
    joined = "".join(parts) if len(parts) > 1 else None
    if alternative is not None:
        alternative = "".join(ch for ch in _MASK.sub("*", alternative) if ch.isalnum() or ch == "*")
        joined = f"{joined} {alternative}" if joined else alternative
    return parts, joined


def clear_tokenize_cache() -> None:
    """Forget the chunks :func:`tokenize` has cached, as in a new process (for a cold-start measurement)."""
    _chunk_words.cache_clear()


def tokenize(text: str) -> Tokens:
    """Normalise ``text`` into :class:`Tokens` (see the module docstring for what is undone)."""
    folded = fold(text)
    words: list[str] = []
    joined: list[str] = []
    for chunk in folded.split():
        parts, whole = _chunk_words(chunk)
        words.extend(parts)
        if whole is not None:
            joined.extend(whole.split(" "))
    for match in _SPELLED_OUT.finditer(folded):
        letters = "".join(ch for ch in match.group(0) if ch.isalpha())
        joined.append(unmask_lookalikes(letters) if _HAS_CYRILLIC.search(letters) else transliterate(letters))
    return Tokens(tuple(words), tuple(joined))


def normalized_key(text: str) -> str:
    """A spelling-insensitive key for "the same text": folded words, repeats squeezed, no punctuation.

    ``"Продам ГАРАЖ!!!"`` and ``"продам   гараж"`` give the same key; used to spot copies.
    """
    folded = unmask_lookalikes(fold(text))
    return " ".join(collapse_repeats(w) for w in _NON_WORD.split(folded) if w)
