"""Triage figures over the labelled evaluation set: the two asymmetric rates, per-reason confusion, throughput.

Run: python -m bench triage (the defaults), or python -m bench.bench_triage [--reps N] [--events N]
[--with-detector] from the repository's root (the script imports bench.replay's events).
Uses our own rules only (the optional moderation module is switched off) so the figures are reproducible;
--with-detector times the throughput figures with the external moderation detector on, as in production.

Throughput, all in CPU time (``time.process_time``: the machine is shared):
- the evaluation set, as before: the rules' cost per text, the decision memo off;
- the simulated stream (``bench.replay``'s events, triage called as the response engine calls it): its
  distinct calls with the memo off (what a text the memo has not seen costs), the whole stream with the
  memo off (the baseline), and the whole stream with the memo on, from empty, with its hit rate.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson

from otklik.agents.text.triage import (
    REASONS,
    decide,
    decision_cache_info,
    triage,
    triage_lines,
    use_decision_cache,
    use_moderation_detector,
)

EVAL_PATH = Path(__file__).resolve().parents[1] / "tests" / "data" / "triage_eval.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=40, help="passes over the set for the throughput figure")
    parser.add_argument("--show-errors", action="store_true", help="list every misjudged text")
    parser.add_argument("--events", type=int, default=60_000, help="simulated events for the stream figures (0: none)")
    parser.add_argument("--with-detector", action="store_true", help="time with the external moderation detector on")
    args = parser.parse_args()

    use_moderation_detector(None)
    rows = [json.loads(line) for line in EVAL_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    decisions = [triage(r["text"], r["addressed_to"], r.get("has_attachments", False)) for r in rows]

    need = [(r, d) for r, d in zip(rows, decisions) if r["needs_answer"]]
    none = [(r, d) for r, d in zip(rows, decisions) if not r["needs_answer"]]
    missed = [(r, d) for r, d in need if not d.needs_answer]
    recognised = [(r, d) for r, d in none if not d.needs_answer]

    print(f"evaluation set: {EVAL_PATH.name}, {len(rows)} texts ({len(need)} need an answer, {len(none)} need none)")
    print(
        f"needs answer but marked 'no answer' (target <= 2 %): {len(missed)}/{len(need)} = {len(missed) / len(need):.1%}"
    )
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

    if args.with_detector:
        from otklik.agents.text.moderation import rule_detector  # triage's fast path: the rules alone

        use_moderation_detector(rule_detector().labels)
    detector = "external detector on" if args.with_detector else "own rules only"

    # The rules' own cost, as this figure always meant: with the memo on, every pass after the first would
    # only look decisions up.
    use_decision_cache(False)
    texts = [(r["text"], r["addressed_to"], r.get("has_attachments", False)) for r in rows]
    start = time.perf_counter()
    for _ in range(args.reps):
        for text, addressed_to, attachments in texts:
            triage(text, addressed_to, attachments)
    elapsed = time.perf_counter() - start
    n = args.reps * len(texts)
    print(f"\nthroughput ({detector}, decision memo off)")
    print(f"throughput triage():       {n / elapsed:>10,.0f} texts/s ({n} texts in {elapsed:.2f} s)")

    lines = [orjson.dumps({"id": i, "text": t, "addressed_to": a}) for i, (t, a, _) in enumerate(texts)] * args.reps
    start = time.perf_counter()
    produced = sum(1 for _ in triage_lines(lines))
    elapsed = time.perf_counter() - start
    print(f"throughput triage_lines(): {produced / elapsed:>10,.0f} lines/s ({produced} lines in {elapsed:.2f} s)")

    if args.events > 0:
        stream_figures(args.events, args.reps, detector)
    use_decision_cache(True)


Call = tuple[str, str | None, bool]


def simulated_calls(events: int) -> list[Call]:
    """The triage calls a replay of ``events`` simulated events makes, in order, as the response engine makes them."""
    from bench.replay import sample_lines
    from otklik.agents.replay import run_replay

    lines, registry = sample_lines(events)
    calls: list[Call] = []

    def record(text: str, addressed_to: str | None, has_attachments: bool) -> tuple[bool, str]:
        calls.append((text, addressed_to, has_attachments))
        return decide(text, addressed_to, has_attachments)  # type: ignore[arg-type]

    run_replay(lines, registry, triage=record)
    return calls


def cpu_seconds(run: Callable[[], object]) -> float:
    """CPU seconds of one run, the collector off as in a replay."""
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        run()
        return time.process_time() - start
    finally:
        gc.enable()


def stream_figures(events: int, reps: int, detector: str) -> None:
    calls = simulated_calls(events)
    distinct = list(dict.fromkeys(calls))

    def decide_all(batch: list[Call]) -> Callable[[], None]:
        def run() -> None:
            for text, addressed_to, attachments in batch:
                decide(text, addressed_to, attachments)  # type: ignore[arg-type]

        return run

    def rate(n: int, seconds: float) -> str:
        return f"{n / seconds:>10,.0f} texts/s ({seconds / n * 1e6:6.2f} µs each)"

    print(f"\nsimulated stream ({detector}): {events} events, {len(calls)} triage calls, {len(distinct)} distinct")
    use_decision_cache(False)
    decide_all(distinct)()  # warm the word features, as a running worker has them
    n = reps * len(distinct)
    seconds = cpu_seconds(lambda: [decide_all(distinct)() for _ in range(reps)])
    print(f"  distinct calls, memo off:        {rate(n, seconds)}")
    baseline = cpu_seconds(decide_all(calls))
    print(f"  whole stream, memo off:          {rate(len(calls), baseline)}   (baseline)")
    use_decision_cache(True)  # empty: the memo fills as the stream goes
    seconds = cpu_seconds(decide_all(calls))
    info = decision_cache_info()
    hit_rate = info.hits / max(1, info.hits + info.misses)
    print(
        f"  whole stream, memo on:           {rate(len(calls), seconds)}   "
        f"x{baseline / seconds:.1f} the baseline; hit rate {hit_rate:.1%} ({info.hits} hits, {info.misses} misses)"
    )


if __name__ == "__main__":
    main()
