"""What the store keeps of each record: topic records in, table rows out (docs/history.md, "What is kept").

Pure: decoding with every field's type checked, and the mapping to the rows of `streams/store/schema.py`.
The SQL that writes them (upserts by item and version) is `streams/store/writer.py`.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple, Protocol

import msgspec
import orjson

from otklik.agents.history.rating import classify
from otklik.agents.moderation_watch import ModerationRecord
from otklik.agents.responses.rules import KIND_OF_OBJECT, Managers, from_page, is_citizen
from otklik.schemas.links import platform_link
from otklik.schemas.managers import ManagerChange, ManagerRecord, decode_manager_record
from otklik.schemas.overrides import Override, OverrideError
from otklik.schemas.records import Interaction, ResponseRecord

__all__ = [
    "Judgement",
    "RecordError",
    "correction_event",
    "correction_judgements",
    "correction_row",
    "decode_interaction",
    "decode_managers",
    "decode_moderation",
    "decode_override",
    "decode_response",
    "interaction_events",
    "item_row",
    "judgement_of",
    "manager_changes",
    "moderation_row",
    "pending_row",
    "record_events",
]


class RecordError(ValueError):
    """A record the store cannot keep; the message names what is wrong (it goes to the dead letters)."""


class PageLike(Protocol):
    """What the store needs of the registry's ``PageConfig``."""

    id: str
    title: str | None
    region: str
    municipality: str
    sector: str
    administrators: frozenset[str]

    @property
    def deadline(self) -> Any: ...

    @property
    def clock(self) -> Any: ...


_RESPONSE: Final = msgspec.json.Decoder(ResponseRecord)
_MODERATION: Final = msgspec.json.Decoder(ModerationRecord)


def decode_response(value: bytes) -> ResponseRecord:
    try:
        record = _RESPONSE.decode(value)
    except msgspec.DecodeError as exc:
        raise RecordError(f"response record: {exc}") from None
    if record.version < 0:
        raise RecordError(f"response record: version {record.version} is negative")
    return record


def decode_moderation(value: bytes) -> ModerationRecord:
    try:
        return _MODERATION.decode(value)
    except msgspec.DecodeError as exc:
        raise RecordError(f"moderation record: {exc}") from None


def decode_interaction(value: bytes) -> Interaction:
    try:
        return Interaction.from_json(value)
    except msgspec.DecodeError as exc:
        raise RecordError(f"interaction: {exc}") from None


def decode_override(value: bytes) -> Override:
    try:
        return Override.parse(orjson.loads(value))
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"override: not JSON: {exc}") from None
    except OverrideError as exc:
        raise RecordError(f"override: {exc}") from None


def _place(page: PageLike) -> dict[str, Any]:
    return {
        "region": page.region,
        "municipality": page.municipality,
        "sector": page.sector,
        "page_title": page.title,
    }


def _due_at(page: PageLike, created_at: int) -> int | None:
    try:
        return int(page.deadline.due_at(page.clock, created_at))
    except (OverflowError, ValueError):  # a time the clock cannot place: the item is kept without one
        return None


def item_row(record: ResponseRecord, page: PageLike, now: int) -> dict[str, Any]:
    """The ``items`` row of a response record (without its text and received time: those come from the
    item's interaction). The page's place is the registry's at the time the store writes it."""
    flags = classify(record.outcome, record.breached)
    return {
        "item": record.item,
        "page": record.page,
        "platform": record.page.split(":", 1)[0],
        "kind": record.kind,
        "author": record.author,
        "created_at": record.created_at,
        "due_at": _due_at(page, record.created_at),
        "outcome": record.outcome,
        "closed_at": record.closed_at,
        "latency_s": record.latency_s,
        "business_latency_s": record.business_latency_s,
        "breached": record.breached,
        "needs_answer": flags.needs_answer,
        "judged": flags.judged,
        "responder": record.responder,
        "reason": record.reason,
        "deadline": record.deadline,
        "review": bool(record.extra.get("review", False)),
        **_place(page),
        "link": platform_link(record.item),
        "extra": orjson.dumps(record.extra).decode() if record.extra else None,
        "version": record.version,
        "updated_at": now,
    }


def pending_row(
    ia: Interaction, page: PageLike, now: int, text_kept_from: int, managers: Managers | None = None
) -> dict[str, Any] | None:
    """The ``items`` row of a citizen's new item, before the worker has judged it (version 0), or None
    when the interaction is not an item: a page reply, another community's comment (the engine's rule:
    docs/responses.md, "Page replies"). Its text is kept when written after ``text_kept_from``."""
    author = ia.author
    if ia.action != "new" or author is None or ia.created_at is None:
        return None
    if from_page(author, ia.page, page.administrators, managers, ia.created_at) or not is_citizen(author):
        return None
    return {
        "item": ia.item,
        "page": ia.page,
        "platform": ia.platform,
        "kind": KIND_OF_OBJECT[ia.object_kind],
        "author": author,
        "created_at": ia.created_at,
        "received_at": ia.received_at,
        "due_at": _due_at(page, ia.created_at),
        "outcome": "open",
        "closed_at": None,
        "latency_s": None,
        "business_latency_s": None,
        "breached": False,
        "needs_answer": True,
        "judged": False,
        "responder": None,
        "reason": None,
        "deadline": str(page.deadline.text),
        "review": False,
        **_place(page),
        "link": platform_link(ia.item),
        "text": ia.text if ia.created_at >= text_kept_from and ia.text else None,
        "extra": None,
        "version": 0,
        "updated_at": now,
    }


def _event(item: str, at: int, kind: str, dedupe: str, actor: str | None = None, **detail: Any) -> dict[str, Any]:
    return {
        "item": item,
        "at": at,
        "kind": kind,
        "actor": actor,
        "detail": orjson.dumps(detail).decode() if detail else None,
        "dedupe": dedupe[:300],
    }


def interaction_events(ia: Interaction, page: PageLike, managers: Managers | None = None) -> list[dict[str, Any]]:
    """Timeline events of an interaction: an item received, edited, deleted or restored, or a page reply
    to an item (``replied``, on the comment it replies to)."""
    source = ia.event_id or f"{ia.received_at}.{ia.seq}"
    author = ia.author
    if ia.action == "new":
        if author is not None and from_page(author, ia.page, page.administrators, managers, ia.created_at):
            target = ia.reply_to_item or (ia.thread_root if ia.thread_root != ia.item else None)
            if target is None or ia.created_at is None:
                return []
            return [_event(target, ia.created_at, "replied", f"{target}|replied|{ia.item}", author, reply=ia.item)]
        if ia.created_at is None:
            return []
        return [_event(ia.item, ia.created_at, "received", f"{ia.item}|received", author, received_at=ia.received_at)]
    kind = {"edit": "edited", "delete": "deleted", "restore": "restored"}[ia.action]
    actor = ia.deleted_by if ia.action == "delete" else author
    return [_event(ia.item, ia.received_at, kind, f"{ia.item}|{kind}|{source}", actor)]


def _override_mark(record: ResponseRecord) -> dict[str, Any]:
    """Which correction a record carries (the engine copies it into ``extra.override``), if any."""
    override = record.extra.get("override")
    if not isinstance(override, dict) or "at" not in override:
        return {}
    try:
        return {"override_at": int(override["at"]), "override_by": str(override.get("by"))}
    except (TypeError, ValueError, OverflowError):
        return {}


def record_events(record: ResponseRecord, due_at: int | None) -> list[dict[str, Any]]:
    """Timeline events of a response record: the deadline passing, or the judgement. Each carries the
    record's version, outcome and breach, and the correction it carries, so a correction's judgements
    before and after it are found whatever order the records came in (:func:`correction_judgements`)."""
    item, version = record.item, record.version
    judgement = {"version": version, "outcome": record.outcome, "breached": record.breached, **_override_mark(record)}
    if record.outcome == "open":
        at = due_at if due_at is not None else record.created_at
        return [_event(item, at, "breached", f"{item}|r{version}", deadline=record.deadline, **judgement)]
    at = record.closed_at if record.closed_at is not None else record.created_at
    return [_event(item, at, "judged", f"{item}|r{version}", record.responder, reason=record.reason, **judgement)]


class Judgement(NamedTuple):
    version: int
    outcome: str
    breached: bool
    override_at: int | None
    override_by: str | None


def judgement_of(detail: dict[str, Any]) -> Judgement | None:
    """The judgement a ``judged`` or ``breached`` event's detail records (None for events written before
    details carried it)."""
    if "version" not in detail:
        return None
    return Judgement(
        int(detail["version"]),
        str(detail["outcome"]),
        bool(detail["breached"]),
        detail.get("override_at"),
        detail.get("override_by"),
    )


def correction_judgements(
    history: list[Judgement], requested_at: int, by: str
) -> tuple[Judgement | None, Judgement | None]:
    """The item's judgement a correction changed, and the one it led to, from the item's records in any
    order: *after* is the first record carrying the correction; *before* the last record ahead of it
    (ahead of every record carrying it, or the newest, while none does yet)."""
    ordered = sorted(history)
    after = next((j for j in ordered if j.override_at == requested_at and j.override_by == by), None)
    if after is not None:
        ahead = [j for j in ordered if j.version < after.version]
    else:
        ahead = ordered
    return (ahead[-1] if ahead else None), after


def moderation_row(record: ModerationRecord) -> dict[str, Any]:
    return {
        "item": record.item,
        "kind": record.kind,
        "page": record.page,
        "role": record.role,
        "labels": orjson.dumps(list(record.labels)).decode(),
        "created_at": record.created_at,
        "at": record.at,
        "moderation_deadline": record.moderation_deadline,
        "visible_s": record.visible_s,
        "business_visible_s": record.business_visible_s,
        "deleted_by": record.deleted_by,
        "within_deadline": record.within_deadline,
    }


def correction_row(override: Override) -> dict[str, Any]:
    return {
        "item": override.item,
        "requested_at": int(override.requested_at),
        "by": override.by,
        "note": override.note,
        "needs_answer": override.needs_answer,
    }


def correction_event(override: Override) -> dict[str, Any]:
    at = int(override.requested_at)
    return _event(
        override.item,
        at,
        "corrected",
        f"{override.item}|corrected|{at}|{override.by}",
        override.by,
        needs_answer=override.needs_answer,
        note=override.note,
    )


def decode_managers(value: bytes) -> ManagerRecord:
    try:
        return decode_manager_record(value)
    except msgspec.DecodeError as exc:
        raise RecordError(f"managers record: {exc}") from None


def manager_changes(held: set[str], record: ManagerRecord) -> tuple[list[str], list[str]]:
    """Whose role begins and whose ends at ``record.at``, given the managers ``held`` now (the engine's
    rule: a complete list begins the roles of new names and ends those missing). ``held`` is updated."""
    if isinstance(record, ManagerChange):
        if record.manager and record.user not in held:
            held.add(record.user)
            return [record.user], []
        if not record.manager and record.user in held:
            held.discard(record.user)
            return [], [record.user]
        return [], []
    listed = set(record.users)
    begin, end = sorted(listed - held), sorted(held - listed)
    held.clear()
    held.update(listed)
    return begin, end
