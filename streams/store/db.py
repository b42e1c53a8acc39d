"""Opening the store's database, migrating it, and refusing a schema this code does not know.

docs/history.md, "Migrations": `otklik store migrate` brings a database to :data:`SCHEMA_VERSION` with
Alembic; every other command checks the version first and stops naming both when they differ.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from otklik.streams.store.schema import SCHEMA_VERSION

__all__ = ["StoreError", "check_version", "current_version", "migrate", "open_engine", "shown_url"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class StoreError(RuntimeError):
    """The store cannot be used: the message says why (never with a password)."""


def shown_url(url: str | URL) -> str:
    """The URL as logs and errors may show it: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL SQLAlchemy cannot read is shown by its scheme only
        return str(url).split(":", 1)[0] + ":…"


def open_engine(url: str) -> Engine:
    """An engine on ``url``: PostgreSQL through psycopg 3; SQLite with its folder created, WAL and a busy
    timeout (the store and a report may open it at once)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, insertmanyvalues_page_size=1000)
    if backend != "sqlite":
        raise StoreError(f"{shown_url(parsed)}: only sqlite and postgresql databases are supported")
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def current_version(engine: Engine) -> str | None:
    """The schema version the database is at (Alembic's revision), or None when it has none."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise StoreError(f"cannot reach the store at {shown_url(engine.url)}: {_reason(exc)}") from None


def _reason(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to :data:`SCHEMA_VERSION`; returns (version before, version after)."""
    before = current_version(engine)
    if before is not None and before > SCHEMA_VERSION:
        raise StoreError(
            f"the store at {shown_url(engine.url)} is at schema version {before}, newer than this "
            f"otklik's {SCHEMA_VERSION}: upgrade otklik"
        )
    with engine.begin() as connection:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, SCHEMA_VERSION


def check_version(engine: Engine) -> None:
    """Raise :class:`StoreError` unless the database is at :data:`SCHEMA_VERSION`."""
    found = current_version(engine)
    if found == SCHEMA_VERSION:
        return
    if found is None:
        raise StoreError(
            f"the store at {shown_url(engine.url)} has no otklik schema (this otklik writes version "
            f"{SCHEMA_VERSION}): run `otklik store migrate`"
        )
    hint = "run `otklik store migrate`" if found < SCHEMA_VERSION else "upgrade otklik"
    raise StoreError(
        f"the store at {shown_url(engine.url)} is at schema version {found}; this otklik knows version "
        f"{SCHEMA_VERSION}: {hint}"
    )
