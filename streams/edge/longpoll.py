"""VK Bots Long Poll source (``otklik longpoll``), for communities that have no public URL.

Per community: ``groups.getLongPollServer`` gives ``{key, server, ts}``; then long requests
``{server}?act=a_check&key=…&ts=…&wait=25`` return ``{ts, updates}``, or ``{failed: 1, ts}`` (the
history moved on: continue from the new ts; events in between are gone and this is logged), ``{failed:
2}`` (the key expired: get a new key, keep our ts) or ``{failed: 3}`` (key and ts lost: get both).
Errors back off exponentially up to a minute.

Each update is produced verbatim as ``RawEnvelope("vk", "vk-longpoll", …)`` with key ``vk:<group_id>``,
and the new ``ts`` is written to the state file only after Kafka acknowledged every update before it
(acks=all). So a restart continues where the last acknowledged batch ended: nothing is lost, and
nothing is repeated unless the process died between the acknowledgement and the write (then that one
batch comes again, with the same ``event_id`` s, which the response engine deduplicates).

The community token comes from the secrets (``OTKLIK_VK_<GROUPID>_TOKEN`` or the secrets file) and is
sent in the POST body, never in a URL, and never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import click
import orjson

from otklik.agents.ingest.bounds import body_problem
from otklik.schemas.records import Gap, RawEnvelope
from otklik.streams.edge.producer import HealingProducer, ProducerUnavailable
from otklik.streams.edge.secrets import load_secrets
from otklik.streams.logs import limit_kafka_logs
from otklik.streams.settings import LongPollSettings, SettingsError, command_error

log = logging.getLogger("otklik.longpoll")

SOURCE = "vk-longpoll"


class LongPollError(RuntimeError):
    """A setting, the state file or the VK API is unusable; the message says which and why."""


@dataclass(frozen=True)
class LongPollConfig:
    """What the loops need: :class:`LongPollSettings` (the variables) plus the knobs of the command and tests."""

    api_url: str
    api_version: str
    state_dir: Path  # one ts file per community
    bootstrap: str
    topic: str
    gaps_topic: str | None = None  # where a lost stretch of events is recorded (otklik.gaps); None: nowhere
    wait_s: int = 25  # seconds VK may hold an a_check request open
    backoff_s: float = 1.0  # first pause after an error; doubles up to max_backoff_s
    max_backoff_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: LongPollSettings, **knobs: Any) -> LongPollConfig:
        return cls(
            api_url=settings.api_url,
            api_version=settings.api_version,
            state_dir=settings.state_dir,
            bootstrap=settings.bootstrap,
            topic=settings.topic("raw"),
            gaps_topic=settings.topic("gaps"),
            **knobs,
        )


class Sink(Protocol):
    async def produce(self, key: str, values: Sequence[bytes]) -> None:
        """Return only once the broker acknowledged every value (raise otherwise)."""


class KafkaSink:
    """An idempotent, acks=all aiokafka producer shared by every community's loop; it heals
    (:mod:`otklik.streams.edge.producer`): after a broker restart or a fatal producer error a batch
    fails, its ts is not saved, and the same batch is produced again through a fresh producer."""

    def __init__(self, bootstrap: str, topic: str, connect_timeout_s: float = 30.0) -> None:
        from aiokafka import AIOKafkaProducer

        self.topic = topic
        self.connect_timeout_s = connect_timeout_s
        self.kafka = HealingProducer(
            lambda: AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5),
            what=bootstrap,
        )

    async def start(self) -> None:
        """Start connecting (in the background: :meth:`produce` waits for it)."""
        await self.kafka.start()

    async def stop(self) -> None:
        await self.kafka.stop()

    async def produce(self, key: str, values: Sequence[bytes]) -> None:
        if not await self.kafka.wait_connected(self.connect_timeout_s):
            raise ProducerUnavailable(f"Kafka was not reachable within {self.connect_timeout_s:.0f}s")
        futures = [await self.kafka.send(self.topic, value, key.encode()) for value in values]
        # Every outcome is collected (none left unretrieved); the first failure fails the batch.
        for outcome in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome


class StateFile:
    """The last acknowledged ``ts`` of one community, written atomically (temp file, fsync, rename)."""

    def __init__(self, state_dir: Path, group_id: int) -> None:
        self.path = state_dir / f"vk-{group_id}.json"
        self.group_id = group_id

    def load(self) -> str | None:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise LongPollError(
                f"state file {self.path}: unreadable ({type(exc).__name__}); fix or remove it"
            ) from None
        if not isinstance(data, dict) or data.get("group_id") != self.group_id or not isinstance(data.get("ts"), str):
            raise LongPollError(f'state file {self.path}: expected {{"group_id": {self.group_id}, "ts": "..."}}')
        return data["ts"]

    def save(self, ts: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps({"group_id": self.group_id, "ts": ts, "saved_at": int(time.time())}))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class LongPollSource:
    """One community's long-poll loop."""

    def __init__(
        self,
        group_id: int,
        token: str,
        config: LongPollConfig,
        sink: Sink,
        session: aiohttp.ClientSession,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        gaps: Sink | None = None,
    ) -> None:
        self.group_id = group_id
        self.gaps = gaps  # otklik.gaps: failed 1 and 3 record the time whose events were lost
        self._token = token
        self.config = config
        self.sink = sink
        self.session = session
        self.state = StateFile(config.state_dir, group_id)
        self._sleep = sleep
        self.key = f"vk:{group_id}"
        self.produced = 0  # updates acknowledged by Kafka
        self.lost_notices = 0  # failed 1 / 3: VK says events were lost
        self.unwritable = 0  # updates skipped: the encoder cannot write them (docs/data-flow.md, "Bounded input")
        self.last_event_at: float | None = None
        self.last_saved_at: float | None = None  # when the last ts was saved: events after it may be lost
        self.gaps_written = 0

    def __repr__(self) -> str:  # never the token
        return f"LongPollSource(group {self.group_id}, {self.config.api_url})"

    async def get_server(self) -> tuple[str, str, str]:
        """(key, server, ts) from groups.getLongPollServer."""
        url = f"{self.config.api_url}/groups.getLongPollServer"
        form = {"group_id": str(self.group_id), "access_token": self._token, "v": self.config.api_version}
        async with self.session.post(url, data=form, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            if resp.status != 200:
                raise LongPollError(f"groups.getLongPollServer: HTTP {resp.status}")
            data = orjson.loads(await resp.read())
        if not isinstance(data, dict):
            raise LongPollError("groups.getLongPollServer: the answer is not a JSON object")
        if "error" in data:
            error = data["error"] if isinstance(data["error"], dict) else {}
            raise LongPollError(
                f"groups.getLongPollServer for group {self.group_id}: VK error {error.get('error_code')}: "
                f"{str(error.get('error_msg'))[:200]}"
            )
        answer = data.get("response")
        if not isinstance(answer, dict) or not all(answer.get(k) not in (None, "") for k in ("key", "server", "ts")):
            raise LongPollError("groups.getLongPollServer: the answer lacks response.key, .server or .ts")
        return str(answer["key"]), str(answer["server"]), str(answer["ts"])

    async def check(self, server: str, key: str, ts: str) -> dict[str, Any]:
        params = {"act": "a_check", "key": key, "ts": ts, "wait": str(self.config.wait_s)}
        timeout = aiohttp.ClientTimeout(total=self.config.wait_s + 15)
        async with self.session.get(server, params=params, timeout=timeout) as resp:
            if resp.status != 200:
                raise LongPollError(f"a_check: HTTP {resp.status}")
            data = orjson.loads(await resp.read())
        if not isinstance(data, dict):
            raise LongPollError("a_check: the answer is not a JSON object")
        return data

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set. A batch being produced is finished (and its ts saved) first."""
        saved_ts = self.state.load()
        if saved_ts is not None:
            self.last_saved_at = self.state.path.stat().st_mtime
        delay = self.config.backoff_s
        server = key = ts = None
        while not stop.is_set():
            try:
                if key is None:
                    key, server, fresh_ts = await self.get_server()
                    if ts is None:
                        ts = saved_ts if saved_ts is not None else fresh_ts
                        if saved_ts is None:
                            log.info("group %s: no saved ts, starting from the current one", self.group_id)
                answer = await _unless_stopped(self.check(server, key, ts), stop)  # type: ignore[arg-type]
                if answer is STOPPED:
                    return
                failed = answer.get("failed")
                if failed is not None:
                    key, server, ts = await self._recover(failed, answer, key, server, ts)  # type: ignore[arg-type]
                    continue
                updates = answer.get("updates")
                new_ts = answer.get("ts")
                if not isinstance(updates, list) or new_ts in (None, ""):
                    raise LongPollError("a_check: the answer lacks ts or updates")
                await self._produce(updates)
                ts = str(new_ts)
                self.state.save(ts)  # only now: every update before it is in Kafka
                self.last_saved_at = time.time()
                delay = self.config.backoff_s
            except (TimeoutError, LongPollError, aiohttp.ClientError, orjson.JSONDecodeError, OSError) as exc:
                log.warning("group %s: %s; retrying in %.1fs", self.group_id, _describe(exc), delay)
                if await _unless_stopped(self._sleep(delay * (0.8 + 0.4 * random.random())), stop) is STOPPED:
                    return
                delay = min(delay * 2, self.config.max_backoff_s)
            except Exception as exc:  # Kafka refused the batch: nothing saved, the same ts is polled again
                log.warning(
                    "group %s: producing failed (%s); retrying in %.1fs", self.group_id, type(exc).__name__, delay
                )
                if await _unless_stopped(self._sleep(delay), stop) is STOPPED:
                    return
                delay = min(delay * 2, self.config.max_backoff_s)

    async def _recover(
        self, failed: Any, answer: dict[str, Any], key: str, server: str, ts: str
    ) -> tuple[str, str, str]:
        """(key, server, ts) to go on with after a ``failed`` answer."""
        if failed == 1:
            new_ts = answer.get("ts")
            if new_ts in (None, ""):
                raise LongPollError("a_check: failed 1 without a new ts")
            self.lost_notices += 1
            log.error(
                "group %s: VK's event history moved past ts %s (failed 1): continuing from %s; "
                "events in between were not delivered",
                self.group_id,
                ts,
                new_ts,
            )
            self.state.save(str(new_ts))
            await self._gap("longpoll-failed-1")
            return key, server, str(new_ts)
        if failed == 2:  # the key expired: a new one, and our ts stays
            new_key, new_server, _ = await self.get_server()
            return new_key, new_server, ts
        if failed == 3:
            self.lost_notices += 1
            log.error("group %s: VK lost the key and ts (failed 3): going on from the current ts", self.group_id)
            new_key, new_server, fresh_ts = await self.get_server()
            self.state.save(fresh_ts)
            await self._gap("longpoll-failed-3")
            return new_key, new_server, fresh_ts
        raise LongPollError(f"a_check: unknown failed code {str(failed)[:20]}")

    async def _gap(self, why: str) -> None:
        """Record on otklik.gaps that events since the last saved ts are lost (docs/data-flow.md,
        "Gaps and catch-up"); a gap that cannot be written is logged with the command that catches it up."""
        now = time.time()
        since, self.last_saved_at = self.last_saved_at, now
        if self.gaps is None or since is None:
            return
        gap = Gap(self.key, int(since), int(now) + 1, why, "longpoll")
        try:
            await self.gaps.produce(self.key, [gap.to_json()])
        except Exception as exc:
            log.error(
                "group %s: the gap could not be recorded (%s): run `otklik catchup --group %s --since %d --until %d`",
                self.group_id,
                type(exc).__name__,
                self.group_id,
                gap.since,
                gap.until,
            )
            return
        self.gaps_written += 1

    async def _produce(self, updates: list[Any]) -> None:
        values = []
        for update in updates:
            if not isinstance(update, dict):
                log.warning("group %s: skipping an update that is not a JSON object", self.group_id)
                continue
            problem = body_problem(update)
            if problem is not None:
                # It can never be written to Kafka: polling the same ts again would stop the stream for
                # good (docs/data-flow.md, "Bounded input"). Skipped, with the reason.
                self.unwritable += 1
                log.error("group %s: skipping an update that cannot be written: %s", self.group_id, problem)
                continue
            values.append(RawEnvelope("vk", SOURCE, time.time(), update).to_json())
        if values:
            await self.sink.produce(self.key, values)
            self.produced += len(values)
            self.last_event_at = time.time()


STOPPED = object()


async def _unless_stopped(awaitable: Awaitable[Any], stop: asyncio.Event) -> Any:
    """The awaitable's result, or :data:`STOPPED` (the awaitable cancelled) once ``stop`` is set first."""
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
    return STOPPED


def _describe(exc: BaseException) -> str:
    # aiohttp errors may quote the request URL; a_check URLs carry the long-poll key, so name the type only.
    if isinstance(exc, LongPollError):
        return str(exc)
    return type(exc).__name__


async def run_sources(
    group_ids: Sequence[int],
    tokens: Mapping[int, str],
    config: LongPollConfig,
    stop: asyncio.Event,
    sink: Sink | None = None,
    gaps: Sink | None = None,
) -> list[LongPollSource]:
    """Run one loop per community until ``stop`` is set; return the sources (for their counters). Gaps
    go to ``gaps``, or (when ``sink`` is not given either) to ``config.gaps_topic``."""
    own_sink = sink is None
    own_gaps = own_sink and gaps is None and config.gaps_topic is not None
    if sink is None:
        sink = KafkaSink(config.bootstrap, config.topic)
        await sink.start()  # type: ignore[attr-defined]
    if own_gaps:
        gaps = KafkaSink(config.bootstrap, config.gaps_topic)  # type: ignore[arg-type]
        await gaps.start()  # type: ignore[attr-defined]
    try:
        async with aiohttp.ClientSession() as session:
            sources = [LongPollSource(g, tokens[g], config, sink, session, gaps=gaps) for g in group_ids]
            await asyncio.gather(*(source.run(stop) for source in sources))
            return sources
    finally:
        if own_sink:
            await sink.stop()  # type: ignore[attr-defined]
        if own_gaps:
            await gaps.stop()  # type: ignore[union-attr]


@click.command("longpoll")
@click.option("--group", "groups", type=int, multiple=True, required=True, help="A VK group id (repeat for several).")
@click.option(
    "--wait", type=click.IntRange(1, 90), default=25, show_default=True, help="Seconds VK may hold a request."
)
def longpoll_command(groups: tuple[int, ...], wait: int) -> None:
    """Poll VK's Bots Long Poll for communities without a public URL, into otklik.raw.

    Each community needs a token: OTKLIK_VK_<GROUPID>_TOKEN or `token` in OTKLIK_SECRETS_FILE. The API
    base URL is OTKLIK_VK_API_URL; each community's last acknowledged ts is kept in
    OTKLIK_LONGPOLL_STATE_DIR (.run/longpoll)."""
    try:
        settings = LongPollSettings.from_env()
        secrets = load_secrets()
    except SettingsError as exc:
        raise command_error(exc) from None
    config = LongPollConfig.from_settings(settings, wait_s=wait)
    tokens: dict[int, str] = {}
    for group in groups:
        community = secrets.community(group)
        if group <= 0:
            raise click.ClickException(f"--group {group}: a VK group id is positive")
        if community is None or not community.token:
            raise click.ClickException(
                f"--group {group}: no token (set OTKLIK_VK_{group}_TOKEN or vk.{group}.token in the secrets file)"
            )
        tokens[group] = community.token
        try:
            StateFile(config.state_dir, group).load()
        except LongPollError as exc:
            raise click.ClickException(str(exc)) from None
    settings.configure_logging()
    limit_kafka_logs()
    click.echo(
        f"otklik longpoll: groups {', '.join(map(str, groups))} via {config.api_url}, producing to {config.topic}",
        err=True,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_sources(groups, tokens, config, stop)

    asyncio.run(main())
