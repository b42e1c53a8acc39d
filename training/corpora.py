"""The labelled moderation corpora of the corpora in ``shared/data/moderation`` beside the repository: read, deduplicated, split.

Used by the training command (``make train-moderation``) and by ``python -m bench moderation``; the
running service never reads them. Three CSV files (their README names sources, licences and caveats):

* ``russe_detox_2022_train.csv``: toxic sentences (``toxic``, kind unknown) and crowd-written neutral
  rewrites (clean, marked ``rewrite`` so that false alarms on organic comments are counted apart);
* ``ru_toxic_2ch_pikabu_train.csv``: comments with a binary ``toxic``; its ``0`` rows with мат are
  ``obscene`` by our policy (the caller relabels them with the мат rules, see ``has_mat``);
* ``ok_toxic_comments_train.csv``: comments with fine labels INSULT / THREAT / OBSCENITY / NORMAL.

Texts are deduplicated across the files (case and whitespace ignored) *before* the split; a RUSSE
sentence and its rewrites form one group, and every group falls wholly on one side. The split is a
keyed hash of the group, so it never depends on row order or on a random state.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("OTKLIK_MODERATION_DATA", ROOT.parent / "shared" / "data" / "moderation"))
# The policy's own examples (not a corpus: written for the policy), which the bench scores and training
# may only raise a threshold for.
EVAL_SET = ROOT / "tests" / "data" / "moderation_eval.jsonl"


def load_eval_set(path: Path = EVAL_SET) -> list[dict]:
    """The evaluation set's rows: {"text", "labels", "group"}."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


RUSSE = "russe_detox_2022_train.csv"
PIKABU = "ru_toxic_2ch_pikabu_train.csv"
OK = "ok_toxic_comments_train.csv"

# One in five groups is held out for evaluation and never trained on.
HELD_OUT_SHARE = 0.20
SPLIT_SALT = b"otklik-moderation-split-v1"


@dataclass
class Sample:
    """One distinct text. ``labels``: our labels the corpus states (``toxic`` when the kind is unknown);
    ``clean``: the corpus says it is clean; ``kind``: ``organic`` or ``rewrite``."""

    text: str
    source: str
    labels: set[str] = field(default_factory=set)
    clean: bool = False
    kind: str = "organic"
    group: str = ""
    sources: set[str] = field(default_factory=set)

    @property
    def toxic(self) -> bool:
        return bool(self.labels)


def key(text: str) -> str:
    return " ".join(text.lower().replace("ё", "е").split())


def _rows(name: str) -> Iterator[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f)


_OK_LABELS = {"__label__INSULT": "insult", "__label__THREAT": "threat", "__label__OBSCENITY": "obscene"}


def _raw() -> Iterator[tuple[str, Sample]]:
    """(group, sample) in file order, before deduplication."""
    for row in _rows(RUSSE):
        group = f"russe:{row['index']}"
        toxic = row["toxic_comment"].strip()
        rewrites = [row[f"neutral_comment{i}"].strip() for i in (1, 2, 3)]
        rewrites = [r for r in rewrites if r and key(r) != key(toxic)]  # a rewrite equal to its source says nothing
        yield group, Sample(toxic, RUSSE, {"toxic"})
        for r in rewrites:
            yield group, Sample(r, RUSSE, set(), clean=True, kind="rewrite")
    for row in _rows(PIKABU):
        toxic = row["toxic"].strip() in ("1", "1.0")
        yield (
            f"pikabu:{row['source_index']}",
            Sample(row["comment"].strip(), PIKABU, {"toxic"} if toxic else set(), clean=not toxic),
        )
    for row in _rows(OK):
        labels = {_OK_LABELS[label] for label in row["labels"].split(",") if label in _OK_LABELS}
        yield f"ok:{row['id']}", Sample(row["text"].strip(), OK, labels, clean=not labels)


class _Groups:
    """Union-find over group names: a text shared by two groups joins them."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, g: str) -> str:
        self.parent.setdefault(g, g)
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def load() -> list[Sample]:
    """Every distinct text once. A text in several files keeps the finest labels: OK's kinds over a bare
    ``toxic``; a text called toxic by one source and clean by another is dropped (its label is unknown)."""
    by_key: dict[str, Sample] = {}
    conflicts: set[str] = set()
    groups = _Groups()
    for group, sample in _raw():
        if not sample.text:
            continue
        k = key(sample.text)
        groups.find(group)
        seen = by_key.get(k)
        if seen is None:
            sample.group = group
            sample.sources = {sample.source}
            by_key[k] = sample
            continue
        groups.union(seen.group, group)
        seen.sources.add(sample.source)
        if seen.toxic != sample.toxic:
            conflicts.add(k)
        elif sample.labels - {"toxic"}:
            seen.labels = set(sample.labels)
        if sample.kind == "organic":
            seen.kind = "organic"
    out = []
    for k, sample in by_key.items():
        if k in conflicts:
            continue
        sample.group = groups.find(sample.group)
        out.append(sample)
    return out


def held_out(sample: Sample) -> bool:
    digest = hashlib.blake2b(sample.group.encode(), key=SPLIT_SALT, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < HELD_OUT_SHARE


def split() -> tuple[list[Sample], list[Sample]]:
    """(training part, held-out part)."""
    samples = load()
    return [s for s in samples if not held_out(s)], [s for s in samples if held_out(s)]


def has_mat(text: str, obscene: object | None = None) -> bool:
    """Whether our мат rules call the text obscene (``obscene``: a detector with ``labels``)."""
    if obscene is None:
        from otklik.agents.text.moderation import rule_detector

        obscene = rule_detector()
    return "obscene" in obscene.labels(text)  # type: ignore[attr-defined]
