"""``otklik replay --jobs N``: one replay split by page across N processes, then merged.

The output is byte for byte that of one process (:func:`otklik.agents.replay.run_replay`), error
reports included, because a page's rows depend only on its own events and on when the engine ticks
and ends, and every job takes those two times from the whole input:

1. The parent shares the pages out by their volume in a sample of the input and forks N jobs; each
   inherits the input (the file's bytes, or a list of lines) and the registry, copying nothing
   through a pipe, and is given a run of whole lines.
2. Each job finds the page each line of its run names without decoding it (the line's last
   ``"group_id":``, by one regular expression) and tells every other job where that job's lines are
   in the input (offsets, not the lines). A line naming no page (a Telegram or MAX envelope, a
   correction, a change of managers, a malformed line) goes to a job by its number.
3. Each job decodes its lines, all in file order. Each line is decoded once, by one job, so each
   malformed line is reported once. An event of another job's page (its line named no page, or the
   wrong one) goes to that job with its line number: rare, so pickled.
4. The parent reports the malformed lines in file order, computes the tick times and the last
   event's time of the whole input (:func:`~otklik.agents.replay.tick_times`, from each job's
   distinct times) and hands every job those two times, the bounds of each job's range of output
   keys, and its events from the others.
5. Each job puts its events in file order, then stably by time, as one process sorts them, and runs
   its pages through its own engine. Its rows, in output order (creation time, then item id), go to
   the job of their key's range (handed on by the parent); each job merges its range, and the parent
   writes the ranges in turn. Item ids name their page, so no item is in two jobs.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import re
import time
import traceback
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from itertools import accumulate, chain, compress, pairwise
from multiprocessing.connection import Connection
from operator import add, attrgetter, itemgetter
from typing import Any

import orjson

from otklik.agents.replay import (
    OverrideLine,
    _decode_numbered,
    _in_output_order,
    _replay,
    iso,
    replay_engine,
    tick_times,
)
from otklik.agents.text.triage import Triage, decide

__all__ = ["default_jobs", "replay_bytes", "replay_lines"]


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# One match per line (each ends in "\n", or the input does): the digits after the line's last
# "group_id": (a VK body's own comes after its object), or nothing. Only says which job decodes the
# line: the page its events name decides where they go.
_LINE_PAGE = re.compile(rb'(?:[^\n]*"group_id":([0-9]{1,18}))?[^\n]*(?:\n|\Z)')
_NO_PAGE = 255  # in a job's list of which job decodes each line: a line that named no page


# Pages differ in volume by orders of magnitude: a hash alone left one of two jobs with 60 % of the
# events. About a SAMPLE_EVERY-th of the input is read ahead, in SAMPLE_PIECES pieces spread over it,
# to share the busiest pages out evenly.
SAMPLE_EVERY = 16
SAMPLE_PIECES = 1024


def _sample(source: bytes | list[bytes]) -> list[bytes]:
    """The pages named by a sample of the lines (their VK group ids, some empty). A piece of the bytes
    may begin or end inside a line: that only shares the pages out, so an odd line does no harm."""
    if isinstance(source, list):
        return _LINE_PAGE.findall(b"\n".join(source[::SAMPLE_EVERY]))
    size = len(source)
    piece = size // (SAMPLE_PIECES * SAMPLE_EVERY) + 1
    groups: list[bytes] = []
    for at in range(SAMPLE_PIECES):
        begin = size * at // SAMPLE_PIECES
        groups += _LINE_PAGE.findall(source, begin, begin + piece)
    return groups


def _runs(source: bytes | list[bytes], jobs: int) -> list[tuple[int, int]]:
    """Where each job's run of lines begins and ends: offsets into the bytes, each just past a line
    end, so that splitting the runs gives the lines of splitting the whole (the bytes hold no ``\\r``:
    see :func:`replay_bytes`); indexes into a list."""
    size = len(source)
    if isinstance(source, list):
        return [(size * job // jobs, size * (job + 1) // jobs) for job in range(jobs)]
    ends = [0]
    for job in range(1, jobs):
        at = source.find(b"\n", max(size * job // jobs, ends[-1]))
        ends.append(size if at < 0 else at + 1)
    ends.append(size)
    return list(pairwise(ends))


def _run_lines(source: bytes | list[bytes], run: tuple[int, int]) -> tuple[list[bytes], list[bytes], int]:
    """A run's lines, the page each names (its VK group id; empty if none) and the first one's number."""
    begin, end = run
    if isinstance(source, list):
        lines = source[begin:end]  # splitlines's lines hold no "\n"
        return lines, _LINE_PAGE.findall(b"\n".join(lines))[: len(lines)], begin + 1
    lines = source[begin:end].split(b"\n")
    if not lines[-1]:  # the run ends in "\n" (or is empty): that ends a line, starts none
        lines.pop()
    return lines, _LINE_PAGE.findall(source, begin, end)[: len(lines)], source.count(b"\n", 0, begin) + 1


def _share(groups: list[bytes], jobs: int) -> dict[str, int]:
    """The job of each VK page the sample names, the busiest first, each to the job with the fewest
    lines so far (pages differ in volume by orders of magnitude: a hash alone left one of two jobs with
    60 % of the events). Other pages go by :func:`_job_of`'s hash."""
    load = [0] * jobs
    owner = {}
    for group, count in Counter(groups).most_common():
        if group:
            job = load.index(min(load))
            owner[f"vk:{int(group)}"] = job
            load[job] += count
    return owner


def _job_of(page: str, jobs: int, owner: dict[str, int]) -> int:
    job = owner.get(page)
    if job is None:
        job = owner[page] = zlib.crc32(page.encode()) % jobs
    return job


def _decoders(groups: list[bytes], owner: dict[str, int], jobs: int, first: int) -> bytes:
    """For each line of a run, the job that decodes it: the job of the page it names, else the job of
    its number (lines naming no page are shared out in turn)."""
    by_group = {group: _NO_PAGE if not group else _job_of(f"vk:{int(group)}", jobs, owner) for group in set(groups)}
    decoder = bytearray(map(by_group.__getitem__, groups))  # in C, line by line
    at = decoder.find(_NO_PAGE)
    while at >= 0:
        decoder[at] = (first + at) % jobs
        at = decoder.find(_NO_PAGE, at + 1)
    return bytes(decoder)


def _only(job: int) -> bytes:
    """A table for ``bytes.translate``: 1 for ``job``, 0 for any other."""
    table = bytearray(256)
    table[job] = 1
    return bytes(table)


def _array(values: Iterable[int]) -> bytes:
    return array("q", values).tobytes()


def _ints(data: bytes) -> array[int]:
    values = array("q")
    values.frombytes(data)
    return values


_RECEIVED_AT = attrgetter("received_at")
_FIRST = itemgetter(0)


def _page(event: Any) -> str:
    return event.correction.page if type(event) is OverrideLine else event.page  # type: ignore[no-any-return]


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
    owner: dict[str, int],
    registry: Any,
    now: int | None,
    options: dict[str, Any],
    tg_links: Mapping[int, int],
) -> None:
    """One job, in a forked process: see the module's docstring for the steps."""
    clock = _Clock()
    clock.stages[0]["start"] = clock.at  # this process's CPU since the fork
    gc.disable()  # as in run_replay: the state holds no cycles
    try:
        lines, groups, first = _run_lines(source, run)
        clock.mark("split")
        count = len(lines)
        decoders = _decoders(groups, owner, jobs, first)
        run_numbers = range(first, first + count)
        lengths = list(map(len, lines))
        offsets = [] if isinstance(source, list) else list(accumulate(map((1).__add__, lengths), initial=run[0]))
        mine: list[bytes] = []
        ours: list[int] = []
        shares: list[tuple[bytes, bytes, bytes] | None] = []
        for job in range(jobs):
            chosen = decoders.translate(_only(job))
            if job == index:
                mine, ours = list(compress(lines, chosen)), list(compress(run_numbers, chosen))
                shares.append(None)
            else:  # where the lines are: the job has the input too
                where = (_array(compress(offsets, chosen)), _array(compress(lengths, chosen)))
                shares.append((_array(compress(run_numbers, chosen)), *where))
        del lines, groups, lengths, offsets
        conn.send(("ok", shares))
        clock.mark("select")
        theirs = _receive(conn, -1)
        clock.wait()
        numbers: list[int] = []
        lines = []
        for share in theirs:  # the runs in order: the lines in file order
            if share is None:
                numbers += ours
                lines += mine
            elif isinstance(source, list):
                numbers += _ints(share[0])
                lines += map(source.__getitem__, map((-1).__add__, numbers[len(lines) :]))
            else:
                numbers += _ints(share[0])
                begins = _ints(share[1])
                lines += map(source.__getitem__, map(slice, begins, map(add, begins, _ints(share[2]))))
        del theirs, mine, ours
        clock.mark("gather")
        errors: list[tuple[int, str]] = []
        starts: list[int] = []
        events = _decode_numbered(zip(numbers, lines), lambda n, reason: errors.append((n, reason)), tg_links, starts)
        del lines
        clock.mark("decode")
        destinations = [_job_of(_page(event), jobs, owner) for event in events]
        away: list[list[tuple[int, Any]]] = [[] for _ in range(jobs)]
        mixed = destinations.count(index) != len(destinations)  # some events are another job's
        if mixed:
            for at, (event, job) in enumerate(zip(events, destinations, strict=True)):
                if job != index:
                    away[job].append((numbers[bisect_right(starts, at) - 1], event))
        times = sorted(set(map(_RECEIVED_AT, events)))  # the ticks depend on the times, not how many
        conn.send(("ok", (count, errors, times, away)))
        del away, times
        clock.mark("send")
        ticks, last, bounds, incoming = _receive(conn, -1)
        clock.wait()
        if incoming or mixed:
            # Events of other jobs' lines, or some of this job's gone: by line number (a line's events
            # stay together and in order: one job decoded it), then by time.
            ours = [
                (numbers[bisect_right(starts, at) - 1], event)
                for at, (event, job) in enumerate(zip(events, destinations, strict=True))
                if job == index
            ]
            ours += incoming
            ours.sort(key=_FIRST)
            events = [event for _, event in ours]
            del ours
        del incoming, destinations
        events.sort(key=_RECEIVED_AT)  # stable: file order breaks ties, as in one process
        clock.mark("sort")
        engine = replay_engine(registry.page, **options)
        rows = _replay(engine, events, now, ticks, last)
        clock.mark("engine")
        rows = _in_output_order(rows)
        dumps = orjson.dumps
        # dumps(row) + newline, not OPT_APPEND_NEWLINE: orjson's own result keeps the buffer it wrote
        # into, some kilobytes; the copy is the row's size (held by the hundred thousand, it counts).
        encoded = [dumps(row) + b"\n" for row in rows]
        keys = [row["created_at"] + row["item"] for row in rows]
        del rows
        # Each job writes the output of one range of keys: the others' rows in its range go to it.
        cuts = [0, *(bisect_left(keys, bound) for bound in bounds), len(keys)]
        clock.mark("encode")
        conn.send(("ok", len(keys)))
        for job in range(jobs):
            if job != index:
                conn.send_bytes(pickle.dumps(keys[cuts[job] : cuts[job + 1]], pickle.HIGHEST_PROTOCOL))
                conn.send_bytes(b"".join(encoded[cuts[job] : cuts[job + 1]]))
        clock.mark("send")
        keys, encoded = keys[cuts[index] : cuts[index + 1]], encoded[cuts[index] : cuts[index + 1]]
        for job in range(jobs):
            if job != index:
                keys += pickle.loads(conn.recv_bytes())
                encoded += conn.recv_bytes().splitlines(keepends=True)  # orjson writes no raw line end
        clock.wait()
        # Each part is in output order and item ids are unique: sorting the places by key merges the
        # parts (in C, where a heap merge steps through Python for every row).
        conn.send(("ok", None))
        conn.send_bytes(b"".join([encoded[at] for at in sorted(range(len(keys)), key=keys.__getitem__)]))
        clock.mark("merge")
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
) -> tuple[int, int, list[bytes]]:
    """:func:`replay_lines` of ``data.splitlines()``, without splitting them in this process: the
    number of lines, of rows, and the rows as JSON lines in a few pieces, to be written in turn. ``phases``, if given, gets the CPU seconds of each phase of the
    parent (``"parent"``) and of each job (``"jobs"``: one list of stages per job, each stage run while the
    other jobs run theirs), for the bench."""
    # A line may end in "\r": then only splitlines says where lines are (the jobs cut at "\n").
    source = data.splitlines() if b"\r" in data else data
    return _run(source, registry, now, jobs, on_error, late_window_s, retention_s, triage, tg_links, phases)


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
    pieces = _run(lines, registry, now, jobs, on_error, late_window_s, retention_s, triage, tg_links)[2]
    return b"".join(pieces).splitlines(keepends=True)


def _run(
    source: bytes | list[bytes],
    registry: Any,
    now: int | None,
    jobs: int,
    on_error: Callable[[int, str], None] | None,
    late_window_s: int,
    retention_s: int,
    triage: Triage | None,
    tg_links: Mapping[int, int] | None,
    phases: dict[str, Any] | None = None,
) -> tuple[int, int, list[bytes]]:
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    jobs = min(jobs, _NO_PAGE - 1)  # a job's number is a byte in _selected
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
        owner = _share(_sample(source), jobs)
        for index, run in enumerate(_runs(source, jobs)):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_job, args=(index, jobs, theirs, source, run, owner, registry, now, options, links), daemon=True
            )
            process.start()
            theirs.close()
            conns.append(ours)
            processes.append(process)
        clock.mark("fork")
        # Where each job's lines are in each run: all of it first (see below), then to each job.
        shares = [_receive(conn, job) for job, conn in enumerate(conns)]
        for job, conn in enumerate(conns):
            conn.send(("ok", [share[job] for share in shares]))
        del shares
        clock.mark("shares")
        decoded = [_receive(conn, job) for job, conn in enumerate(conns)]
        count = sum(lines for lines, _, _, _ in decoded)
        if on_error is not None:  # each line was decoded by one job: sorting by number is file order
            for number, reason in sorted(chain.from_iterable(errors for _, errors, _, _ in decoded), key=_FIRST):
                on_error(number, reason)
        times = sorted(set().union(*(times for _, _, times, _ in decoded)))
        ticks, last = tick_times(times), times[-1] if times else 0
        # Job k writes the rows created from the k-th share of the events' times on: the rows' keys
        # begin with their creation time, so the ranges hold about as many rows each.
        bounds = [iso(times[len(times) * job // jobs]) for job in range(1, jobs)] if times else [""] * (jobs - 1)
        for job, conn in enumerate(conns):
            incoming = list(chain.from_iterable(away[job] for _, _, _, away in decoded))
            conn.send(("ok", (ticks, last, bounds, incoming)))
        del decoded
        clock.mark("ticks")
        # Each job's number of rows, then its keys and rows (raw bytes) of each other job's range,
        # handed on: first all of them, so that no job waits to send while the parent sends to it.
        items = 0
        parts: list[list[tuple[bytes, bytes] | None]] = []
        for job, conn in enumerate(conns):
            items += _receive(conn, job)
            parts.append([None if other == job else (conn.recv_bytes(), conn.recv_bytes()) for other in range(jobs)])
        for job, conn in enumerate(conns):
            for other in range(jobs):
                part = parts[other][job]
                if part is not None:
                    conn.send_bytes(part[0])
                    conn.send_bytes(part[1])
        del parts
        clock.mark("hand on")
        pieces = []
        for job, conn in enumerate(conns):
            _receive(conn, job)
            pieces.append(conn.recv_bytes())
        clock.mark("pieces")
        if phases is not None:
            phases["parent"] = clock.stages[0]
            phases["jobs"] = [_receive(conn, job) for job, conn in enumerate(conns)]
        return count, items, pieces
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
