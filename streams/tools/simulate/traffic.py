"""The generator of the event stream, and the registry of the simulated pages."""

from __future__ import annotations

import hashlib
import heapq
import math
import random
import time
from bisect import bisect_right
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson
import yaml

from otklik.streams.tools.simulate.scripts import (
    _CLIENT_INFO,
    _EVENT_PREFIX,
    _activity,
    _comment_object,
    _delete_object,
    _message_object,
    _Node,
    _plan,
)
from otklik.streams.tools.simulate.world import (
    API_VERSION,
    DEFAULT_REGION,
    SimConfig,
    _build_pages,
)

# ---------------------------------------------------------------------------------------------
# The generator.


def _delivery_delay(rng: random.Random) -> float:
    """VK delivers within a second or two; sometimes a few seconds later; rarely up to a minute."""
    roll = rng.random()
    if roll < 0.88:
        return rng.uniform(0.05, 1.5)
    if roll < 0.985:
        return rng.uniform(1.5, 8.0)
    return rng.uniform(8.0, 60.0)


def _calibrate(cfg: SimConfig, start: float, end: float) -> float:
    """Expected events per candidate initiative that fall inside the run (thinned by the hour's
    activity; replies later than the end do not count), by planning a sample of scripts on a
    private copy of the pages. With it the observed rate matches ``cfg.rate`` over the run, short
    or long: a short run at night holds the rate too; the day's rhythm shows in runs of days."""
    rng = random.Random(f"otklik-sim-calibrate:{cfg.seed}")
    pages = _build_pages(cfg)
    cum = list(accumulate(p.weight for p in pages))
    span = end - start if math.isfinite(end) else 7 * 86400.0
    samples = 600
    inside = 0.0
    for _ in range(samples):
        page = pages[min(bisect_right(cum, rng.random() * cum[-1]), len(pages) - 1)]
        t0 = start + rng.random() * span
        count = sum(1 for happening in _plan(rng, page, pages, t0) if happening[0] <= end)
        inside += _activity(page, t0) * count
    return max(inside / samples, 1e-3) * (1.0 + cfg.duplicate_rate)


def resolve_start(cfg: SimConfig) -> int:
    return int(time.time()) if cfg.start is None else int(cfg.start)


def generate(cfg: SimConfig) -> Iterator[tuple[int, dict[str, Any]]]:
    """(received_at, body) pairs in order of received_at, deterministic for ``cfg.seed`` (and a
    given ``cfg.start``). Infinite when ``cfg.duration`` is 0. Memory holds only the scheduled future
    happenings (proportional to the rate times the reply delays)."""
    start = resolve_start(cfg)
    end = start + cfg.duration if cfg.duration > 0 else math.inf
    pages = _build_pages(cfg)
    cum = list(accumulate(p.weight for p in pages))
    total_weight = cum[-1]
    rng = random.Random(f"otklik-sim:{cfg.seed}")
    initiative_rate = cfg.rate / _calibrate(cfg, start, end)

    happenings: list[tuple[float, int, str, _Node, Any]] = []  # by the time they happen
    deliveries: list[tuple[float, int, dict[str, Any]]] = []  # by the time VK delivers them
    seq = 0
    event_counter = 0
    event_salt = f"otklik-sim:{cfg.seed}:".encode()

    def event_id() -> str:
        nonlocal event_counter
        event_counter += 1
        return hashlib.blake2b(event_salt + str(event_counter).encode(), digest_size=20).hexdigest()

    def deliver(moment: float, body: dict[str, Any]) -> None:
        nonlocal seq
        received = moment + _delivery_delay(rng)
        seq += 1
        heapq.heappush(deliveries, (received, seq, body))
        if rng.random() < cfg.duplicate_rate:
            # A redelivery: the very same body (a copy, so that consumers may mutate what they get).
            seq += 1
            heapq.heappush(deliveries, (received + rng.uniform(2.0, 30.0), seq, orjson.loads(orjson.dumps(body))))

    def body_for(op: str, node: _Node, extra: Any, moment: float) -> dict[str, Any]:
        page = node.page
        if node.kind == "dm":
            if node.author > 0:
                event_type, obj = (
                    "message_new",
                    {"message": _message_object(node, page), "client_info": dict(_CLIENT_INFO)},
                )
            else:
                event_type, obj = "message_reply", _message_object(node, page)
        else:
            prefix = _EVENT_PREFIX[node.kind]
            if op == "new":
                event_type, obj = f"{prefix}_new", _comment_object(node, node.text)
            elif op == "edit":
                node.text = unique(extra) if cfg.unique_texts else extra
                event_type, obj = f"{prefix}_edit", _comment_object(node, node.text)
            elif op == "delete":
                event_type, obj = f"{prefix}_delete", _delete_object(rng, node, extra)
            else:
                event_type, obj = f"{prefix}_restore", _comment_object(node, node.text)
        return {"type": event_type, "object": obj, "group_id": page.group_id, "event_id": event_id(), "v": API_VERSION}

    texts_made = 0

    def unique(text: str) -> str:
        nonlocal texts_made
        texts_made += 1
        return _marked(text, texts_made)

    def create(node: _Node, moment: float) -> None:
        page = node.page
        node.date = int(moment)
        if cfg.unique_texts:
            node.text = unique(node.text)
        if node.kind == "dm":
            node.id = page.next_message_id
            page.next_message_id += 1
            node.conversation_id = page.conversation_ids.get(node.obj, 0) + 1
            page.conversation_ids[node.obj] = node.conversation_id
            return
        counter = f"board:{node.obj}" if node.kind == "board" else node.kind
        node.id = page.next_comment_id[counter]
        page.next_comment_id[counter] = node.id + 1

    next_initiative = start + rng.expovariate(initiative_rate)
    while True:
        initiative = not (happenings and happenings[0][0] < next_initiative)
        moment = next_initiative if initiative else happenings[0][0]
        if moment > end:
            break
        # Everything VK delivers before this moment can go out: later happenings deliver later still.
        while deliveries and deliveries[0][0] <= moment:
            received, _, body = heapq.heappop(deliveries)
            yield int(received), body
        if initiative:
            page = pages[min(bisect_right(cum, rng.random() * total_weight), len(pages) - 1)]
            if rng.random() < _activity(page, moment):
                for when, op, node, extra in _plan(rng, page, pages, moment):
                    seq += 1
                    heapq.heappush(happenings, (when, seq, op, node, extra))
            next_initiative = moment + rng.expovariate(initiative_rate)
            continue
        when, _, op, node, extra = heapq.heappop(happenings)
        if op == "new":
            create(node, when)
        deliver(when, body_for(op, node, extra, when))
    while deliveries and deliveries[0][0] <= end:
        received, _, body = heapq.heappop(deliveries)
        yield int(received), body


# The digits of _marked's counter: sixteen emoji of one code point each.
_EMOJI_DIGITS = "🙂😊🙏👍👏🔥😀😉🤝💪✨🌟😃🙌👌😄"


def _marked(text: str, number: int) -> str:
    """``text`` made unique: ``number`` written in emoji after it, its last digit first (the 16th:
    "Спасибо!" → "Спасибо! 🙂😊").
    Emoji, not digits: a number is content to triage, so "Спасибо! 17" would need an answer; emoji
    after a text leave its decision as it was."""
    digits = []
    while True:
        number, digit = divmod(number, len(_EMOJI_DIGITS))
        digits.append(_EMOJI_DIGITS[digit])
        if not number:
            return f"{text} {''.join(digits)}"


# ---------------------------------------------------------------------------------------------
# The registry of the simulated pages.


def registry_mapping(cfg: SimConfig) -> dict[str, Any]:
    """The page registry (the YAML's content) describing the pages :func:`generate` simulates."""
    entries: list[dict[str, Any]] = []
    for page in _build_pages(cfg):
        entry: dict[str, Any] = {
            "id": f"vk:{page.group_id}",
            "title": page.title,
            "timezone": page.timezone,
            "administrators": [f"vk:user:{admin}" for admin in page.admins],
            "municipality": page.municipality,
            "sector": page.sector,
            "region": page.region.name,
            "contacts": [{"name": "Ответственный за ведение страницы", "email": f"smm-{page.group_id}@example.org"}],
        }
        if page.deadline is not None:
            entry["deadline"] = page.deadline
        entries.append(entry)
    return {
        "defaults": {
            "timezone": DEFAULT_REGION.timezone,
            "region": DEFAULT_REGION.name,
            "deadline": "8h working",
        },
        "pages": entries,
    }


def write_registry(cfg: SimConfig, path: str | Path) -> None:
    text = yaml.safe_dump(registry_mapping(cfg), allow_unicode=True, sort_keys=False, width=120)
    Path(path).write_text(text, encoding="utf-8")
