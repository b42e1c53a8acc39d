"""Each page's VK managers from the VK API, into ``otklik.managers`` (docs/responses.md, "Page replies").

``groups.getMembers`` with ``filter=managers`` (a community's own token) gives the complete list; it is
written as a :class:`~otklik.schemas.managers.ManagerList` as of the time it was read, and the response
engine begins the roles of those new to it and ends those of the people missing from it. The Callback
event ``group_officers_edit`` gives the changes as they happen (the normalize agent writes them).

``otklik managers sync [--group ID]`` reads every community with a token once (or the ones named);
``--every SECONDS`` keeps doing it, the first round at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable

import click

from otklik.agents.ingest.vk import author_id
from otklik.schemas.managers import ManagerList, encode_manager_record
from otklik.streams.edge.vk_api import VkApiClient, VkApiError, VkToken

log = logging.getLogger("otklik.managers")


async def read_managers(client: VkApiClient, token: VkToken, group_id: int) -> list[str]:
    """Every manager of the community (moderators, editors, administrators, its creator), as authors."""
    users: set[str] = set()
    offset = 0
    while True:
        page = await client.groups_get_managers(token, group_id, offset=offset)
        users.update(author_id(m.id) for m in page.items if m.id > 0)
        offset += len(page.items)
        if not page.items or offset >= page.count:
            return sorted(users)


async def sync_managers(
    client: VkApiClient,
    token_of: Callable[[int], VkToken | None],
    groups: Iterable[int],
    produce: Callable[[ManagerList], Awaitable[None]],
    now: Callable[[], float] = time.time,
) -> dict[int, str]:
    """Read and produce the list of each group; returns what happened to each (for the person running
    it): the number of managers, or why there is no list. One community's failure stops no other."""
    done: dict[int, str] = {}
    for group_id in groups:
        token = token_of(group_id)
        if token is None:
            done[group_id] = "no community token"
            continue
        at = int(now())
        try:
            users = await read_managers(client, token, group_id)
        except VkApiError as exc:  # its message names the method and the code, never the token
            log.warning("managers of vk:%d not read: %s", group_id, exc)
            done[group_id] = f"not read: {exc}"
            continue
        await produce(ManagerList(f"vk:{group_id}", users, at, "api"))
        done[group_id] = f"{len(users)} managers"
    return done


# ---- the command --------------------------------------------------------------------------------------


@click.group("managers")
def managers_group() -> None:
    """Each page's VK managers (docs/responses.md, "Page replies")."""


@managers_group.command("sync")
@click.option("--group", "groups", type=click.IntRange(min=1), multiple=True, help="This VK group (repeatable).")
@click.option(
    "--every",
    type=click.IntRange(min=60),
    default=None,
    help="Seconds between rounds: keep syncing, the first round at once; default: once.",
)
def sync_command(groups: tuple[int, ...], every: int | None) -> None:
    """Read each community's managers (groups.getMembers, filter=managers) into otklik.managers.

    Needs each community's token (OTKLIK_VK_<GROUPID>_TOKEN or the secrets file); without --group,
    every community that has one."""
    import aiohttp

    from otklik.streams.edge.secrets import load_secrets
    from otklik.streams.logs import limit_kafka_logs
    from otklik.streams.settings import CatchUpSettings, SettingsError, command_error

    try:
        settings = CatchUpSettings.from_env()
        secrets = load_secrets()
    except SettingsError as exc:
        raise command_error(exc) from None
    settings.configure_logging()
    limit_kafka_logs()

    def token_of(group_id: int) -> VkToken | None:
        found = secrets.community(group_id)
        if found is None or not found.token:
            return None
        return VkToken.of("group", found.token, f"community {group_id}")

    wanted = list(groups) or sorted(g for g, c in secrets.vk.items() if c.token)
    if not wanted:
        raise click.ClickException("no VK community has a token: name one with --group, and give its token")
    topic = settings.topic("managers")

    async def main() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()

        async def produce(record: ManagerList) -> None:
            await producer.send_and_wait(topic, encode_manager_record(record), key=record.page.encode())

        try:
            async with aiohttp.ClientSession() as session:
                client = VkApiClient(settings, session)
                stop = asyncio.Event()
                if every is not None:
                    loop = asyncio.get_running_loop()
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        loop.add_signal_handler(sig, stop.set)
                while True:
                    done = await sync_managers(client, token_of, wanted, produce)
                    for group_id, what in done.items():
                        click.echo(f"otklik managers sync: vk:{group_id}: {what}", err=True)
                    if every is None:
                        return
                    try:
                        await asyncio.wait_for(stop.wait(), every)
                        return
                    except TimeoutError:
                        pass
        finally:
            await producer.stop()

    asyncio.run(main())
