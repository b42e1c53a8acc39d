"""Which open items a catch-up's listing closes, and when
(pure; docs/responses.md, "A comment the API no longer returns").

A :class:`~otklik.schemas.records.Listing` says that the comments on one object created in
``[since, until]`` are exactly its ids, as a complete read of the VK API found them. An open item on
that object, created in that window and not listed, was deleted without the deletion reaching us. VK
does not say who deleted it nor when: the engine applies it as a deletion by someone unnamed
(``moderated``, listed for review), dated at the earliest moment it can have gone unseen, so a page is
never found late by a deletion it may have made in time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from otklik.schemas.records import Listing


def unlisted(
    listing: Listing, listed: Collection[int], object_id: str, seq: int, created_at: int, last_life: int
) -> bool:
    """Is the open item (on ``object_id``, comment id ``seq``, created at ``created_at``, its latest
    deletion or restoration received at ``last_life``, 0 for none) deleted by what ``listing`` says?
    ``listed`` is the listing's ids as a set.

    Only an item on the listed object, created within the window, and missing from the ids; never one
    whose latest restoration came at or after ``until`` (the read may have seen it still deleted)."""
    return (
        object_id == listing.object_id
        and listing.since <= created_at <= listing.until
        and last_life < listing.until
        and seq not in listed
    )


def deleted_at(listing: Listing, created_at: int, life_times: Iterable[int]) -> int:
    """When the unseen deletion takes effect: the earliest moment it can have happened unseen, which
    is after the item's creation, after its latest deletion or restoration we did receive (one second
    after, so that it follows it in the item's walk), and not before ``unseen_from``. Never after the
    listing's receipt."""
    at = max(created_at, listing.unseen_from)
    for t in life_times:
        if t + 1 > at:
            at = t + 1
    return min(at, listing.received_at)
