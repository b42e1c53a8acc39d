"""Train the moderation model: ``make train-moderation`` (reproducible: no random state is left free).

Reads the training part of the corpora in ``shared/data/moderation`` beside the repository (``training/corpora.py``; the held-out part
is never read here), fits one logistic regression per head over hashed n-grams
(``otklik.agents.text.moderation_model``), chooses each label's threshold on 5-fold out-of-fold
predictions of the training part, and writes ``agents/text/models/moderation.npz``.

Heads and their training data:

``toxic`` (our label ``insult`` when it fires): every corpus; toxic = any toxic label, clean = the
    corpus's clean texts. Comments the 2ch/pikabu corpus calls clean but that hold мат are left out
    (our policy calls them obscene, and the мат rules find them; the source's label says they are not
    aimed at anyone).
``threat``: the ok.ru corpus (the only one with a threat label), threat against the rest, and the
    organic clean comments of the others as more examples of ordinary talk (their toxic comments are
    left out: the source does not say whether they threaten).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.preprocessing import normalize

from otklik.agents.text.moderation import HEAD_LABEL, model_input, model_may_add, rule_detector
from otklik.agents.text.moderation_model import MODEL_FILE, LinearModel, vectorizer
from otklik.agents.text.normalize import strip_markup, tokenize
from training.corpora import OK, PIKABU, Sample, load_eval_set, split

OUT = Path(__file__).resolve().parent.parent / "agents" / "text" / "models" / MODEL_FILE
SEED = 18
C = {"toxic": 8.0, "threat": 4.0}
# What a threshold must keep: the share of organic clean texts (without мат) flagged (for the toxic head:
# by the rules, the threat head and the toxic head together), and the out-of-fold precision of its label
# (a threat head that fires on insults and мат is no threat detector).
MAX_CLEAN_FLAGGED = {"toxic": 0.02, "threat": 0.01}
MIN_PRECISION = {"toxic": 0.0, "threat": 0.9}


def features(texts: list[str]) -> sp.csr_matrix:
    # Binary features (moderation_model.vectorizer); the service normalises each text's to unit length in
    # the same way (LinearModel.scores_doc).
    rules = rule_detector()
    docs = [model_input(rules, tokenize(strip_markup(t))) for t in texts]
    return normalize(vectorizer().transform(docs), norm="l2", copy=False).tocsr()


def head_data(samples: list[Sample], head: str, mat: list[bool]) -> tuple[list[int], np.ndarray]:
    rows: list[int] = []
    y: list[int] = []
    for i, s in enumerate(samples):
        if head == "toxic":
            if s.clean and s.source == PIKABU and mat[i]:
                continue
            rows.append(i)
            y.append(int(s.toxic))
        elif head == "threat" and (OK in s.sources or (s.clean and s.kind == "organic" and not mat[i])):
            rows.append(i)
            y.append(int("threat" in s.labels))
    return rows, np.array(y)


def fit(x: sp.csr_matrix, y: np.ndarray, head: str) -> LogisticRegression:
    model = LogisticRegression(C=C[head], solver="liblinear", class_weight="balanced", random_state=SEED, max_iter=1000)
    return model.fit(x, y)


def choose_threshold(
    scores: np.ndarray, y: np.ndarray, clean_organic: np.ndarray, by_rules: np.ndarray, head: str
) -> float:
    """The lowest threshold at which the rules and the head together flag at most the allowed share of
    organic clean texts, and the head keeps the minimum precision. The head adds its label only to
    texts the rules left unlabelled (moderation.ModelDetector), so the rules' own false alarms come first."""
    allowed = int(MAX_CLEAN_FLAGGED[head] * clean_organic.sum()) - int((clean_organic & by_rules).sum())
    clean_scores = np.sort(scores[clean_organic & ~by_rules])[::-1]
    if allowed < 0:
        return 1.0
    threshold = float(clean_scores[allowed]) + 1e-6 if len(clean_scores) > allowed else 0.5
    for candidate in np.unique(scores[scores >= threshold]):
        flagged = scores >= candidate
        if (flagged & (y == 1)).sum() >= MIN_PRECISION[head] * flagged.sum():
            return float(candidate)
    return 1.0


def eval_set_floor(
    model: LogisticRegression, head: str, x: sp.csr_matrix, rows: list[dict], rule_labels: list[frozenset[str]]
) -> float:
    """The lowest threshold at which the head adds no label the evaluation set (tests/data/
    moderation_eval.jsonl, the policy's own examples) does not have, where the service would add it
    (moderation.model_may_add). Scored with the coefficients as shipped (float16)."""
    label = HEAD_LABEL[head]
    weights = model.coef_[0].astype(np.float16).astype(np.float64)
    scores = 1.0 / (1.0 + np.exp(-(x @ weights + float(model.intercept_[0]))))
    wrong = [
        float(score)
        for score, row, found in zip(scores, rows, rule_labels, strict=True)
        if label not in row["labels"] and model_may_add(label, found)
    ]
    return max(wrong, default=0.0) + 1e-3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    train, _held_out = split()
    rules = rule_detector()
    rule_labels = [rules.labels(s.text) for s in train]
    mat = ["obscene" in labels for labels in rule_labels]
    # What the rules flag already (flood aside, as the bench counts): the model's share comes on top.
    flagged_by_rules = np.array([bool(labels - {"flood"}) for labels in rule_labels], dtype=bool)
    x_all = features([s.text for s in train])
    eval_rows = load_eval_set()
    eval_x = features([r["text"] for r in eval_rows])
    eval_rules = [rules.labels(r["text"]) for r in eval_rows]
    coef: dict[str, np.ndarray] = {}
    intercept: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    report: dict[str, dict[str, float]] = {}
    # The threat head's own out-of-fold flags, by text: they spend the toxic head's budget too.
    flagged_by_threat = np.zeros(len(train), dtype=bool)
    for head in ("threat", "toxic"):
        rows, y = head_data(train, head, mat)
        x = x_all[rows]
        groups = [train[i].group for i in rows]
        oof = np.zeros(len(rows))
        for fit_idx, val_idx in StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=SEED).split(x, y, groups):
            oof[val_idx] = fit(x[fit_idx], y[fit_idx], head).predict_proba(x[val_idx])[:, 1]
        clean_organic = np.array(
            [train[i].clean and train[i].kind == "organic" and not mat[i] for i in rows], dtype=bool
        )
        # The toxic head's budget is shared with everything the rules and the threat head flag; the threat
        # head's false alarms are few (it keeps a precision of 0.9), so it is held to its own budget.
        if head == "toxic":
            by_rules = (flagged_by_rules | flagged_by_threat)[rows]
        else:
            by_rules = np.zeros(len(rows), dtype=bool)
        thresholds[head] = choose_threshold(oof, y, clean_organic, by_rules, head)
        final = fit(x, y, head)
        floor = eval_set_floor(final, head, eval_x, eval_rows, eval_rules)
        thresholds[head] = max(thresholds[head], floor)
        if head == "threat":
            flagged_by_threat[rows] = oof >= thresholds[head]
        for share in (0.01, 0.02, 0.03, 0.05):
            t = float(np.sort(oof[clean_organic])[::-1][int(share * clean_organic.sum())])
            hit = oof > t
            print(
                f"  {head}: clean organic flagged {share:.0%}: threshold {t:.3f}, recall {hit[y == 1].mean():.3f},"
                f" precision {(hit & (y == 1)).sum() / max(1, hit.sum()):.3f}"
            )
        flagged = oof >= thresholds[head]
        together = flagged | by_rules
        tp = int((flagged & (y == 1)).sum())
        report[head] = {
            "threshold": round(thresholds[head], 4),
            "oof_precision": round(tp / max(1, int(flagged.sum())), 3),
            "oof_recall": round(tp / max(1, int((y == 1).sum())), 3),
            "oof_clean_organic_flagged": round(float(flagged[clean_organic].mean()), 4),
            "oof_clean_organic_flagged_with_rules": round(float(together[clean_organic].mean()), 4),
            "oof_recall_with_rules": round(float(together[y == 1].mean()), 3),
            "rows": len(rows),
            "positives": int(y.sum()),
            "eval_set_floor": round(floor, 4),
        }
        coef[head] = final.coef_[0].astype(np.float32)
        intercept[head] = float(final.intercept_[0])
        print(head, json.dumps(report[head], ensure_ascii=False), flush=True)
    meta = {
        "seed": SEED,
        "thresholds": "the out-of-fold choice, raised where needed to add no wrong label to the evaluation set",
        "C": C,
        "max_clean_flagged": MAX_CLEAN_FLAGGED,
        "min_precision": MIN_PRECISION,
        "out_of_fold": report,
        "trained_on": len(train),
    }
    model = LinearModel(coef, intercept, thresholds, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(model.to_bytes())
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
