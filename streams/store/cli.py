"""`otklik store …` and `otklik report …`: the store's service, its upkeep, and the reports read from it."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

import click

from otklik.streams.settings import SettingsError, StoreSettings, command_error

__all__ = ["report_command", "store_command"]

_STORE_URL_HELP = "the store's database [env OTKLIK_STORE_URL]"


def _settings(**overrides: Any) -> StoreSettings:
    try:
        return StoreSettings.from_env(**overrides)
    except SettingsError as exc:
        raise command_error(exc) from None


def _engine(settings: StoreSettings, *, create: bool = False) -> Any:
    """The store's engine, checked to be at this otklik's schema version (created when ``create`` and
    the database has no schema yet)."""
    from otklik.streams.store.db import StoreError, check_version, current_version, migrate, open_engine

    try:
        engine = open_engine(settings.store_url.get_secret_value())
        if create and current_version(engine) is None:
            migrate(engine)
        check_version(engine)
    except StoreError as exc:
        raise command_error(exc) from None
    return engine


def _watcher(settings: StoreSettings) -> Any:
    from otklik.agents.registry import RegistryWatcher
    from otklik.schemas.registry import RegistryError

    try:
        return RegistryWatcher(settings.registry)
    except RegistryError as exc:
        raise command_error(exc) from None


def _registry(settings: StoreSettings) -> Any:
    return _watcher(settings).registry


def _writer(settings: StoreSettings, engine: Any, watcher: Any = None) -> Any:
    from otklik.streams.store.writer import StoreWriter, record_registry

    watcher = watcher or _watcher(settings)
    writer = StoreWriter(engine, watcher.page_config, settings.text_retention_s)
    record_registry(writer, watcher)
    return writer


# ---- otklik store -----------------------------------------------------------------------------------


@click.group("store", invoke_without_command=True)
@click.option("--store", "store_url", default=None, help=_STORE_URL_HELP)
@click.option(
    "--registry", type=click.Path(path_type=Path), default=None, help="the page registry [env OTKLIK_REGISTRY]"
)
@click.pass_context
def store_command(ctx: click.Context, store_url: str | None, registry: Path | None) -> None:
    """Keep what the worker judged in SQL: items, timelines, moderation findings, corrections.

    Without a subcommand, runs the store's consumer (SQLite in .run/store by default; PostgreSQL with
    OTKLIK_STORE_URL=postgresql://...). A database without a schema gets one; a database at another
    schema version stops start-up.
    """
    ctx.obj = {"store_url": store_url, "registry": registry}
    if ctx.invoked_subcommand is not None:
        return
    from otklik.streams.logs import limit_kafka_logs
    from otklik.streams.store.service import StoreService

    settings = _settings(store_url=store_url, registry=registry)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_kafka_logs()
    engine = _engine(settings, create=True)
    watcher = _watcher(settings)
    service = StoreService(settings, _writer(settings, engine, watcher), watcher, deliver=_delivery(engine, watcher))
    asyncio.run(service.run())


def _rating_source(engine: Any, registry: Any) -> Any:
    """The monthly delivery's ratings, read from the store."""
    from otklik.streams.store.reports import rating, rating_meta

    def rating_for(month: Any, by: str, where: Any) -> Any:
        titles = {page.id: page.title for page in registry if page.title} if by == "page" else None
        return rating(engine, month, by=by, where=dict(where)), rating_meta(engine, month, by, 2, titles=titles)

    return rating_for


def _delivery(engine: Any, watcher: Any) -> Any:
    """The monthly e-mail of the rating, run by the service every hour when the registry names recipients
    and OTKLIK_SMTP_HOST is set (docs/history.md, "Monthly delivery"); else None."""
    from otklik.streams.settings import NotifierSettings
    from otklik.streams.store.delivery import run_monthly_delivery

    if not watcher.registry.reports:
        return None
    try:
        notifier = NotifierSettings.from_env()
    except SettingsError as exc:
        raise command_error(exc) from None
    if notifier.smtp_host is None:
        logging.getLogger("otklik.store").warning("the registry names report recipients but OTKLIK_SMTP_HOST is unset")
        return None

    async def deliver() -> Any:
        registry = watcher.registry
        return await run_monthly_delivery(notifier, registry, _rating_source(engine, registry))

    return deliver


def _ctx_settings(ctx: click.Context) -> StoreSettings:
    obj = ctx.obj or {}
    return _settings(store_url=obj.get("store_url"), registry=obj.get("registry"))


@store_command.command("migrate")
@click.pass_context
def store_migrate(ctx: click.Context) -> None:
    """Bring the store's schema to this otklik's version (Alembic)."""
    from otklik.streams.store.db import StoreError, migrate, open_engine, shown_url

    settings = _ctx_settings(ctx)
    url = settings.store_url.get_secret_value()
    try:
        before, after = migrate(open_engine(url))
    except StoreError as exc:
        raise command_error(exc) from None
    click.echo(f"{shown_url(url)}: schema {before or 'none'} -> {after}")


@store_command.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.pass_context
def store_load(ctx: click.Context, path: str) -> None:
    """Load `otklik replay` output, or a dump of otklik.responses (JSON lines), into the store.

    A replay's rows stand for an item's final judgement under today's rules: they replace what the
    store held for those items (docs/history.md, "Loading archives").
    """
    from otklik.streams.store.loading import load_lines

    settings = _ctx_settings(ctx)
    engine = _engine(settings, create=True)
    writer = _writer(settings, engine)
    stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        loaded, rejected = load_lines(writer, stream)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    for number, reason in rejected[:20]:
        click.echo(f"line {number}: {reason}", err=True)
    click.echo(f"loaded {loaded} records; {len(rejected)} lines refused")
    if rejected:
        sys.exit(1)


@store_command.command("forget-author")
@click.argument("author")
@click.pass_context
def store_forget_author(ctx: click.Context, author: str) -> None:
    """Erase one person's texts and replace their id (a request under 152-FZ)."""
    settings = _ctx_settings(ctx)
    changed = _writer(settings, _engine(settings)).forget_author(author)
    click.echo(", ".join(f"{count} {table}" for table, count in changed.items()) + " rows changed")


@store_command.command("erase-texts")
@click.pass_context
def store_erase_texts(ctx: click.Context) -> None:
    """Erase the texts older than OTKLIK_TEXT_RETENTION now (the service does it every hour)."""
    settings = _ctx_settings(ctx)
    erased = _writer(settings, _engine(settings)).erase_texts()
    click.echo(f"{erased} texts erased")


# ---- otklik report ----------------------------------------------------------------------------------


@click.command("deliver")
@click.option("--now", "at", default=None, help="act as if it were this time (ISO 8601); default: now")
@click.option("--store", "store_url", default=None, help=_STORE_URL_HELP)
@click.option(
    "--registry", type=click.Path(path_type=Path), default=None, help="the page registry [env OTKLIK_REGISTRY]"
)
def report_deliver(at: str | None, store_url: str | None, registry: Path | None) -> None:
    """Send the monthly ratings that are due (the store's service does it every hour); prints each."""
    from otklik.streams.settings import NotifierSettings
    from otklik.streams.store.delivery import run_monthly_delivery_sync

    settings = _settings(store_url=store_url, registry=registry)
    try:
        notifier = NotifierSettings.from_env(registry=registry)
    except SettingsError as exc:
        raise command_error(exc) from None
    now = None
    if at is not None:
        try:
            now = int(datetime.fromisoformat(at).timestamp())
        except ValueError:
            raise click.BadParameter(f"{at!r} is not an ISO 8601 time", param_hint="--now") from None
    watcher = _watcher(settings)
    engine = _engine(settings)
    results = run_monthly_delivery_sync(notifier, watcher.registry, _rating_source(engine, watcher.registry), now=now)
    for result in results:
        click.echo(f"{result.result}: {result.delivery.key} {result.reason or ''}".rstrip())
    if not results:
        click.echo("nothing due")


@click.group("report")
def report_command() -> None:
    """Reports read from the store: the monthly rating, the items."""


def _zone(settings: StoreSettings, zone: str | None) -> str:
    if zone:
        return zone
    if settings.registry is not None:
        return str(_registry(settings).defaults.timezone)
    return settings.report_timezone


def _out(out: Path | None) -> Any:
    return open(out, "wb") if out is not None else sys.stdout.buffer


@report_command.command("rating")
@click.option("--month", required=True, help="the month, YYYY-MM")
@click.option(
    "--by", type=click.Choice(["page", "municipality", "sector", "region"]), default="page", show_default=True
)
@click.option("--tz", "zone", default=None, help="the months' time zone [default: the registry's]")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "xlsx", "html"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="the file [default: stdout]")
@click.option("--min-judged", type=click.IntRange(min=1), default=2, show_default=True, help="judged items to be rated")
@click.option("--store", "store_url", default=None, help=_STORE_URL_HELP)
@click.option(
    "--registry", type=click.Path(path_type=Path), default=None, help="the page registry [env OTKLIK_REGISTRY]"
)
def report_rating(
    month: str,
    by: str,
    zone: str | None,
    fmt: str,
    out: Path | None,
    min_judged: int,
    store_url: str | None,
    registry: Path | None,
) -> None:
    """The monthly rating of pages, municipalities, sectors or regions (docs/history.md, "The monthly rating")."""
    from otklik.agents.history.rating import month_bounds
    from otklik.streams.store.formats import write_rating
    from otklik.streams.store.reports import rating_meta

    settings = _settings(store_url=store_url, registry=registry)
    try:
        bounds = month_bounds(month, _zone(settings, zone))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    engine = _engine(settings)
    from otklik.streams.store.reports import rating

    rows = rating(engine, bounds, by=by, min_judged=min_judged)
    meta = rating_meta(engine, bounds, by, min_judged, titles=_titles(settings) if by == "page" else None)
    stream = _out(out)
    try:
        write_rating(rows, meta, fmt, stream)
    finally:
        if out is not None:
            stream.close()
        else:
            stream.flush()


def _titles(settings: StoreSettings) -> dict[str, str]:
    if settings.registry is None:
        return {}
    return {page.id: page.title for page in _registry(settings) if page.title}


def _day(value: str, zone: str, *, end: bool = False) -> int:
    from zoneinfo import ZoneInfo

    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if end:
        day += timedelta(days=1)
    return int(datetime.combine(day, time(0), ZoneInfo(zone)).timestamp())


@report_command.command("items")
@click.option("--from", "since", required=True, help="the first day, YYYY-MM-DD")
@click.option("--to", "until", required=True, help="the last day, YYYY-MM-DD (included)")
@click.option("--page", default=None)
@click.option("--municipality", default=None)
@click.option("--outcome", default=None)
@click.option("--breached", is_flag=True, help="only items judged late")
@click.option("--with-author", is_flag=True, help="include the author's id (personal data)")
@click.option("--tz", "zone", default=None, help="the days' time zone [default: the registry's]")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "xlsx"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--store", "store_url", default=None, help=_STORE_URL_HELP)
@click.option("--registry", type=click.Path(path_type=Path), default=None)
def report_items(
    since: str,
    until: str,
    page: str | None,
    municipality: str | None,
    outcome: str | None,
    breached: bool,
    with_author: bool,
    zone: str | None,
    fmt: str,
    out: Path | None,
    store_url: str | None,
    registry: Path | None,
) -> None:
    """One row per item created between two days, with its link on the platform."""
    from otklik.streams.store.formats import write_items
    from otklik.streams.store.reports import item_rows

    settings = _settings(store_url=store_url, registry=registry)
    tz = _zone(settings, zone)
    rows = item_rows(
        _engine(settings),
        _day(since, tz),
        _day(until, tz, end=True),
        page=page,
        municipality=municipality,
        outcome=outcome,
        breached=breached,
        with_author=with_author,
    )
    stream = _out(out)
    try:
        write_items(rows, fmt, stream, zone=tz, with_author=with_author)
    finally:
        if out is not None:
            stream.close()
        else:
            stream.flush()


report_command.add_command(report_deliver)
