"""Triage's fast paths decide exactly what the plain rules decide.

The speed work in ``agents/text/triage.py`` rests on three claims, each checked here against a plain reference:
the fast forms of the moderation and phrase patterns find the same texts as the patterns that define them;
the per-word feature bits answer the same questions as the lexicons; the decision memo returns what
deciding again would return, and forgets when the external detector changes.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otklik.agents.text import triage as T
from otklik.agents.text import triage_lexicon as L
from otklik.agents.text.triage import TriageDecision, decide, triage, use_decision_cache, use_moderation_detector

DATA = Path(__file__).resolve().parents[1] / "data"


def _corpus() -> list[str]:
    texts: list[str] = []
    for name in ("triage_eval.jsonl", "moderation_eval.jsonl"):
        with (DATA / name).open(encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    return list(dict.fromkeys(texts))


CORPUS = _corpus()
NORMS = [T.normalise(text) for text in CORPUS]

# Pieces that make the patterns match, nearly match, or match across a word boundary.
FRAGMENTS = [
    "ху",
    "хуй",
    "наху",
    "охрене",
    "хер",
    "херн",
    "хрен",
    "хрень",
    "еб",
    "заеб",
    "разъеб",
    "долбоеб",
    "ебаный",
    "бля",
    "бляш",
    "сука",
    "сучара",
    "мудак",
    "пидор",
    "педик",
    "гондон",
    "залупа",
    "шлюха",
    "пизд",
    "идиот",
    "дебил",
    "дура",
    "дураки",
    "дурак",
    "тупой",
    "тупые",
    "лох",
    "лохи",
    "плохо",
    "тебе",
    "ребенок",
    "убью",
    "перебьем",
    "бьем",
    "найду",
    "вас",
    "тебя",
    "и",
    "бомба",
    "заминировано",
    "поступил",
    "заработок",
    "без",
    "вложений",
    "ставки",
    "на",
    "продам",
    "в",
    "директ",
    "профиле",
    "работа",
    "дому",
    "под",
    "ключ",
    "пиши",
    "мне",
    "пишите",
    "низкие",
    "цены",
    "http://",
    "https://x.ru",
    "www.",
    "vk.com/",
    "t.me/",
    "site.рф",
    "a-b.ru",
    "x.ru1",
    "5.ru",
    "9:00",
    "8",
    "900",
    "123",
    "45",
    "67",
    "123-45-67",
    "+7",
    "(900)",
    "1234567",
    "89001234567",
    "٣",
    "１２３",
    "с",
    "днем",
    "днём",
    "учителя",
    "праздником",
    "новым",
    "годом",
    "8 марта",
    "вопрос",
    "снят",
    "не",
    "актуально",
    "так",
    "держать",
    "сделаю",
    "опять",
    "у нас",
    "тоже",
    "до сих пор",
    "третий",
    "день",
    "спасибо",
    "молодцы",
    "ок",
    "ха-ха",
    "жду",
    "ты",
    "идешь",
    "сказали",
    "прошу",
    "хорошо",
    "ответ",
    "Мария",
    "Ивановна",
    "А.С.",
    "😡",
    "🤡",
    "☹",
    "👍",
    "❓",
    "🆘",
    "‼",
    "(((",
    ":(",
    "«",
    "»",
    '"',
    "...",
    "…",
    "-",
    "_",
    "1",
    "x",
    "Z",
    "ё",
    "\u00ad",
    "\u200b",
    "\ufeff",
]
SEPARATORS = ["", " ", "  ", ", ", ". ", "!", "?", "\n", "\t", "-", " - ", "_", "1", "a", "\u00a0"]
texts_of_fragments = st.lists(
    st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(SEPARATORS)), min_size=1, max_size=10
).map(lambda parts: "".join(fragment + separator for fragment, separator in parts))
any_text = st.one_of(texts_of_fragments, st.text(max_size=60))


@pytest.fixture(autouse=True)
def own_rules_and_a_fresh_memo():
    use_moderation_detector(None)
    use_decision_cache(True)
    yield
    use_moderation_detector(None)
    use_decision_cache(True)


# --- the fast forms of the patterns ----------------------------------------------------------------------


def _reference_moderation(norm: str) -> str | None:
    """The check as first written: six plain searches."""
    if L.OBSCENE.search(norm) or L.INSULT.search(norm) or L.THREAT.search(norm):
        return "offensive"
    if L.URL.search(norm) or L.PHONE.search(norm) or L.SPAM_WORDS.search(norm):
        return "spam"
    return None


def _assert_fast_forms_agree(norm: str) -> None:
    assert T._own_moderation(norm) == _reference_moderation(norm), norm
    padded = " " + norm
    assert bool(L.SHARED_OR_PERSISTING_AFTER_NON_WORD.search(padded)) == bool(L.SHARED_OR_PERSISTING.search(norm))
    if L.CONGRATS.search(norm):
        assert L.CONGRATS_HINT.search(norm)
    for needle, pattern, _ in L.PHRASES:
        if pattern.search(norm):
            assert needle in norm
    assert T._fold_phrases(norm) == _reference_fold(norm)


def _reference_fold(norm: str) -> str:
    norm = L.CONGRATS.sub(" поздравляю ", norm)
    for _, pattern, token in L.PHRASES:
        norm = pattern.sub(token, norm)
    return norm


def test_fast_patterns_agree_with_the_plain_ones_on_the_evaluation_sets():
    flagged = 0
    for norm in NORMS:
        _assert_fast_forms_agree(norm)
        flagged += _reference_moderation(norm) is not None
    assert flagged > 100  # the sets hold plenty of offensive texts and spam: the comparison means something


@settings(max_examples=1500, deadline=None)
@given(any_text)
def test_fast_patterns_agree_with_the_plain_ones_on_any_text(text):
    _assert_fast_forms_agree(T.normalise(text))
    _assert_fast_forms_agree(text)  # not normalised: capitals, ё, invisible characters left in


def test_an_optional_prefix_written_as_an_empty_alternative_matches_the_same():
    question_mark_spelling = re.compile(rf"(?<![а-я])(?:{L.OBSCENE_STEMS.replace('|)', ')?')})|пизд")
    assert question_mark_spelling.pattern != L.OBSCENE.pattern
    for norm in NORMS + [T.normalise(f) + " " + f for f in FRAGMENTS]:
        assert bool(question_mark_spelling.search(norm)) == bool(L.OBSCENE.search(norm)), norm


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="аеёхyx-ХЁ \u00ad\u200b\u200c\u200d\u2060\ufeff\u180e\u00a0ＡＢ①", max_size=30))
def test_normalise_matches_its_definition(text):
    expected = unicodedata.normalize("NFKC", text).translate(T._INVISIBLE).lower().replace("ё", "е")
    assert T.normalise(text) == T._INNER_HYPHEN.sub("", expected)


# --- word features ---------------------------------------------------------------------------------------


def _reference_strict_harmless(words: list[str]) -> str | None:
    """Strict recognition as first written: each word checked against the lexicons in order."""
    thanks = praise = ack = laugh = objects = False
    for word in words:
        if word in L.ACK:
            ack = True
        elif word in L.THANKS:
            thanks = True
        elif word in L.PRAISE:
            praise = True
        elif word in L.LAUGH:
            laugh = True
        elif word in L.FILLER:
            continue
        elif word in L.PRAISE_OBJECTS:
            objects = True
        else:
            return None
    if objects and not (thanks or praise):
        return None
    if ack:
        return "acknowledgement"
    if thanks or praise:
        return "gratitude"
    if laugh:
        return "reaction"
    return None


def _lenient_veto(word: str) -> bool:
    if word in L.THANKS or word in L.PRAISE or word in L.FILLER or word in L.PRAISE_OBJECTS:
        return False
    return bool(
        T._is_negation(word)
        or word.isdigit()
        or any(ch.isdigit() for ch in word)
        or word in L.CONTRAST
        or word in L.REQUEST_WORDS
        or word in L.QUESTION_WORDS
        or word in L.PERSISTENCE
        or word in L.PROBLEM
        or word == "без"
        or (len(word) >= 5 and L.IMPERATIVE.search(word))
        or (not T._is_known(word) and L.VERB_LIKE.search(word))
    )


def _vocabulary() -> list[str]:
    words: set[str] = set()
    for value in vars(T).values():
        if isinstance(value, L.Lexicon):
            words |= value.exact
            words |= {prefix + ending for prefix in value.prefixes for ending in ("", "а", "ли", "ите", "ешь", "ть")}
    for norm in NORMS:
        words.update(T._words(norm))
    return sorted(words)


VOCABULARY = _vocabulary()


def _check_word(word: str) -> None:
    features, _ = T._features([word])
    bits = features[0]
    for bit, lexicon in T._LEXICON_BITS:
        assert bool(bits & bit) == (word in lexicon), (word, bit)
    known = T._is_known(word)
    assert bool(bits & T._F_UNKNOWN) == (not known)
    assert bool(bits & T._F_UNKNOWN_VERB) == bool(not known and L.VERB_LIKE.search(word))
    assert bool(bits & T._F_UNKNOWN_LI) == (len(word) >= 5 and word.endswith("ли") and not known)
    assert bool(bits & T._F_IMPERATIVE) == bool(len(word) >= 5 and L.IMPERATIVE.search(word))
    assert bool(bits & T._F_PERSONAL_VERB) == bool(L.PERSONAL_VERB.search(word))
    assert bool(bits & T._F_NUMBER) == word.isdigit()
    assert bool(bits & T._F_WAITING) == (word in T._WAITING)
    assert bool(bits & T._F_CITIZEN_REQUEST) == (word in T._CITIZEN_REQUEST)
    assert bool(bits & T._F_SUBJECT_PRONOUN) == (word in T._SUBJECT_PRONOUNS)
    assert bool(bits & T._F_LENIENT_VETO) == _lenient_veto(word)
    assert T._strict_harmless(bits) == _reference_strict_harmless([word])


def test_word_features_answer_what_the_lexicons_answer():
    assert len(VOCABULARY) > 2000
    for word in VOCABULARY:
        _check_word(word)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=8))
def test_strict_recognition_of_a_word_list_matches_the_word_by_word_rules(words):
    _, union = T._features(words)
    assert T._strict_harmless(union) == _reference_strict_harmless(words)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[a-zа-я0-9]{1,12}", fullmatch=True))
def test_word_features_of_any_word(word):
    _check_word(word)


def test_the_word_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(T, "_FEATURES_LIMIT", 50)
    T._features_seen.clear()
    for i in range(500):
        T._features([f"слово{i}"])
        assert len(T._features_seen) <= 50
    _check_word("спасибо")


# --- the decision memo -----------------------------------------------------------------------------------

ADDRESSEES = (None, "page", "citizen")


def _all_decisions(texts: list[str]) -> list[tuple[bool, str]]:
    return [decide(t, a, att) for t in texts for a in ADDRESSEES for att in (False, True)]


def test_the_memo_changes_no_decision():
    texts = CORPUS + ["", " ", "+", "Спасибо!", "ок"] * 3
    use_decision_cache(False)
    without = _all_decisions(texts)
    use_decision_cache(True)
    cold = _all_decisions(texts)
    warm = _all_decisions(texts)
    assert without == cold == warm
    info = T.decision_cache_info()
    assert info.enabled and info.hits >= len(CORPUS) * 6 and info.misses <= len(CORPUS) * 6 + 30


def test_the_memo_counts_hits_and_misses_and_can_be_switched_off():
    for _ in range(3):
        decide("Спасибо!", None, False)
    assert T.decision_cache_info()[:3] == (2, 1, 1)
    use_decision_cache(False)
    decide("Спасибо!", None, False)
    info = T.decision_cache_info()
    assert (info.hits, info.misses, info.size, info.enabled) == (0, 0, 0, False)


def test_the_memo_forgets_when_the_detector_changes():
    assert triage("Спасибо!") == TriageDecision(False, "gratitude")
    use_moderation_detector(lambda text: ["insult"])
    assert triage("Спасибо!") == TriageDecision(True, "offensive")
    use_moderation_detector(lambda text: ["spam"])
    assert triage("Спасибо!") == TriageDecision(True, "spam")
    use_moderation_detector(None)
    assert triage("Спасибо!") == TriageDecision(False, "gratitude")


def test_the_memo_notices_a_detector_set_without_use_moderation_detector(monkeypatch):
    assert triage("ок") == TriageDecision(False, "acknowledgement")
    monkeypatch.setattr(T, "_detector_labels", lambda text: ["threat"])
    assert triage("ок") == TriageDecision(True, "offensive")


def test_the_memo_is_bounded_and_skips_long_texts(monkeypatch):
    monkeypatch.setattr(T, "_MEMO_LIMIT", 10)
    for i in range(100):
        triage(f"Спасибо {i}!")
        assert T.decision_cache_info().size <= 10
    use_decision_cache(True)
    long_text = "Спасибо! " * 40
    assert len(long_text) > T._MEMO_MAX_TEXT
    assert triage(long_text) == triage(long_text) == TriageDecision(False, "gratitude")
    info = T.decision_cache_info()
    assert (info.hits, info.misses, info.size) == (0, 2, 0)


def _outcome(*args: object) -> object:
    """The decision, or the kind of error (the compiled module checks argument types at the call)."""
    try:
        return triage(*args)  # type: ignore[arg-type]
    except TypeError:
        return TypeError


def test_odd_arguments_are_decided_as_without_the_memo():
    odd = [(None,), ("Фото", "page", 1), ("Фото", None, [1]), ("Фото", "somebody", True)]
    use_decision_cache(False)
    expected = [_outcome(*args) for args in odd]
    use_decision_cache(True)
    got = [_outcome(*args) for args in odd]
    assert got == expected


def test_the_memo_shares_nothing_mutable():
    first = triage("Спасибо!")
    with pytest.raises(AttributeError):
        first.reason = "question"  # type: ignore[misc]
    assert triage("Спасибо!") == TriageDecision(False, "gratitude")
