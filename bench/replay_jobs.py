"""``otklik replay --jobs 2`` beside ``--jobs 1``, in the same run, on the same simulated file.

Each round runs both (alternating, so a busy neighbour slows both alike) through ``replay_file``, as
the CLI does, and checks that the two outputs and error reports are the same bytes. Printed: the best
wall time of each, the speed-up (target >= 1.7 on two cores), the machine's load average, since
other processes on a shared machine take the second core first, and the CPU seconds of each (the
parent's and the jobs'), whose ratio bounds the speed-up two idle cores would give.
"""

from __future__ import annotations

import gc
import io
import os
import resource
import tempfile
import time
from pathlib import Path

import orjson
import yaml

from bench.replay import sample_lines
from otklik.agents import NATIVE_STATUS
from otklik.agents.replay import replay_file
from otklik.agents.replay_jobs import default_jobs
from otklik.streams.tools.simulate.traffic import registry_mapping
from otklik.streams.tools.simulate.world import SimConfig

EVENTS = 200_000
ROUNDS = 3


def _cpu() -> float:
    """CPU seconds of this process and of its ended children (the jobs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run(events: str, registry: str, jobs: int) -> tuple[float, float, bytes, str]:
    out, err = io.BytesIO(), io.StringIO()
    gc.collect()
    started, cpu = time.perf_counter(), _cpu()
    replay_file(events, registry, out=out, err=err, jobs=jobs)
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    reports = err.getvalue().splitlines()[:-1]  # the last line is the summary with its own timing
    return wall, cpu, out.getvalue(), "\n".join(reports)


def main() -> None:
    lines, _ = sample_lines(EVENTS)
    # sample_lines's registry, as the YAML the CLI reads (the same SimConfig as bench.replay's).
    cfg = SimConfig(pages=500, rate=50.0, duration=EVENTS / 50.0, seed=11, start=1764230400)
    with tempfile.TemporaryDirectory() as tmp:
        events, registry = Path(tmp, "events.jsonl"), Path(tmp, "registry.yaml")
        events.write_bytes(b"\n".join(lines) + b"\n")
        registry.write_text(yaml.safe_dump(registry_mapping(cfg), allow_unicode=True))
        best = {1: float("inf"), 2: float("inf")}
        cpu = {1: float("inf"), 2: float("inf")}
        outputs: dict[int, tuple[bytes, str]] = {}
        for _ in range(ROUNDS):
            for jobs in (1, 2):
                wall, used, out, reports = _run(str(events), str(registry), jobs)
                best[jobs] = min(best[jobs], wall)
                cpu[jobs] = min(cpu[jobs], used)
                if jobs in outputs and outputs[jobs] != (out, reports):
                    raise AssertionError(f"--jobs {jobs} gave different output from one round to the next")
                outputs[jobs] = (out, reports)
    identical = outputs[1] == outputs[2]
    items = outputs[1][0].count(b"\n")
    load = os.getloadavg()
    print(f"core modules                   {NATIVE_STATUS:>12}")
    print(f"events                         {len(lines):>12,}   ({items:,} items in the output)")
    print(
        f"cores this process may use     {default_jobs():>12}   (load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f})"
    )
    print(f"baseline: replay --jobs 1      {best[1]:>12.2f} s     {len(lines) / best[1]:>10,.0f} events/s")
    print(f"replay --jobs 2                {best[2]:>12.2f} s     {len(lines) / best[2]:>10,.0f} events/s")
    print(f"speed-up                       {best[1] / best[2]:>12.2f}×   (target >= 1.7 on two idle cores)")
    print(
        f"CPU seconds, all processes     {cpu[1]:>12.2f} s     against {cpu[2]:.2f} s for --jobs 2: at most "
        f"{2 * cpu[1] / cpu[2]:.2f}× on two idle cores"
    )
    print(f"output identical               {'yes' if identical else 'NO':>12}   (stdout bytes and error reports)")
    if not identical:
        first = next(
            (a, b) for a, b in zip(outputs[1][0].splitlines(), outputs[2][0].splitlines(), strict=False) if a != b
        )
        print("first difference:", orjson.loads(first[0]), orjson.loads(first[1]))
        raise AssertionError("replay --jobs 2 differs from --jobs 1")


if __name__ == "__main__":
    main()
