"""The trained part of moderation: a linear model over hashed character and word n-grams (pure core).

The rules of :mod:`otklik.agents.text.moderation` name what a policy can list (мат, named insults,
calls to kill, spam patterns); this model scores what they cannot: rude and insulting talk without a
listed word, and threats in other words. It is a logistic regression per head (``toxic``,
``threat``) over features that scikit-learn's stateless ``HashingVectorizer`` hashes from the text
as ``moderation.model_input`` normalises it (:func:`analyze`), each feature present or not (binary), L2-normalised. Only the coefficients ship: ``models/moderation.npz`` inside
the package (no pickle: plain arrays), with the thresholds chosen on out-of-fold predictions and
written beside them. ``training/train_moderation.py`` (``make train-moderation``) writes it; the
model card is ``agents/text/models/README.md``.

Nothing is read at import: :func:`load_model` reads the file (through ``importlib.resources``) on
first use, and scikit-learn is imported then too.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = [
    "HEADS",
    "N_FEATURES",
    "LinearModel",
    "analyze",
    "clear_hash_caches",
    "hashed_counts",
    "load_model",
    "model_doc",
    "vectorizer",
]

MODEL_FILE = "moderation.npz"
HEADS: tuple[str, ...] = ("toxic", "threat")
# The size of the hashed feature space; the training command and the service share it (and analyze).
N_FEATURES = 2**18


def model_doc(words: tuple[str, ...], joined: tuple[str, ...]) -> str:
    """Model tokens (``moderation.model_input``) as one document, one space between them."""
    return " ".join((*words, *joined))


def analyze(doc: str) -> list[str]:
    """The features of a model document: each token, each pair of neighbouring tokens, character
    2–5-grams (with a space at either end) of the tokens left as written, and the first 3, 4 and 5
    letters of a dictionary word's lemma (``=lemma``), the same features as a written word's n-grams
    at its start (a rude lemma shares its stem with the misspellings and derivations the dictionary does
    not know); the мат token (``<мат>``) is one feature."""
    tokens = doc.split()
    grams = list(tokens)
    grams.extend(f"{a} {b}" for a, b in itertools.pairwise(tokens))
    for token in tokens:
        grams.extend(_char_grams(token))
    return grams


def _char_grams(token: str) -> list[str]:
    if token[0] == "<":
        return []
    if token[0] == "=":
        # A lemma's first 3, 4 and 5 letters, as a word's own n-grams at its start: few, so that a
        # word new to the process costs little more to hash than before.
        lemma = token[1:]
        return [f" {lemma[:n]}" for n in (3, 4, 5) if len(lemma) > n]
    padded = f" {token} "
    return [padded[i : i + n] for n in range(2, 6) for i in range(len(padded) - n + 1)]


@lru_cache(maxsize=1)
def _murmurhash() -> Any:
    from sklearn.utils import murmurhash3_32

    return murmurhash3_32


def _column(feature: str) -> int:
    """The column ``HashingVectorizer`` gives a feature: signed 32-bit murmurhash3 (seed 0), its absolute
    value modulo the size (``alternate_sign=False``)."""
    return abs(_murmurhash()(feature, seed=0)) % N_FEATURES


# Pairs of tokens recur from text to text: their columns are cached.
_pair_column = lru_cache(maxsize=200_000)(_column)


@lru_cache(maxsize=200_000)
def _token_indices(token: str) -> tuple[int, ...]:
    """The columns of one token's own features in :func:`analyze`: the token and its character n-grams."""
    # map() with the default seed (0) rather than a generator with a keyword: the hashing is per n-gram.
    return tuple([abs(h) % N_FEATURES for h in map(_murmurhash(), (token, *_char_grams(token)))])


def clear_hash_caches() -> None:
    """Forget the hashed columns cached so far, as in a new process (for a cold-start measurement)."""
    _token_indices.cache_clear()
    _pair_column.cache_clear()


def _columns(doc: str) -> list[int]:
    """The column of every feature :func:`analyze` gives the document, once per occurrence."""
    tokens = doc.split()
    return [
        *itertools.chain.from_iterable(map(_token_indices, tokens)),
        *map(_pair_column, map(" ".join, itertools.pairwise(tokens))),
    ]


def hashed_counts(doc: str) -> tuple[Any, Any]:
    """The non-zero columns of ``vectorizer().transform([doc])`` (sorted) and their values (float32: 1.0,
    the features are binary), as the vectorizer computes them, without its per-call overhead: one token's
    features are looked up once."""
    import numpy as np

    indices = np.unique(np.array(_columns(doc), dtype=np.int32))
    return indices, np.ones(len(indices), dtype=np.float32)


def vectorizer() -> Any:
    """Binary features (1.0 where a feature occurs, however often), not yet normalised
    (:meth:`LinearModel.scores_doc` and training normalise them the same way). Out of fold on the
    training part, binary features gave the toxic head more recall than counts at the same share of
    clean texts flagged (the model card, ``models/README.md``)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer=analyze, n_features=N_FEATURES, alternate_sign=False, binary=True, norm=None, dtype="float32"
    )


@dataclass(frozen=True)
class LinearModel:
    """Coefficients and intercept per head, and the per-head thresholds of the model card."""

    coef: dict[str, Any]  # head -> dense float32 vector of N_FEATURES
    intercept: dict[str, float]
    thresholds: dict[str, float]
    meta: dict[str, Any]
    _rows: Any = field(init=False, repr=False, compare=False)  # the heads' coefficients, one row each

    def __post_init__(self) -> None:
        import numpy as np

        # Import scikit-learn's hashing with the model rather than on the first text scored.
        _murmurhash()
        # One look-up per text scores every head.
        object.__setattr__(self, "_rows", np.stack([self.coef[h] for h in self.coef]).astype(np.float32))

    def scores_doc(self, doc: str) -> dict[str, float]:
        """Probability-like score per head for one document (``moderation.model_input``)."""
        import math

        import numpy as np

        if not doc:
            return dict.fromkeys(self.coef, 0.0)
        # The vectorizer's own transform costs more than the hashing for one short text (tests/unit/
        # test_moderation_model.py checks that both give the same columns and values). The features
        # are binary: each distinct column counts once, and the norm is the root of their number.
        columns = set(_columns(doc))
        norm = math.sqrt(len(columns)) or 1.0
        sums = self._rows[:, np.fromiter(columns, dtype=np.intp, count=len(columns))].sum(axis=1, dtype=np.float64)
        out = {}
        for head, total in zip(self.coef, sums.tolist(), strict=True):
            margin = total / norm + self.intercept[head]
            out[head] = 1.0 / (1.0 + math.exp(-margin))
        return out

    def to_bytes(self) -> bytes:
        import numpy as np

        arrays: dict[str, Any] = {}
        for head, vector in self.coef.items():
            # Sparse on disk: most hashed features never occur in training and stay zero.
            nz = np.flatnonzero(vector)
            arrays[f"{head}.index"] = nz.astype(np.int32)
            arrays[f"{head}.value"] = vector[nz].astype(np.float16)
        header = {"intercept": self.intercept, "thresholds": self.thresholds, "meta": self.meta}
        arrays["header"] = np.frombuffer(json.dumps(header, ensure_ascii=False).encode(), dtype=np.uint8)
        # np.savez's layout, written with a fixed timestamp so that the same training gives the same bytes.
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w") as f:
                    np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearModel:
        import numpy as np

        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            header = json.loads(arrays["header"].tobytes().decode())
            coef: dict[str, Any] = {}
            for head in header["intercept"]:
                vector = np.zeros(N_FEATURES, dtype=np.float32)
                vector[arrays[f"{head}.index"]] = arrays[f"{head}.value"].astype(np.float32)
                coef[head] = vector
        return cls(coef, {h: float(v) for h, v in header["intercept"].items()}, header["thresholds"], header["meta"])


@lru_cache(maxsize=1)
def load_model() -> LinearModel:
    """The model shipped in the package, read once per process."""
    data = resources.files("otklik.agents.text").joinpath("models", MODEL_FILE).read_bytes()
    return LinearModel.from_bytes(data)
