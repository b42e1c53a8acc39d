"""Catch-up after a gap (``otklik catchup``): what VK's callbacks did not deliver, read with the VK API.

A gap (schemas/records.py, :class:`Gap`; docs/data-flow.md, "Gaps and catch-up") names a community and a
time in which its events may be missing. For each one, :class:`WindowReader` reads the community's wall
comments with their threads, board comments and (with the community's token) dialogs written in it,
and with a user token its photo, video and market comments (streams/edge/vk_collect_media.py), as
the Callback API bodies VK would have sent; they go to ``otklik.raw`` as envelopes with source
``vk-api``, received now, keyed like the callbacks (``vk:<group_id>``). The normalizer reads them like
any body, and the response engine judges them by their own times
(docs/responses.md, "Late history: catch-up after a gap"); a comment that also came by callback is the
same item, so nothing counts twice. Each post or topic read whole also gives a listing of its comments,
after the bodies: the engine closes the open items it lacks as deleted
(docs/responses.md, "A comment the API no longer returns"). Before the bodies, with the community's
token, come its managers, their roles dated from the window's start
(docs/responses.md, "Managers after a gap").

The service reads ``otklik.gaps`` in its own consumer group and commits a gap only after every body of
its window was acknowledged by the broker (acks=all): a crash in between reads the gap again, and the
bodies produced twice are deduplicated by the engine. The window read starts ``margin`` seconds before
the gap (the last event known may share its second with a lost one) and ends when the catch-up runs,
not at the gap's end, so an answer given after the gap reaches the items found in it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import click

from otklik.agents.ingest.gap_managers import roles_after_gap
from otklik.schemas.managers import ManagerRecord, encode_manager_record
from otklik.schemas.records import Gap, RawEnvelope
from otklik.streams.edge.managers import read_managers
from otklik.streams.edge.vk_api import VkAccessError, VkApiClient, VkAuthError, VkToken
from otklik.streams.edge.vk_collect import WindowReader

log = logging.getLogger("otklik.catchup")

SOURCE = "vk-api"
GROUP_ID = "otklik-catchup"  # the service's consumer group (the topic prefix is prepended)

Produce = Callable[[str, Sequence[bytes]], Awaitable[None]]


@dataclass
class CatchUp:
    """Reads a community's window and produces its bodies. ``readers(group_id)`` gives the
    :class:`WindowReader` with the tokens for that community (the community's own token for dialogs)."""

    readers: Callable[[int], WindowReader]
    produce: Produce  # (key, values): acknowledged by the broker when it returns
    margin_s: int = 60
    clock: Callable[[], float] = time.time
    # otklik.managers (acknowledged when it returns); None: the managers are not read
    produce_managers: Callable[[ManagerRecord], Awaitable[None]] | None = None

    async def window(self, group_id: int, since: int, until: int) -> int:
        """Produce the bodies of ``[since, until)``, after the community's managers; return how many bodies."""
        reader = self.readers(group_id)
        await self.managers(reader, group_id, since)
        collected = await reader.collect(group_id, since, until)
        for error in collected.errors:
            log.warning("group %s: part of the window could not be read: %s", group_id, error)
        received_at = self.clock()
        # The listings after the bodies, on the same key: the engine has every answer the catch-up
        # found before a listing can close an item as deleted.
        bodies = [*collected.bodies, *collected.listings]
        values = [RawEnvelope("vk", SOURCE, received_at, body).to_json() for body in bodies]
        if values:
            await self.produce(f"vk:{group_id}", values)
        log.info(
            "group %s: %d bodies and %d listings of [%d, %d) produced",
            group_id,
            len(collected.bodies),
            len(collected.listings),
            since,
            until,
        )
        return len(values)

    async def managers(self, reader: WindowReader, group_id: int, unseen_from: int) -> None:
        """The community's managers, their roles dated from ``unseen_from`` (a role begun in the window
        covers the replies in it), produced before the window's bodies so that the engine knows them
        when the replies come. Without the community's token, or refused, nothing is produced."""
        if self.produce_managers is None or reader.community is None:
            return
        try:
            users = await read_managers(reader.client, reader.community, group_id)
        except VkAccessError as exc:
            log.warning("group %s: managers not read: %s", group_id, exc)
            return
        for record in roles_after_gap(f"vk:{group_id}", users, unseen_from, int(self.clock())):
            await self.produce_managers(record)

    async def gap(self, gap: Gap) -> int:
        """Catch up one gap: from ``margin`` before its start to now (or its end, if that is later)."""
        group_id = int(gap.community.split(":", 1)[1])
        return await self.window(group_id, gap.since - self.margin_s, max(gap.until, int(self.clock()) + 1))


async def serve(
    catchup: CatchUp,
    bootstrap: str,
    topic: str,
    group_id: str,
    stop: asyncio.Event,
    retry_s: float = 30.0,
) -> int:
    """Read ``topic`` (otklik.gaps) in consumer group ``group_id`` until ``stop``; return gaps caught up."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    done = 0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=1000, max_records=50)
            for tp, records in batch.items():
                for record in records:
                    handled = False
                    while not handled and not stop.is_set():
                        try:
                            gap = Gap.from_json(record.value or b"")
                        except ValueError as exc:
                            log.error("skipping a gap record at %s:%d: %s", tp, record.offset, exc)
                            handled = True
                            break
                        try:
                            await catchup.gap(gap)
                            done += 1
                            handled = True
                        except VkAuthError as exc:  # no retry helps: say so and go on with the next gap
                            log.error("%s: cannot catch up [%d, %d): %s", gap.community, gap.since, gap.until, exc)
                            handled = True
                        except Exception as exc:  # the API or the broker: the same gap again, later
                            log.warning("%s: catch-up failed (%s); retrying in %.0fs", gap.community, exc, retry_s)
                            try:
                                await asyncio.wait_for(stop.wait(), retry_s)
                            except TimeoutError:
                                pass
                    if not handled:
                        return done  # stopped: the gap is read again at the next start
                    # Only now: every body of the window is in otklik.raw.
                    await consumer.commit({tp: record.offset + 1})
    finally:
        await consumer.stop()
    return done


async def produce_gap(bootstrap: str, topic: str, gap: Gap) -> None:
    """Write one gap record (keyed by its community), acknowledged by the broker when this returns."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, gap.to_json(), key=gap.community.encode())
    finally:
        await producer.stop()


# ---- the command --------------------------------------------------------------------------------------


@click.command("catchup")
@click.option("--group", "group", type=click.IntRange(min=1), help="Catch up this VK group once (with --since).")
@click.option("--since", type=int, help="Unix seconds: the start of the window to read (with --group).")
@click.option("--until", type=int, help="Unix seconds: its end (default: now).")
def catchup_command(group: int | None, since: int | None, until: int | None) -> None:
    """Read what VK's callbacks did not deliver, with the VK API, into otklik.raw.

    Without options: the service, reading the gaps on otklik.gaps. With --group and --since: one window,
    for a person who knows better; it is produced at once and the command exits. Walls and boards need
    OTKLIK_VK_SERVICE_TOKEN; dialogs a community's token (OTKLIK_VK_<GROUPID>_TOKEN or the secrets file)."""
    import signal

    import aiohttp

    from otklik.streams.edge.secrets import load_secrets
    from otklik.streams.logs import limit_kafka_logs
    from otklik.streams.settings import CatchUpSettings, SettingsError, command_error

    if (group is None) != (since is None):
        raise click.UsageError("--group and --since go together (or neither, for the service)")
    if until is not None and group is None:
        raise click.UsageError("--until needs --group and --since")
    try:
        settings = CatchUpSettings.from_env()
        secrets = load_secrets()
    except SettingsError as exc:
        raise command_error(exc) from None
    if settings.vk_service_token is None:
        raise click.ClickException("OTKLIK_VK_SERVICE_TOKEN is not set: walls and boards need the app's service token")
    settings.configure_logging()
    limit_kafka_logs()

    def community_token(group_id: int) -> VkToken | None:
        found = secrets.community(group_id)
        if found is None or not found.token:
            return None
        return VkToken.of("group", found.token, f"community {group_id}")

    async def main() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        raw = settings.topic("raw")

        async def produce(key: str, values: Sequence[bytes]) -> None:
            futures = [await producer.send(raw, value, key=key.encode()) for value in values]
            await asyncio.gather(*futures)

        assert settings.vk_service_token is not None
        service = VkToken.of("service", settings.vk_service_token, "service")
        try:
            async with aiohttp.ClientSession() as session:
                client = VkApiClient(settings, session)

                from otklik.streams.edge.vk_collect_media import MediaWindowReader

                user = VkToken.of("user", settings.vk_user_token, "user") if settings.vk_user_token else None

                def reader(group_id: int) -> WindowReader:  # photos, videos and market too, with a user token
                    return MediaWindowReader(client, service, community_token(group_id), user=user)

                async def produce_managers(record: ManagerRecord) -> None:
                    value = encode_manager_record(record)
                    await producer.send_and_wait(settings.topic("managers"), value, key=record.page.encode())

                catchup = CatchUp(
                    reader, produce, margin_s=settings.catchup_margin_s, produce_managers=produce_managers
                )
                if group is not None and since is not None:
                    end = until if until is not None else int(time.time()) + 1
                    n = await catchup.window(group, since, end)
                    click.echo(f"otklik catchup: group {group}: {n} bodies produced to {raw}", err=True)
                    return
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                click.echo(f"otklik catchup: reading {settings.topic('gaps')}, producing to {raw}", err=True)
                from otklik.agents.ingest.watch_rules import SilenceRule
                from otklik.streams.edge import watch

                await asyncio.gather(
                    serve(catchup, settings.bootstrap, settings.topic("gaps"), settings.topic_prefix + GROUP_ID, stop),
                    watch.watch_service(  # managers kept current, silences recorded (streams/edge/watch.py)
                        client,
                        community_token,
                        sorted(g for g, c in secrets.vk.items() if c.token),
                        lambda topic, value, key: producer.send_and_wait(topic, value, key=key),
                        settings.bootstrap,
                        settings.topic,
                        settings.topic_prefix + watch.WATCH_GROUP,
                        settings.managers_every_s,
                        SilenceRule(
                            expected=settings.silence_expected,
                            floor_s=settings.silence_floor_s,
                            margin=settings.silence_margin,
                        ),
                        settings.watch_state_file,
                        stop,
                    ),
                )
        finally:
            await producer.stop()

    try:
        asyncio.run(main())
    except VkAuthError as exc:
        raise click.ClickException(str(exc)) from None
