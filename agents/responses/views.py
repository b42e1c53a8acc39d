"""Read views of the engine's pages: the open items for the read API and the notifier, a page's backlog
for metrics, and the open items' ages for a replay's output. They read state and change none of it
(but the deadline instant an item caches, see :func:`~otklik.agents.responses.state.due_at`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from otklik.agents.responses.rules import KIND_OF_OBJECT, PageConfigLike, past_deadline
from otklik.agents.responses.state import Item, PageState, due_at


class OpenItemView(NamedTuple):
    """An open item as the read API and the notifier see it."""

    item: str
    page: str
    kind: str
    author: str
    created_at: int
    due_at: int | None  # None: beyond what the clock computes (see _working)


@dataclass(frozen=True, slots=True)
class PageSummary:
    """One page's backlog for metrics: computed when Prometheus scrapes."""

    page: str
    open_count: int
    oldest_created_at: int | None
    oldest_age_s: int | None
    oldest_business_age_s: int | None
    # The oldest open item's age in the deadline's kind, as a fraction of the deadline (1.0 = due).
    oldest_fraction: float | None
    deadline: str


def has_open_items(state: PageState) -> bool:
    """Open, not tentatively closed: metrics see a tentatively closed item as closed at once."""
    return any(it.tentative is None for it in state.items.values())


def open_items(state: PageState, cfg: PageConfigLike) -> list[OpenItemView]:
    """The page's open items, oldest first (tentatively closed ones are not open)."""
    items = sorted(
        (it for it in state.items.values() if it.tentative is None), key=lambda i: (i.created_at, i.seq, i.item)
    )
    return [
        OpenItemView(
            it.item, state.page, KIND_OF_OBJECT[it.object_kind], it.author, it.created_at, _working(due_at, it, cfg)
        )
        for it in items
    ]


def _working(compute: Callable[..., int], *args: Any) -> int | None:
    """``compute(*args)`` (a computation on the working-hours clock), or None when an item's time is
    beyond the calendar the clock computes: bounded input keeps such times out (docs/data-flow.md,
    "Bounded input"), but one held from before must not fail its page's view."""
    try:
        return compute(*args)
    except (ValueError, OverflowError):
        return None


def summary(state: PageState, cfg: PageConfigLike, now: int) -> PageSummary:
    """The page's backlog at ``now``: how many items are open and how old the oldest is."""
    oldest: Item | None = None
    count = 0
    for it in state.items.values():
        if it.tentative is None:
            count += 1
            if oldest is None or (it.created_at, it.seq) < (oldest.created_at, oldest.seq):
                oldest = it
    if oldest is None:
        return PageSummary(state.page, 0, None, None, None, None, cfg.deadline.text)
    age = max(0, now - oldest.created_at)
    business = _working(cfg.clock.working_seconds, oldest.created_at, now)
    judged = business if cfg.deadline.working else age
    return PageSummary(
        state.page,
        count,
        oldest.created_at,
        age,
        business,
        None if judged is None else judged / cfg.deadline.seconds,
        cfg.deadline.text,
    )


def open_ages(
    pages: Iterable[tuple[PageState, PageConfigLike]], now: int
) -> Iterator[tuple[str, str, str, str, int, int, int, str, bool]]:
    """Each open item at ``now`` as ``(item, page, kind, author, created_at, age_s, business_age_s,
    deadline, breached)``: an ``open`` record's content, without building records (replay output)."""
    # Pages share clocks (the registry builds one per distinct setting) and items share seconds:
    # the working time from a creation second to now is computed once per clock.
    memos: dict[int, dict[int, int]] = {}
    for state, cfg in pages:
        deadline = cfg.deadline
        working_seconds = cfg.clock.working_seconds
        memo = memos.setdefault(id(cfg.clock), {})
        kind = KIND_OF_OBJECT
        for it in state.items.values():
            if it.tentative is not None:
                continue
            created = it.created_at
            age = now - created
            if age < 0:
                age = 0
            business = memo.get(created)
            if business is None:
                business = memo[created] = working_seconds(created, now)
            yield (
                it.item,
                state.page,
                kind[it.object_kind],
                it.author,
                created,
                age,
                business,
                deadline.text,
                past_deadline(deadline, age, business),
            )
