"""Moderation quality and speed: the labelled evaluation set, then the held-out corpora.

Run: ``python -m bench moderation`` (from the repository root, in the project's virtualenv).
Prints, for the rules alone (triage's fast path) and for the full detector (rules + trained model):
precision and recall per label on ``tests/data/moderation_eval.jsonl``, the share of clean criticism
flagged, and, on the held-out part of the corpora in ``shared/data/moderation`` beside the repository (``training/corpora.py``; never
trained on), per corpus: "toxic" precision and recall, per-label figures where the corpus labels
allow, the share of clean texts flagged (texts with мат counted apart), whether VK markup alone is
ever labelled, and throughput on comments of 60–200 characters for both detectors in the same run.
With ``--baseline`` it also scores the ``detected-profanity`` package alone on ``obscene``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from otklik.agents.text.moderation import LABELS, Detector, RuleDetector, default_detector, rule_detector


def scores(rows: list[dict], predicted: list[frozenset[str]], label: str) -> tuple[float, float, int, int, int]:
    tp = sum(1 for r, p in zip(rows, predicted) if label in p and label in r["labels"])
    fp = sum(1 for r, p in zip(rows, predicted) if label in p and label not in r["labels"])
    fn = sum(1 for r, p in zip(rows, predicted) if label not in p and label in r["labels"])
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def main(argv: list[str] | None = None) -> int:
    from training.corpora import EVAL_SET, load_eval_set

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-set", type=Path, default=EVAL_SET)
    parser.add_argument("--rounds", type=int, default=20, help="passes over the set for the throughput figure")
    parser.add_argument("--baseline", action="store_true", help="also score detected-profanity alone on obscene")
    parser.add_argument("--errors", action="store_true", help="list misclassified texts")
    args = parser.parse_args(argv)

    rows = load_eval_set(args.eval_set)
    t0 = time.perf_counter()
    detector: Detector = default_detector()
    build_s = time.perf_counter() - t0
    for name, det in (("rules alone", rule_detector()), ("rules + model", detector)):
        eval_set(rows, det, name, args)
    print(f"(full detector built in {build_s:.2f} s)")
    held_out(rule_detector(), detector)
    speed(rows, detector, args.rounds)
    if args.baseline:
        baseline(rows)
    return 0


def eval_set(rows: list[dict], detector: Detector, name: str, args: argparse.Namespace) -> None:
    predicted = [detector.labels(r["text"]) for r in rows]
    print(f"\nevaluation set: {len(rows)} texts ({args.eval_set.name}), {name}")
    print(f"{'label':<8} {'precision':>9} {'recall':>7} {'tp':>4} {'fp':>4} {'fn':>4}")
    for label in LABELS:
        p, r, tp, fp, fn = scores(rows, predicted, label)
        print(f"{label:<8} {p:>9.3f} {r:>7.3f} {tp:>4} {fp:>4} {fn:>4}")
    criticism = [p for row, p in zip(rows, predicted) if row["group"] == "clean_criticism"]
    flagged = sum(1 for p in criticism if p)
    print(f"clean criticism flagged as anything: {flagged}/{len(criticism)} = {flagged / max(1, len(criticism)):.1%}")
    clean = [p for row, p in zip(rows, predicted) if not row["labels"]]
    print(f"all clean texts flagged as anything: {sum(1 for p in clean if p)}/{len(clean)}")

    if args.errors:
        for row, p in zip(rows, predicted):
            if set(p) != set(row["labels"]):
                print(f"  expected {sorted(row['labels'])} got {sorted(p)}: {row['text']}")


def _pr(flags: list[bool], truth: list[bool]) -> str:
    tp = sum(f and t for f, t in zip(flags, truth))
    fp = sum(f and not t for f, t in zip(flags, truth))
    fn = sum(t and not f for f, t in zip(flags, truth))
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    return f"precision {p:.3f} recall {r:.3f} (tp {tp}, fp {fp}, fn {fn})"


TOXIC = frozenset({"obscene", "insult", "threat"})


def held_out(rules: RuleDetector, full: Detector) -> None:
    """Figures on the held-out part of the corpora in shared/ (skipped when they are not there)."""
    try:
        from training.corpora import DATA_DIR, OK, PIKABU, RUSSE, split
    except ImportError:
        print("\nheld-out corpora: training/ is not importable (run from the repository root)")
        return
    if not DATA_DIR.is_dir():
        print(f"\nheld-out corpora: {DATA_DIR} not found, skipped")
        return
    _, samples = split()
    # "мат" is what our rules call obscene: the corpora's own labels disagree with our policy on it.
    mat = [rules.labels(s.text) & {"obscene"} != frozenset() for s in samples]
    for name, det in (("rules alone", rules), ("rules + model", full)):
        pred = [det.labels(s.text) for s in samples]
        print(f"\nheld-out corpora ({len(samples)} distinct texts, never trained on), {name}:")
        for corpus in (OK, PIKABU, RUSSE):
            idx = [i for i, s in enumerate(samples) if (OK if OK in s.sources else s.source) == corpus]
            organic = [i for i in idx if samples[i].kind == "organic"]
            toxic_truth = [samples[i].toxic for i in organic if samples[i].toxic or not mat[i]]
            toxic_flags = [bool(pred[i] & TOXIC) for i in organic if samples[i].toxic or not mat[i]]
            print(f"  {corpus} ({len(idx)} texts)")
            print(f"    toxic (any of obscene/insult/threat), organic texts: {_pr(toxic_flags, toxic_truth)}")
            no_mat = [i for i in organic if not mat[i]]
            print(
                "    toxic, texts without мат:                         "
                + _pr([bool(pred[i] & TOXIC) for i in no_mat], [samples[i].toxic for i in no_mat])
            )
            if corpus == OK:
                for label in ("insult", "threat", "obscene"):
                    print(
                        f"    {label:<8} (source's label{', narrower than ours' if label == 'obscene' else ''}): "
                        + _pr([label in pred[i] for i in idx], [label in samples[i].labels for i in idx])
                    )
            clean = [i for i in organic if samples[i].clean and not mat[i]]
            flagged = sum(1 for i in clean if pred[i] - {"flood"})
            toxic_flag = sum(1 for i in clean if pred[i] & TOXIC)
            any_flag = sum(1 for i in clean if pred[i])
            print(
                f"    clean organic texts without мат flagged: {flagged}/{len(clean)} = {flagged / max(1, len(clean)):.1%}"
                f" (as toxic: {toxic_flag / max(1, len(clean)):.1%}; with flood: {any_flag / max(1, len(clean)):.1%})"
            )
            with_mat = [i for i in organic if samples[i].clean and mat[i]]
            if with_mat:
                print(f"    clean by the source but with мат (obscene by our policy): {len(with_mat)}")
            rewrites = [i for i in idx if samples[i].kind == "rewrite"]
            if rewrites:
                flagged = sum(1 for i in rewrites if pred[i] & TOXIC)
                print(
                    f"    crowd-written neutral rewrites flagged toxic: {flagged}/{len(rewrites)} = {flagged / len(rewrites):.1%}"
                )
        # All corpora together: organic texts, мат-only "clean" texts left out as above.
        pooled = [i for i, s in enumerate(samples) if s.kind == "organic" and (s.toxic or not mat[i])]
        print(
            f"  all corpora, organic texts: toxic {_pr([bool(pred[i] & TOXIC) for i in pooled], [samples[i].toxic for i in pooled])}"
        )
        clean = [i for i in pooled if samples[i].clean]
        flagged = sum(1 for i in clean if pred[i] - {"flood"})
        print(
            f"  all corpora, clean organic texts without мат flagged: {flagged}/{len(clean)} = {flagged / max(1, len(clean)):.1%}"
        )
        # VK's reply markup before a clean text must change nothing.
        clean_texts = [s.text for s, m in zip(samples, mat) if s.clean and not m][:500]
        changed = sum(1 for t in clean_texts if det.labels(f"[id12980101|Иван], {t}") != det.labels(t))
        bare = det.labels("[id12980101|Иван], да") | det.labels("[club1|Администрация], ок")
        print(
            f"  VK markup: labels changed by a reply prefix on {changed}/{len(clean_texts)} clean texts; bare reply labels {sorted(bare)}"
        )


def speed(rows: list[dict], detector: Detector, rounds: int) -> None:
    """Texts per CPU-second on comments of 60–200 characters: the rules alone and the full detector,
    each on a fresh detector (a cold cache: every word new) and then warm, alternating."""
    texts = [r["text"] for r in rows if 60 <= len(r["text"]) <= 200]
    try:
        from training.corpora import DATA_DIR, split

        if DATA_DIR.is_dir():
            texts = [s.text for s in split()[1] if 60 <= len(s.text) <= 200]
    except ImportError:
        pass
    from otklik.agents.text.moderation import ModelDetector, clear_word_caches

    print(f"\nthroughput on {len(texts)} texts of 60–200 characters (CPU time of one core):")
    for name, make in (("rules alone", RuleDetector), ("rules + model", lambda: ModelDetector(RuleDetector()))):
        clear_word_caches()  # the evaluation above filled the process-wide caches with these very texts
        det = make()
        t0 = time.process_time()
        for t in texts:
            det.labels(t)
        cold = len(texts) / (time.process_time() - t0)
        t0 = time.process_time()
        for _ in range(max(1, rounds // 10)):
            for t in texts:
                det.labels(t)
        warm = max(1, rounds // 10) * len(texts) / (time.process_time() - t0)
        print(f"  {name:<14} first pass {cold:,.0f} texts/s; again (warm word cache) {warm:,.0f} texts/s")


def baseline(rows: list[dict]) -> None:
    try:
        from detected_profanity import ProfanityDetector
    except ImportError:
        print("baseline: detected-profanity is not installed", file=sys.stderr)
        return
    base = ProfanityDetector()
    t0 = time.perf_counter()
    base_pred = [frozenset({"obscene"}) if base.contains_profanity(r["text"]) else frozenset() for r in rows]
    base_s = time.perf_counter() - t0
    p, r, _tp, fp, fn = scores(rows, base_pred, "obscene")
    print(
        f"baseline detected-profanity on obscene: precision {p:.3f} recall {r:.3f} (fp {fp}, fn {fn}); "
        f"{len(rows) / base_s:,.0f} texts/s"
    )


if __name__ == "__main__":
    raise SystemExit(main())
