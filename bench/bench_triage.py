"""Triage figures over the labelled evaluation set: the two asymmetric rates, per-reason confusion, throughput.

Run: python bench/bench_triage.py [--reps N]
Uses our own rules only (the optional moderation module is switched off) so the figures are reproducible.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson

from otklik.agents.triage import REASONS, triage, triage_lines, use_moderation_detector

EVAL_PATH = Path(__file__).resolve().parents[1] / "tests" / "data" / "triage_eval.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=40, help="passes over the set for the throughput figure")
    parser.add_argument("--show-errors", action="store_true", help="list every misjudged text")
    args = parser.parse_args()

    use_moderation_detector(None)
    rows = [json.loads(line) for line in EVAL_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    decisions = [triage(r["text"], r["addressed_to"], r.get("has_attachments", False)) for r in rows]

    need = [(r, d) for r, d in zip(rows, decisions) if r["needs_answer"]]
    none = [(r, d) for r, d in zip(rows, decisions) if not r["needs_answer"]]
    missed = [(r, d) for r, d in need if not d.needs_answer]
    recognised = [(r, d) for r, d in none if not d.needs_answer]

    print(f"evaluation set: {EVAL_PATH.name}, {len(rows)} texts ({len(need)} need an answer, {len(none)} need none)")
    print(f"needs answer but marked 'no answer' (target <= 2 %): {len(missed)}/{len(need)} = {len(missed) / len(need):.1%}")
    print(
        f"no answer needed and recognised     (target >= 80 %): {len(recognised)}/{len(none)} = "
        f"{len(recognised) / len(none):.1%}"
    )
    exact = sum(1 for r, d in zip(rows, decisions) if r["reason"] == d.reason)
    print(f"exact reason agreement: {exact}/{len(rows)} = {exact / len(rows):.1%}")

    print("\nconfusion by reason (rows: label, columns: decision)")
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    for r, d in zip(rows, decisions):
        confusion[r["reason"]][d.reason] += 1
    columns = sorted({d.reason for d in decisions} | set(confusion), key=lambda x: (x not in REASONS, x))
    short = {c: c[:9] for c in columns}
    print(f"{'':>17} " + " ".join(f"{short[c]:>9}" for c in columns) + "    total")
    for label in columns:
        if label not in confusion:
            continue
        counts = confusion[label]
        print(f"{label:>17} " + " ".join(f"{counts[c] or '.':>9}" for c in columns) + f" {sum(counts.values()):>8}")

    print("\nby group: texts judged on the wrong side of needs_answer")
    by_group: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r, d in zip(rows, decisions):
        by_group[r["group"]][1] += 1
        by_group[r["group"]][0] += int(r["needs_answer"] != d.needs_answer)
    for group, (wrong, total) in sorted(by_group.items()):
        print(f"  {group:<28} {wrong:>3}/{total}")

    if args.show_errors:
        print("\nmisjudged:")
        for r, d in zip(rows, decisions):
            if r["needs_answer"] != d.needs_answer:
                print(f"  [{r['group']}] {r['text']!r} -> {d.reason}")

    texts = [(r["text"], r["addressed_to"], r.get("has_attachments", False)) for r in rows]
    start = time.perf_counter()
    for _ in range(args.reps):
        for text, addressed_to, attachments in texts:
            triage(text, addressed_to, attachments)
    elapsed = time.perf_counter() - start
    n = args.reps * len(texts)
    print(f"\nthroughput triage():       {n / elapsed:>10,.0f} texts/s ({n} texts in {elapsed:.2f} s)")

    lines = [orjson.dumps({"id": i, "text": t, "addressed_to": a}) for i, (t, a, _) in enumerate(texts)] * args.reps
    start = time.perf_counter()
    produced = sum(1 for _ in triage_lines(lines))
    elapsed = time.perf_counter() - start
    print(f"throughput triage_lines(): {produced / elapsed:>10,.0f} lines/s ({produced} lines in {elapsed:.2f} s)")


if __name__ == "__main__":
    main()
