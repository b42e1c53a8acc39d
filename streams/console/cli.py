"""`otklik console` (the web pages) and `otklik console add-user` (README, "The operations console")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from otklik.streams.settings import ConsoleSettings, SettingsError, command_error

__all__ = ["console_command"]


def _settings(**overrides: Any) -> ConsoleSettings:
    try:
        return ConsoleSettings.from_env(**overrides)
    except SettingsError as exc:
        raise command_error(exc) from None


def _engine(settings: ConsoleSettings) -> Any:
    """The store's engine at this otklik's schema version; an empty database gets the schema."""
    from otklik.streams.store.db import StoreError, check_version, current_version, migrate, open_engine

    try:
        engine = open_engine(settings.store_url.get_secret_value())
        if current_version(engine) is None:
            migrate(engine)
        check_version(engine)
    except StoreError as exc:
        raise command_error(exc) from None
    return engine


def kafka_producer(bootstrap: str, topic: str) -> Any:
    """The console's producer of corrections: each one written to ``topic`` and acknowledged by the
    broker before the console records it (as `otklik override` writes them)."""
    from otklik.streams.worker.overrides import submit

    async def produce(override: Any) -> None:
        await submit(bootstrap, topic, override)

    return produce


@click.group("console", invoke_without_command=True)
@click.option("--store", "store_url", default=None, help="the store's database [env OTKLIK_STORE_URL]")
@click.option("--host", default=None, help="the address to listen on [env OTKLIK_CONSOLE_HOST, 127.0.0.1]")
@click.option("--port", type=int, default=None, help="the port [env OTKLIK_CONSOLE_PORT, 8090]")
@click.option(
    "--registry",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="the page registry [env OTKLIK_REGISTRY; unset: the newest version the store recorded]",
)
@click.pass_context
def console_command(
    ctx: click.Context, store_url: str | None, host: str | None, port: int | None, registry: Path | None
) -> None:
    """The operations console: the queue, items, pages, the rating, moderation and disputes, in Russian.

    Users sign in with accounts made by `otklik console add-user`. Serve it behind TLS (a reverse
    proxy) and set OTKLIK_CONSOLE_SECURE_COOKIES=true there."""
    ctx.ensure_object(dict)
    ctx.obj["store_url"] = store_url
    if ctx.invoked_subcommand is not None:
        return
    from aiohttp import web

    from otklik.streams.console.app import ConsoleConfig, make_app
    from otklik.streams.console.data import COUNTS_TTL_S, ConsoleStore, RegistrySource

    settings = _settings(store_url=store_url, host=host, port=port, registry=registry)
    settings.configure_logging()
    store = ConsoleStore(_engine(settings), counts_ttl_s=COUNTS_TTL_S)
    config = ConsoleConfig(
        store,
        RegistrySource(store, settings.registry),
        kafka_producer(settings.bootstrap, settings.topic("overrides")),
        secret=settings.secret.get_secret_value().encode() if settings.secret else None,
        session_s=settings.session_s,
        lockout_s=settings.lockout_s,
        secure_cookies=settings.secure_cookies,
        behind_proxy=settings.behind_proxy,
        user_header=settings.user_header,
        zone=settings.report_timezone,
    )
    click.echo(f"otklik console on http://{settings.host}:{settings.port}/", err=True)
    web.run_app(make_app(config), host=settings.host, port=settings.port, print=None)


@console_command.command("add-user")
@click.argument("login")
@click.option(
    "--role",
    type=click.Choice(["operator", "curator", "page_admin", "analyst"]),
    required=True,
    help="what they may do",
)
@click.option("--municipality", "municipalities", multiple=True, help="a curator's municipality (repeat for more)")
@click.option("--page", "pages", multiple=True, help="a page administrator's page id, e.g. vk:100001 (repeat)")
@click.option("--password-stdin", is_flag=True, required=True, help="read the password from standard input")
@click.pass_context
def add_user(
    ctx: click.Context,
    login: str,
    role: str,
    municipalities: tuple[str, ...],
    pages: tuple[str, ...],
    password_stdin: bool,
) -> None:
    """Add a console user LOGIN (or replace their password, role and limits), the password read from
    standard input: `printf %s "$PASSWORD" | otklik console add-user petrova --role operator --password-stdin`."""
    from otklik.streams.console.auth import hash_password
    from otklik.streams.console.data import ConsoleStore, UserError

    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise click.ClickException("the password must be 8 characters or more")
    settings = _settings(store_url=ctx.obj.get("store_url"))
    store = ConsoleStore(_engine(settings))
    try:
        new = store.add_user(login, hash_password(password), role, municipalities, pages)  # type: ignore[arg-type]
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'added' if new else 'updated'} user {login} ({role})")
