"""The catch-up service's watch on ``otklik.raw``: managers kept current and silences recorded as gaps,
without a person (docs/data-flow.md, "Gaps and catch-up"; docs/responses.md, "Page replies").

``otklik catchup`` (the service) runs :func:`watch_service` beside the gap reader; it holds the tokens
both need. It reads ``otklik.raw`` in its own consumer group (``otklik-watch``, after the topic prefix)
and, once a minute:

- reads the managers (``groups.getMembers``, ``filter=managers``) of each community with a token the
  first time it knows it, then every ``OTKLIK_MANAGERS_EVERY``, into ``otklik.managers``. At start it
  reads ``otklik.managers`` back, so a restart reads again only the lists that are due, a few a round
  (agents/ingest/watch_rules.py, :class:`ManagersDue`);
- records a gap (``why`` ``silent``) for each community silent far beyond its usual rate
  (:class:`SilenceRule`), only while it is no more than a few records behind ``otklik.raw``: a watch
  catching up on a backlog would take its own delay for silence.

Events count by the time the edge received them; the bodies catch-up itself wrote (source ``vk-api``)
do not count: they are old events found late. The learned rates are kept in
``OTKLIK_CATCHUP_STATE_FILE``, saved each round before the offsets are committed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import msgspec
import orjson

from otklik.agents.ingest.watch_rules import ManagersDue, SilenceRule, SilenceWatch
from otklik.schemas.managers import ManagerList, decode_manager_record, encode_manager_record
from otklik.streams.edge.gaps import GapWriter, Send
from otklik.streams.edge.managers import sync_managers
from otklik.streams.edge.vk_api import VkApiClient, VkToken

log = logging.getLogger("otklik.watch")

WATCH_GROUP = "otklik-watch"  # the watch's consumer group on otklik.raw (the topic prefix is prepended)
WHY_SILENT = "silent"
CATCHUP_SOURCE = "vk-api"

SyncManagers = Callable[[list[int]], Awaitable[dict[int, str]]]


class Watch:
    """What the watch knows and does, fed record by record; :func:`run_watch` drives it."""

    def __init__(
        self,
        silence: SilenceWatch,
        managers: ManagersDue,
        sync: SyncManagers,
        gaps: GapWriter,
        has_token: Callable[[int], bool],
        state_path: Path | None = None,
    ) -> None:
        self.silence = silence
        self.managers = managers
        self.sync = sync
        self.gaps = gaps
        self.has_token = has_token
        self.state_path = state_path
        self.events = 0

    def load(self) -> None:
        """The learned rates of the last run (none without a file; an unreadable one is logged)."""
        if self.state_path is None:
            return
        try:
            state = orjson.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            log.error("%s: unreadable (%s): each community's rate is learned anew", self.state_path, exc)
            return
        if isinstance(state, dict):
            n = self.silence.load(state.get("silence") or {})
            log.info("%s: the rates of %d communities read back", self.state_path, n)

    def save(self) -> None:
        if self.state_path is None:
            return
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(orjson.dumps({"silence": self.silence.state()}))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.state_path)
        except OSError as exc:  # the watch goes on; only a restart's learning is at stake
            log.error("%s: cannot be written (%s)", self.state_path, exc)

    def event(self, value: bytes | None) -> None:
        """One record of ``otklik.raw``: a VK event received at the edge counts for its community."""
        try:
            envelope = orjson.loads(value or b"")
            if envelope.get("platform") != "vk" or envelope.get("source") == CATCHUP_SOURCE:
                return
            group_id = envelope["body"]["group_id"]
            at = float(envelope["received_at"])
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            return  # the worker dead-letters what it cannot read; here it only does not count
        if type(group_id) is not int or group_id <= 0:
            return
        page = f"vk:{group_id}"
        self.events += 1
        self.silence.seen(page, at)
        if self.has_token(group_id) and self.managers.seen(page):
            log.info("%s: first seen: its managers are read now", page)

    async def round(self, now: float, judge_silence: bool) -> None:
        """Record the gaps of the silent communities (when ``judge_silence``) and read the managers due."""
        if judge_silence:
            for community, since, until in self.silence.silent(now):
                await self.gaps.write(community, since, until, WHY_SILENT)
        due = self.managers.due(int(now))
        if not due:
            return
        groups = [int(page.split(":", 1)[1]) for page in due]
        try:
            done = await self.sync(groups)
        except Exception as exc:  # the broker or the connection: these lists again after the retry pause
            log.warning("managers of %d communities not read (%s): tried again later", len(groups), exc)
            done = {}
        for group_id in groups:
            what = done.get(group_id, "not read")
            self.managers.done(f"vk:{group_id}", int(now), ok=what.endswith(" managers"))


async def read_synced(bootstrap: str, topic: str, wait_s: float = 10.0) -> dict[str, int]:
    """The time of each page's last complete list on ``otklik.managers`` (read from its start to its end
    as of now; the topic is small and kept whole)."""
    from aiokafka import AIOKafkaConsumer

    # Without a group the consumer is given every partition of the topic, from its start (again so
    # when a topic new to the broker is assigned anew once its metadata settles).
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    synced: dict[str, int] = {}
    try:
        deadline = time.monotonic() + wait_s  # a topic new to the broker is assigned a moment after start
        while not consumer.assignment() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        partitions = sorted(consumer.assignment())
        if not partitions:
            return synced
        ends = await consumer.end_offsets(partitions)
        left = {tp for tp in partitions if ends[tp] > 0}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    try:
                        kept = decode_manager_record(record.value or b"")
                    except msgspec.DecodeError:
                        continue
                    if isinstance(kept, ManagerList) and kept.at > synced.get(kept.page, -1):
                        synced[kept.page] = kept.at
            for tp in list(left):
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return synced


async def run_watch(
    watch: Watch,
    bootstrap: str,
    topic: str,
    group_id: str,
    stop: asyncio.Event,
    round_s: float = 60.0,
    max_lag: int = 100,
    clock: Callable[[], float] = time.time,
) -> None:
    """Read ``topic`` (otklik.raw) in consumer group ``group_id`` and run a round every ``round_s``
    seconds, the first at once, until ``stop``."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a first start learns from what the topic still holds
    )
    await consumer.start()
    next_round = 0.0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batch.values():
                for record in records:
                    watch.event(record.value)
            if time.monotonic() < next_round:
                continue
            behind = 0
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                behind += max(0, (high if high is not None else max_lag + 1) - await consumer.position(tp))
            await watch.round(clock(), judge_silence=behind <= max_lag and bool(consumer.assignment()))
            watch.save()
            await consumer.commit()
            next_round = time.monotonic() + round_s
    finally:
        watch.save()
        try:
            await consumer.commit()
        except Exception as exc:  # stopping: what was not committed is read again, and counted twice
            log.warning("the watch's offsets were not committed at stop (%s)", type(exc).__name__)
        await consumer.stop()


async def watch_service(
    client: VkApiClient,
    token_of: Callable[[int], VkToken | None],
    groups: Iterable[int],
    send: Send,
    bootstrap: str,
    topic: Callable[[str], str],
    consumer_group: str,
    managers_every_s: int,
    rule: SilenceRule,
    state_path: Path | None,
    stop: asyncio.Event,
    round_s: float = 60.0,
) -> None:
    """The watch as ``otklik catchup`` runs it: ``groups`` are the communities with a token at start
    (their managers are read at once unless ``otklik.managers`` holds a list younger than
    ``managers_every_s``), ``send`` the service's producer (acknowledged writes)."""
    managers_topic = topic("managers")

    async def produce(record: ManagerList) -> None:
        await send(managers_topic, encode_manager_record(record), record.page.encode())

    async def sync(wanted: list[int]) -> dict[int, str]:
        return await sync_managers(client, token_of, wanted, produce)

    due = ManagersDue(every_s=managers_every_s)
    for group_id in groups:
        due.seen(f"vk:{group_id}")
    synced = await read_synced(bootstrap, managers_topic)
    for page, at in synced.items():
        due.restore(page, at)
    watch = Watch(
        SilenceWatch(rule),
        due,
        sync,
        GapWriter(send, topic("gaps"), "catchup"),
        lambda group_id: token_of(group_id) is not None,
        state_path,
    )
    watch.load()
    log.info(
        "watching %s: %d communities with a token, %d lists read back; managers every %ds",
        topic("raw"),
        len(due.known),
        len(synced),
        managers_every_s,
    )
    await run_watch(watch, bootstrap, topic("raw"), consumer_group, stop, round_s=round_s)
