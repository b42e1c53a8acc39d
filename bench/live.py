"""Live throughput of the worker on the real broker, beside raw aiokafka consumption of the same topic.

The issue's figure is the response agent's: a real `otklik worker` process running only the responses
agent reads a pre-filled ``otklik.interactions`` (the simulator's events, normalized here with the same
code as the normalize agent) through the engine, its pages table and ``otklik.responses``; beside it a
plain aiokafka consumer reads the same topic and decodes every record with orjson (the fastest of three
reads, see :func:`best_raw_consumption`). A second pair runs the
whole chain (normalize → otklik.interactions → responses, and moderation unless ``OTKLIK_AGENTS`` says
otherwise) on ``otklik.raw`` beside raw consumption of that topic.

The simulator runs with unique texts (``--unique-texts``): every comment's text is new, as real ones
are, so the text caches of triage and moderation earn nothing from the simulator's few templates.

A worker is timed by the records its agents report as processed (``/health``, polled every 0.1 s), from
its first processed batch until the last record is processed. The machine is
shared, so each figure is printed with CPU time too (the worker's from /proc, the baseline's from
``time.process_time``); ratios of wall rates are what the target speaks of. A third line, faust's floor,
is a no-op faust agent on the same topic (bench/faust_floor.py): what faust itself costs per record.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import faust
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.faust_floor import sensor_cost
from bench.memory import rss_bytes
from otklik.agents.ingest.envelope import to_interactions
from otklik.schemas.records import RawEnvelope
from otklik.streams.settings import AGENTS, BenchSettings, WorkerSettings
from otklik.streams.tools.kafka_local import LocalKafka
from otklik.streams.tools.simulate.traffic import generate, write_registry
from otklik.streams.tools.simulate.world import SimConfig
from otklik.streams.worker.app import FaustApp

EVENTS = BenchSettings.from_env().bench_live_events
PARTITIONS = 4
CHAIN_AGENTS = ",".join(agent for agent in AGENTS if agent in WorkerSettings.from_env().agents)
WEB_PORT = 6099
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Rate:
    events: int
    wall_s: float
    cpu_s: float

    @property
    def per_s(self) -> float:
        return self.events / self.wall_s

    @property
    def per_cpu_s(self) -> float:
        return self.events / self.cpu_s if self.cpu_s else float("inf")


async def produce_all(bootstrap: str, raw_topic: str, ia_topic: str, cfg: SimConfig) -> tuple[int, int]:
    """The simulator's events to ``raw_topic``, and their interaction records to ``ia_topic``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    raw = interactions = 0
    try:
        for received_at, body in generate(cfg):
            if raw >= EVENTS:
                break
            envelope = RawEnvelope("vk", "bench", float(received_at), body)
            key = f"vk:{body['group_id']}".encode()
            await producer.send(raw_topic, value=envelope.to_json(), key=key)
            raw += 1
            for record in to_interactions(envelope, {}):
                await producer.send(ia_topic, value=record.to_json(), key=record.page.encode())
                interactions += 1
        await producer.flush()
    finally:
        await producer.stop()
    return raw, interactions


async def raw_consumption(bootstrap: str, topic: str, total: int) -> Rate:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    n = 0
    started = cpu = None
    try:
        while n < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and batch:
                started, cpu = time.perf_counter(), time.process_time()
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                    n += 1
        return Rate(n, time.perf_counter() - started, time.process_time() - cpu)  # type: ignore[operator]
    finally:
        await consumer.stop()


BASELINE_ROUNDS = 3


def best_raw_consumption(bootstrap: str, topic: str, total: int) -> Rate:
    """The fastest of :data:`BASELINE_ROUNDS` raw consumptions (each a new consumer group): one read of
    100,000 records takes half a second, short enough for the machine's other work to swing it by a
    third; the best round is the steady figure, and the stricter one to compare with."""
    return max(
        (asyncio.run(raw_consumption(bootstrap, topic, total)) for _ in range(BASELINE_ROUNDS)),
        key=lambda rate: rate.per_s,
    )


def _get(path: str) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}{path}", timeout=10) as resp:
            return resp.read()
    except OSError:  # not listening yet
        return None


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def run_worker(
    env: dict[str, str], log: Path, start_agent: str, finish_agents: list[str], total: int, finish_at: int
) -> tuple[Rate, str, float, str]:
    """Start a worker and time it by the records its agents report in ``/health`` (cheap to poll, unlike
    ``/metrics``), every 0.1 s: from the first poll where ``start_agent`` has processed something until
    each of ``finish_agents`` has processed ``finish_at``; the rate is of the ``total`` records that
    ``start_agent`` reads (faust commits offsets only every few seconds: too coarse to time with).
    Also returns its metrics, its RSS in MiB and how its core ran (``core`` in ``/health``)."""
    otklik = str(Path(sys.executable).parent / "otklik")
    with open(log, "wb") as out:
        worker = subprocess.Popen([otklik, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        first_t = first_n = first_cpu = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited; see {log}")
            health = _get("/health")
            if health is None:
                continue
            now = time.perf_counter()
            status = orjson.loads(health)
            processed = status.get("processed", {})
            if first_t is None:
                if processed.get(start_agent, 0) > 0:
                    first_t, first_n, first_cpu = now, processed[start_agent], _cpu_s(worker.pid)
                continue
            if all(processed.get(agent, 0) >= finish_at for agent in finish_agents):
                rate = Rate(total - first_n, now - first_t, _cpu_s(worker.pid) - first_cpu)  # type: ignore[operator]
                metrics = (_get("/metrics") or b"").decode()
                return rate, metrics, rss_bytes(worker.pid) / 2**20, status.get("core", "?")
        raise RuntimeError(f"the worker did not finish within 15 minutes; see {log}")
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def faust_floor(bootstrap: str, topic: str, total: int, *, fast: bool = False) -> Rate:
    """A no-op faust agent on ``topic`` (see bench/faust_floor.py): faust's own cost per record."""
    args = [sys.executable, "-m", "bench.faust_floor", bootstrap, topic, str(total)] + (["fast"] if fast else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    for line in (done.stdout + done.stderr).splitlines():  # faust's worker logs what the app prints
        if '{"events"' in line:
            data = orjson.loads(line[line.index('{"events"') :])
            return Rate(data["events"], data["wall_s"], data["cpu_s"])
    raise RuntimeError(f"the faust floor printed no result: {done.stderr[-2000:]}")


def _env(bootstrap: str, name: str, workdir: Path, registry: Path, agents: str) -> dict[str, str]:
    return dict(
        os.environ,
        OTKLIK_KAFKA_BROKER=f"kafka://{bootstrap}",
        OTKLIK_APP_ID=name,
        OTKLIK_TOPIC_PREFIX=name + ".",
        OTKLIK_WEB_PORT=str(WEB_PORT),
        OTKLIK_DATA_DIR=str(workdir / name),
        OTKLIK_PARTITIONS=str(PARTITIONS),
        OTKLIK_REBALANCE_TIMEOUT="6",
        OTKLIK_REGISTRY=str(registry),
        OTKLIK_LOG_LEVEL="warning",
        OTKLIK_AGENTS=agents,
    )


def _line(label: str, rate: Rate, note: str = "") -> None:
    print(f"{label:<40}{rate.per_s:>10,.0f} events/s  {rate.per_cpu_s:>10,.0f} per CPU-s  {note}".rstrip())


def main() -> None:
    kafka = LocalKafka.from_env()
    kafka.start()
    bootstrap = kafka.bootstrap
    run = f"bench-{uuid.uuid4().hex[:8]}"
    agent_app, chain_app = f"{run}-agent", f"{run}-chain"
    start = int(time.time()) - EVENTS // 40
    cfg = SimConfig(pages=500, rate=50.0, duration=EVENTS / 40.0, seed=5, start=start, unique_texts=True)
    workdir = Path(tempfile.mkdtemp(prefix="otklik-bench-"))
    registry = workdir / "registry.yaml"
    write_registry(cfg, registry)
    agent_env = _env(bootstrap, agent_app, workdir, registry, "responses")
    chain_env = _env(bootstrap, chain_app, workdir, registry, CHAIN_AGENTS)
    for env in (agent_env, chain_env):  # the topics, with their partitions, before any record arrives
        asyncio.run(_create_topics(env))
    agent_ia = f"{agent_app}.otklik.interactions"
    chain_raw = f"{chain_app}.otklik.raw"
    # The chain's worker writes its own interactions; the agent's topic is filled here.
    raw_total, ia_total = asyncio.run(produce_all(bootstrap, chain_raw, agent_ia, cfg))
    print(f"events (otklik.raw)                     {raw_total:>10,}  ({PARTITIONS} partitions)")
    print(f"interaction records (otklik.interactions){ia_total:>9,}")
    print("texts                                       unique  (the simulator's --unique-texts)")

    print("\nthe response agent alone, on otklik.interactions")
    ia_base = best_raw_consumption(bootstrap, agent_ia, ia_total)
    _line("  baseline: raw aiokafka + orjson", ia_base, f"(best of {BASELINE_ROUNDS})")
    floor = faust_floor(bootstrap, agent_ia, ia_total)
    _line("  faust floor: a no-op faust agent", floor, f"(ratio {floor.per_s / ia_base.per_s:.3f})")
    fast_floor = faust_floor(bootstrap, agent_ia, ia_total, fast=True)
    _line("  the same with otklik's fast delivery", fast_floor, f"(ratio {fast_floor.per_s / ia_base.per_s:.3f})")
    print(
        f"  faust's per-record sensor calls         {sensor_cost(faust.App('bench-sensors')):>10.2f} µs"
        f"   (otklik's app, without faust's Monitor: {sensor_cost(FaustApp('bench-sensors-ours')):.2f} µs)"
    )
    agent, metrics, rss, core = run_worker(
        agent_env, workdir / "agent.log", "responses", ["responses"], ia_total, ia_total
    )
    _line("  worker: responses agent", agent, f"(records of otklik.interactions; RSS {rss:,.0f} MiB; core {core})")
    print(
        f"  ratio worker / raw aiokafka           {agent.per_s / ia_base.per_s:>10.3f}   (target >= 0.05, i.e. 1/20)"
        f"   per CPU-s {agent.per_cpu_s / ia_base.per_cpu_s:.3f}"
    )
    print(
        f"  worker CPU per record                 {agent.cpu_s / agent.events * 1e6:>10.1f} µs"
        f"   (faust floor {floor.cpu_s / floor.events * 1e6:.1f} µs, with fast delivery"
        f" {fast_floor.cpu_s / fast_floor.events * 1e6:.1f} µs)"
    )
    closed = [ln.split("{")[1] for ln in metrics.splitlines() if ln.startswith("otklik_items_closed_total{")]
    print("  closed items by outcome:", ", ".join(closed[:6]))

    print(f"\nthe whole chain ({CHAIN_AGENTS}), on otklik.raw")
    raw_base = best_raw_consumption(bootstrap, chain_raw, raw_total)
    _line("  baseline: raw aiokafka + orjson", raw_base, f"(best of {BASELINE_ROUNDS})")
    stateful = [agent for agent in ("responses", "moderation") if agent in CHAIN_AGENTS.split(",")]

    chain, _, rss, core = run_worker(chain_env, workdir / "chain.log", "normalize", stateful, raw_total, ia_total)
    _line("  worker: the chain", chain, f"(events of otklik.raw; RSS {rss:,.0f} MiB; core {core})")
    print(
        f"  ratio worker / raw aiokafka           {chain.per_s / raw_base.per_s:>10.3f}"
        f"   per CPU-s {chain.per_cpu_s / raw_base.per_cpu_s:.3f}"
    )
    print(f"  worker CPU per event                  {chain.cpu_s / chain.events * 1e6:>10.1f} µs")


async def _create_topics(env: dict[str, str]) -> None:
    from otklik.streams.settings import WorkerSettings
    from otklik.streams.worker.topics import ensure_topics

    await ensure_topics(WorkerSettings.from_env(env))


if __name__ == "__main__":
    main()
