"""Moderation quality and speed on the labelled evaluation set.

Run: ``python bench/bench_moderation.py`` (from the repository root, in the project's virtualenv).
Prints precision and recall per label, the share of clean criticism flagged as anything, and
throughput in texts per second. With ``--baseline`` it also scores the ``detected-profanity``
package alone on ``obscene`` (for comparison; it is not used by otklik's detector).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from otklik.agents.text.moderation import LABELS, Detector, default_detector

EVAL_SET = Path(__file__).resolve().parent.parent / "tests" / "data" / "moderation_eval.jsonl"


def load(path: Path = EVAL_SET) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def scores(rows: list[dict], predicted: list[frozenset[str]], label: str) -> tuple[float, float, int, int, int]:
    tp = sum(1 for r, p in zip(rows, predicted) if label in p and label in r["labels"])
    fp = sum(1 for r, p in zip(rows, predicted) if label in p and label not in r["labels"])
    fn = sum(1 for r, p in zip(rows, predicted) if label not in p and label in r["labels"])
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-set", type=Path, default=EVAL_SET)
    parser.add_argument("--rounds", type=int, default=20, help="passes over the set for the throughput figure")
    parser.add_argument("--baseline", action="store_true", help="also score detected-profanity alone on obscene")
    parser.add_argument("--errors", action="store_true", help="list misclassified texts")
    args = parser.parse_args(argv)

    rows = load(args.eval_set)
    t0 = time.perf_counter()
    detector: Detector = default_detector()
    build_s = time.perf_counter() - t0
    predicted = [detector.labels(r["text"]) for r in rows]

    print(f"evaluation set: {len(rows)} texts ({args.eval_set.name}); detector built in {build_s:.2f} s")
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

    # Throughput on a fresh detector's warm cache is optimistic; clear it by timing a cold pass too.
    from otklik.agents.text.moderation import RuleDetector

    cold = RuleDetector()
    t0 = time.perf_counter()
    for row in rows:
        cold.labels(row["text"])
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.rounds):
        for row in rows:
            detector.labels(row["text"])
    warm_s = time.perf_counter() - t0
    print(
        f"throughput: cold cache {len(rows) / cold_s:,.0f} texts/s; warm cache {args.rounds * len(rows) / warm_s:,.0f} texts/s"
    )

    if args.baseline:
        try:
            from detected_profanity import ProfanityDetector
        except ImportError:
            print("baseline: detected-profanity is not installed", file=sys.stderr)
            return 0
        base = ProfanityDetector()
        t0 = time.perf_counter()
        base_pred = [frozenset({"obscene"}) if base.contains_profanity(r["text"]) else frozenset() for r in rows]
        base_s = time.perf_counter() - t0
        p, r, tp, fp, fn = scores(rows, base_pred, "obscene")
        print(
            f"baseline detected-profanity on obscene: precision {p:.3f} recall {r:.3f} (fp {fp}, fn {fn}); "
            f"{len(rows) / base_s:,.0f} texts/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
