"""Looks into a response engine that only tests need: an item's state, the open items as records, a
page forgotten, a page's cached encodings dropped."""

from __future__ import annotations

from collections.abc import Iterator

from otklik.agents.responses.engine import ResponseEngine
from otklik.agents.responses.rules import CLOSED_NAMES, past_deadline
from otklik.agents.responses.state import Log, PageState
from otklik.schemas.records import ResponseRecord


def item_state(engine: ResponseEngine, page: str, item: str) -> str | None:
    """``open``, ``closing`` (tentatively closed), a closed outcome, or None when unknown."""
    state = engine.pages.get(page)
    if state is None:
        return None
    it = state.items.get(item)
    if it is not None:
        return "open" if it.tentative is None else "closing"
    closed = state.closed.get(item)
    return CLOSED_NAMES[closed[0]] if closed else None


def open_records(engine: ResponseEngine, now: int) -> Iterator[tuple[ResponseRecord, int, int]]:
    """Each open item as an ``open`` record with its wall and business age at ``now`` (as replay shows it)."""
    for page, state in engine.pages.items():
        cfg = engine._config(state)
        for it in state.items.values():
            if it.tentative is not None:
                continue
            age = max(0, now - it.created_at)
            business = cfg.clock.working_seconds(it.created_at, now)
            breached = past_deadline(cfg.deadline, age, business)
            version = it.version  # a look, not a record written: the item's version stays
            record = engine._record(page, it, "open", None, cfg, breached=breached)
            it.version = version
            yield record, age, business


def drop_page(engine: ResponseEngine, page: str) -> None:
    """Forget a page (as when its partition moves to another worker); its timers lapse lazily."""
    engine.pages.pop(page, None)


def forget_encodings(state: PageState) -> None:
    """Drop every cached encoding of the page: its next dump encodes it whole."""
    for block in state.blocks or ():
        block.blob = None
    state.replies_blob = None
    state.closed = Log(state.closed)
    state.events = Log(state.events)
