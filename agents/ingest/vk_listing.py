"""A catch-up's listing of one object's comments, as a body of ``otklik.raw`` and as the record the
response engine reads (pure; docs/responses.md, "A comment the API no longer returns").

VK sends no event for a deletion we missed, and its API does not return a deleted comment. So when a
catch-up reads a post's (or a board topic's) comments completely, it writes what it read: "the
comments of this object created in ``[since, until]`` are exactly these ids", received now, with
``unseen_from`` the earliest moment a deletion can have gone unseen (the start of the window it read).
The body is otklik's own (``type: otklik_listing``), never VK's, and the normalizer accepts it only
from the catch-up (envelope source ``vk-api``); it becomes a :class:`Listing` record.

Direct messages get no listing: the engine knows no deletion of a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from otklik.agents.ingest.vk import NormalizeError, require_int
from otklik.agents.ingest.vk_api_bodies import API_VERSION
from otklik.schemas.records import Listing

LISTING_TYPE: Final = "otklik_listing"
LISTING_SOURCE: Final = "vk-api"  # the only envelope source whose listings are read
LISTED_KINDS: Final = frozenset({"wall", "board", "photo", "video", "market"})
MAX_IDS: Final = 100_000  # a complete read of one object is far smaller; a bound on what one record holds


def listing_body(
    group_id: int, kind: str, object_id: int, since: int, until: int, unseen_from: int, ids: Iterable[int]
) -> dict[str, Any]:
    """The body of a listing: object ``kind``/``object_id`` of VK group ``group_id`` had exactly the
    comments ``ids`` created in ``[since, until]``. Its event id names the object and the window, so the
    same listing produced twice is one event."""
    listed = sorted(set(ids))
    return {
        "type": LISTING_TYPE,
        "group_id": group_id,
        "event_id": f"api:{group_id}:listing:{kind}:{object_id}:{since}:{until}",
        "v": API_VERSION,
        "object": {
            "kind": kind,
            "object_id": object_id,
            "since": since,
            "until": until,
            "unseen_from": unseen_from,
            "ids": listed,
        },
    }


def is_listing(body: Any) -> bool:
    return type(body) is dict and body.get("type") == LISTING_TYPE


def listing_of(body: Any, received_at: int | float, source: str) -> Listing:
    """The :class:`Listing` a listing body says; :class:`NormalizeError` naming what is wrong, and for a
    body that did not come from the catch-up (anyone else could close items with it)."""
    where = LISTING_TYPE
    if source != LISTING_SOURCE:
        raise NormalizeError(f"{where}: only the catch-up writes listings (source {LISTING_SOURCE}), not {source!r}")
    if not is_listing(body):
        raise NormalizeError(f"{where}: not a listing body")
    group_id = require_int(body, "group_id", where)
    if group_id <= 0:
        raise NormalizeError(f"{where}.group_id: expected a positive integer, got {group_id}")
    event_id = body.get("event_id")
    if event_id is not None and type(event_id) is not str:
        raise NormalizeError(f"{where}.event_id: expected a string")
    obj = body.get("object")
    if type(obj) is not dict:
        raise NormalizeError(f"{where}.object: expected a JSON object")
    inner = f"{where}: object"
    kind = obj.get("kind")
    if kind not in LISTED_KINDS:
        raise NormalizeError(f"{inner}.kind: expected one of {sorted(LISTED_KINDS)}, got {kind!r}")
    object_id = require_int(obj, "object_id", inner)
    since = require_int(obj, "since", inner)
    until = require_int(obj, "until", inner)
    unseen_from = require_int(obj, "unseen_from", inner)
    if object_id <= 0 or since < 0 or until < since:
        raise NormalizeError(f"{inner}: expected a positive object_id and 0 <= since <= until")
    received = int(received_at)
    if unseen_from > received or until > received:
        raise NormalizeError(f"{inner}: until and unseen_from must not be later than the listing's receipt")
    ids = obj.get("ids")
    if type(ids) is not list or len(ids) > MAX_IDS:
        raise NormalizeError(f"{inner}.ids: expected a list of at most {MAX_IDS} comment ids")
    for comment_id in ids:
        if type(comment_id) is not int or comment_id <= 0:
            raise NormalizeError(f"{inner}.ids: expected positive integers, got {comment_id!r}")
    page = f"vk:{group_id}"
    return Listing(
        platform="vk",
        page=page,
        object_kind=kind,
        object_id=f"{page}:{kind}:{object_id}",
        received_at=received,
        event_id=event_id,
        since=since,
        until=until,
        unseen_from=unseen_from,
        ids=sorted(set(ids)),
    )
