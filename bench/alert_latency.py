"""From an item passing its deadline to the e-mail delivered, through the real chain (worker,
Prometheus, Alertmanager, notifier, SMTP on loopback): with the shipped intervals (scrape and
evaluation 15 s, group_wait 10 s), beside the same chain with 1-second intervals as the baseline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(intervals: str) -> float:
    env = dict(os.environ, OTKLIK_BENCH_INTERVALS=intervals)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "bench/test_alert_latency.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    found = re.search(r"OTKLIK_ALERT_LATENCY (\S+)", done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"the alert chain failed ({intervals}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return float(found.group(1))


def main() -> None:
    fast = measure("1s")
    print(f"baseline: 1 s scrape/evaluation/group_wait   {fast:>6.1f} s from the deadline to the e-mail")
    shipped = measure("shipped")
    print(f"shipped intervals (15 s, 15 s, 10 s)          {shipped:>6.1f} s   (target <= 60 s)")


if __name__ == "__main__":
    main()
