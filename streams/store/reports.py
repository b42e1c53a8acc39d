"""The reports read from the store: the monthly rating and the list of items (docs/history.md, "Reports").

The rating's sums are one ``GROUP BY`` over the month's items, counting the flags the writer stored
(`agents/history/rating.py`, :func:`classify`); PostgreSQL computes the percentiles with
``percentile_cont``, SQLite's are computed here with the same interpolation. Shares, rounding and ranks
are :func:`otklik.agents.history.rating.finish`'s, as for a rating computed from a replay.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from importlib.metadata import version
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, case, func, literal, or_, select

from otklik.agents.history.rating import UNIT_KINDS, Month, RatingRow, UnitTotals, finish, percentile
from otklik.streams.store.formats import ITEM_FIELDS, RatingMeta
from otklik.streams.store.schema import items, moderation_findings, registry_versions

__all__ = ["ITEM_COLUMNS", "RULES_VERSION", "item_rows", "rating", "rating_meta"]

# The rating's rules (agents/history/rating.py): a new number when what they count changes.
RULES_VERSION = "rating-1"


def _flag(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def rating(
    engine: Engine,
    month: Month,
    by: str = "municipality",
    min_judged: int = 2,
    where: dict[str, str] | None = None,
) -> list[RatingRow]:
    """The rating of ``month`` by ``by`` (page, municipality, sector or region); ``where`` narrows the
    items by those columns (e.g. ``{"region": "Татарстан"}``, for a region's delivery)."""
    if by not in UNIT_KINDS:
        raise ValueError(f"--by {by!r}: must be one of {', '.join(UNIT_KINDS)}")
    unit = items.c[by]
    overdue = (
        select(moderation_findings.c.item).where(moderation_findings.c.kind == "overdue").distinct().subquery("overdue")
    )
    in_month = and_(items.c.created_at >= month.start, items.c.created_at < month.end)
    filters = [in_month] + [items.c[column] == value for column, value in (where or {}).items()]
    answered = and_(items.c.outcome == "answered", items.c.business_latency_s.is_not(None))
    columns = [
        unit.label("unit"),
        func.count().label("received"),
        _flag(items.c.needs_answer).label("needing_answer"),
        _flag(items.c.judged).label("judged"),
        _flag(and_(items.c.judged, items.c.breached)).label("breached"),
        _flag(and_(items.c.needs_answer, or_(items.c.closed_at.is_(None), items.c.closed_at >= month.end))).label(
            "unanswered_at_end"
        ),
        _flag(items.c.outcome == "moderated").label("moderated_without_answer"),
        func.count(overdue.c.item).label("offensive_overdue"),
    ]
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        latency = items.c.business_latency_s
        columns += [
            func.percentile_cont(0.5).within_group(latency).filter(answered).label("median"),
            func.percentile_cont(0.9).within_group(latency).filter(answered).label("p90"),
        ]
    query = (
        select(*columns)
        .select_from(items.outerjoin(overdue, overdue.c.item == items.c.item))
        .where(*filters)
        .group_by(unit)
    )
    totals: dict[str, UnitTotals] = {}
    with engine.connect() as connection:
        for row in connection.execute(query):
            totals[row.unit] = UnitTotals(
                unit=row.unit,
                received=int(row.received),
                needing_answer=int(row.needing_answer or 0),
                judged=int(row.judged or 0),
                breached=int(row.breached or 0),
                unanswered_at_end=int(row.unanswered_at_end or 0),
                moderated_without_answer=int(row.moderated_without_answer or 0),
                offensive_overdue=int(row.offensive_overdue or 0),
                median_business_s=float(row.median) if postgres and row.median is not None else None,
                p90_business_s=float(row.p90) if postgres and row.p90 is not None else None,
            )
        if not postgres:
            latencies: dict[str, list[int]] = defaultdict(list)
            query = (
                select(unit.label("unit"), items.c.business_latency_s)
                .where(*filters, answered)
                .order_by(unit, items.c.business_latency_s)
            )
            for row in connection.execute(query):
                latencies[row.unit].append(row.business_latency_s)
            for name, values in latencies.items():
                totals[name].median_business_s = percentile(values, 0.5)
                totals[name].p90_business_s = percentile(values, 0.9)
    return finish(totals.values(), min_judged)


# The columns of `otklik report items`, in order (`author` only when asked): the report's own list.
ITEM_COLUMNS = ITEM_FIELDS


def item_rows(
    engine: Engine,
    start: int,
    end: int,
    *,
    page: str | None = None,
    municipality: str | None = None,
    outcome: str | None = None,
    breached: bool = False,
    with_author: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Items created in ``[start, end)``, oldest first, narrowed by the filters given."""
    names = ITEM_COLUMNS + (("author",) if with_author else ())
    filters = [items.c.created_at >= start, items.c.created_at < end]
    if page is not None:
        filters.append(items.c.page == page)
    if municipality is not None:
        filters.append(items.c.municipality == municipality)
    if outcome is not None:
        filters.append(items.c.outcome == outcome)
    if breached:
        filters.append(items.c.breached == literal(True))
    query = select(*(items.c[name] for name in names)).where(*filters).order_by(items.c.created_at, items.c.item)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def rating_meta(
    engine: Engine,
    month: Month,
    by: str,
    min_judged: int,
    titles: Mapping[str, str] | None = None,
    now: float | None = None,
) -> RatingMeta:
    """What a rating was computed with: the rules, the calendar, and the registry version in force at
    the month's end (the newest the store saw before it; else the oldest it knows)."""
    with engine.connect() as connection:
        digest = connection.execute(
            select(registry_versions.c.digest)
            .where(registry_versions.c.effective_from < month.end)
            .order_by(registry_versions.c.effective_from.desc())
            .limit(1)
        ).scalar()
        if digest is None:
            digest = connection.execute(
                select(registry_versions.c.digest).order_by(registry_versions.c.effective_from).limit(1)
            ).scalar()
    zone = ZoneInfo(month.zone)
    generated = datetime.now(zone) if now is None else datetime.fromtimestamp(now, zone)
    return RatingMeta(
        month=month.label,
        zone=month.zone,
        by=by,
        min_judged=min_judged,
        rules_version=f"otklik {version('otklik')} {RULES_VERSION}",
        calendar_version=f"holidays {version('holidays')}",
        registry_digest=(digest or "none")[:12],
        generated_at=generated,
        titles=dict(titles or {}),
    )
