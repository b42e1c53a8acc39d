"""``otklik replay --jobs N``: one replay split by page across N processes, then merged.

The output is byte for byte that of one process (:func:`otklik.agents.replay.run_replay`), error
reports included, because a page's rows depend only on its own events and on when the engine ticks
and ends, and every job takes those two times from the whole input:

1. The parent shares the pages out by their volume in a sample of the input and forks N jobs; each
   inherits the input (the file mapped, its bytes, or a list of lines) and the registry, copying
   nothing through a pipe, and is given a run of whole lines. Each job has a file of its own in
   memory, made before the fork: what the others read from it passes through no pipe.
2. Each job decodes the lines of its run, numbered from 1 in the run, and writes the events of each
   other job's pages, in file order, to its file (msgpack when all are interactions, else pickled).
3. The parent reports the malformed lines in file order (each decoded again with its number in the
   file: the runs' lengths give it), computes the tick times and the last event's time of the whole
   input (:func:`~otklik.agents.replay.tick_times`, from each job's distinct times) and hands every
   job those two times, the bounds of each job's range of output keys, and where its events are.
4. Each job reads the runs' events of its pages in turn (the runs follow each other in the file: file
   order), sorts them stably by time, as one process does, and runs its pages through its own
   engine. Its rows, in output order (creation time, then item id), go to the job of their key's
   range through its file; each job merges its range into its file, and the parent writes the ranges
   in turn from there. Item ids name their page, so no item is in two jobs.
"""

from __future__ import annotations

import gc
import mmap
import multiprocessing
import os
import pickle
import re
import tempfile
import time
import traceback
import zlib
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping
from itertools import accumulate, compress, pairwise
from multiprocessing.connection import Connection
from operator import attrgetter, itemgetter
from typing import Any

import msgspec
import orjson

from otklik.agents.replay import (
    OverrideLine,
    _decode_numbered,
    _replay,
    iso,
    replay_engine,
    tick_times,
)
from otklik.agents.text.triage import Triage, decide
from otklik.schemas.records import Interaction

__all__ = ["default_jobs", "replay_bytes", "replay_lines"]

# The input: the file mapped (or its bytes), or a list of lines (when lines may end in "\r").
Source = bytes | mmap.mmap | list[bytes]


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# A VK page named in the input, for the sample: only shares the pages out (the page its events name
# decides where an event goes), so a "group_id" inside an object that counts twice does no harm.
_GROUP_ID = re.compile(rb'"group_id":([0-9]{1,18})')
_MOST_JOBS = 256  # a job's number is a byte in a job's list of where its events go


# Pages differ in volume by orders of magnitude: a hash alone left one of two jobs with 60 % of the
# events. About a SAMPLE_EVERY-th of the input is read ahead, in SAMPLE_PIECES pieces spread over it,
# to share the busiest pages out evenly.
SAMPLE_EVERY = 16
SAMPLE_PIECES = 1024


def _sample(source: Source) -> list[bytes]:
    """The pages named by a sample of the lines (their VK group ids). A piece of the bytes may begin
    or end inside a line: that only shares the pages out, so an odd line does no harm."""
    if isinstance(source, list):
        return _GROUP_ID.findall(b"\n".join(source[::SAMPLE_EVERY]))
    size = len(source)
    piece = size // (SAMPLE_PIECES * SAMPLE_EVERY) + 1
    groups: list[bytes] = []
    for at in range(SAMPLE_PIECES):
        begin = size * at // SAMPLE_PIECES
        groups += _GROUP_ID.findall(source, begin, begin + piece)
    return groups


def _runs(source: Source, jobs: int) -> list[tuple[int, int]]:
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


def _run_lines(source: Source, run: tuple[int, int]) -> list[bytes]:
    """A run's lines, split a piece of about _PIECE bytes at a time (whole lines): a piece copied out
    of the input stays in the cache while it is split, where the whole run would not."""
    begin, end = run
    if isinstance(source, list):
        return source[begin:end]  # splitlines's lines hold no "\n"
    lines: list[bytes] = []
    at = begin
    while at < end:
        cut = source.rfind(b"\n", at, min(at + _PIECE, end)) + 1
        if cut <= at:  # no line ends in the piece: its line is longer
            cut = source.find(b"\n", at, end) + 1 or end
        piece = source[at:cut].split(b"\n")
        if not piece[-1]:  # the piece ends in "\n": that ends a line, starts none
            piece.pop()
        lines += piece
        at = cut
    return lines


_PIECE = 1 << 20


def _share(groups: list[bytes], jobs: int) -> dict[str, int]:
    """The job of each VK page the sample names, the busiest first, each to the job with the fewest
    lines so far (pages differ in volume by orders of magnitude: a hash alone left one of two jobs with
    60 % of the events). Other pages go by :func:`_job_of`'s hash."""
    load = [0] * jobs
    owner = {}
    for group, count in Counter(groups).most_common():
        job = load.index(min(load))
        owner[f"vk:{int(group)}"] = job
        load[job] += count
    return owner


def _job_of(page: str, jobs: int, owner: dict[str, int]) -> int:
    job = owner.get(page)
    if job is None:
        job = owner[page] = zlib.crc32(page.encode()) % jobs
    return job


def _only(job: int) -> bytes:
    """A table for ``bytes.translate``: 1 for ``job``, 0 for any other."""
    table = bytearray(256)
    table[job] = 1
    return bytes(table)


# Events go from job to job as msgpack when all are interactions (several times cheaper than pickle).
_EVENTS_OUT = msgspec.msgpack.Encoder()
_EVENTS_IN = msgspec.msgpack.Decoder(list[Interaction])
_PAGE = attrgetter("page")
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


class _Scratch:
    """A job's file, made before the fork so every process holds it: the job appends what the others
    read (their parts of its rows, its merged piece); each write's (offset, length) says where."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.end = 0

    def write(self, data: bytes) -> tuple[int, int]:
        at, view = self.end, memoryview(data)
        while view:
            view = view[os.pwrite(self.fd, view, self.end) :]
            self.end = at + len(data) - len(view)
        return at, len(data)

    def write_lines(self, lines: list[bytes]) -> tuple[int, int]:
        """As ``write(b"".join(lines))``, without making the joined copy where the system can write
        from many buffers at once."""
        if not hasattr(os, "pwritev"):
            return self.write(b"".join(lines))
        at = self.end
        for begin in range(0, len(lines), _IOV_MAX):
            chunk = lines[begin : begin + _IOV_MAX]
            written = os.pwritev(self.fd, chunk, self.end)
            self.end += written
            if written < sum(map(len, chunk)):  # a short write: the rest at once
                self.write(b"".join(chunk)[written:])
        return at, self.end - at


# How many buffers one pwritev takes (Linux's limit; POSIX guarantees at least 16).
_IOV_MAX = 1024


def _scratch_file() -> int:
    """An unnamed file in memory (a temporary file where there is no memfd)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("otklik-replay")
    fd, path = tempfile.mkstemp(prefix="otklik-replay-")
    os.unlink(path)
    return fd


def _read(fd: int, at: int, length: int) -> bytes:
    data = os.pread(fd, length, at)
    while len(data) < length:  # a short read: only past some limit of the system
        data += os.pread(fd, length - len(data), at + len(data))
    return data


def _mapped(fd: int, at: int, length: int) -> memoryview | bytes:
    """Bytes of a job's file, mapped rather than read into a copy (the pages mapped at once: cheaper
    than a fault for each)."""
    if not length:
        return b""
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    skip = at % mmap.ALLOCATIONGRANULARITY  # a mapping begins at a multiple of it
    mapped = mmap.mmap(fd, skip + length, flags=flags, prot=mmap.PROT_READ, offset=at - skip)
    return memoryview(mapped)[skip : skip + length]


def _job(
    index: int,
    jobs: int,
    conn: Connection,
    source: Source,
    run: tuple[int, int],
    owner: dict[str, int],
    registry: Any,
    now: int | None,
    options: dict[str, Any],
    tg_links: Mapping[int, int],
    files: list[int],
) -> None:
    """One job, in a forked process: see the module's docstring for the steps."""
    clock = _Clock()
    clock.stages[0]["start"] = clock.at  # this process's CPU since the fork
    gc.disable()  # as in run_replay: the state holds no cycles
    try:
        lines = _run_lines(source, run)
        clock.mark("split")
        # Numbered from 1 in the run: the run's first line's number is known once every run is split.
        malformed: list[int] = []
        events = _decode_numbered(enumerate(lines, 1), lambda at, _: malformed.append(at), tg_links)
        bad = [(at, lines[at - 1]) for at in malformed]
        count = len(lines)
        del lines
        clock.mark("decode")
        kinds = set(map(type, events))
        pages = list(map(_page, events) if OverrideLine in kinds else map(_PAGE, events))
        job_of_page = {page: _job_of(page, jobs, owner) for page in set(pages)}
        destination = bytes(map(job_of_page.__getitem__, pages))  # in C, event by event
        del pages
        plain = kinds <= {Interaction}  # else a correction, a change of managers or a listing among them
        scratch = _Scratch(files[index])
        mine: list[Any] = []
        sent: list[tuple[bool, int, int] | None] = []
        for job in range(jobs):
            chosen = destination.translate(_only(job))
            if job == index:
                mine = list(compress(events, chosen))
                sent.append(None)
            else:  # in file order, written to this job's file for that job to read
                theirs = list(compress(events, chosen))
                blob = _EVENTS_OUT.encode(theirs) if plain else pickle.dumps(theirs, pickle.HIGHEST_PROTOCOL)
                sent.append((plain, *scratch.write(blob)))
        times = sorted(set(map(_RECEIVED_AT, events)))  # the ticks depend on the times, not how many
        del events, destination
        conn.send(("ok", (count, bad, times, sent)))
        del times, bad
        clock.mark("send")
        ticks, last, bounds, placed = _receive(conn, -1)
        clock.wait()
        # The runs in turn: each run's events of this job's pages, in file order.
        events = []
        for job, where in enumerate(placed):
            if where is None:
                events += mine
            else:
                plain, at, length = where
                blob = _mapped(files[job], at, length)
                events += _EVENTS_IN.decode(blob) if plain else pickle.loads(blob)
        del mine, placed
        clock.mark("gather")
        events.sort(key=_RECEIVED_AT)  # stable: file order breaks ties, as in one process
        clock.mark("sort")
        engine = replay_engine(registry.page, **options)
        rows = _replay(engine, events, now, ticks, last)
        clock.mark("engine")
        # In output order, creation time then item id (as run_replay's), each row's key made once:
        # the keys cut the rows into ranges and merge them too.
        keys = [row["created_at"] + row["item"] for row in rows]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        dumps = orjson.dumps
        # dumps(row) + newline, not OPT_APPEND_NEWLINE: orjson's own result keeps the buffer it wrote
        # into, some kilobytes; the copy is the row's size (held by the hundred thousand, it counts).
        encoded = [dumps(rows[at]) + b"\n" for at in order]
        keys = [keys[at] for at in order]
        del rows, order
        # Each job writes the output of one range of keys: the others' rows in its range go to it,
        # through this job's file (each job reads its parts there: nothing passes through the parent).
        cuts = [0, *(bisect_left(keys, bound) for bound in bounds), len(keys)]
        clock.mark("encode")
        parts = [
            None
            if job == index
            else (
                scratch.write(pickle.dumps(keys[cuts[job] : cuts[job + 1]], pickle.HIGHEST_PROTOCOL)),
                scratch.write_lines(encoded[cuts[job] : cuts[job + 1]]),
            )
            for job in range(jobs)
        ]
        conn.send(("ok", (len(keys), parts)))
        clock.mark("send")
        keys, encoded = keys[cuts[index] : cuts[index + 1]], encoded[cuts[index] : cuts[index + 1]]
        placed = _receive(conn, -1)
        clock.wait()
        for job, part in enumerate(placed):
            if part is not None:
                key_part, row_part = part
                keys += pickle.loads(_mapped(files[job], *key_part))
                encoded += _read(files[job], *row_part).splitlines(keepends=True)  # orjson writes no raw line end
        # Each part is in output order and item ids are unique: sorting the places by key merges the
        # parts (in C, where a heap merge steps through Python for every row).
        piece = scratch.write_lines([encoded[at] for at in sorted(range(len(keys)), key=keys.__getitem__)])
        conn.send(("ok", piece))
        clock.mark("merge")
        conn.send(("ok", clock.stages))
    except BaseException:  # the parent raises it
        conn.send(("failed", traceback.format_exc()))
    finally:
        conn.close()


def replay_bytes(
    data: bytes | mmap.mmap,
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
) -> tuple[int, int, list[bytes | memoryview]]:
    """:func:`replay_lines` of ``data.splitlines()``, without splitting them in this process: the
    number of lines, of rows, and the rows as JSON lines in a few pieces, to be written in turn.
    ``data`` may be the file mapped (``mmap``): then each job reads only the bytes it needs.
    ``phases``, if given, gets the CPU seconds of each phase of the parent (``"parent"``) and of each
    job (``"jobs"``: one list of stages per job, each stage run while the other jobs run theirs), for
    the bench."""
    # A line may end in "\r": then only splitlines says where lines are (the jobs cut at "\n").
    source: Source = data[:].splitlines() if data.find(b"\r") >= 0 else data
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
    source: Source,
    registry: Any,
    now: int | None,
    jobs: int,
    on_error: Callable[[int, str], None] | None,
    late_window_s: int,
    retention_s: int,
    triage: Triage | None,
    tg_links: Mapping[int, int] | None,
    phases: dict[str, Any] | None = None,
) -> tuple[int, int, list[bytes | memoryview]]:
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    jobs = min(jobs, _MOST_JOBS)
    options = {"late_window_s": late_window_s, "retention_s": retention_s, "triage": triage}
    links = {} if tg_links is None else tg_links
    context = multiprocessing.get_context("fork")  # the children inherit the input and the registry
    conns: list[Connection] = []
    processes = []
    files: list[int] = []
    # Receiving the jobs' rows makes hundreds of thousands of objects: the cyclic collector would
    # rescan them over and over meanwhile, as in run_replay. Off for the run.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    clock = _Clock()
    try:
        owner = _share(_sample(source), jobs)
        files += (_scratch_file() for _ in range(jobs))
        for index, run in enumerate(_runs(source, jobs)):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_job,
                args=(index, jobs, theirs, source, run, owner, registry, now, options, links, files),
                daemon=True,
            )
            process.start()
            theirs.close()
            conns.append(ours)
            processes.append(process)
        clock.mark("fork")
        # Each job's number of lines, malformed lines, distinct times, and where in its file its
        # events of each other job's pages are: from all of them first, then to each job.
        decoded = [_receive(conn, job) for job, conn in enumerate(conns)]
        counts = [lines for lines, _, _, _ in decoded]
        count = sum(counts)
        if on_error is not None:
            # A job numbers its run's lines from 1: each malformed line is decoded again here with its
            # number in the file, which its report names (rare lines; the runs in turn: file order).
            for first, (_, bad, _, _) in zip(accumulate(counts, initial=0), decoded, strict=False):
                _decode_numbered(((first + at, line) for at, line in bad), on_error, links)
        times = sorted(set().union(*(times for _, _, times, _ in decoded)))
        ticks, last = tick_times(times), times[-1] if times else 0
        # Job k writes the rows created from the k-th share of the events' times on: the rows' keys
        # begin with their creation time, so the ranges hold about as many rows each.
        bounds = [iso(times[len(times) * job // jobs]) for job in range(1, jobs)] if times else [""] * (jobs - 1)
        for job, conn in enumerate(conns):
            conn.send(("ok", (ticks, last, bounds, [sent[job] for _, _, _, sent in decoded])))
        del decoded
        clock.mark("ticks")
        # Each job's number of rows and where in its file its rows of each other job's range are; once
        # all have written theirs, each job is told where its parts are.
        written = [_receive(conn, job) for job, conn in enumerate(conns)]
        items = sum(rows for rows, _ in written)
        for job, conn in enumerate(conns):
            conn.send(("ok", [parts[job] for _, parts in written]))
        del written
        clock.mark("hand on")
        pieces = [_mapped(files[job], *_receive(conn, job)) for job, conn in enumerate(conns)]
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
        for fd in files:  # a piece's mapping holds its file
            os.close(fd)
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
