"""The tests' own PostgreSQL (tests/postgres.py, the fixtures in tests/conftest.py) is a real server:
reached over TCP with a password, keeping BIGINT, booleans and Russian text, one database per test."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.postgres import LocalPostgres

# Beyond 32 bits: unix milliseconds of the year 2100, where an INTEGER column would overflow.
BIG = 4_102_444_800_123
RUSSIAN = "Когда починят освещение на улице Ленина? Ёлка, «кавычки» — тире"


def roundtrip_table() -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    table = sa.Table(
        "roundtrip",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("big", sa.BigInteger, nullable=False),
        sa.Column("flag", sa.Boolean, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    return metadata, table


def test_postgres_url_connects_as_otklik_with_a_password(postgres_url: str) -> None:
    url = make_url(postgres_url)
    assert (url.drivername, url.host, url.username, url.database) == (
        "postgresql+psycopg",
        "127.0.0.1",
        "otklik",
        "otklik",
    )
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            user, database, version = conn.execute(
                sa.text("select current_user, current_database(), current_setting('server_version_num')::int")
            ).one()
            assert (user, database) == ("otklik", "otklik")
            assert version >= 130000  # DROP DATABASE ... WITH (FORCE)
            assert (
                conn.execute(
                    sa.text("select pg_encoding_to_char(encoding) from pg_database where datname = 'otklik'")
                ).scalar()
                == "UTF8"
            )
    finally:
        engine.dispose()


def test_a_wrong_password_is_refused(postgres_url: str) -> None:
    # scram-sha-256 over TCP: the password in the URL is what lets the tests in, not trust.
    wrong = make_url(postgres_url).set(password="not-the-password")
    engine = sa.create_engine(wrong)
    try:
        with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
            engine.connect().close()
    finally:
        engine.dispose()


def test_bigint_boolean_and_russian_text_round_trip(pg_database: str) -> None:
    metadata, table = roundtrip_table()
    engine = sa.create_engine(pg_database)
    try:
        metadata.create_all(engine)
        rows = [
            {"id": 1, "big": BIG, "flag": True, "text": RUSSIAN},
            {"id": 2, "big": -BIG, "flag": False, "text": ""},
        ]
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
        with engine.connect() as conn:
            back = [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(table.c.id))]
            assert back == rows
            assert type(back[0]["big"]) is int and type(back[0]["flag"]) is bool
            # the server sees characters, not bytes: length and case work on Cyrillic
            length, upper = conn.execute(
                sa.select(sa.func.length(table.c.text), sa.func.upper(table.c.text)).where(table.c.id == 1)
            ).one()
            assert length == len(RUSSIAN)
            assert upper == RUSSIAN.upper()
            column_types = dict(
                conn.execute(
                    sa.text(
                        "select column_name, data_type from information_schema.columns where table_name = 'roundtrip'"
                    )
                ).all()
            )
            assert column_types["big"] == "bigint" and column_types["flag"] == "boolean"
    finally:
        engine.dispose()


def test_each_test_database_is_its_own(postgres_cluster: LocalPostgres) -> None:
    first, second = postgres_cluster.create_database(), postgres_cluster.create_database()
    assert first != second
    metadata, table = roundtrip_table()
    engines = [sa.create_engine(postgres_cluster.url(name)) for name in (first, second)]
    try:
        metadata.create_all(engines[0])
        with engines[0].begin() as conn:
            conn.execute(table.insert(), [{"id": 1, "big": BIG, "flag": True, "text": RUSSIAN}])
        assert not sa.inspect(engines[1]).has_table("roundtrip")
        metadata.create_all(engines[1])
        with engines[1].connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
        with engines[0].connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 1
    finally:
        for engine in engines:
            engine.dispose()
        postgres_cluster.drop_database(first)
        postgres_cluster.drop_database(second)
    # dropped, even though the engines had opened connections
    with pytest.raises(sa.exc.OperationalError, match="does not exist"):
        sa.create_engine(postgres_cluster.url(first)).connect().close()


def test_store_url_gives_both_databases_empty(store_url: str) -> None:
    metadata, table = roundtrip_table()
    engine = sa.create_engine(store_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": 1, "big": BIG, "flag": True, "text": RUSSIAN}])
        with engine.connect() as conn:
            assert conn.execute(sa.select(table.c.big, table.c.flag, table.c.text)).one() == (BIG, True, RUSSIAN)
    finally:
        engine.dispose()
    assert make_url(store_url).get_backend_name() in {"sqlite", "postgresql"}


def test_the_cluster_runs_as_the_postgres_user_in_a_reachable_folder(postgres_cluster: LocalPostgres) -> None:
    import os

    owner = os.stat(postgres_cluster.data).st_uid
    if os.geteuid() == 0:
        import pwd

        assert owner == pwd.getpwnam("postgres").pw_uid
    else:
        assert owner == os.geteuid()
    assert not str(postgres_cluster.root).startswith("/tmp/pytest-of-")
