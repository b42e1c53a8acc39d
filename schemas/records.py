"""Typed records that travel between otklik's topics.

These are plain frozen records (dataclasses; :class:`Interaction`, built once per event, is a msgspec
Struct for speed) so that the pure core can use them without faust; the faust agents encode them
with their ``to_json`` and decode ``otklik.interactions`` with :meth:`Interaction.from_json`.
The language-neutral contract of each topic is the JSON Schema in ``schemas/json/``.

Times are integer unix seconds (UTC) throughout the core: VK's ``date`` has one-second
resolution, and integers keep replay output identical whatever the order of arrival.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import orjson

Platform = Literal["vk", "tg", "max", "ok"]

# Where a citizen's text lives: the object it is written on decides which replies can answer it.
ObjectKind = Literal["wall", "photo", "video", "market", "board", "dm"]

# What happened to an item of text.
Action = Literal["new", "edit", "delete", "restore"]


@dataclass(frozen=True, slots=True)
class RawEnvelope:
    """A record of ``otklik.raw``: one platform body, verbatim, with where and when it came in."""

    platform: Platform
    source: str  # "vk-callback", "vk-longpoll", "vk-api" (catch-up), "simulator", "tg-webhook", "max-webhook"
    received_at: float  # unix seconds, when our edge received it
    body: dict[str, Any]

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson writes a dataclass as asdict() would, without the copy


class Interaction(msgspec.Struct, frozen=True):
    """A record of ``otklik.interactions``: one comment, reply, message, edit, deletion or restoration.

    Identifiers follow docs/data-flow.md, "Identifiers": ``page`` is ``vk:<group_id>``, ``item`` is e.g.
    ``vk:<group_id>:wall:<post_id>:<comment_id>``, authors are ``vk:user:<id>`` or ``vk:<group_id>``.

    A frozen msgspec Struct rather than a frozen dataclass: one is built per event on the replay path,
    and a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost ~2.3 µs of the
    ~10 µs budget per event; this costs ~0.1 µs positionally, ~0.5 µs by keyword. Same fields, same
    order, same JSON; equality, hashing, pickling and immutability as before.
    """

    platform: Platform
    page: str  # "vk:123456"
    action: Action
    object_kind: ObjectKind
    object_id: str  # the post / photo / video / market item / topic / conversation: "vk:123456:wall:88"
    item: str  # "vk:123456:wall:88:1024"
    seq: int  # the item's own number on its object (comment id, conversation_message_id): orders same-second items
    received_at: int  # unix seconds, when otklik received the event
    event_id: str | None = None  # the platform's delivery id, for dedupe (VK: event_id)
    created_at: int | None = None  # the item's own time (VK: date); None for delete / restore
    author: str | None = None  # None when the platform does not say (deletions)
    thread_root: str | None = None  # item id of the thread's top-level comment (own id when top level)
    reply_to_item: str | None = None  # VK reply_to_comment, as an item id
    reply_to_author: str | None = None  # VK reply_to_user, as an author id
    deleted_by: str | None = None  # for deletions: who deleted it (VK deleter_id, else user_id)
    admin_author: str | None = None  # community messages: the administrator who wrote it (VK admin_author_id)
    text: str = ""
    attachments: int = 0  # photos, documents … attached: a bare photo of a pothole is a report

    def to_json(self) -> bytes:
        return orjson.dumps(msgspec.structs.asdict(self))

    @classmethod
    def from_json(cls, value: bytes) -> Interaction:
        """Decode a record of ``otklik.interactions``, checking every field's type (unknown fields are
        ignored, for records of a newer writer); raises ``msgspec.DecodeError`` (ValidationError is one)
        naming the field that is wrong."""
        return _INTERACTION_DECODER.decode(value)


_INTERACTION_DECODER = msgspec.json.Decoder(Interaction)


# The field names in declaration order (``__slots__`` of a Struct is sorted by name).
INTERACTION_FIELDS: tuple[str, ...] = Interaction.__struct_fields__


class Listing(msgspec.Struct, frozen=True, kw_only=True):
    """A record of ``otklik.interactions`` written only for a catch-up's listing (``action: listing``):
    the comments on one object created in ``[since, until]`` are exactly ``ids`` (the platform's comment
    ids, an item's ``seq``), as a complete read of the VK API returned them. The response engine closes
    the object's open items created in that window and not listed as deleted by someone unnamed, dated
    no earlier than ``unseen_from``, the earliest moment a deletion can have gone unseen
    (docs/responses.md, "A comment the API no longer returns")."""

    platform: Platform
    page: str
    action: Literal["listing"] = "listing"
    object_kind: ObjectKind
    object_id: str  # "vk:123456:wall:88"
    received_at: int
    event_id: str | None = None
    since: int
    until: int
    unseen_from: int
    ids: list[int]

    @property
    def item(self) -> str:
        """What the listing is about, where logs name an interaction's item: its object."""
        return self.object_id

    def to_json(self) -> bytes:
        return orjson.dumps(msgspec.structs.asdict(self))

    @classmethod
    def from_json(cls, value: bytes) -> Listing:
        """Decode a listing record, checking every field's type; raises ``msgspec.DecodeError``."""
        return _LISTING_DECODER.decode(value)


_LISTING_DECODER = msgspec.json.Decoder(Listing)

# What only a listing's JSON holds: the key and value as orjson writes them (a text can hold these
# characters only escaped), so a consumer of otklik.interactions tells the two records apart unparsed.
LISTING_MARK = b'"action":"listing"'


def page_of_item(item: str) -> str:
    """The page an item id belongs to: ``vk:123456:wall:88:1024`` → ``vk:123456``."""
    platform, page, _ = item.split(":", 2)
    return f"{platform}:{page}"


Outcome = Literal["answered", "moderated", "withdrawn", "open", "expired", "no_answer_needed"]


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """A record of ``otklik.responses``: an item that closed, or an open item that passed its deadline.

    ``version`` numbers the records written about one item: 1, 2, 3 … in the order they were written
    (an item can be open past its deadline, answered, or withdrawn, restored and open again). A
    consumer keeps the record with the highest version per item; after a crash the same record may be
    written twice, with the same content and version (docs/data-flow.md, "Consuming otklik.responses").
    """

    item: str
    page: str
    kind: Literal["comment", "board_post", "message"]
    author: str
    created_at: int
    outcome: Outcome
    closed_at: int | None
    latency_s: int | None
    business_latency_s: int | None
    deadline: str
    breached: bool
    responder: str | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = 0  # 0: not numbered (records written before versions existed)

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson writes a dataclass as asdict() would, without the copy


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record of ``otklik.dead-letters``: input that could not be processed, and why."""

    stage: str  # "normalize", "decode", ...
    reason: str
    input: str  # the offending record as text (decoded as UTF-8 with replacement)
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    failed_at: float = 0.0

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson writes a dataclass as asdict() would, without the copy


@dataclass(frozen=True, slots=True)
class Gap:
    """A record of ``otklik.gaps``: a time in which a community's events may not have reached otklik
    (docs/data-flow.md, "Gaps and catch-up"). ``community`` is a page id (``vk:<group_id>``); ``since`` and
    ``until`` are unix seconds, written as ``from`` and ``to``; ``why`` says what noticed it and
    ``detected_by`` which process (``longpoll``, ``gateway``)."""

    community: str
    since: int
    until: int
    why: str
    detected_by: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "community": self.community,
                "from": self.since,
                "to": self.until,
                "why": self.why,
                "detected_by": self.detected_by,
            }
        )

    @classmethod
    def from_json(cls, value: bytes) -> Gap:
        """Decode a record of ``otklik.gaps``; raises ``ValueError`` naming what is wrong."""
        data = orjson.loads(value)
        if not isinstance(data, dict):
            raise ValueError("a gap is a JSON object")
        community, since, until = data.get("community"), data.get("from"), data.get("to")
        if not isinstance(community, str) or not community.startswith("vk:"):
            raise ValueError(f"gap.community: {str(community)[:40]!r} is not a VK page id")
        if type(since) is not int or type(until) is not int or since >= until:
            raise ValueError("gap.from and gap.to: integer unix seconds, from before to")
        return cls(community, since, until, str(data.get("why", "")), str(data.get("detected_by", "")))
