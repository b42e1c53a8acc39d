"""The ingest gateway under a fixed request rate on loopback, beside a trivial aiohttp baseline.

Both servers run as their own processes; this process sends an open-loop load (each request has its
scheduled time, and its latency is counted from that time, so a stalled server cannot hide its queue)
of real-shaped VK ``wall_reply_new`` callbacks, each with a fresh ``event_id``:

* baseline: an aiohttp handler that reads the body and answers ``ok`` (no parsing, no Kafka);
* gateway: the real ``otklik gateway`` (secret check, dedupe, produce with acks=all, ``ok`` after the ack).

Printed per server: accepted requests/s, p50 / p99 / max time to ``ok``, and failures. The gateway's
records are then counted in its topic (exactly one per accepted request). Target on this machine:
p99 <= 50 ms at 2,000 requests/s. Set OTKLIK_BENCH_GATEWAY_RATE / _SECONDS to change the load.
"""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
import time
import uuid

import aiohttp
import orjson

from otklik.streams.settings import BenchSettings, WorkerSettings
from otklik.streams.tools.kafka_local import LocalKafka
from otklik.streams.worker.topics import ensure_topics

_BENCH = BenchSettings.from_env()
RATE = _BENCH.bench_gateway_rate
SECONDS = _BENCH.bench_gateway_seconds
WARMUP_S = 1.0
GROUP = 424200
COMMUNITIES = 100  # the load spreads over this many communities (keys), as a region's traffic does
SECRET = "bench-secret-123"

BASELINE = """
import sys
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(text="ok")
async def health(request):
    return web.Response(text="ok")
app = web.Application()
app.router.add_post("/vk/callback", ok)
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

GATEWAY = "from otklik.streams.edge.gateway import gateway_command; gateway_command()"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body(n: int, run: str) -> bytes:
    group = GROUP + n % COMMUNITIES
    return orjson.dumps(
        {
            "type": "wall_reply_new",
            "group_id": group,
            "event_id": f"{run}-{n:08d}",
            "v": "5.199",
            "secret": SECRET,
            "object": {
                "id": 100000 + n,
                "from_id": 500000 + n % 5000,
                "date": 1764000000 + n // 100,
                "post_id": 88,
                "owner_id": -group,
                "text": "Здравствуйте! Когда отремонтируют дорогу у школы № 12? " * 3,
            },
        }
    )


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}")
            try:
                async with session.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy in {timeout}s")


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time (a lean client: aiohttp's own
    client costs more CPU per request than the servers measured here, and would be what we measure)."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.current: tuple[int, float] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, n: int, scheduled: float) -> None:
        self.current = (n, scheduled)
        self.transport.write(self.client.requests[n])  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.buf[:end]).split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        status = int(lines[0].split()[1])
        current, self.current = self.current, None
        assert current is not None
        self.client.done(self, current, status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost(self)


class _Client:
    def __init__(self, port: int, requests: list[bytes], limit: int, start: float) -> None:
        self.port = port
        self.requests = requests
        self.limit = limit
        self.start = start
        self.free: list[_Connection] = []
        self.waiting: collections.deque[tuple[int, float]] = collections.deque()
        self.open = 0
        self.latencies: list[float] = []
        self.failures: dict[str, int] = {}
        self.ok = 0
        self.finished = 0
        self.all_done = asyncio.Event()
        self.total = len(requests)
        self.tasks: set[asyncio.Future[None]] = set()  # held so the loop does not collect them

    def submit(self, n: int, scheduled: float) -> None:
        if self.free:
            self.free.pop().send(n, scheduled)
        elif self.open < self.limit:
            self.open += 1
            self.tasks.add(asyncio.ensure_future(self._connect(n, scheduled)))
        else:
            self.waiting.append((n, scheduled))

    async def _connect(self, n: int, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Connection(self), "127.0.0.1", self.port)
        except OSError as exc:
            self.open -= 1
            self._count(type(exc).__name__)
            return
        conn.send(n, scheduled)

    def done(self, conn: _Connection, current: tuple[int, float], status: int, body: bytes) -> None:
        _, scheduled = current
        if status == 200 and body == b"ok":
            self.ok += 1
            if scheduled - self.start >= WARMUP_S:
                self.latencies.append(time.perf_counter() - scheduled)
            self._finish()
        else:
            self._count(f"HTTP {status}")
        if self.waiting:
            conn.send(*self.waiting.popleft())
        else:
            self.free.append(conn)

    def lost(self, conn: _Connection) -> None:
        self.open -= 1
        if conn in self.free:
            self.free.remove(conn)
        if conn.current is not None:
            self._count("connection lost")

    def _count(self, what: str) -> None:
        self.failures[what] = self.failures.get(what, 0) + 1
        self._finish()

    def _finish(self) -> None:
        self.finished += 1
        if self.finished >= self.total:
            self.all_done.set()


async def load(port: int, rate: int, seconds: float, run: str) -> dict:
    """Open-loop load; returns latencies (s) of the requests scheduled after the warm-up."""
    total = int(rate * (seconds + WARMUP_S))
    requests = []
    for n in range(total):
        payload = body(n, run)
        requests.append(
            b"POST /vk/callback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + b"Content-Length: "
            + str(len(payload)).encode()
            + b"\r\n\r\n"
            + payload
        )
    start = time.perf_counter() + 0.2
    client = _Client(port, requests, limit=256, start=start)
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        client.submit(n, scheduled)
    try:
        await asyncio.wait_for(client.all_done.wait(), 60)
    except TimeoutError:
        client.failures["unanswered after 60 s"] = total - client.finished
    for conn in client.free:
        conn.transport.close()  # type: ignore[union-attr]
    client.latencies.sort()
    return {
        "sent": total,
        "ok": client.ok,
        "failures": client.failures,
        "latencies": client.latencies,
        "measured_s": seconds,
    }


def report(name: str, result: dict) -> None:
    lat = result["latencies"]
    rate = len(lat) / result["measured_s"]
    print(
        f"{name:>9}: {rate:8.0f} accepted requests/s   p50 {percentile(lat, 0.50) * 1000:6.1f} ms   "
        f"p99 {percentile(lat, 0.99) * 1000:6.1f} ms   max {(lat[-1] if lat else float('nan')) * 1000:6.1f} ms   "
        f"ok {result['ok']}/{result['sent']}   failures {result['failures'] or 'none'}",
        flush=True,
    )


def ack_quantiles(metrics: str) -> str:
    """p50 / p99 upper bucket bounds of otklik_gateway_produce_seconds{platform="vk"}."""
    import re

    buckets = [
        (float(le), float(count))
        for le, count in re.findall(
            r'^otklik_gateway_produce_seconds_bucket\{le="([^"]+)",platform="vk"\} (\S+)$', metrics, re.M
        )
    ]
    if not buckets or buckets[-1][1] == 0:
        return "no data"
    total = buckets[-1][1]
    out = []
    for q in (0.5, 0.99):
        bound = next(le for le, count in buckets if count >= q * total)
        out.append(f"p{int(q * 100)} <= {bound * 1000:g} ms")
    return ", ".join(out)


async def count_records(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def bench() -> None:
    bootstrap = LocalKafka.from_env().bootstrap
    prefix = f"bench-gw-{uuid.uuid4().hex[:8]}."
    settings = WorkerSettings(broker=f"kafka://{bootstrap}", topic_prefix=prefix, partitions=4)
    await ensure_topics(settings)
    print(
        f"load: {RATE} requests/s for {SECONDS:.0f} s (after {WARMUP_S:.0f} s warm-up), open loop, loopback, "
        f"{COMMUNITIES} communities over {settings.partitions} partitions; broker {bootstrap}, acks=all, "
        f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )

    base_port, gw_port = free_port(), free_port()
    baseline = subprocess.Popen([sys.executable, "-c", BASELINE, str(base_port)])
    env = dict(
        os.environ,
        OTKLIK_KAFKA_BROKER=f"kafka://{bootstrap}",
        OTKLIK_TOPIC_PREFIX=prefix,
        OTKLIK_GATEWAY_PORT=str(gw_port),
        OTKLIK_LOG_LEVEL="warning",
        **{f"OTKLIK_VK_{GROUP + i}_SECRET": SECRET for i in range(COMMUNITIES)},
    )
    env.pop("OTKLIK_SECRETS_FILE", None)
    gateway = subprocess.Popen([sys.executable, "-c", GATEWAY], env=env, stderr=subprocess.DEVNULL)
    try:
        await wait_healthy(f"http://127.0.0.1:{base_port}", baseline)
        await wait_healthy(f"http://127.0.0.1:{gw_port}", gateway)
        base = await load(base_port, RATE, SECONDS, "base")
        report("baseline", base)
        gw = await load(gw_port, RATE, SECONDS, "gw")
        report("gateway", gw)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{gw_port}/metrics") as resp:
                metrics = await resp.text()
        print(f"  of which receive → broker ack (gateway's own histogram): {ack_quantiles(metrics)}", flush=True)
        stored = await count_records(bootstrap, settings.topic("raw"))
        print(
            f"  records in {settings.topic('raw')}: {stored} for {gw['ok']} `ok` answers "
            f"({'exactly one each' if stored == gw['ok'] else 'MISMATCH'})",
            flush=True,
        )
        p99 = percentile(gw["latencies"], 0.99) * 1000
        verdict = "meets" if p99 <= 50 and not gw["failures"] else "misses"
        print(f"  target p99 <= 50 ms at {RATE} requests/s with acks=all: {verdict} it ({p99:.1f} ms)", flush=True)
    finally:
        for proc in (gateway, baseline):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    asyncio.run(bench())


if __name__ == "__main__":
    main()
