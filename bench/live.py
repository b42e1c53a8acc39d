"""Live throughput of the worker on the real broker, beside raw aiokafka consumption of the same topic.

The simulator's events are produced to a fresh otklik.raw first; then
- the baseline: a plain aiokafka consumer reads the topic and decodes every record with orjson;
- the worker (a real `otklik worker` process) runs the whole chain — normalize, otklik.interactions,
  the response engine with its pages table — and its group's committed offsets on otklik.raw and
  otklik.interactions are polled until both topics are consumed to the end.
Both rates are events of otklik.raw per second; their ratio is what to compare across machines.
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
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from otklik.schemas.records import RawEnvelope
from otklik.streams.kafka_local import LocalKafka
from otklik.streams.simulate import SimConfig, generate, write_registry

EVENTS = int(os.environ.get("OTKLIK_BENCH_LIVE_EVENTS", "100000"))
PARTITIONS = 4


async def produce_all(bootstrap: str, topic: str, cfg: SimConfig) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    n = 0
    try:
        for received_at, body in generate(cfg):
            if n >= EVENTS:
                break
            value = RawEnvelope("vk", "bench", float(received_at), body).to_json()
            await producer.send(topic, value=value, key=f"vk:{body['group_id']}".encode())
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        if not tps:
            await consumer._client.force_metadata_update()
            tps = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def raw_consumption(bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    n = 0
    started = None
    try:
        while n < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and batch:
                started = time.perf_counter()
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                    n += 1
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    out: dict[str, int] = {}
    for tp, meta in offsets.items():
        out[tp.topic] = out.get(tp.topic, 0) + max(meta.offset, 0)
    return out


def main() -> None:
    kafka = LocalKafka.from_env()
    kafka.start()
    bootstrap = kafka.bootstrap
    name = f"bench-{uuid.uuid4().hex[:8]}"
    raw_topic, ia_topic = f"{name}.otklik.raw", f"{name}.otklik.interactions"
    cfg = SimConfig(pages=500, rate=50.0, duration=EVENTS / 40.0, seed=5, start=int(time.time()) - EVENTS // 40)
    workdir = Path(tempfile.mkdtemp(prefix="otklik-bench-"))
    registry = workdir / "registry.yaml"
    write_registry(cfg, registry)

    env = dict(os.environ, OTKLIK_KAFKA_BROKER=f"kafka://{bootstrap}", OTKLIK_APP_ID=name,
               OTKLIK_TOPIC_PREFIX=name + ".", OTKLIK_WEB_PORT="6099", OTKLIK_DATA_DIR=str(workdir / "data"),
               OTKLIK_PARTITIONS=str(PARTITIONS), OTKLIK_REBALANCE_TIMEOUT="6", OTKLIK_REGISTRY=str(registry),
               OTKLIK_LOG_LEVEL="warning")
    otklik = str(Path(sys.executable).parent / "otklik")
    # The worker creates the topics (with the partitions it is told) before any record arrives.
    subprocess.run([otklik, "worker", "--help"], check=True, capture_output=True)
    asyncio.run(_create_topics(env))
    total = asyncio.run(produce_all(bootstrap, raw_topic, cfg))
    print(f"events produced to otklik.raw        {total:>10,}  ({PARTITIONS} partitions)")

    baseline = asyncio.run(raw_consumption(bootstrap, raw_topic, total))
    print(f"baseline: raw aiokafka + orjson      {baseline:>10,.0f} events/s")

    log = open(workdir / "worker.log", "wb")
    worker = subprocess.Popen([otklik, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        interactions_total = None
        first_t = first_n = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited; see {workdir / 'worker.log'}")
            done = asyncio.run(committed(bootstrap, name))
            raw_done = done.get(raw_topic, 0)
            if first_t is None and raw_done > 0:
                first_t, first_n = time.perf_counter(), raw_done
            if raw_done >= total:
                if interactions_total is None:
                    interactions_total = sum(asyncio.run(end_offsets(bootstrap, ia_topic)).values())
                if done.get(ia_topic, 0) >= interactions_total:
                    break
        else:
            raise RuntimeError("the worker did not finish within 15 minutes")
        elapsed = time.perf_counter() - first_t
        live = (total - first_n) / elapsed
        with urllib.request.urlopen("http://127.0.0.1:6099/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        rss = _rss_kb(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    print(f"worker: raw → interactions → engine  {live:>10,.0f} events/s  ({interactions_total:,} interactions)")
    print(f"ratio worker / raw aiokafka          {live / baseline:>10.3f}   (target >= 0.05, i.e. 1/20)")
    print(f"worker RSS at the end                {rss / 1024:>10,.0f} MiB")
    lines = [ln for ln in metrics.splitlines() if ln.startswith("otklik_items_closed_total{")]
    print("closed items by outcome:", ", ".join(ln.split("{")[1] for ln in lines[:6]))


async def _create_topics(env: dict[str, str]) -> None:
    from otklik.streams.settings import Settings
    from otklik.streams.topics import ensure_topics

    await ensure_topics(Settings.from_env(env))


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()
