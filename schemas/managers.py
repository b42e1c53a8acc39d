"""The records of ``otklik.managers``: who manages a page's VK community, and since when.

A reply counts as the page's when its author was one of the community's managers at the reply's
time (docs/responses.md, "Page replies"). Two records say so, keyed by page like every other:

- :class:`ManagerChange`: one person's role began or ended at ``at`` (VK's ``group_officers_edit``
  callback, as it happens);
- :class:`ManagerList`: the community's complete list of managers as of ``at`` (``groups.getMembers``
  with ``filter=managers``, when a community is first seen, every few hours, and by
  ``otklik managers sync``): roles begin for those new to it and end for those missing from it.

The response engine keeps each page's managers as time spans in its saved state; ``otklik replay``
reads the same records from an event file (``{"received_at": ..., "managers": {...}}``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

ManagerSource = Literal["callback", "api", "cli"]


class ManagerChange(msgspec.Struct, frozen=True, tag="change", tag_field="kind"):
    """``user`` (``vk:user:<id>``) became (``manager``) or stopped being a manager of ``page`` at ``at``."""

    page: str  # "vk:123456"
    user: str
    manager: bool
    at: int  # unix seconds
    source: ManagerSource = "callback"
    level: int | None = None  # VK's level_new: 1 moderator, 2 editor, 3 administrator (0: none)
    event_id: str | None = None


class ManagerList(msgspec.Struct, frozen=True, tag="list", tag_field="kind"):
    """Every manager of ``page`` as of ``at``."""

    page: str
    users: list[str]
    at: int
    source: ManagerSource = "api"


ManagerRecord = ManagerChange | ManagerList

_DECODER = msgspec.json.Decoder(ManagerRecord)  # type: ignore[var-annotated]


def decode_manager_record(value: bytes | str) -> ManagerRecord:
    """A record of ``otklik.managers``; raises ``msgspec.DecodeError`` (ValidationError is one) naming
    the field that is wrong."""
    return _DECODER.decode(value)  # type: ignore[no-any-return]


def encode_manager_record(record: ManagerRecord) -> bytes:
    return msgspec.json.encode(record)


def manager_record_of(value: object) -> ManagerRecord:
    """A record of ``otklik.managers`` from parsed JSON (an event file's line); raises
    ``msgspec.ValidationError`` naming the field that is wrong."""
    return msgspec.convert(value, ManagerRecord)  # type: ignore[arg-type, no-any-return]
