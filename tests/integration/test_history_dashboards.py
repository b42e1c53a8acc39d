"""The history dashboards' SQL on a real PostgreSQL: the store's schema, a few dozen items, each panel's
SQL as Grafana would send it (variables quoted by ``sqlstring``), and the numbers checked against the
rating rules in memory (``otklik.agents.history.rating.rate``) and the overdue rule."""

from __future__ import annotations

import math
import os
import random
import secrets
import subprocess
import time
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from otklik.agents.history.rating import ItemFacts, classify, month_bounds, rate
from otklik.streams.store.schema import items, metadata
from otklik.streams.tools.grafana import dashboards, history
from tests import grafana_panels
from tests.conftest import REPO
from tests.postgres import LocalPostgres

MUNICIPALITIES = ("Новосибирск", "Бердск", "Искитимский район", "Обь")
MONTH = "2026-11"
HOUR = 3600


@pytest.fixture(scope="module")
def models() -> dict[str, dict[str, Any]]:
    return dashboards.build_dashboards()


def the_sql(model: dict[str, Any], panel: str) -> str:
    """The one SQL of a panel (or of ``var:<name>``) in the generated dashboard."""
    (query,) = [q for q in grafana_panels.sql_queries(model, variables=True) if q.panel == panel]
    return query.sql


def panel_title(model: dict[str, Any]) -> str:
    (panel,) = [p for p in grafana_panels.walk_panels(model["panels"]) if p.get("targets")]
    return panel["title"]


def store_row(
    n: int, *, page: str, municipality: str, created_at: int, outcome: str, breached: bool, **extra: Any
) -> dict[str, Any]:
    """One ``items`` row as the store writes it: the rating's flags from the same rule."""
    flags = classify(outcome, breached)
    group, post = page.removeprefix("vk:"), 1000 + n
    row = {
        "item": f"{page}:comment:{post}",
        "page": page,
        "platform": "vk",
        "kind": "comment",
        "author": f"vk:{700000 + n}",
        "created_at": created_at,
        "received_at": created_at,
        "due_at": None,
        "outcome": outcome,
        "closed_at": None,
        "latency_s": None,
        "business_latency_s": None,
        "breached": breached,
        "needs_answer": flags.needs_answer,
        "judged": flags.judged,
        "review": outcome == "moderated",
        "region": "Новосибирская область",
        "municipality": municipality,
        "sector": "ЖКХ",
        "page_title": f"Администрация: {municipality}",
        "link": f"https://vk.com/wall-{group}_{post}?reply={post}",
        "version": 1,
        "updated_at": created_at,
    }
    row.update(extra)
    return row


def insert(url: str, rows: list[dict[str, Any]]) -> sa.Engine:
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(items.insert(), rows)
    return engine


# ---- the monthly rating ------------------------------------------------------------------------------


def month_items(rng: random.Random) -> list[dict[str, Any]]:
    """Items over October to December 2026, more in November, many near the month's edges (where Moscow
    and Vladivostok disagree about the month), in every outcome."""
    start = month_bounds(MONTH, "Europe/Moscow")
    outcomes = ["answered"] * 6 + ["moderated", "expired", "withdrawn", "open", "no_answer_needed"]
    rows = []
    for n in range(60):
        if n % 5 == 0:  # within 12 hours of either edge of the month
            edge = start.start if n % 10 == 0 else start.end
            created = edge + rng.randint(-12 * HOUR, 12 * HOUR)
        else:
            created = start.start + rng.randint(-5 * 24 * HOUR, 35 * 24 * HOUR)
        outcome = rng.choice(outcomes)
        # breached without needing an answer: a correction said so after the deadline (not judged)
        breached = rng.random() < 0.3
        extra: dict[str, Any] = {"due_at": created + 8 * HOUR}
        if outcome in {"answered", "moderated", "expired", "withdrawn"}:
            latency = rng.randint(60, 3 * 24 * HOUR)
            # every closed item has its latencies; the median counts the answered ones only
            extra.update(closed_at=created + latency, latency_s=latency, business_latency_s=rng.randint(30, latency))
        municipality = MUNICIPALITIES[rng.randrange(len(MUNICIPALITIES))]
        page = f"vk:{100 + MUNICIPALITIES.index(municipality) * 10 + rng.randrange(3)}"
        rows.append(
            store_row(
                n, page=page, municipality=municipality, created_at=created, outcome=outcome, breached=breached, **extra
            )
        )
    # Breached, then corrected to need no answer: not judged, so not counted as breached either.
    rows.append(
        store_row(
            98,
            page="vk:100",
            municipality=MUNICIPALITIES[0],
            created_at=start.start + 9 * 24 * HOUR,
            outcome="no_answer_needed",
            breached=True,
            due_at=start.start + 9 * 24 * HOUR + 8 * HOUR,
        )
    )
    # One municipality's only item of the month is not answered: its median is empty, not zero.
    rows.append(
        store_row(
            99,
            page="vk:900",
            municipality="Тогучин",
            created_at=start.start + 5 * 24 * HOUR,
            outcome="expired",
            breached=True,
            due_at=start.start,
        )
    )
    return rows


def facts(rows: list[dict[str, Any]]) -> list[ItemFacts]:
    return [
        ItemFacts(
            unit=r["municipality"],
            created_at=r["created_at"],
            outcome=r["outcome"],
            breached=r["breached"],
            closed_at=r["closed_at"],
            business_latency_s=r["business_latency_s"],
        )
        for r in rows
    ]


RATING_KEYS = ("received", "needing_answer", "judged", "on_time", "breached")


def sql_rating(engine: sa.Engine, sql: str, month: str, zone: str) -> dict[str, dict[str, Any]]:
    text = grafana_panels.substitute_sql_variables(sql, {"month": month, "tz": zone})
    with engine.connect() as conn:
        result = conn.execute(sa.text(text))
        assert list(result.keys()) == list(history.RATING_COLUMNS)
        return {row["unit"]: dict(row) for row in result.mappings()}


@pytest.mark.parametrize("zone", ["Europe/Moscow", "Asia/Vladivostok"])
def test_the_rating_table_is_the_rating_rules_sums(
    pg_database: str, models: dict[str, dict[str, Any]], zone: str
) -> None:
    rows = month_items(random.Random(15))
    engine = insert(pg_database, rows)
    try:
        model = models[history.UIDS["rating"]]
        got = sql_rating(engine, the_sql(model, panel_title(model)), MONTH, zone)
    finally:
        engine.dispose()
    month = month_bounds(MONTH, zone)
    expected = {r.unit: r for r in rate(facts(rows), month, min_judged=1)}
    assert sorted(got) == sorted(expected)
    assert sum(g["received"] for g in got.values()) == sum(month.start <= r["created_at"] < month.end for r in rows)
    for unit, want in expected.items():
        row = got[unit]
        assert {k: row[k] for k in RATING_KEYS} == {k: getattr(want, k) for k in RATING_KEYS}, unit
        share = row["on_time_share"]
        assert (None if share is None else round(share, 4)) == want.on_time_share, unit
        median = row["median_business_s"]
        assert (None if median is None else round(median, 1)) == want.median_business_s, unit
    assert got["Тогучин"]["median_business_s"] is None
    assert got["Тогучин"]["on_time_share"] == 0.0
    # the rows come best first: the table opens sorted
    shares = [-1.0 if g["on_time_share"] is None else g["on_time_share"] for g in got.values()]
    assert shares == sorted(shares, reverse=True)


def test_the_zone_decides_the_month_of_items_near_its_edges() -> None:
    # The test above would pass with a zone-blind SQL if no item moved between months with the zone.
    rows = month_items(random.Random(15))
    moscow, vladivostok = month_bounds(MONTH, "Europe/Moscow"), month_bounds(MONTH, "Asia/Vladivostok")
    in_moscow = {r["item"] for r in rows if moscow.start <= r["created_at"] < moscow.end}
    in_vladivostok = {r["item"] for r in rows if vladivostok.start <= r["created_at"] < vladivostok.end}
    assert in_moscow - in_vladivostok and in_vladivostok - in_moscow


@pytest.mark.parametrize("zone", ["Europe/Moscow", "Asia/Vladivostok"])
def test_the_month_selector_lists_every_month_with_items_newest_first(
    pg_database: str, models: dict[str, dict[str, Any]], zone: str
) -> None:
    rows = month_items(random.Random(15))
    engine = insert(pg_database, rows)
    try:
        sql = grafana_panels.substitute_sql_variables(
            the_sql(models[history.UIDS["rating"]], "var:month"), {"tz": zone}
        )
        with engine.connect() as conn:
            months = [m for (m,) in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()
    tz = ZoneInfo(zone)
    seen = {datetime.fromtimestamp(r["created_at"], tz).strftime("%Y-%m") for r in rows}
    assert months == sorted(seen, reverse=True)
    assert months[0] > MONTH > months[-1]


def test_the_month_is_quoted_not_spliced(pg_database: str, models: dict[str, dict[str, Any]]) -> None:
    # A month text with a quote stays one string literal (sqlstring): PostgreSQL rejects it as a date.
    engine = insert(pg_database, month_items(random.Random(15)))
    try:
        model = models[history.UIDS["rating"]]
        with pytest.raises(sa.exc.DataError):
            sql_rating(engine, the_sql(model, panel_title(model)), "2026-11' or '1'='1", "Europe/Moscow")
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(items)).scalar() == 62
    finally:
        engine.dispose()


# ---- the overdue items -------------------------------------------------------------------------------


def overdue_rows(now: int, rng: random.Random) -> list[dict[str, Any]]:
    """Open items past their deadline, open ones still within it (one with its breach record already in),
    and closed ones past it; deadlines hours away from now, so the moment of the query does not matter."""
    rows = []
    kinds = [
        ("open", False, -1),  # overdue
        ("open", False, +1),  # not yet due
        ("open", True, -1),  # overdue, breach recorded
        ("answered", True, -1),
        ("expired", True, -1),
        ("withdrawn", False, -1),
        ("moderated", False, -1),
    ]
    for n in range(40):
        outcome, breached, side = kinds[n % len(kinds)]
        due = now + side * rng.randint(2 * HOUR, 20 * 24 * HOUR)
        created = due - rng.randint(1 * HOUR, 3 * 24 * HOUR)
        municipality = MUNICIPALITIES[n % len(MUNICIPALITIES)]
        closed = {"closed_at": due + HOUR} if outcome != "open" else {}
        rows.append(
            store_row(
                n,
                page=f"vk:{200 + n % 7}",
                municipality=municipality,
                created_at=created,
                outcome=outcome,
                breached=breached,
                due_at=due,
                **closed,
            )
        )
    # The worker's breach record arrived for an item whose stored deadline is still ahead (the registry's
    # deadline changed since): listed, it was judged late.
    rows.append(
        store_row(
            77,
            page="vk:299",
            municipality="Обь",
            created_at=now - 3 * HOUR,
            outcome="open",
            breached=True,
            due_at=now + 5 * HOUR,
        )
    )
    return rows


def run_overdue(
    engine: sa.Engine, model: dict[str, Any], municipalities: list[str]
) -> tuple[list[dict[str, Any]], int, int]:
    sql = grafana_panels.substitute_sql_variables(the_sql(model, panel_title(model)), {"municipality": municipalities})
    before = math.floor(time.time())
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql))
        assert list(result.keys()) == list(history.OVERDUE_COLUMNS)
        out = [dict(r) for r in result.mappings()]
    return out, before, math.ceil(time.time())


def test_the_overdue_table_lists_open_items_past_their_deadline(
    pg_database: str, models: dict[str, dict[str, Any]]
) -> None:
    now = int(time.time())
    rows = overdue_rows(now, random.Random(4))
    engine = insert(pg_database, rows)
    model = models[history.UIDS["overdue"]]
    try:
        with engine.connect() as conn:
            offered = [m for (m,) in conn.execute(sa.text(the_sql(model, "var:municipality")))]
        got, before, after = run_overdue(engine, model, offered)
        one, _, _ = run_overdue(engine, model, ["Бердск"])
    finally:
        engine.dispose()

    expected = sorted(
        (r for r in rows if r["outcome"] == "open" and (r["due_at"] < now or r["breached"])),
        key=lambda r: (r["due_at"], r["item"]),
    )
    assert offered == sorted({r["municipality"] for r in rows if r["outcome"] == "open"})
    assert len(expected) > 10 and any(r["due_at"] > now for r in expected)
    key = ("page", "page_title", "municipality", "platform", "kind", "link")
    assert [tuple(g[k] for k in key) for g in got] == [tuple(r[k] for k in key) for r in expected]
    for g, r in zip(got, expected, strict=True):
        assert (int(g["created"].timestamp()), int(g["due"].timestamp())) == (r["created_at"], r["due_at"])
        assert before - r["created_at"] <= g["age_s"] <= after - r["created_at"]
        assert before - r["due_at"] <= g["overdue_s"] <= after - r["due_at"]
    assert [g["link"] for g in one] == [r["link"] for r in expected if r["municipality"] == "Бердск"]
    assert one


def test_the_overdue_table_links_each_row_to_the_platform(models: dict[str, dict[str, Any]]) -> None:
    (panel,) = [p for p in grafana_panels.walk_panels(models[history.UIDS["overdue"]]["panels"]) if p.get("targets")]
    links = {
        o["matcher"]["options"]: prop["value"]
        for o in panel["fieldConfig"]["overrides"]
        for prop in o["properties"]
        if prop["id"] == "links"
    }
    # Grafana's ${__data.fields.link} finds the SQL column by its own name: it must be one the query returns.
    assert set(links) == {history.OVERDUE_COLUMNS["page"], history.OVERDUE_COLUMNS["link"]}
    for value in links.values():
        assert value[0]["url"] == "${__data.fields.link}" and value[0]["targetBlank"] is True
    assert "link" in history.OVERDUE_COLUMNS


# ---- Grafana's read-only role --------------------------------------------------------------------------


def test_grafanas_role_reads_the_store_and_cannot_write(
    postgres_cluster: LocalPostgres, models: dict[str, dict[str, Any]]
) -> None:
    # deploy/postgres/grafana-reader.sh as the postgres image runs it on a fresh volume: before the
    # store has made its tables, so the grant must reach the tables made later.
    database = postgres_cluster.create_database()
    reader, password = f"grafana_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "PATH": f"{postgres_cluster.bin}:{os.environ['PATH']}",
        "PGHOST": str(postgres_cluster.root),
        "PGPORT": str(postgres_cluster.port),
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": database,
        "OTKLIK_STORE_OWNER": "otklik",
        "OTKLIK_STORE_GRAFANA_USER": reader,
        "OTKLIK_STORE_GRAFANA_PASSWORD": password,
    }
    engines: list[sa.Engine] = []
    try:
        script = subprocess.run(
            ["bash", str(REPO / "deploy" / "postgres" / "grafana-reader.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert script.returncode == 0, script.stderr
        owner = insert(postgres_cluster.url(database), month_items(random.Random(15)))
        engines.append(owner)
        as_reader = make_url(postgres_cluster.url(database)).set(username=reader, password=password)
        grafana = sa.create_engine(as_reader)
        engines.append(grafana)
        model = models[history.UIDS["rating"]]
        assert sql_rating(grafana, the_sql(model, panel_title(model)), MONTH, "Europe/Moscow")
        with grafana.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(items.delete())
        with grafana.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("create table mine (x int)"))
        with owner.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(items)).scalar() == 62
    finally:
        for engine in engines:
            engine.dispose()
        postgres_cluster.drop_database(database)
        postgres_cluster.admin(f'DROP ROLE IF EXISTS "{reader}"')


def test_without_a_password_the_script_makes_no_role(postgres_cluster: LocalPostgres) -> None:
    env = {
        **os.environ,
        "PATH": f"{postgres_cluster.bin}:{os.environ['PATH']}",
        "PGHOST": str(postgres_cluster.root),
        "PGPORT": str(postgres_cluster.port),
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "otklik",
        "OTKLIK_STORE_GRAFANA_USER": "grafana_never",
        "OTKLIK_STORE_GRAFANA_PASSWORD": "",
    }
    script = subprocess.run(
        ["bash", str(REPO / "deploy" / "postgres" / "grafana-reader.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert script.returncode == 0 and "OTKLIK_STORE_GRAFANA_PASSWORD is not set" in script.stderr
    engine = sa.create_engine(postgres_cluster.url())
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from pg_roles where rolname = 'grafana_never'")).scalar() == 0
    finally:
        engine.dispose()
