"""``otklik replay --jobs N``: one replay split by page across N processes, then merged.

The output is byte for byte that of one process (:func:`otklik.agents.replay.run_replay`), error
reports included, because a page's rows depend only on its own events and on when the engine ticks
and ends, and every job takes those two times from the whole input:

1. The parent cuts the input into N runs of whole lines, one per job, and shares the pages out by
   their volume in a sample of the lines (the rest by a hash of the page id).
2. Each job (a forked process: the input and the registry are inherited, not copied through a pipe)
   decodes its run of lines, every page's, and sends back its malformed lines, when its events were
   received, and the events of the other jobs' pages, encoded with msgpack (far cheaper to decode
   than a line). Each line is decoded once, by one job.
3. The parent reports the malformed lines once each, in file order, computes the tick times and the
   last event's time of the whole input (:func:`~otklik.agents.replay.tick_times`) and hands every
   job those two times and its events from the other runs.
4. Each job puts its events in file order (the runs in order, then a stable sort by time, as one
   process sorts them), runs its pages through its own engine and sends back its rows, encoded and
   in output order (creation time, then item id); the parent merges them. Item ids name their page,
   so no item is in two jobs.

The input is either the file's bytes (cut at line ends: no job copies or even touches another's
lines) or a list of lines.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from itertools import chain, pairwise
from multiprocessing.connection import Connection
from operator import attrgetter
from typing import Any

import msgspec
import orjson

from otklik.agents.replay import (
    ManagerLine,
    OverrideLine,
    _decode_all,
    _in_output_order,
    _replay,
    replay_engine,
    tick_times,
)
from otklik.agents.text.triage import Triage, decide
from otklik.schemas.records import Interaction

__all__ = ["default_jobs", "replay_bytes", "replay_lines"]


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Pages differ in volume by orders of magnitude: a hash alone left one of two jobs with 60 % of the
# events. About every SAMPLE_EVERY-th line is read ahead to share the busiest pages out evenly.
SAMPLE_EVERY = 16


def _assign(sample: Iterable[bytes], jobs: int) -> dict[str, int]:
    """The job of each page seen in a sample of the lines, the busiest first, each to the job with
    the fewest sampled lines so far (pages not seen go by :func:`_job_of`'s hash)."""
    counts: Counter[str] = Counter()
    for line in sample:
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


def _sample(data: bytes) -> list[bytes]:
    """About every :data:`SAMPLE_EVERY`-th line of ``data``, found without splitting it all: the line
    after each of evenly spaced offsets. Only shares the pages out, so an odd line does no harm."""
    wanted = data.count(b"\n") // SAMPLE_EVERY + 1
    sample = []
    for at in range(wanted):
        start = data.find(b"\n", len(data) * at // wanted) + 1
        end = data.find(b"\n", start)
        sample.append(data[start : len(data) if end < 0 else end])
    return sample


def _job_of(page: str, jobs: int, assigned: dict[str, int]) -> int:
    job = assigned.get(page)
    return zlib.crc32(page.encode()) % jobs if job is None else job


def _runs(source: bytes | list[bytes], jobs: int) -> list[tuple[int, int]]:
    """Where each job's lines begin and end: offsets into the bytes, each just past a line end, so
    that splitting the runs gives the lines of splitting the whole (the bytes hold no ``\\r``: see
    :func:`replay_bytes`); indexes into a list."""
    size = len(source)
    if isinstance(source, list):
        return [(size * job // jobs, size * (job + 1) // jobs) for job in range(jobs)]
    ends = [0]
    for job in range(1, jobs):
        at = source.find(b"\n", max(size * job // jobs, ends[-1]))
        ends.append(size if at < 0 else at + 1)
    ends.append(size)
    return list(pairwise(ends))


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(list[Interaction]).decode


def _pack(events: list[Any]) -> tuple[bytes, list[tuple[int, OverrideLine | ManagerLine]]]:
    """Events for another job: the interactions as msgpack, the rare corrections and changes of
    managers pickled beside them with their places."""
    plain: list[Interaction] = []
    corrections: list[tuple[int, OverrideLine | ManagerLine]] = []
    for at, event in enumerate(events):
        if type(event) is not Interaction:
            corrections.append((at, event))
        else:
            plain.append(event)
    return _ENCODE(plain), corrections


def _unpack(packed: tuple[bytes, list[tuple[int, OverrideLine | ManagerLine]]]) -> list[Any]:
    encoded, corrections = packed
    events: list[Any] = _DECODE(encoded)
    for at, correction in corrections:  # in order of place: each lands where it was
        events.insert(at, correction)
    return events


_RECEIVED_AT = attrgetter("received_at")


class _Clock:
    """CPU seconds of this process by phase (``time.process_time``): what the bench adds up into the
    critical path of a parallel replay."""

    def __init__(self) -> None:
        self.at = time.process_time()
        self.stages: list[dict[str, float]] = [{}]

    def mark(self, phase: str) -> None:
        now = time.process_time()
        stage = self.stages[-1]
        stage[phase] = stage.get(phase, 0.0) + now - self.at
        self.at = now

    def wait(self) -> None:
        """The others' work comes next: a new stage."""
        self.stages.append({})


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
    source: bytes | list[bytes],
    run: tuple[int, int],
    registry: Any,
    now: int | None,
    options: dict[str, Any],
    tg_links: Mapping[int, int],
    assigned: dict[str, int],
) -> None:
    """One job, in a forked process: see the module's docstring for the steps."""
    clock = _Clock()
    clock.stages[0]["start"] = clock.at  # this process's CPU since the fork
    gc.disable()  # as in run_replay: the state holds no cycles
    try:
        begin, end = run
        if isinstance(source, bytes):
            lines = source[begin:end].splitlines()
            first = source.count(b"\n", 0, begin) + 1  # no "\r" (see replay_bytes): "\n" ends every line
        else:
            lines = source[begin:end]
            first = begin + 1
        clock.mark("split")
        errors: list[tuple[int, str]] = []
        events = _decode_all(lines, lambda number, reason: errors.append((number, reason)), tg_links, first)
        shares: list[list[Any]] = [[] for _ in range(jobs)]
        owners: dict[str, list[Any]] = {}
        for event in events:
            page = event.correction.page if type(event) is OverrideLine else event.page
            share = owners.get(page)
            if share is None:
                share = owners[page] = shares[_job_of(page, jobs, assigned)]
            share.append(event)
        times = [event.received_at for event in events]
        clock.mark("decode")
        packed = [None if job == index else _pack(share) for job, share in enumerate(shares)]
        clock.mark("pack")
        del events, owners
        # The interactions for the other jobs follow the message as they are: no pickling, no copy.
        conn.send(("ok", (len(lines), errors, times, [None if p is None else p[1] for p in packed])))
        for p in packed:
            if p is not None:
                conn.send_bytes(p[0])
        del packed
        clock.mark("send")
        ticks, last, corrections = _receive(conn, -1)
        clock.wait()
        incoming = [None if job == index else (conn.recv_bytes(), corrections[job]) for job in range(jobs)]
        # Each run's events are in order of time, file order breaking ties: in the runs' order, a
        # stable sort keeps that.
        mine = list(chain.from_iterable(shares[job] if job == index else _unpack(p) for job, p in enumerate(incoming)))
        clock.mark("unpack")
        mine.sort(key=_RECEIVED_AT)
        del shares, incoming
        engine = replay_engine(registry.page, **options)
        rows = _replay(engine, mine, now, ticks, last)
        clock.mark("engine")
        rows = _in_output_order(rows)
        dumps = orjson.dumps
        # dumps(row) + newline, not OPT_APPEND_NEWLINE: orjson's own result keeps the buffer it wrote
        # into, some kilobytes; the copy is the row's size (held by the hundred thousand, it counts).
        encoded = b"".join([dumps(row) + b"\n" for row in rows])
        keys = [row["created_at"] + row["item"] for row in rows]
        clock.mark("encode")
        conn.send(("ok", keys))
        conn.send_bytes(encoded)
        clock.mark("send")
        conn.send(("ok", clock.stages))
    except BaseException:  # the parent raises it
        conn.send(("failed", traceback.format_exc()))
    finally:
        conn.close()


def replay_bytes(
    data: bytes,
    registry: Any,
    now: int | None = None,
    jobs: int = 2,
    *,
    on_error: Callable[[int, str], None] | None = None,
    late_window_s: int = 600,
    retention_s: int = 30 * 86400,
    triage: Triage | None = decide,
    tg_links: Mapping[int, int] | None = None,
    phases: dict[str, Any] | None = None,
) -> tuple[int, list[bytes]]:
    """:func:`replay_lines` of ``data.splitlines()``, without splitting them in this process: the
    number of lines and the rows. ``phases``, if given, gets the CPU seconds of each phase of the
    parent (``"parent"``) and of each job (``"jobs"``: one list of stages per job, each stage run while the
    other jobs run theirs), for the bench."""
    options = (registry, now, jobs, on_error, late_window_s, retention_s, triage, tg_links)
    if b"\r" in data:  # a line may end in "\r": only the whole file's splitting says where lines are
        lines = data.splitlines()
        return _run(lines, _assign(lines[::SAMPLE_EVERY], jobs), *options, phases)
    return _run(data, _assign(_sample(data), jobs), *options, phases)


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
    options = (registry, now, jobs, on_error, late_window_s, retention_s, triage, tg_links)
    return _run(lines, _assign(lines[::SAMPLE_EVERY], jobs), *options)[1]


def _run(
    source: bytes | list[bytes],
    assigned: dict[str, int],
    registry: Any,
    now: int | None,
    jobs: int,
    on_error: Callable[[int, str], None] | None,
    late_window_s: int,
    retention_s: int,
    triage: Triage | None,
    tg_links: Mapping[int, int] | None,
    phases: dict[str, Any] | None = None,
) -> tuple[int, list[bytes]]:
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    options = {"late_window_s": late_window_s, "retention_s": retention_s, "triage": triage}
    links = {} if tg_links is None else tg_links
    context = multiprocessing.get_context("fork")  # the children inherit the input and the registry
    conns: list[Connection] = []
    processes = []
    # Receiving the jobs' rows makes hundreds of thousands of objects: the cyclic collector would
    # rescan them over and over meanwhile, as in run_replay. Off for the run.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    clock = _Clock()
    try:
        for index, run in enumerate(_runs(source, jobs)):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_job,
                args=(index, jobs, theirs, source, run, registry, now, options, links, assigned),
                daemon=True,
            )
            process.start()
            theirs.close()
            conns.append(ours)
            processes.append(process)
        clock.mark("fork")
        # Each job's message, then its interactions for each other job, encoded (see _job).
        decoded = []
        for job, conn in enumerate(conns):
            message = _receive(conn, job)
            decoded.append((*message, [None if other == job else conn.recv_bytes() for other in range(jobs)]))
        count = sum(lines for lines, _, _, _, _ in decoded)
        errors: dict[int, str] = {}
        for _, reported, _, _, _ in decoded:
            for number, reason in reported:
                errors.setdefault(number, reason)
        if on_error is not None:
            for number in sorted(errors):
                on_error(number, errors[number])
        # Each run's times are sorted: the sort merges the runs.
        times = sorted(chain.from_iterable(received for _, _, received, _, _ in decoded))
        ticks, last = tick_times(times), times[-1] if times else 0
        for job, conn in enumerate(conns):
            conn.send(("ok", (ticks, last, [corrections[job] for _, _, _, corrections, _ in decoded])))
            for other, (_, _, _, _, encoded) in enumerate(decoded):
                if other != job:
                    conn.send_bytes(encoded[job])
        del decoded
        clock.mark("ticks")
        # Each job's keys, then its rows as one run of JSON lines (orjson writes no raw line end).
        results = [(_receive(conn, job), conn.recv_bytes().splitlines(keepends=True)) for job, conn in enumerate(conns)]
        # Each job's rows are in output order and item ids are unique: sorting their places by key
        # merges the runs (in C, where a heap merge steps through Python for every row).
        keys = list(chain.from_iterable(keys for keys, _ in results))
        rows = list(chain.from_iterable(rows for _, rows in results))
        merged = [rows[at] for at in sorted(range(len(keys)), key=keys.__getitem__)]
        clock.mark("merge")
        if phases is not None:
            phases["parent"] = clock.stages[0]
            phases["jobs"] = [_receive(conn, job) for job, conn in enumerate(conns)]
        return count, merged
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
