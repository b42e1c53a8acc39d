"""``otklik replay --jobs 2`` beside ``--jobs 1``, in the same run, on the same simulated file.

Each round runs both (alternating, so a busy neighbour slows both alike) through ``replay_file``, as
the CLI does, each in a forked process of its own, and checks that the two outputs and error reports
are the same bytes. Printed: the best wall time of each and their ratio, with the machine's load
average (other processes on a shared machine take the second core first, so wall times vary), and the
figure the load does not move: the CPU seconds of ``--jobs 1`` against the CPU critical path of
``--jobs 2`` (the parent's CPU plus, for each stage the jobs run between waiting for each other, the
slowest job's), the time two idle cores would take. Then where that CPU went, phase by phase.
"""

from __future__ import annotations

import gc
import hashlib
import io
import multiprocessing
import os
import resource
import tempfile
import time
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

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


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process, and of its ended children (the jobs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


class Run(NamedTuple):
    wall: float
    parent: float  # CPU seconds of this process
    children: float  # CPU seconds of the jobs, as the kernel counts them
    phases: dict[str, Any]  # see replay_bytes
    out: bytes  # kept for the first round only (see main): other rounds hold its digest
    reports: str

    @property
    def critical(self) -> float:
        """CPU seconds on the critical path: the parent's, plus each stage of the slowest job in it
        (the jobs wait for each other between stages). For one job, all the CPU."""
        stages = zip(*self.phases["jobs"], strict=True) if self.phases else ()
        return self.parent + sum(max(sum(stage.values()) for stage in stage_of_each) for stage_of_each in stages)


def _forked(work: Callable[[], Any]) -> Any:
    """``work()`` in a forked process of its own, and what it returned (sent back through a pipe)."""
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe(duplex=False)

    def child() -> None:
        theirs.send(work())
        theirs.close()

    process = context.Process(target=child)
    process.start()
    theirs.close()
    result = ours.recv()
    process.join()
    return result


def _replay(events: str, registry: str, jobs: int) -> Run:
    out, err = io.BytesIO(), io.StringIO()
    phases: dict[str, Any] = {}
    gc.collect()
    started, (own, children) = time.perf_counter(), _cpu()
    replay_file(events, registry, out=out, err=err, jobs=jobs, phases=phases)
    wall, (own_after, children_after) = time.perf_counter() - started, _cpu()
    reports = err.getvalue().splitlines()[:-1]  # the last line is the summary with its own timing
    return Run(wall, own_after - own, children_after - children, phases, out.getvalue(), "\n".join(reports))


def _run(events: str, registry: str, jobs: int) -> Run:
    """One replay as the CLI runs it, in a process of its own (forked): each starts with the same
    memory, where a replay in this process would reuse the memory the previous round freed (a third
    fewer page faults, not what a user's run gets)."""
    run: Run = _forked(lambda: _replay(events, registry, jobs))
    return run


def _phase_table(run: Run) -> None:
    """Where the CPU of the best --jobs 2 run went: the parent's phases, each job's by stage."""
    parent = run.phases["parent"]
    print(f"  parent {run.parent:6.2f} s: " + ", ".join(f"{k} {v:.2f}" for k, v in parent.items()), end="")
    print(f", replay_file and the rest {run.parent - sum(parent.values()):.2f}")
    for job, stages in enumerate(run.phases["jobs"]):
        for number, stage in enumerate(stages, 1):
            total = sum(stage.values())
            detail = ", ".join(f"{k} {v:.2f}" for k, v in stage.items())
            print(f"  job {job} stage {number} {total:5.2f} s: {detail}")
    reported = sum(sum(stage.values()) for stages in run.phases["jobs"] for stage in stages)
    print(f"  the jobs' CPU as the kernel counts it {run.children:.2f} s (phases add up to {reported:.2f})")


def _write_inputs(events: Path, registry: Path) -> int:
    """The simulated input and its registry as the files the CLI reads; the number of lines."""
    lines, _ = sample_lines(EVENTS)
    # sample_lines's registry, as the YAML the CLI reads (the same SimConfig as bench.replay's).
    cfg = SimConfig(pages=500, rate=50.0, duration=EVENTS / 50.0, seed=11, start=1764230400)
    events.write_bytes(b"\n".join(lines) + b"\n")
    registry.write_text(yaml.safe_dump(registry_mapping(cfg), allow_unicode=True))
    return len(lines)


def main() -> None:
    before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        events, registry = Path(tmp, "events.jsonl"), Path(tmp, "registry.yaml")
        # A replay runs in a process of its own, forked from this one, which should hold no more than
        # a user's fresh process: the input is simulated in a process of its own too. Made here, even
        # freed, its memory stayed in the allocator (over 800 MB): each replay inherited it, and each
        # job forked from a replay copied its page tables.
        count: int = _forked(lambda: _write_inputs(events, registry))
        runs: dict[int, list[Run]] = {1: [], 2: []}
        for _ in range(ROUNDS):
            for jobs in (1, 2):
                run = _run(str(events), str(registry), jobs)
                if runs[jobs]:
                    if (runs[jobs][0].out, runs[jobs][0].reports) != (run.out, run.reports):
                        raise AssertionError(f"--jobs {jobs} gave different output from one round to the next")
                    run = run._replace(out=hashlib.sha256(run.out).digest())
                runs[jobs].append(run)
    one, two = runs[1], runs[2]
    identical = (one[0].out, one[0].reports) == (two[0].out, two[0].reports)
    items = one[0].out.count(b"\n")
    load = os.getloadavg()
    wall1, wall2 = min(r.wall for r in one), min(r.wall for r in two)
    cpu1 = min(r.parent for r in one)
    best = min(two, key=attrgetter("critical"))
    print(f"core modules                   {NATIVE_STATUS:>12}")
    print(f"events                         {count:>12,}   ({items:,} items in the output)")
    print(
        f"cores this process may use     {default_jobs():>12}   (load average {before[0]:.2f} before, "
        f"{load[0]:.2f} after: other work takes cores, so wall times vary)"
    )
    print(
        f"baseline: replay --jobs 1      {wall1:>12.2f} s     {count / wall1:>10,.0f} events/s   wall, best of {ROUNDS}"
    )
    print(
        f"replay --jobs 2                {wall2:>12.2f} s     {count / wall2:>10,.0f} events/s   wall, best of {ROUNDS}"
    )
    print(f"speed-up, wall                 {wall1 / wall2:>12.2f}×")
    print(f"CPU, --jobs 1                  {cpu1:>12.2f} s     best of {ROUNDS}")
    print(
        f"CPU critical path, --jobs 2    {best.critical:>12.2f} s     the parent's CPU + the slowest job's, stage "
        f"by stage; all processes {best.parent + best.children:.2f} s"
    )
    print(f"speed-up, CPU critical path    {cpu1 / best.critical:>12.2f}×   (target >= 1.7: two idle cores)")
    _phase_table(best)
    print(f"output identical               {'yes' if identical else 'NO':>12}   (stdout bytes and error reports)")
    if not identical:
        first = next((a, b) for a, b in zip(one[0].out.splitlines(), two[0].out.splitlines(), strict=False) if a != b)
        print("first difference:", orjson.loads(first[0]), orjson.loads(first[1]))
        raise AssertionError("replay --jobs 2 differs from --jobs 1")


if __name__ == "__main__":
    main()
