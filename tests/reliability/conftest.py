"""Helpers of the reliability scenarios (issue 19): the real worker (tests/conftest.py's ``worker_factory``,
``produce``, ``consume``) with its topics created before it starts, so a backlog can wait for it, and a
producer for large volumes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WorkerProcess, consume, free_port, produce, run

__all__ = [
    "consume",
    "create_topics",
    "local_broker",
    "metric_sum",
    "produce",
    "produce_many",
    "run",
    "scrape",
    "wait_for",
]


def local_broker(folder: Path) -> Any:
    """A broker of a test's own (not started): own ports and data folder under ``folder``; LocalKafka
    keeps its pid file beside the data folder, so there too. The shared broker is never stopped."""
    from otklik.streams.tools.kafka_local import LocalKafka

    return LocalKafka(
        port=free_port(),
        controller_port=free_port(),
        data_dir=folder / "kafka" / "data",
        heap="256m",
        cache_dir=LocalKafka.from_env().cache_dir,
    )


def create_topics(worker: WorkerProcess) -> None:
    """Create the worker's topics as the worker would (same partitions), before it first starts."""
    from otklik.streams.settings import WorkerSettings
    from otklik.streams.worker.topics import ensure_topics

    settings = WorkerSettings(
        broker=worker.env["OTKLIK_KAFKA_BROKER"],
        topic_prefix=worker.env["OTKLIK_TOPIC_PREFIX"],
        partitions=int(worker.env["OTKLIK_PARTITIONS"]),
    )
    run(ensure_topics(settings))


async def produce_many(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Produce ``records`` (key, value) in large batches, waiting for every acknowledgement; returns how many."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    n = 0
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            n += 1
            if len(pending) >= 20_000:
                for fut in pending:
                    await fut
                pending.clear()
        for fut in pending:
            await fut
    finally:
        await producer.stop()
    return n


def scrape(worker: WorkerProcess) -> str:
    """The worker's /metrics, or "" when it does not answer in time (busy with a large batch)."""
    try:
        return worker.metrics()
    except OSError:
        return ""


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (all label values) in a /metrics text."""
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))


def wait_for(what: str, check: Any, timeout: float, worker: WorkerProcess, every: float = 0.5) -> Any:
    """Poll ``check()`` until it returns a true value; fail with the worker's log after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if worker.proc is not None and worker.proc.poll() is not None:
            pytest.fail(
                f"the worker exited with {worker.proc.returncode} while waiting for {what}:\n{worker.log_tail()}"
            )
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout}s\n{worker.log_tail()}")
