"""The simulator's edges: JSON Lines, Kafka and the `otklik simulate` command."""

from __future__ import annotations

import asyncio
import io
import math
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click
import orjson

from otklik.schemas.records import RawEnvelope
from otklik.streams.settings import SettingsError, SimulatorSettings, command_error
from otklik.streams.tools.simulate.traffic import (
    generate,
    resolve_start,
    write_registry,
)
from otklik.streams.tools.simulate.world import (
    SimConfig,
)

# ---------------------------------------------------------------------------------------------
# Edges: JSON Lines and Kafka.


def write_jsonl(events: Iterable[tuple[int, dict[str, Any]]], path_or_file: str | Path | IO[Any]) -> int:
    """Writes ``{"received_at": ..., "body": ...}`` lines (the replay format); returns the count.
    Accepts a path or an open file (text or binary)."""
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "wb") as handle:
            return write_jsonl(events, handle)
    binary = isinstance(path_or_file, (io.RawIOBase, io.BufferedIOBase)) or "b" in getattr(path_or_file, "mode", "")
    count = 0
    for received_at, body in events:
        line = orjson.dumps({"received_at": received_at, "body": body}) + b"\n"
        path_or_file.write(line if binary else line.decode("utf-8"))
        count += 1
    path_or_file.flush()
    return count


def _shift_dates(body: dict[str, Any], to_real: Callable[[int], int]) -> dict[str, Any]:
    """A copy of ``body`` with its ``date`` fields moved onto the real clock."""
    copy = dict(body)
    obj = copy.get("object")
    if isinstance(obj, dict):
        obj = dict(obj)
        copy["object"] = obj
        if isinstance(obj.get("date"), int):
            obj["date"] = to_real(obj["date"])
        message = obj.get("message")
        if isinstance(message, dict) and isinstance(message.get("date"), int):
            obj["message"] = {**message, "date": to_real(message["date"])}
    return copy


async def produce(
    events: Iterable[tuple[int, dict[str, Any]]],
    bootstrap: str,
    topic: str = "otklik.raw",
    realtime: bool = True,
    speed: float = 1.0,
) -> int:
    """Sends each body to Kafka as a :class:`RawEnvelope` (key ``vk:<group_id>``); returns the count.

    Realtime: paced to the simulated clock divided by ``speed``; ``received_at`` is the real time
    of sending and the bodies' dates move onto the real clock by the same mapping, so that a live
    worker sees a live stream. Otherwise: as fast as possible, with the simulated times."""
    from aiokafka import AIOKafkaProducer  # imported here: the pure core must not need Kafka

    if speed <= 0:
        raise ValueError(f"speed: {speed} is not positive")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    count = 0
    pending: list[asyncio.Future[Any]] = []
    sim_origin: float | None = None
    real_origin = 0.0
    try:
        for received_at, body in events:
            if realtime:
                if sim_origin is None:
                    sim_origin, real_origin = float(received_at), time.time()
                due = real_origin + (received_at - sim_origin) / speed
                wait = due - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                origin = sim_origin
                body = _shift_dates(body, lambda d: int(math.floor(real_origin + (d - origin) / speed)))
                stamp = time.time()
            else:
                stamp = float(received_at)
            envelope = RawEnvelope(platform="vk", source="simulator", received_at=stamp, body=body)
            pending.append(await producer.send(topic, envelope.to_json(), key=f"vk:{body['group_id']}".encode()))
            count += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)  # surfaces delivery errors, bounds memory
                pending.clear()
        await producer.flush()
        if pending:
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


def _parse_start(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither unix seconds nor an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a bare date-time is UTC
    return int(moment.timestamp())


@click.command(
    "simulate",
    help=(
        "Simulate VK Callback API traffic (API 5.199) of N official pages: citizens' comments, threads, "
        "page replies after realistic working-hours delays, deletions, edits, direct messages and "
        "redelivered duplicates. Deterministic for a seed.\n\n"
        'With --out FILE it writes JSON Lines {"received_at", "body"} (the format of `otklik replay`; '
        "'-' is stdout). Otherwise it sends to Kafka (--bootstrap, default from OTKLIK_KAFKA_BROKER or "
        "127.0.0.1:9092) paced to the simulated clock, dates moved onto the real clock (--speed runs "
        "faster); --fast sends as fast as possible with the simulated times, ending now unless --start "
        "is given. --duration 0 runs until "
        "Ctrl-C (realtime Kafka only). --registry-out writes the page registry (YAML) that matches the "
        "simulated pages and their administrators."
    ),
)
@click.option(
    "--pages",
    type=click.IntRange(min=1),
    default=None,
    help="Number of simulated communities [env OTKLIK_SIM_PAGES, 50].",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Events per simulated second, on average [env OTKLIK_SIM_RATE, 20].",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Simulated seconds; 0 = forever (realtime Kafka only).",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Random seed: the same seed and start give the same stream."
)
@click.option(
    "--start", "start_text", default=None, help="Start of the simulated clock: unix seconds or ISO 8601 (default: now)."
)
@click.option("--out", "out_path", default=None, help="Write JSON Lines to FILE ('-' for stdout) instead of Kafka.")
@click.option(
    "--bootstrap", default=None, help="Kafka bootstrap HOST:PORT (default: OTKLIK_KAFKA_BROKER or 127.0.0.1:9092)."
)
@click.option("--topic", default="otklik.raw", show_default=True, help="Kafka topic.")
@click.option("--fast", is_flag=True, help="Kafka: send as fast as possible with the simulated times.")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Realtime Kafka: simulated seconds per real second [env OTKLIK_SIM_SPEED, 1].",
)
@click.option("--registry-out", default=None, help="Also write the simulated pages' registry (YAML) to FILE.")
@click.option(
    "--duplicate-rate",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=0.01,
    show_default=True,
    help="Share of bodies delivered twice.",
)
@click.option(
    "--first-group-id",
    type=click.IntRange(min=1),
    default=200000001,
    show_default=True,
    help="Group id of the first page.",
)
@click.option(
    "--unique-texts",
    is_flag=True,
    help="Make every comment's and message's text unique (a counter in emoji after it): no cache keyed by text hits.",
)
def simulate_command(
    pages: int | None,
    rate: float | None,
    duration: float,
    seed: int,
    start_text: str | None,
    out_path: str | None,
    bootstrap: str | None,
    topic: str,
    fast: bool,
    speed: float | None,
    registry_out: str | None,
    duplicate_rate: float,
    first_group_id: int,
    unique_texts: bool,
) -> None:
    if out_path is not None and bootstrap is not None:
        raise click.UsageError("give either --out or --bootstrap, not both")
    try:
        settings = SimulatorSettings.from_env(sim_pages=pages, sim_rate=rate, sim_speed=speed)
    except SettingsError as exc:
        raise command_error(exc) from None
    pages, rate, speed = settings.sim_pages, settings.sim_rate, settings.sim_speed
    if duration == 0 and (out_path is not None or fast):
        raise click.UsageError("--duration 0 (forever) works only when sending to Kafka in real time")
    cfg = SimConfig(
        pages=pages,
        rate=rate,
        duration=duration,
        seed=seed,
        start=_parse_start(start_text),
        duplicate_rate=duplicate_rate,
        first_group_id=first_group_id,
        unique_texts=unique_texts,
    )
    if cfg.start is None:
        cfg.start = resolve_start(cfg)  # fixed once, so the registry and stream agree on "now"
        if fast and out_path is None:
            # Sent with the simulated times, the stream ends now: the worker refuses times ahead of
            # its clock (docs/data-flow.md, "Bounded input").
            cfg.start -= int(math.ceil(duration))
    if registry_out:
        write_registry(cfg, registry_out)
    began = time.perf_counter()
    if out_path is not None:
        if out_path == "-":
            try:
                count = write_jsonl(generate(cfg), sys.stdout.buffer)
            except BrokenPipeError:  # `otklik simulate --out - | head`: the reader had enough
                sys.stderr.close()
                return
        else:
            count = write_jsonl(generate(cfg), out_path)
        target = out_path
    else:
        target = bootstrap or settings.bootstrap
        try:
            count = asyncio.run(produce(generate(cfg), target, topic=topic, realtime=not fast, speed=speed))
        except KeyboardInterrupt:
            click.echo("simulate: stopped", err=True)
            return
    elapsed = time.perf_counter() - began
    click.echo(f"simulate: {count} events for {pages} pages to {target} in {elapsed:.1f} s", err=True)
