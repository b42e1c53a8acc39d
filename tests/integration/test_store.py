"""The history store on SQLite and on a real PostgreSQL (docs/history.md): exactly-once rows, the
rating's SQL against the pure rules, retention, forgetting a person, migrations, loading archives."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text

from otklik.agents.history.rating import ItemFacts, month_bounds, rate
from otklik.agents.registry import Registry
from otklik.schemas.overrides import Override
from otklik.schemas.records import Interaction, ResponseRecord
from otklik.streams.store.db import StoreError, check_version, current_version, migrate, open_engine
from otklik.streams.store.reports import item_rows, rating
from otklik.streams.store.schema import SCHEMA_VERSION, corrections, item_events, items, metadata
from otklik.streams.store.writer import Incoming, StoreWriter
from tests.conftest import OTKLIK, REPO

pytestmark = pytest.mark.integration

NOV = month_bounds("2026-11", "Europe/Moscow")
REGISTRY = Registry.from_mapping(
    {
        "defaults": {"municipality": "Город", "region": "Область", "sector": "health"},
        "pages": [
            {"id": "vk:1", "title": "Больница", "municipality": "Тара"},
            {"id": "vk:2", "title": "Школа", "municipality": "Омск", "sector": "education"},
            {"id": "vk:3", "administrators": ["vk:user:777"]},
        ],
    }
)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(store_url: str) -> Any:
    engine = open_engine(store_url)
    migrate(engine)
    yield engine
    engine.dispose()


def writer_for(engine: Any, now: int = NOV.end + 86400, retention: int = 90 * 86400) -> StoreWriter:
    return StoreWriter(engine, REGISTRY.page, retention, clock=Clock(now))


def record(item: str, version: int, outcome: str = "answered", breached: bool = False, **kw: Any) -> Incoming:
    page = ":".join(item.split(":")[:2])
    created = kw.pop("created_at", NOV.start + 7200)
    closed = kw.pop("closed_at", None if outcome == "open" else created + 600)
    values = {
        "item": item,
        "page": page,
        "kind": "comment",
        "author": "vk:user:5",
        "created_at": created,
        "outcome": outcome,
        "closed_at": closed,
        "latency_s": None if closed is None else closed - created,
        "business_latency_s": None if closed is None else (closed - created) // 2,
        "deadline": "8h working",
        "breached": breached,
        "version": version,
        **kw,
    }
    return Incoming("responses", ResponseRecord(**values).to_json())


def interaction(
    item: str, action: str = "new", author: str = "vk:user:5", text: str = "Когда откроют?", **kw: Any
) -> Incoming:
    page = ":".join(item.split(":")[:2])
    created = kw.pop("created_at", NOV.start + 7200)
    ia = Interaction(
        platform="vk",
        page=page,
        action=action,  # type: ignore[arg-type]
        object_kind="wall",
        object_id=":".join(item.split(":")[:4]),
        item=item,
        seq=int(item.rsplit(":", 1)[1]),
        received_at=kw.pop("received_at", created + 1),
        created_at=created,
        author=author,
        text=text,
        thread_root=item,
        **kw,
    )
    return Incoming("interactions", ia.to_json())


def table_rows(engine: Any, table: Any, skip: tuple[str, ...] = ("updated_at", "id")) -> list[tuple[Any, ...]]:
    columns = [c for c in table.c if c.name not in skip]
    with engine.connect() as connection:
        return sorted(tuple(row) for row in connection.execute(select(*columns)))


def test_migrate_creates_the_schema_and_the_version_is_checked(store_url: str) -> None:
    engine = open_engine(store_url)
    assert current_version(engine) is None
    with pytest.raises(StoreError, match="has no otklik schema"):
        check_version(engine)
    assert migrate(engine) == (None, SCHEMA_VERSION)
    check_version(engine)
    assert migrate(engine) == (SCHEMA_VERSION, SCHEMA_VERSION)  # idempotent
    # The migration creates exactly the tables schema.py describes.
    with engine.connect() as connection:
        from sqlalchemy import inspect

        inspector = inspect(connection)
        for table in metadata.sorted_tables:
            assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.c.keys()), table.name
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(StoreError, match=f"schema version 0099; this otklik knows version {SCHEMA_VERSION}"):
        check_version(engine)
    with pytest.raises(StoreError, match="newer than this otklik"):
        migrate(engine)


def test_a_batch_applied_twice_or_in_any_order_gives_the_same_rows(engine: Any, store_url: str) -> None:
    batch = [
        interaction("vk:1:wall:10:1"),
        record("vk:1:wall:10:1", 1, "open", True),
        record("vk:1:wall:10:1", 2, "answered", True, responder="vk:1"),
        interaction("vk:1:wall:10:1", "edit", text="Когда откроют поликлинику?"),
        interaction("vk:1:wall:10:2", created_at=NOV.start + 9000),
        record("vk:2:wall:4:3", 1, "withdrawn"),
        interaction("vk:2:wall:4:3", "delete", deleted_by="vk:user:5"),
        interaction("vk:1:wall:10:4", author="vk:-1"),  # another community: not an item
        interaction("vk:3:wall:1:5", author="vk:user:777", reply_to_item="vk:3:wall:1:4"),  # an administrator
    ]
    writer_for(engine).apply(batch)
    first = (table_rows(engine, items), table_rows(engine, item_events))
    writer_for(engine).apply(batch)
    assert (table_rows(engine, items), table_rows(engine, item_events)) == first
    # The same records in other orders, in other batches, into a fresh database.
    rng = random.Random(5)
    for attempt in range(3):
        other = open_engine(store_url.replace("store.sqlite3", f"other{attempt}.sqlite3"))
        if other.dialect.name == "postgresql":
            other.dispose()
            break  # one PostgreSQL database per test: the repeat above covers it
        migrate(other)
        shuffled = batch[:]
        rng.shuffle(shuffled)
        cut = rng.randrange(1, len(shuffled))
        writer_for(other).apply(shuffled[:cut])
        writer_for(other).apply(shuffled[cut:])
        assert (table_rows(other, items), table_rows(other, item_events)) == first
    rows = {row["item"]: row for row in item_rows(engine, NOV.start, NOV.end, with_author=True)}
    assert set(rows) == {"vk:1:wall:10:1", "vk:1:wall:10:2", "vk:2:wall:4:3"}
    answered = rows["vk:1:wall:10:1"]
    assert (answered["outcome"], answered["breached"], answered["responder"]) == ("answered", True, "vk:1")
    assert (answered["municipality"], answered["page_title"]) == ("Тара", "Больница")
    assert answered["link"] == "https://vk.com/wall-1_10?reply=1"
    pending = rows["vk:1:wall:10:2"]
    assert (pending["outcome"], pending["breached"], pending["closed_at"]) == ("open", False, None)
    with engine.connect() as connection:
        texts = dict(connection.execute(select(items.c.item, items.c.text)).all())
        kinds = sorted(connection.execute(select(item_events.c.kind, item_events.c.item)).all())
    assert texts["vk:1:wall:10:1"] == "Когда откроют поликлинику?"  # the edit's
    assert ("replied", "vk:3:wall:1:4") in kinds  # the administrator's reply, on the item it answers
    assert ("deleted", "vk:2:wall:4:3") in kinds and ("breached", "vk:1:wall:10:1") in kinds


def test_the_later_version_wins_whatever_the_arrival(engine: Any) -> None:
    writer = writer_for(engine)
    writer.apply([record("vk:1:wall:1:1", 3, "answered", responder="vk:1")])
    writer.apply([record("vk:1:wall:1:1", 1, "open", True), record("vk:1:wall:1:1", 2, "withdrawn")])
    writer.apply([interaction("vk:1:wall:1:1")])  # the interaction after its judgement
    with engine.connect() as connection:
        row = connection.execute(select(items).where(items.c.item == "vk:1:wall:1:1")).one()
    assert (row.outcome, row.version, row.responder, row.text) == ("answered", 3, "vk:1", "Когда откроют?")


def test_records_that_do_not_decode_are_returned_with_their_reason(engine: Any) -> None:
    bad = [
        Incoming("responses", b"{not json", "t", 0, 7),
        Incoming("responses", orjson.dumps({"item": "vk:1:wall:1:1"})),
        Incoming("responses", record("vk:1:wall:1:2", 1).value.replace(b'"answered"', b'"lost"')),
        Incoming("overrides", orjson.dumps({"item": "vk:1:wall:1:1", "needs_answer": True, "by": "", "note": "x"})),
        Incoming("moderation", b"[]"),
    ]
    applied = writer_for(engine).apply([*bad, record("vk:1:wall:1:3", 1)])
    reasons = [reason for _, reason in applied.rejected]
    assert len(reasons) == 5
    assert reasons[0].startswith("response record: JSON is malformed")
    assert "missing required field" in reasons[1]
    assert "lost" in reasons[2] or "outcome" in reasons[2]
    assert reasons[3].startswith("override: by")
    assert reasons[4].startswith("moderation record")
    assert applied.rejected[0][0].offset == 7
    assert [row["item"] for row in item_rows(engine, NOV.start, NOV.end)] == ["vk:1:wall:1:3"]


def test_a_correction_is_kept_with_the_judgement_before_and_after(engine: Any) -> None:
    writer = writer_for(engine)
    writer.apply([record("vk:1:wall:1:1", 1, "no_answer_needed", reason="gratitude")])
    override = Override(
        item="vk:1:wall:1:1", needs_answer=True, by="оператор Иванова", note="это вопрос", requested_at=NOV.start + 9000
    )
    writer.apply([Incoming("overrides", override.to_json())] * 2)  # delivered twice: kept once
    corrected = ResponseRecord(
        item="vk:1:wall:1:1",
        page="vk:1",
        kind="comment",
        author="vk:user:5",
        created_at=NOV.start + 7200,
        outcome="open",
        closed_at=None,
        latency_s=None,
        business_latency_s=None,
        deadline="8h working",
        breached=True,
        extra={"override": {"needs_answer": True, "by": "оператор Иванова", "at": NOV.start + 9000.0}},
        version=2,
    )
    writer.apply([Incoming("responses", corrected.to_json())])
    assert table_rows(engine, corrections) == [
        (
            "vk:1:wall:1:1",
            NOV.start + 9000,
            "оператор Иванова",
            "это вопрос",
            True,
            "no_answer_needed",
            False,
            "open",
            True,
        )
    ]
    with engine.connect() as connection:
        kinds = [k for (k,) in connection.execute(select(item_events.c.kind).order_by(item_events.c.at))]
    assert kinds.count("corrected") == 1


def test_the_rating_sql_equals_the_rules_over_the_same_items(engine: Any) -> None:
    rng = random.Random(11)
    outcomes = ["answered"] * 6 + ["open", "withdrawn", "moderated", "expired", "no_answer_needed"]
    batch, expected = [], []
    for n in range(600):
        page = f"vk:{rng.choice([1, 2, 3, 4])}"
        created = rng.randrange(NOV.start - 5 * 86400, NOV.end + 5 * 86400)
        outcome = rng.choice(outcomes)
        breached = outcome in ("open", "expired") or (outcome != "no_answer_needed" and rng.random() < 0.2)
        closed = None if outcome == "open" else created + rng.randrange(0, 20 * 86400)
        latency = rng.randrange(0, 50_000) if outcome == "answered" else None
        item = f"{page}:wall:9:{n}"
        batch.append(
            record(
                item,
                1,
                outcome,
                breached,
                created_at=created,
                closed_at=closed,
                business_latency_s=latency,
            )
        )
        municipality = REGISTRY.page(page).municipality
        expected.append(ItemFacts(municipality, created, outcome, breached, closed, latency))
    writer_for(engine).apply(batch)
    got = [row.as_dict() for row in rating(engine, NOV, by="municipality")]
    want = [row.as_dict() for row in rate(expected, NOV)]
    assert got == want
    assert {row["unit"] for row in got} == {"Тара", "Омск", "Город"}
    by_page = rating(engine, NOV, by="page", min_judged=1000)
    assert {row.unit for row in by_page} == {"vk:1", "vk:2", "vk:3", "vk:4"} and not any(r.rated for r in by_page)


def test_texts_are_erased_after_retention_and_never_come_back(engine: Any) -> None:
    day = 86400
    old, fresh = "vk:1:wall:1:1", "vk:1:wall:1:2"
    clock = Clock(NOV.start + 85 * day)
    writer = StoreWriter(engine, REGISTRY.page, 30 * day, clock=clock)
    writer.apply(
        [interaction(old, created_at=NOV.start + 60 * day), interaction(fresh, created_at=NOV.start + 80 * day)]
    )
    clock.now = NOV.start + 100 * day
    assert writer.erase_texts() == 1
    writer.apply([interaction(old, created_at=NOV.start + 60 * day)])  # read again (a backlog)
    with engine.connect() as connection:
        texts = dict(connection.execute(select(items.c.item, items.c.text)).all())
    assert texts == {old: None, fresh: "Когда откроют?"}


def test_forget_author_erases_their_texts_and_replaces_their_id(engine: Any) -> None:
    writer = writer_for(engine)
    writer.apply(
        [
            interaction("vk:1:wall:1:1", author="vk:user:42"),
            interaction("vk:1:wall:1:2", author="vk:user:42"),
            interaction("vk:1:wall:1:3", author="vk:user:43"),
        ]
    )
    changed = writer.forget_author("vk:user:42")
    assert changed == {"items": 2, "responders": 0, "events": 2}
    with engine.connect() as connection:
        rows = connection.execute(select(items.c.item, items.c.author, items.c.text).order_by(items.c.item)).all()
        actors = {a for (a,) in connection.execute(select(item_events.c.actor))}
    assert rows[0].author == rows[1].author and rows[0].author.startswith("forgotten:")
    assert rows[0].text is None and rows[2].text == "Когда откроют?"
    assert "vk:user:42" not in actors


def test_store_load_and_report_commands(tmp_path: Path, store_url: str) -> None:
    rows = [
        {
            "item": f"vk:1:wall:1:{n}",
            "page": "vk:1",
            "kind": "comment",
            "author": "vk:user:5",
            "created_at": "2026-11-03T09:00:00Z",
            "outcome": "answered",
            "closed_at": "2026-11-03T10:00:00Z",
            "latency_s": 3600,
            "business_latency_s": 3600 + n,
            "age_s": None,
            "business_age_s": None,
            "deadline": "8h working",
            "breached": False,
            "responder": "vk:1",
            "reason": None,
        }
        for n in range(3)
    ]
    archive = tmp_path / "judged.jsonl"
    archive.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n{broken\n")
    env = {"PATH": "/usr/bin:/bin", "OTKLIK_STORE_URL": store_url}
    loaded = subprocess.run([OTKLIK, "store", "load", str(archive)], env=env, capture_output=True, text=True, cwd=REPO)
    assert loaded.returncode == 1, loaded.stderr
    assert "loaded 3 records; 1 lines refused" in loaded.stdout and "line 4:" in loaded.stderr
    report = subprocess.run(
        [OTKLIK, "report", "rating", "--month", "2026-11", "--tz", "Europe/Moscow", "--format", "json"],
        env=env,
        capture_output=True,
        cwd=REPO,
    )
    assert report.returncode == 0, report.stderr
    (unit,) = orjson.loads(report.stdout)
    assert (unit["unit"], unit["received"], unit["on_time"], unit["median_business_s"]) == ("vk:1", 3, 3, 3601.0)
    # A live record of the same item does not undo the archive's judgement (docs/history.md, "Loading archives").
    engine = open_engine(store_url)
    writer_for(engine).apply([record("vk:1:wall:1:0", 5, "open", True)])
    with engine.connect() as connection:
        assert connection.execute(select(items.c.outcome).where(items.c.item == "vk:1:wall:1:0")).scalar() == "answered"
    engine.dispose()


def test_a_bad_store_url_stops_start_up_without_the_password(tmp_path: Path) -> None:
    for url, problem in [
        ("mysql://otklik:sekret-pw@db/otklik", "only sqlite and postgresql"),
        ("postgresql://otklik:sekret-pw@127.0.0.1:1/otklik", "cannot reach the store"),
        ("not a url", "is not a database URL"),
    ]:
        env = {"PATH": "/usr/bin:/bin", "OTKLIK_STORE_URL": url}
        done = subprocess.run(
            [OTKLIK, "report", "rating", "--month", "2026-11"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 2, (url, done.stderr)
        assert "OTKLIK_STORE_URL" in done.stderr or "store" in done.stderr
        assert problem in done.stderr, done.stderr
        assert "sekret-pw" not in done.stderr + done.stdout


def test_report_deliver_mails_last_month_s_rating_from_the_store(tmp_path: Path, store_url: str) -> None:
    """`otklik report deliver` on the first working day: the store's rating, as XLSX, to the registry's
    recipients, once (docs/history.md, "Monthly delivery")."""
    import io
    from email import message_from_bytes
    from email.policy import default as default_policy

    import openpyxl
    import yaml
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port

    mails: list[Any] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            mails.append(message_from_bytes(envelope.content, policy=default_policy))
            return "250 OK"

    registry = tmp_path / "registry.yaml"
    registry.write_text(
        yaml.safe_dump(
            {
                "defaults": {"region": "Область", "timezone": "Europe/Moscow"},
                "pages": [{"id": "vk:1", "municipality": "Тара"}, {"id": "vk:2", "municipality": "Омск"}],
                "reports": [{"region": "Область", "contacts": [{"name": "ЦУР", "email": "cur@example.ru"}]}],
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    engine = open_engine(store_url)
    migrate(engine)
    from otklik.agents.registry import load_registry

    StoreWriter(engine, load_registry(registry).page, 90 * 86400).apply(
        [record(f"vk:{1 + n % 2}:wall:1:{n}", 1, "answered", n % 3 == 0, business_latency_s=60 * n) for n in range(8)]
    )
    engine.dispose()
    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    env = {
        "PATH": "/usr/bin:/bin",
        "OTKLIK_STORE_URL": store_url,
        "OTKLIK_REGISTRY": str(registry),
        "OTKLIK_SMTP_HOST": "127.0.0.1",
        "OTKLIK_SMTP_PORT": str(port),
        "OTKLIK_NOTIFIER_DATA_DIR": str(tmp_path / "notifier"),
    }
    try:
        first_working_day = "2026-12-01T10:00:00+03:00"
        runs = [
            subprocess.run(
                [OTKLIK, "report", "deliver", "--now", first_working_day], env=env, capture_output=True, text=True
            )
            for _ in range(2)
        ]
    finally:
        controller.stop()
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout.startswith("sent: report|2026-11|region=Область")
    assert runs[1].stdout.strip() == "nothing due"  # the journal remembers
    (mail,) = mails
    assert "cur@example.ru" in str(mail["To"])
    (attachment,) = [part for part in mail.iter_attachments()]
    sheet = openpyxl.load_workbook(io.BytesIO(attachment.get_content())).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    units = {row[1] for row in values[3:] if row[1]}  # after the rank
    assert units == {"Тара", "Омск"}


def test_a_manager_s_comment_is_an_item_only_before_their_role_began(engine: Any) -> None:
    """The store's items follow the engine's rule for who is the page (docs/responses.md, "Page replies"):
    otklik.managers' spans decide, by the comment's own time, whatever order the records come in."""
    from otklik.schemas.managers import ManagerChange, ManagerList, encode_manager_record

    began, ended = NOV.start + 10_000, NOV.start + 50_000

    def role(record: Any) -> Incoming:
        return Incoming("managers", encode_manager_record(record))

    comments = [
        interaction("vk:1:wall:7:1", author="vk:user:900", created_at=began - 100),  # before: a citizen's item
        interaction("vk:1:wall:7:2", author="vk:user:900", created_at=began + 100, reply_to_item="vk:1:wall:7:9"),
        interaction("vk:1:wall:7:3", author="vk:user:900", created_at=ended + 100),  # after the list ended it
    ]
    batches = [
        [role(ManagerChange(page="vk:1", user="vk:user:900", manager=True, at=began))],
        comments,
        [role(ManagerList(page="vk:1", users=["vk:user:901"], at=ended))],
    ]
    # Roles read after the comments (another batch): spans are by time, so the same rows once both are in.
    writer_for(engine).apply(batches[0] + batches[2])
    writer_for(engine).apply(batches[1])
    rows = {row["item"]: row for row in item_rows(engine, NOV.start, NOV.end)}
    assert set(rows) == {"vk:1:wall:7:1", "vk:1:wall:7:3"}
    with engine.connect() as connection:
        replied = connection.execute(
            select(item_events.c.item, item_events.c.actor).where(item_events.c.kind == "replied")
        ).all()
    assert replied == [("vk:1:wall:7:9", "vk:user:900")]
    writer_for(engine).apply(batches[0] + batches[2])  # delivered again: no second span
    from otklik.streams.store.schema import managers

    assert table_rows(engine, managers) == [
        ("vk:1", "vk:user:900", began, ended),
        ("vk:1", "vk:user:901", ended, None),
    ]
