"""Decoding of ``otklik.raw`` records (pure): bytes → a typed :class:`RawEnvelope` → interactions.

Every failure is a :class:`RejectedRecord` whose reason names what is wrong, so the faust agent can
send the input to the dead-letter topic and go on with the next record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from otklik.agents.ingest.bounds import (
    EARLIEST_S,
    LATEST_S,
    MAX_AHEAD_S,
    body_problem,
    created_at_problem,
    received_at_problem,
)
from otklik.agents.ingest.max import normalize_max
from otklik.agents.ingest.telegram import normalize_tg
from otklik.agents.ingest.vk import NormalizeError, normalize_vk, officers_edit
from otklik.agents.ingest.vk_listing import is_listing, listing_of
from otklik.schemas.managers import ManagerChange
from otklik.schemas.records import Interaction, Listing, RawEnvelope

PLATFORMS = ("vk", "tg", "max", "ok")


class RejectedRecord(ValueError):
    """A record that cannot be processed; ``stage`` says where, the message says why."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


class OutOfBounds(NormalizeError):
    """A body whose times are out of bounds (docs/data-flow.md, "Bounded input")."""


def decode_raw(value: bytes | None, now: float | None = None) -> RawEnvelope:
    """A record of ``otklik.raw`` checked and typed; ``now`` is the receiving clock (the worker's wall
    clock at processing; None in a replay: see :func:`~otklik.agents.ingest.bounds.received_at_problem`).
    Raises :class:`RejectedRecord` naming what is wrong."""
    if not value:
        raise RejectedRecord("decode", "empty record")
    try:
        data: Any = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RejectedRecord("decode", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RejectedRecord("decode", f"envelope is a JSON {type(data).__name__}, not an object")
    platform = data.get("platform")
    if platform not in PLATFORMS:
        raise RejectedRecord("decode", f"envelope.platform: {platform!r} is not one of {', '.join(PLATFORMS)}")
    received_at: Any = data.get("received_at")  # checked next
    problem = received_at_problem(received_at, now)
    if problem is not None:
        raise RejectedRecord("decode", f"envelope.received_at: {problem}")
    body = data.get("body")
    if not isinstance(body, dict):
        raise RejectedRecord("decode", "envelope.body: missing or not a JSON object")
    problem = body_problem(body, "envelope.body")
    if problem is not None:
        raise RejectedRecord("decode", problem)
    source = data.get("source", "unknown")
    if not isinstance(source, str):
        raise RejectedRecord("decode", "envelope.source: not a string")
    return RawEnvelope(platform=platform, source=source, received_at=float(received_at), body=body)


def normalize_body(
    platform: str, body: Any, received_at: int, tg_links: Mapping[int, int] | None = None
) -> list[Interaction]:
    """A platform body received at ``received_at`` as interaction records ([] for events otklik does not
    measure): the one choice of normalizer per platform, for the worker (:func:`to_interactions`) and
    ``otklik replay`` alike. ``tg_links``: discussion group → channel (see telegram.py). Raises
    :class:`NormalizeError` naming what is wrong, :class:`OutOfBounds` when it is a time (only the
    bounds that need no receiving clock apply here: docs/data-flow.md, "Bounded input")."""
    if type(received_at) is not int or not EARLIEST_S <= received_at <= LATEST_S:
        problem = received_at_problem(received_at)
        if problem is not None:
            raise OutOfBounds(f"received_at: {problem}")
    if platform == "vk":
        records = normalize_vk(body, received_at)
    elif platform == "tg":
        records = normalize_tg(body, received_at, tg_links)
    elif platform == "max":
        records = normalize_max(body, received_at)
    else:
        raise NormalizeError(f"platform {platform!r} has no normalizer yet")
    latest = received_at + MAX_AHEAD_S
    for record in records:
        created = record.created_at
        if created is not None and not EARLIEST_S <= created <= latest:
            problem = created_at_problem(created, int(received_at))
            if problem is not None:
                raise OutOfBounds(f"{platform} {_DATE_FIELDS[platform]}: {problem}")
    return records


def interaction_problem(ia: Interaction) -> str | None:
    """Why an interaction record's times are out of the bounds :func:`normalize_body` keeps (any
    producer may write ``otklik.interactions``), or None when they are within them."""
    received, created = ia.received_at, ia.created_at
    if EARLIEST_S <= received <= LATEST_S and (created is None or EARLIEST_S <= created <= received + MAX_AHEAD_S):
        return None  # the usual record, in two comparisons
    problem = received_at_problem(ia.received_at)
    if problem is not None:
        return f"received_at: {problem}"
    if ia.created_at is not None:
        problem = created_at_problem(ia.created_at, ia.received_at)
        if problem is not None:
            return f"created_at: {problem}"
    return None


def listing_problem(ls: Listing) -> str | None:
    """Why a listing record's times are out of bounds (as for :func:`interaction_problem`), or None."""
    problem = received_at_problem(ls.received_at)
    if problem is not None:
        return f"received_at: {problem}"
    if not 0 <= ls.since <= ls.until <= ls.received_at or ls.unseen_from > ls.received_at:
        return "since, until, unseen_from: expected 0 <= since <= until, and no time after received_at"
    return None


# Where each platform's body carries its own time (the records' created_at).
_DATE_FIELDS = {"vk": "object.date", "tg": "message.date", "max": "message.timestamp / 1000"}


def to_interactions(envelope: RawEnvelope, tg_links: Mapping[int, int]) -> list[Interaction | Listing]:
    """The platform body as interaction records ([] for events otklik does not measure). ``tg_links``:
    Telegram's discussion groups → channels, as the service's settings parsed them (``OTKLIK_TG_LINKS``).
    A catch-up's listing (agents/ingest/vk_listing.py) becomes a :class:`Listing`, and only when the
    catch-up wrote it."""
    try:
        if envelope.platform == "vk" and is_listing(envelope.body):
            return [listing_of(envelope.body, envelope.received_at, envelope.source)]
        return normalize_body(envelope.platform, envelope.body, int(envelope.received_at), tg_links)  # type: ignore[return-value]
    except NormalizeError as exc:
        raise RejectedRecord("normalize", str(exc)) from None


def manager_change(envelope: RawEnvelope) -> ManagerChange | None:
    """The change of a page's managers a body says (VK ``group_officers_edit``), else None; for a body
    :func:`to_interactions` found nothing to measure in (docs/responses.md, "Page replies")."""
    if envelope.platform != "vk":
        return None
    try:
        return officers_edit(envelope.body, int(envelope.received_at))
    except NormalizeError as exc:
        raise RejectedRecord("normalize", str(exc)) from None


@dataclass
class NormalizeTally:
    """What one batch of the normalize agent adds to the metrics, counted in plain dicts."""

    raw: Counter[str] = field(default_factory=Counter)  # records of otklik.raw by platform ("unknown": undecodable)
    interactions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (platform, action)
    last_seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (platform, source) -> received_at


def gateway_problem(
    platform: str, body: Any, received_at: float, tg_links: Mapping[int, int] | None = None
) -> str | None:
    """What the gateway refuses (a 4xx naming it) in a body it received at ``received_at`` by its own
    clock: a body the encoder cannot write back, or times out of bounds — the worker would dead-letter
    it (docs/data-flow.md, "Bounded input"). None otherwise: a body otklik cannot normalize for another
    reason is accepted and kept, and the worker dead-letters it with that reason, as before."""
    problem = body_problem(body)
    if problem is not None:
        return problem
    try:
        normalize_body(platform, body, int(received_at), tg_links)
    except OutOfBounds as exc:
        return exc.reason
    except NormalizeError:
        return None
    return None
