"""`make bench`: every benchmark in turn. Run one with `python -m bench NAME` (replay, replay-jobs, live, memory,
state-cost, gateway, moderation, triage, store, catchup, silence, console)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time

ORDER = [
    "replay",
    "replay-jobs",
    "memory",
    "state-cost",
    "live",
    "gateway",
    "alerts",
    "moderation",
    "triage",
    "store",
    "catchup",
    "silence",
    "console",
]
MODULES = {
    "replay": "bench.replay",
    "replay-jobs": "bench.replay_jobs",
    "memory": "bench.memory",
    "state-cost": "bench.state_cost",
    "live": "bench.live",
    "gateway": "bench.gateway",
    "alerts": "bench.alert_latency",
    "moderation": "bench.bench_moderation",
    "triage": "bench.bench_triage",
    "store": "bench.store",
    "catchup": "bench.catchup",
    "silence": "bench.silence",
    "console": "bench.console",
}


def main(argv: list[str]) -> int:
    names = argv or ORDER
    if len(names) > 1:
        # Each in a fresh interpreter: memory figures are RSS growth, and what one benchmark freed (the
        # replay's rows) would otherwise absorb the next one's growth; warm caches would flatter others.
        failed = [name for name in names if subprocess.run([sys.executable, "-m", "bench", name]).returncode]
        if failed:
            print(f"\nfailed: {', '.join(failed)}")
        return 1 if failed else 0
    failed = []
    for name in names:
        print(f"\n=== {name} " + "=" * (60 - len(name)), flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(MODULES[name])
            sys.argv = [name]  # benchmarks that parse arguments see none
            module.main()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed.append(name)
        print(f"({name}: {time.perf_counter() - started:.1f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
