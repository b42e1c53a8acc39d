"""``otklik replay``: run recorded events of every platform through the same core as the live pipeline.

:func:`run_replay` is pure (lines in, rows out); :func:`replay_file` is the thin file edge the CLI calls.

Input, one JSON value per line, in any mix:

* a raw envelope as the gateway writes it to ``otklik.raw`` (:class:`~otklik.schemas.records.RawEnvelope`:
  ``{"platform": "vk"|"tg"|"max", "source": ..., "received_at": unix seconds, "body": <platform body>}``),
  checked and normalized as the worker does it, so a dump of ``otklik.raw`` replays as it is;
* ``{"received_at": ISO-8601 or unix seconds, "body": <VK callback body>}`` (no ``platform``: VK);
* a bare VK callback body, received at its object's ``date``. Deletions and restorations carry no time
  of their own (a restoration's ``date`` is the comment's creation), so a bare one is rejected: give it a
  ``received_at``;
* a correction of triage, ``{"received_at": ..., "override": {...}}`` (see :class:`OverrideLine`);
* a record of ``otklik.managers``, ``{"managers": {...}}``, applied at its ``at``; VK ``group_officers_edit``
  bodies become such records too, as in the worker (see :class:`ManagerLine`).

Bodies become interactions through :func:`otklik.agents.ingest.envelope.normalize_body`, the worker's own
choice of normalizer. Lines are processed in order of ``received_at``, file order breaking ties, so the
input need not be sorted.

Output, one JSON object per item, ordered by creation time then item id (see :data:`ROW_FIELDS`).
"""

from __future__ import annotations

import gc
import mmap
import os
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from operator import attrgetter
from typing import IO, Any, Final, NamedTuple, cast

import orjson

from otklik.agents.ingest.bounds import received_at_problem
from otklik.agents.ingest.envelope import RejectedRecord, decode_raw, normalize_body, to_interactions
from otklik.agents.ingest.vk import NormalizeError, normalize_vk, officers_edit
from otklik.agents.responses.engine import ResponseEngine
from otklik.agents.text.triage import Triage, decide
from otklik.schemas.managers import ManagerRecord, manager_record_of
from otklik.schemas.overrides import Override, OverrideError
from otklik.schemas.records import Interaction, Listing

__all__ = [
    "ROW_FIELDS",
    "ReplayError",
    "iso",
    "parse_time",
    "replay_engine",
    "replay_file",
    "run_replay",
    "tick_times",
]

ROW_FIELDS = (
    "item",
    "page",
    "kind",
    "author",
    "created_at",
    "outcome",
    "closed_at",
    "latency_s",
    "business_latency_s",
    "age_s",
    "business_age_s",
    "deadline",
    "breached",
    "responder",
    "reason",
)

# Events whose body carries no time of their own: a bare one cannot say when it happened.
_TIMELESS_SUFFIXES: Final = ("_delete", "_restore")

# How often (in event time) the engine's windows are pruned during a replay: bounds memory only.
_TICK_EVERY_S: Final = 3600


class ReplayError(ValueError):
    """A malformed input line; the message names the line number and what is wrong."""


# Replay formats two times per item, and items share seconds: a second's text is cached (bounded),
# built from "YYYY-MM-DDTHH:MM:", cached per minute (bounded), and the seconds from a table.
_SECONDS_KEPT = 200_000
_ISO: Final[dict[int, str]] = {}
_MINUTES: Final[dict[int, str]] = {}
_MINUTES_KEPT = 200_000
_SECONDS: Final = tuple(f"{s:02d}Z" for s in range(60))


def iso(t: int | None) -> str | None:
    """Unix seconds as ISO-8601 UTC with ``Z``."""
    if t is None:
        return None
    text = _ISO.get(t)
    if text is None:
        if len(_ISO) >= _SECONDS_KEPT:
            _ISO.clear()
        text = _ISO[t] = _iso_by_minute(t)
    return text


def _iso_by_minute(t: int) -> str:
    minute, second = divmod(t, 60)
    prefix = _MINUTES.get(minute)
    if prefix is None:
        if len(_MINUTES) >= _MINUTES_KEPT:
            _MINUTES.clear()
        prefix = _MINUTES[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    return prefix + _SECONDS[second]


def parse_time(value: Any) -> int:
    """``received_at`` / ``--now``: unix seconds (int, float or digits) or ISO-8601 with a time zone."""
    if type(value) is int:
        return value
    if type(value) is float:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is neither unix seconds nor an ISO-8601 time") from None
        if moment.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: add Z or an offset such as +03:00")
        return int(moment.timestamp())
    raise ValueError(f"{value!r} is neither unix seconds nor an ISO-8601 time")


def _bare_date(body: dict[str, Any]) -> Any:
    obj = body.get("object")
    if type(obj) is not dict:
        return None
    date = obj.get("date")
    if date is None and type(obj.get("message")) is dict:
        date = obj["message"].get("date")
    return date


class OverrideLine(NamedTuple):
    """A correction of triage in an event file: ``{"received_at": ..., "override": {"item",
    "needs_answer", "by", "note"}}`` (what ``otklik.overrides`` holds), applied at its time."""

    received_at: int
    correction: Override


class ManagerLine(NamedTuple):
    """A change of a page's managers in an event file (docs/responses.md, "Page replies"): a VK
    ``group_officers_edit`` body, or ``{"managers": <a record of otklik.managers>}``, at its time."""

    received_at: int
    page: str
    record: ManagerRecord


def _managers(data: dict[str, Any], number: int) -> ManagerLine:
    try:
        record = manager_record_of(data["managers"])
    except ValueError as exc:  # msgspec.ValidationError is one
        raise ReplayError(f"line {number}: managers: {exc}") from None
    problem = received_at_problem(record.at)
    if problem is not None:
        raise ReplayError(f"line {number}: managers.at: {problem}")
    return ManagerLine(record.at, record.page, record)


def _officers(body: Any, received_at: int, number: int) -> list[ManagerLine]:
    """A body :func:`normalize_vk` found nothing to measure in: the change of managers it says, if any
    (the worker's normalizer does the same)."""
    try:
        change = officers_edit(body, received_at)
    except NormalizeError as exc:
        raise ReplayError(f"line {number}: {exc.reason}") from None
    return [] if change is None else [ManagerLine(received_at, change.page, change)]


def _received_at(data: dict[str, Any], number: int) -> int:
    if "received_at" not in data:
        raise ReplayError(f"line {number}: received_at: missing")
    try:
        received_at = parse_time(data["received_at"])
    except ValueError as exc:
        raise ReplayError(f"line {number}: received_at: {exc}") from None
    problem = received_at_problem(received_at)  # a replay has no receiving clock: the absolute bounds
    if problem is not None:
        raise ReplayError(f"line {number}: received_at: {problem}")
    return received_at


def _override(data: dict[str, Any], number: int) -> OverrideLine:
    received_at = _received_at(data, number)
    spec = data["override"]
    if type(spec) is not dict:
        raise ReplayError(f"line {number}: override: expected a JSON object")
    try:
        return OverrideLine(received_at, Override.parse(spec))  # the same rules as the worker's API
    except OverrideError as exc:
        raise ReplayError(f"line {number}: override: {exc}") from None


def _decode(
    line: bytes, number: int, tg_links: Mapping[int, int]
) -> list[Interaction] | list[Interaction | Listing] | list[OverrideLine] | list[ManagerLine]:
    """One input line as interactions (or a correction, a change of managers, a catch-up's listing);
    raises :class:`ReplayError` naming the line."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as bad_json:
        raise ReplayError(f"line {number}: not JSON: {bad_json}") from None
    if type(data) is not dict:
        raise ReplayError(f"line {number}: expected a JSON object, got {type(data).__name__}")
    if "override" in data:
        return [_override(data, number)]
    if "managers" in data:
        return [_managers(data, number)]
    if "platform" in data:  # a raw envelope: decoded and normalized by the worker's own functions
        try:
            envelope = decode_raw(line)
            found = to_interactions(envelope, tg_links)
        except RejectedRecord as exc:
            raise ReplayError(f"line {number}: {exc.reason}") from None
        if not found and envelope.platform == "vk":
            return _officers(envelope.body, int(envelope.received_at), number)
        return found
    if "body" in data:
        body = data["body"]
        received_at = _received_at(data, number)
    else:
        body = data
        event = body.get("type")
        if type(event) is str and (event.endswith(_TIMELESS_SUFFIXES) or event == "group_officers_edit"):
            raise ReplayError(
                f"line {number}: a bare {event} body has no time of its own; "
                'wrap it as {"received_at": ..., "body": ...}'
            )
        date = _bare_date(body)
        if type(date) is not int:
            try:
                measured = normalize_vk(body, 0)  # only whether it is measured: no time to check
            except NormalizeError as exc:
                raise ReplayError(f"line {number}: {exc.reason}") from None
            if not measured:
                return []  # an event otklik does not measure: its time does not matter
            raise ReplayError(
                f'line {number}: a bare body without object.date; wrap it as {{"received_at": ..., "body": ...}}'
            )
        received_at = date
    try:
        records = normalize_body("vk", body, received_at)
    except NormalizeError as exc:
        raise ReplayError(f"line {number}: {exc.reason}") from None
    return records or _officers(body, received_at, number)


def _closed_row(
    item: str,
    page: str,
    kind: str,
    author: str,
    created_at: int,
    outcome: str,
    closed_at: int | None,
    latency_s: int | None,
    business_latency_s: int | None,
    deadline: str,
    breached: bool,
    responder: str | None,
    reason: str | None,
    extra: dict[str, Any],
    version: int,
) -> dict[str, Any]:
    """The output row of a record, built by the engine in place of a :class:`ResponseRecord` (same
    fields, same order): a replay only prints its records, so it skips building them. The output keeps
    one row per item, its last, so the record's ``version`` is not printed."""
    row = _CLOSED_ROW.copy()  # see _ROW_TEMPLATE
    row["item"] = item
    row["page"] = page
    row["kind"] = kind
    row["author"] = author
    row["created_at"] = iso(created_at)
    row["outcome"] = outcome
    row["closed_at"] = iso(closed_at)
    row["latency_s"] = latency_s
    row["business_latency_s"] = business_latency_s
    row["deadline"] = deadline
    row["breached"] = breached
    row["responder"] = responder
    row["reason"] = reason
    return row


def _open_row(
    item: str,
    page: str,
    kind: str,
    author: str,
    created_at: int,
    age: int,
    business_age: int,
    deadline: str,
    breached: bool,
) -> dict[str, Any]:
    """The output row of an item still open at the end."""
    row = _OPEN_ROW.copy()  # see _ROW_TEMPLATE
    row["item"] = item
    row["page"] = page
    row["kind"] = kind
    row["author"] = author
    row["created_at"] = iso(created_at)
    row["age_s"] = age
    row["business_age_s"] = business_age
    row["deadline"] = deadline
    row["breached"] = breached
    return row


# Rows are copies of a template (a copy clones the key table at once: a third cheaper than a dict
# display of fifteen keys), filled in; the template fixes the order of the fields, ROW_FIELDS.
_ROW_TEMPLATE: Final = dict.fromkeys(ROW_FIELDS)
_CLOSED_ROW: Final = dict(_ROW_TEMPLATE)
_OPEN_ROW: Final = dict(_ROW_TEMPLATE, outcome="open")


def run_replay(
    lines: Iterable[bytes],
    registry: Any,
    now: int | None = None,
    *,
    on_error: Callable[[int, str], None] | None = None,
    late_window_s: int = 600,
    retention_s: int = 30 * 86400,
    triage: Triage | None = decide,
    tg_links: Mapping[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Replay event lines; one row per item, ordered by creation time then item id.

    ``registry`` is anything with ``page(page_id) -> PageConfig`` (a :class:`~otklik.agents.registry.Registry`).
    ``now`` (unix seconds) is when open items' ages are measured; by default the last event's time.
    Malformed lines are passed to ``on_error(line_number, reason)`` and skipped.
    ``triage`` is what the live worker uses (:func:`otklik.agents.text.triage.decide`); None judges every item.
    ``tg_links`` maps Telegram discussion groups to their channels, as the worker's ``OTKLIK_TG_LINKS``
    does (see :mod:`otklik.agents.ingest.telegram`); None: no links.
    """
    # The state holds no reference cycles, and the cyclic collector would rescan it over and over
    # while hundreds of thousands of records are built: a third of the time. Off for the run.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        interactions = _decode_all(lines, on_error, {} if tg_links is None else tg_links)
        engine = replay_engine(registry.page, late_window_s=late_window_s, retention_s=retention_s, triage=triage)
        rows = _replay(engine, interactions, now)
        return _in_output_order(rows)
    finally:
        if gc_was_enabled:
            gc.enable()


def replay_engine(
    page_config: Callable[[str], Any],
    *,
    late_window_s: int = 600,
    retention_s: int = 30 * 86400,
    triage: Triage | None = decide,
) -> ResponseEngine:
    """The response engine as a replay runs it; its records are output rows (see :func:`_closed_row`)."""
    return ResponseEngine(
        page_config,
        late_window_s=late_window_s,
        retention_s=retention_s,
        watch_deadlines=False,  # open items are judged at the end
        triage=triage,
        keep_event_ids=True,  # never persisted; the ids are held in the interactions anyway
        record=_closed_row,  # records are only printed: build their rows directly
    )


def _decode_all(
    lines: Iterable[bytes],
    on_error: Callable[[int, str], None] | None,
    tg_links: Mapping[int, int],
) -> list[Interaction | Listing | OverrideLine | ManagerLine]:
    """Every line's interactions (or its correction, or its change of managers) in order of ``received_at``, file order breaking
    ties; malformed lines go to ``on_error`` in file order."""
    interactions = _decode_numbered(enumerate(lines, 1), on_error, tg_links)
    # Stable, so file order breaks ties; most files are nearly in order, which costs little to sort.
    interactions.sort(key=_RECEIVED_AT)
    return interactions


def _decode_numbered(
    numbered: Iterable[tuple[int, bytes]],
    on_error: Callable[[int, str], None] | None,
    tg_links: Mapping[int, int],
) -> list[Interaction | Listing | OverrideLine | ManagerLine]:
    """The interactions (or corrections, or changes of managers) of numbered lines, in the lines'
    order; malformed lines go to ``on_error`` in that order. A job of a parallel replay (see
    :mod:`otklik.agents.replay_jobs`) decodes its run of the file's lines this way."""
    loads = orjson.loads
    interactions: list[Any] = []
    batch: list[Any]
    for number, line in numbered:
        # The common line, {"received_at": <int>, "body": {...}} (VK), takes the short path; anything else
        # (envelopes, and every error, with its message) goes through _decode.
        try:
            data = loads(line)
            body = data["body"]
            received_at = data["received_at"]
        except (orjson.JSONDecodeError, KeyError, TypeError):  # not JSON, not an object, no body or time
            received_at = None
        try:
            if type(received_at) is int and "platform" not in data:
                try:
                    batch = normalize_body("vk", body, received_at)
                except NormalizeError as bad:  # its own name: compiled, a name keeps the type of its first use
                    raise ReplayError(f"line {number}: {bad.reason}") from None
                if not batch:  # nothing measured: perhaps a change of managers
                    batch = _officers(body, received_at, number)
            elif not line.strip():
                continue
            else:
                batch = _decode(line, number, tg_links)
        except ReplayError as error:
            if on_error is not None:
                on_error(number, str(error))
            continue
        interactions += batch  # the interactions of one line share its received_at
    return interactions


_RECEIVED_AT: Final = attrgetter("received_at")


def tick_times(times: list[int]) -> list[int]:
    """When a replay of events received at ``times`` (sorted) ticks its engine: at the first event an
    hour (:data:`_TICK_EVERY_S`) or more after the first event or the previous tick. A parallel replay
    ticks every job at the times of the whole input, so each page sees the ticks it would alone."""
    ticks: list[int] = []
    if not times:
        return ticks
    at = bisect_left(times, times[0] + _TICK_EVERY_S)
    while at < len(times):
        tick = times[at]
        ticks.append(tick)
        at = bisect_left(times, tick + _TICK_EVERY_S, at)
    return ticks


def _replay(
    engine: ResponseEngine,
    interactions: list[Interaction | Listing | OverrideLine | ManagerLine],
    now: int | None,
    ticks: list[int] | None = None,
    last: int | None = None,
) -> list[dict[str, Any]]:
    """Run the interactions through the engine: the output row of every item, in no particular order.

    ``ticks`` (:func:`tick_times`) and ``last``, the last event's time, default to the interactions'
    own; a job of a parallel replay passes those of the whole input."""
    rows: dict[str, dict[str, Any]] = {}  # by item: a later record of an item replaces the earlier one
    if ticks is None:
        ticks = tick_times([ia.received_at for ia in interactions])
    if last is None:
        last = interactions[-1].received_at if interactions else 0
    ticks = [*ticks, sys.maxsize]  # a sentinel: no tick after the last one
    next_tick = ticks[0]
    at = 0
    # The engine's records are output rows here (see replay_engine): hence the casts.
    for ia in interactions:
        while ia.received_at >= next_tick:
            # Settles what the late window let go, prunes the windows; open items are judged at the end.
            for row in cast(list[Any], engine.tick(next_tick, report_breaches=False)):
                rows[row["item"]] = row
            at += 1
            next_tick = ticks[at]
        if type(ia) is OverrideLine:
            c = ia.correction
            engine.override(c.page, c.item, c.needs_answer, c.by, ia.received_at, c.note)
            continue
        if type(ia) is ManagerLine:
            engine.apply_managers(ia.record)
            continue
        if type(ia) is Listing:  # a catch-up's listing, from a raw envelope of the catch-up
            records = cast(list[Any], engine.listing(ia))
        else:
            records = cast(list[Any], engine.process(ia))  # type: ignore[arg-type]
        if records:
            for row in records:
                rows[row["item"]] = row
    if now is None:
        now = last
    # No more events will come: tentative outcomes are final; then expire what is past the horizon at now.
    for row in cast(list[Any], engine.settle_all()):
        rows[row["item"]] = row
    for row in cast(list[Any], engine.tick(max(now, last), report_breaches=False)):
        rows[row["item"]] = row  # expiries
    out: list[dict[str, Any]] = []
    add = out.append
    for item, page, kind, author, created_at, age, business_age, deadline, breached in engine.open_ages(now):
        if item in rows:  # an item closed and then restored is open: its open row replaces the record
            del rows[item]
        add(_open_row(item, page, kind, author, created_at, age, business_age, deadline, breached))
    out += rows.values()
    return out


def _in_output_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """By creation time, then item id: ISO-8601 UTC strings of one format (fixed length) sort as the
    times do, so one concatenated string orders like the (time, item) pair, and compares faster.
    Item ids are unique, so the order does not depend on the order of ``rows``."""
    rows.sort(key=_created_then_item)
    return rows


def _created_then_item(row: dict[str, Any]) -> str:
    return row["created_at"] + row["item"]  # type: ignore[no-any-return]


def replay_file(
    path: str,
    registry_path: str,
    now: int | str | None = None,
    out: str | IO[bytes] | None = None,
    *,
    err: IO[str] | None = None,
    tg_links: Mapping[int, int] | None = None,
    jobs: int = 1,
    phases: dict[str, Any] | None = None,
) -> dict[str, int]:
    """The CLI edge: read ``path`` (JSON Lines), load the registry, write rows as JSON Lines to ``out``
    (a path, a binary stream, or stdout), report malformed lines to ``err`` (stderr). Returns counts.
    ``tg_links``: as for :func:`run_replay`. ``jobs`` > 1 splits the work by page across that many
    processes (:mod:`otklik.agents.replay_jobs`), with the same output; ``phases``: the CPU seconds of
    their phases (see :func:`otklik.agents.replay_jobs.replay_bytes`)."""
    from otklik.agents.registry import load_registry

    err = err if err is not None else sys.stderr
    registry = load_registry(registry_path)
    malformed = 0

    def report(number: int, reason: str) -> None:
        nonlocal malformed
        malformed += 1
        print(f"{path}: {reason}", file=err)

    started = time.perf_counter()
    at = None if now is None else parse_time(now)
    pieces: list[bytes] | list[bytes | memoryview]
    if jobs > 1:
        from otklik.agents.replay_jobs import replay_bytes

        # Mapped, not read: each job reads only the bytes it needs. The jobs' pieces, written in turn:
        # joining them would copy the whole output once more.
        with open(path, "rb") as source:
            data = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(source.fileno()).st_size else b""
        count, items, pieces = replay_bytes(data, registry, at, jobs, on_error=report, tg_links=tg_links, phases=phases)
    else:
        with open(path, "rb") as source:
            data = source.read()
        lines = data.splitlines()
        count = len(lines)
        rows = run_replay(lines, registry, at, on_error=report, tg_links=tg_links)
        items = len(rows)
        pieces = [b"".join([orjson.dumps(row) + b"\n" for row in rows])]
    if out is None:
        for piece in pieces:
            sys.stdout.buffer.write(piece)
        sys.stdout.buffer.flush()
    elif isinstance(out, str):
        with open(out, "wb") as sink:
            for piece in pieces:
                sink.write(piece)
    else:
        for piece in pieces:
            out.write(piece)
    elapsed = time.perf_counter() - started
    print(
        f"otklik replay: {count} lines, {malformed} malformed, {items} items in {elapsed:.2f}s",
        file=err,
    )
    return {"lines": count, "malformed": malformed, "items": items}
