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

from otklik.agents.ingest.max import normalize_max
from otklik.agents.ingest.telegram import normalize_tg
from otklik.agents.ingest.vk import NormalizeError, normalize_vk
from otklik.schemas.records import Interaction, RawEnvelope

PLATFORMS = ("vk", "tg", "max", "ok")


class RejectedRecord(ValueError):
    """A record that cannot be processed; ``stage`` says where, the message says why."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


def decode_raw(value: bytes | None) -> RawEnvelope:
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
    received_at = data.get("received_at")
    if isinstance(received_at, bool) or not isinstance(received_at, (int, float)) or received_at <= 0:
        raise RejectedRecord("decode", f"envelope.received_at: {received_at!r} is not a positive unix time")
    body = data.get("body")
    if not isinstance(body, dict):
        raise RejectedRecord("decode", "envelope.body: missing or not a JSON object")
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
    :class:`NormalizeError` naming what is wrong."""
    if platform == "vk":
        return normalize_vk(body, received_at)
    if platform == "tg":
        return normalize_tg(body, received_at, tg_links)
    if platform == "max":
        return normalize_max(body, received_at)
    raise NormalizeError(f"platform {platform!r} has no normalizer yet")


def to_interactions(envelope: RawEnvelope, tg_links: Mapping[int, int]) -> list[Interaction]:
    """The platform body as interaction records ([] for events otklik does not measure). ``tg_links``:
    Telegram's discussion groups → channels, as the service's settings parsed them (``OTKLIK_TG_LINKS``)."""
    try:
        return normalize_body(envelope.platform, envelope.body, int(envelope.received_at), tg_links)
    except NormalizeError as exc:
        raise RejectedRecord("normalize", str(exc)) from None


@dataclass
class NormalizeTally:
    """What one batch of the normalize agent adds to the metrics, counted in plain dicts."""

    raw: Counter[str] = field(default_factory=Counter)  # records of otklik.raw by platform ("unknown": undecodable)
    interactions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (platform, action)
    last_seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (platform, source) -> received_at
