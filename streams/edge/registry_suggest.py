"""``otklik registry suggest --group ID…``: registry entries drafted from what VK says about each community
(its title, and the working hours of its address: agents/ingest/vk_schedule.py), printed as YAML for a
person to review and paste into the page registry. Needs OTKLIK_VK_SERVICE_TOKEN."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import click
import yaml

from otklik.agents.ingest.vk_schedule import suggest_entry
from otklik.streams.edge.vk_api import VkApiClient, VkApiError, VkToken


async def suggest(client: VkApiClient, token: VkToken, group_ids: Sequence[int]) -> list[dict[str, Any]]:
    """One entry per community, in the order given."""
    titles = {g.id: g.name for g in (await client.groups_get_by_id(token, group_ids)).groups}
    entries = []
    for group_id in group_ids:
        addresses = [
            a.model_dump(exclude_none=True)
            async for a in client.pages(lambda offset, g=group_id: client.groups_get_addresses(token, g, offset=offset))
        ]
        entries.append(suggest_entry(group_id, titles.get(group_id), addresses))
    return entries


def render(entries: Sequence[dict[str, Any]]) -> str:
    """The entries as the registry's ``pages:`` list, with a note to review them."""
    text = yaml.safe_dump({"pages": list(entries)}, allow_unicode=True, sort_keys=False, default_flow_style=None)
    return "# Drafted from VK (title, the working hours of the community's address): review before use.\n" + text


@click.group("registry")
def registry_group() -> None:
    """The page registry."""


@registry_group.command("suggest")
@click.option(
    "--group",
    "groups",
    type=click.IntRange(min=1),
    multiple=True,
    required=True,
    help="A VK group id (repeat for several).",
)
def suggest_command(groups: tuple[int, ...]) -> None:
    """Print registry entries for VK communities: their title, and a schedule from their address's
    timetable (groups.getAddresses), for a person to review. Needs OTKLIK_VK_SERVICE_TOKEN."""
    import aiohttp

    from otklik.streams.settings import SettingsError, VkApiSettings, command_error

    try:
        settings = VkApiSettings.from_env()
    except SettingsError as exc:
        raise command_error(exc) from None
    if settings.vk_service_token is None:
        raise click.ClickException("OTKLIK_VK_SERVICE_TOKEN is not set: VK gives addresses to a service token")
    token = VkToken.of("service", settings.vk_service_token, "service")

    async def main() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            return await suggest(VkApiClient(settings, session), token, groups)

    try:
        entries = asyncio.run(main())
    except VkApiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(render(entries), nl=False)
