"""``otklik replay --jobs N``: one replay split by page across N processes, then merged.

The output is byte for byte that of one process (:func:`otklik.agents.replay.run_replay`), error
reports included, because a page's rows depend only on its own events and on when the engine ticks
and ends, and every job takes those two times from the whole input:

1. Each job (a forked process: the lines and the registry are inherited, not copied through a pipe)
   decodes the lines of the pages it owns and sends back when its events were received and its
   malformed lines. Pages are shared out by their volume in a sample of the lines (the rest by a
   hash of the page id).
2. The parent reports the malformed lines once each, in file order, computes the tick times and the
   last event's time of the whole input (:func:`~otklik.agents.replay.tick_times`) and sends them to
   every job.
3. Each job runs its pages through its own engine and sends back its rows, encoded and in output
   order (creation time, then item id); the parent merges them. Item ids name their page, so no item
   is in two jobs.

Every job still parses each line's JSON to find its page (a VK line's ``group_id``); lines whose page
needs the full decoding to tell (raw envelopes, corrections) are decoded by every job.
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
import os
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from itertools import chain
from multiprocessing.connection import Connection
from typing import Any

import orjson

from otklik.agents.replay import _decode_all, _in_output_order, _replay, replay_engine, tick_times
from otklik.agents.text.triage import Triage, decide

__all__ = ["default_jobs", "replay_lines"]


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Pages differ in volume by orders of magnitude: a hash alone left one of two jobs with 60 % of the
# events. Every SAMPLE_EVERY-th line is read ahead to share the busiest pages out evenly.
SAMPLE_EVERY = 16


def _assign(lines: list[bytes], jobs: int) -> dict[str, int]:
    """The job of each page seen in a sample of the lines, the busiest first, each to the job with
    the fewest sampled lines so far (pages not seen go by :func:`_job_of`'s hash)."""
    counts: Counter[str] = Counter()
    for line in lines[::SAMPLE_EVERY]:
        try:
            group_id = orjson.loads(line)["body"]["group_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if type(group_id) is int:
            counts[f"vk:{group_id}"] += 1
    load = [0] * jobs
    assigned = {}
    for page, count in counts.most_common():
        job = load.index(min(load))
        assigned[page] = job
        load[job] += count
    return assigned


def _job_of(page: str, jobs: int, assigned: dict[str, int]) -> int:
    job = assigned.get(page)
    return zlib.crc32(page.encode()) % jobs if job is None else job


def _receive(conn: Connection, job: int) -> Any:
    try:
        status, value = conn.recv()
    except EOFError:
        raise RuntimeError(f"replay job {job} ended without an answer") from None
    if status != "ok":
        raise RuntimeError(f"replay job {job} failed:\n{value}")
    return value


def _job(
    index: int,
    jobs: int,
    conn: Connection,
    lines: list[bytes],
    registry: Any,
    now: int | None,
    options: dict[str, Any],
    tg_links: Mapping[int, int],
    assigned: dict[str, int],
) -> None:
    """One job, in a forked process: see the module's docstring for the three steps."""
    gc.disable()  # as in run_replay: the state holds no cycles
    try:
        owners: dict[str, bool] = {}

        def mine(page: str) -> bool:
            owned = owners.get(page)
            if owned is None:
                owned = owners[page] = _job_of(page, jobs, assigned) == index
            return owned

        errors: list[tuple[int, str]] = []
        interactions = _decode_all(lines, lambda number, reason: errors.append((number, reason)), tg_links, mine)
        conn.send(("ok", ([ia.received_at for ia in interactions], errors)))
        ticks, last = _receive(conn, -1)
        engine = replay_engine(registry.page, **options)
        rows = _in_output_order(_replay(engine, interactions, now, ticks, last))
        dumps = orjson.dumps
        conn.send(("ok", ([row["created_at"] + row["item"] for row in rows], [dumps(row) + b"\n" for row in rows])))
    except BaseException:  # the parent raises it
        conn.send(("failed", traceback.format_exc()))
    finally:
        conn.close()


def replay_lines(
    lines: list[bytes],
    registry: Any,
    now: int | None = None,
    jobs: int = 2,
    *,
    on_error: Callable[[int, str], None] | None = None,
    late_window_s: int = 600,
    retention_s: int = 30 * 86400,
    triage: Triage | None = decide,
    tg_links: Mapping[int, int] | None = None,
) -> list[bytes]:
    """:func:`~otklik.agents.replay.run_replay` in ``jobs`` processes: its rows as JSON lines (each
    ending in a newline), in its order; ``on_error`` gets the same calls in the same order."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    options = {"late_window_s": late_window_s, "retention_s": retention_s, "triage": triage}
    links = {} if tg_links is None else tg_links
    assigned = _assign(lines, jobs)
    context = multiprocessing.get_context("fork")  # the children inherit the lines and the registry
    conns: list[Connection] = []
    processes = []
    # Receiving the jobs' rows makes hundreds of thousands of objects: the cyclic collector would
    # rescan the lines over and over meanwhile, as in run_replay. Off for the run.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for index in range(jobs):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_job, args=(index, jobs, theirs, lines, registry, now, options, links, assigned), daemon=True
            )
            process.start()
            theirs.close()
            conns.append(ours)
            processes.append(process)
        decoded = [_receive(conn, job) for job, conn in enumerate(conns)]
        errors: dict[int, str] = {}
        for _, reported in decoded:
            for number, reason in reported:
                errors.setdefault(number, reason)  # a line every job decoded is reported by each
        if on_error is not None:
            for number in sorted(errors):
                on_error(number, errors[number])
        # Each job's times are sorted: the sort merges the runs.
        times = sorted(chain.from_iterable(received for received, _ in decoded))
        step = (tick_times(times), times[-1] if times else 0)
        for conn in conns:
            conn.send(("ok", step))
        results = [_receive(conn, job) for job, conn in enumerate(conns)]
        return [row for _, row in heapq.merge(*(zip(keys, rows) for keys, rows in results))]
    finally:
        if gc_was_enabled:
            gc.enable()
        for conn in conns:
            conn.close()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
