"""The ingest gateway (``otklik gateway``): platform webhooks in, verbatim bodies durably in ``otklik.raw``.

One process serves every community at one URL per platform:

* ``POST /vk/callback`` — VK Callback API. ``confirmation`` gets the community's confirmation string;
  any other event is checked against the community's secret (unknown community, missing or wrong
  secret: 403 and nothing produced), deduplicated on (group_id, event_id), produced to Kafka with
  acks=all, and answered ``ok`` only once the broker acknowledged it. When Kafka cannot take it in
  time the answer is 503 with ``Retry-After``, so VK delivers it again later.
  A body nested deeper than Kafka's record encoder can write (more than 253 levels) gets 400
  ``too_deep``; one with a time out of range or an integer over 64 bits gets 400 ``out_of_bounds``
  (the worker's own rule, docs/data-flow.md, "Bounded input"); one larger than a Kafka record may be
  gets 413 ``too_large``: none could ever be accepted, so they are never answered 503.
* ``POST /tg/webhook`` — Telegram Bot API (``X-Telegram-Bot-Api-Secret-Token``), deduplicated on
  ``update_id``.
* ``POST /max/webhook`` — MAX bot API (``X-Max-Bot-Api-Secret``), deduplicated on (update type,
  message id, timestamp).
* ``GET /metrics`` (its own Prometheus registry) and ``GET /health``.

Why a produce that timed out is remembered: with an idempotent producer aiokafka keeps retrying a
batch until the broker takes it, so a body answered with 503 may still land in Kafka a moment later.
Its delivery future is kept (bounded); if it succeeds, the event is marked seen, and the platform's
redelivery is answered ``ok`` without a second copy. A redelivery arriving while the first copy is
still in flight waits for that copy instead of producing another.

The producer heals (:mod:`otklik.streams.edge.producer`): after a broker restart, a leader change or a
fatal producer error it is replaced without restarting the gateway; a body is answered 503 only while
no producer can reach the broker, and ``/health`` and ``otklik_gateway_kafka_ready`` say whether one
can. The remembered futures above outlive a replaced producer: its batches in flight still settle.

Secrets come from :mod:`otklik.streams.edge.secrets` and never reach a log line, a metric or an answer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import click
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from otklik.agents.ingest.envelope import gateway_problem
from otklik.streams.edge.gaps import GapWriter, LastEvents
from otklik.streams.edge.producer import HealingProducer, ProducerUnavailable
from otklik.streams.edge.secrets import Secrets, load_secrets
from otklik.streams.logs import limit_kafka_logs
from otklik.streams.settings import GatewaySettings, SettingsError, command_error

log = logging.getLogger("otklik.gateway")

# The closed set of reasons a request is refused: the only values of the `reason` label.
REASONS = (
    "empty_body",
    "too_large",
    "not_json",
    "not_object",
    "bad_envelope",
    "too_deep",
    "out_of_bounds",
    "unknown_community",
    "not_configured",
    "missing_secret",
    "bad_secret",
    "kafka_unavailable",
)

TG_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_SECRET_HEADER = "X-Max-Bot-Api-Secret"


# Produces awaiting the broker; beyond that a request is answered 503 at once.
MAX_INFLIGHT = 10_000


class TtlSet:
    """Keys remembered for ``ttl_s`` seconds, at most ``max_size`` of them (the oldest go first)."""

    def __init__(self, ttl_s: float, max_size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._clock = clock
        self._expiry: OrderedDict[Hashable, float] = OrderedDict()

    def add(self, key: Hashable) -> None:
        now = self._clock()
        self._expiry[key] = now + self.ttl_s
        self._expiry.move_to_end(key)
        self._evict(now)

    def __contains__(self, key: Hashable) -> bool:
        expires = self._expiry.get(key)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._expiry[key]
            return False
        return True

    def __len__(self) -> int:
        self._evict(self._clock())
        return len(self._expiry)

    def _evict(self, now: float) -> None:
        # Insertion order is expiry order (one TTL for all), so expired keys sit at the front.
        expiry = self._expiry
        while expiry and (len(expiry) > self.max_size or next(iter(expiry.values())) <= now):
            expiry.popitem(last=False)


class Rejection(Exception):
    """A request refused with ``status``; ``reason`` is one of :data:`REASONS`, ``text`` the answer."""

    def __init__(self, status: int, reason: str, text: str) -> None:
        assert reason in REASONS, reason
        super().__init__(text)
        self.status = status
        self.reason = reason
        self.text = text


# ---- pure checks of request bodies ---------------------------------------------------------------


def _show(value: Any) -> str:
    """A short description of a bad value for an error text (never a secret: callers do not pass those)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


def decode_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a :class:`Rejection` naming what is wrong."""
    if not raw.strip():
        raise Rejection(400, "empty_body", "bad request: the body is empty (expected a JSON object)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejection(400, "not_json", f"bad request: the body is not JSON ({exc})") from None
    if type(data) is not dict:
        raise Rejection(400, "not_object", f"bad request: the body is JSON {_type_name(data)}, not an object")
    return data


def _bad(field_name: str, problem: str) -> Rejection:
    return Rejection(400, "bad_envelope", f"bad request: {field_name}: {problem}")


def vk_head(body: dict[str, Any]) -> tuple[str, int]:
    """The VK envelope's ``type`` and ``group_id``, checked."""
    kind = body.get("type")
    if kind is None:
        raise _bad("type", "missing")
    if type(kind) is not str:
        raise _bad("type", f"expected a string, got {_type_name(kind)}")
    if not kind.strip() or len(kind) > 64:
        raise _bad("type", f"{_show(kind)} is not an event type")
    group_id = body.get("group_id")
    if group_id is None:
        raise _bad("group_id", "missing")
    if type(group_id) is not int:
        raise _bad("group_id", f"expected an integer, got {_type_name(group_id)} {_show(group_id)}")
    if group_id <= 0:
        raise _bad("group_id", f"expected a positive integer (the community id), got {group_id}")
    return kind, group_id


def vk_event_fields(body: dict[str, Any]) -> str:
    """The rest of an event's envelope (after its secret was checked); returns the event_id."""
    event_id = body.get("event_id")
    if event_id is None:
        raise _bad("event_id", "missing")
    if type(event_id) is not str:
        raise _bad("event_id", f"expected a string, got {_type_name(event_id)}")
    if not event_id.strip() or len(event_id) > 128:
        raise _bad("event_id", f"{_show(event_id)} is not an event id")
    version = body.get("v")
    if version is None:
        raise _bad("v", "missing (the API version of the event)")
    if type(version) is not str or not version.strip():
        raise _bad("v", f"expected a version string like '5.199', got {_type_name(version)}")
    obj = body.get("object")
    if obj is None:
        raise _bad("object", "missing")
    if type(obj) is not dict:
        raise _bad("object", f"expected a JSON object, got {_type_name(obj)}")
    return event_id


def _check_header_secret(request: web.Request, header: str, expected: str | None, what: str) -> None:
    """Refuse (403) a webhook whose secret header is missing or wrong, or when none is configured."""
    if not expected:
        raise Rejection(403, "not_configured", f"forbidden: no {what} is configured")
    given = request.headers.get(header)
    if given is None:
        raise Rejection(403, "missing_secret", f"forbidden: the {header} header is missing")
    if not _secret_matches(given, expected):
        raise Rejection(403, "bad_secret", f"forbidden: wrong {header}")


def _secret_matches(given: Any, expected: str) -> bool:
    return type(given) is str and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def tg_update_id(body: dict[str, Any]) -> int:
    update_id = body.get("update_id")
    if update_id is None:
        raise _bad("update_id", "missing")
    if type(update_id) is not int or update_id < 0:
        raise _bad("update_id", f"expected a non-negative integer, got {_type_name(update_id)}")
    return update_id


def tg_key(body: dict[str, Any], links: Mapping[int, int]) -> tuple[str, str]:
    """(Kafka key, community label) of a Telegram update: its page when known, else its chat."""
    from otklik.agents.ingest.telegram import chat_page, page_of_update

    page = page_of_update(body, links)
    if page is not None:
        return page, page
    for name in ("message", "edited_message", "channel_post", "edited_channel_post"):
        message = body.get(name)
        if type(message) is dict and type(message.get("chat")) is dict and type(message["chat"].get("id")) is int:
            return chat_page(message["chat"]["id"]), "unknown"
    return "tg:unknown", "unknown"


def max_head(body: dict[str, Any]) -> tuple[Hashable, str, str]:
    """(dedupe key, Kafka key, community label) of a MAX update."""
    from otklik.agents.ingest.max import page_of_update

    kind = body.get("update_type")
    if kind is None:
        raise _bad("update_type", "missing")
    if type(kind) is not str or not kind.strip():
        raise _bad("update_type", f"expected a string, got {_type_name(kind)}")
    stamp = body.get("timestamp")
    if stamp is None:
        raise _bad("timestamp", "missing")
    if type(stamp) is not int or stamp < 0:
        raise _bad("timestamp", f"expected unix milliseconds, got {_type_name(stamp)}")
    ident: Any = body.get("message_id")
    message = body.get("message")
    if type(message) is dict and type(message.get("body")) is dict:
        ident = message["body"].get("mid", ident)
    callback = body.get("callback")
    if type(callback) is dict:
        ident = callback.get("callback_id", ident)
    page = page_of_update(body)
    key = page if page is not None else "max:unknown"
    return ("max", kind, str(ident), stamp), key, page or "unknown"


# ---- the service ---------------------------------------------------------------------------------


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "otklik_gateway_requests_total",
            "Webhook requests by outcome: accepted (produced), duplicate (already accepted), confirmation, rejected.",
            ["platform", "source", "outcome"],
            registry=registry,
        )
        self.rejected = Counter(
            "otklik_gateway_rejected_total",
            "Webhook requests refused, by reason (a closed set of codes).",
            ["platform", "source", "reason"],
            registry=registry,
        )
        self.produce_seconds = Histogram(
            "otklik_gateway_produce_seconds",
            "Time from receiving a body to the broker's acknowledgement (acks=all).",
            ["platform"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.last_event = Gauge(
            "otklik_connector_last_event_timestamp_seconds",
            "Unix time of the last event accepted, per platform, source and community (page id).",
            ["platform", "source", "community"],
            registry=registry,
        )
        self.inflight = Gauge(
            "otklik_gateway_inflight_produces",
            "Bodies handed to the producer and not yet acknowledged.",
            registry=registry,
        )
        self.kafka_ready = Gauge(
            "otklik_gateway_kafka_ready",
            "1 while the gateway has a live Kafka producer and the broker answered its last probe or produce.",
            registry=registry,
        )
        for platform, source in (("vk", "vk-callback"), ("tg", "tg-webhook"), ("max", "max-webhook")):
            for outcome in ("accepted", "duplicate", "rejected"):
                self.requests.labels(platform, source, outcome)


ProducerFactory = Callable[[GatewaySettings], Any]


def kafka_producer(config: GatewaySettings) -> Any:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=config.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=config.linger_ms,
        # An idempotent producer keeps one request in flight per partition: batches must be large
        # enough to carry everything that arrives during one acks=all round trip.
        max_batch_size=512 * 1024,
        request_timeout_ms=max(1000, int(config.produce_timeout_s * 1000)),
        retry_backoff_ms=200,
    )


class Gateway:
    """The HTTP service. :meth:`app` builds the aiohttp application; its start-up connects the producer."""

    def __init__(
        self,
        config: GatewaySettings,
        secrets: Secrets,
        producer_factory: ProducerFactory = kafka_producer,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.topic = config.topic("raw")
        self.secrets = secrets
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = GatewayMetrics(self.registry)
        self.seen = TtlSet(config.dedupe_ttl_s, config.dedupe_max)
        self._inflight: dict[Hashable, asyncio.Future] = {}
        # Metric children looked up once: `labels()` is a measurable share of a request's cost.
        self._outcomes: dict[tuple[str, str, str], Any] = {}
        self._produce_seconds = {p: self.metrics.produce_seconds.labels(p) for p in ("vk", "tg", "max")}
        self._last_events: dict[tuple[str, str, str], Any] = {}
        self.kafka = HealingProducer(lambda: producer_factory(config), what=config.bootstrap)
        self.metrics.kafka_ready.set_function(lambda: 1.0 if self.kafka.ready else 0.0)
        # Gaps (docs/data-flow.md, "Gaps and catch-up"): the last VK event accepted per community, kept
        # in a file, tells a restart and a confirmation after a silence where the silence began.
        self.last_vk = LastEvents(config.state_file)
        self.gaps = GapWriter(self._send_acked, config.topic("gaps"), "gateway")
        self._gap_tasks: set[asyncio.Task] = set()
        self._saver: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body + 1)
        app.router.add_post("/vk/callback", self.vk_callback)
        app.router.add_post("/tg/webhook", self.tg_webhook)
        app.router.add_post("/max/webhook", self.max_webhook)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/health", self.health)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, _app: web.Application) -> None:
        # Serve at once: while Kafka is unreachable, events get 503 (VK redelivers), never a lost `ok`.
        await self.kafka.start()
        started = time.time()
        for community, last in self.last_vk.load().items():
            self._record_gap(community, last, started, "gateway-restart")
        if self.last_vk.path is not None:
            self._saver = asyncio.create_task(self._save_last_events())

    async def _on_cleanup(self, _app: web.Application) -> None:
        if self._saver is not None:
            self._saver.cancel()
        self.last_vk.save()
        if self._gap_tasks:
            await asyncio.wait(self._gap_tasks, timeout=self.config.produce_timeout_s)
        await self.kafka.stop(15)

    async def _save_last_events(self) -> None:
        while True:
            await asyncio.sleep(self.config.state_interval_s)
            self.last_vk.save()

    async def _send_acked(self, topic: str, value: bytes, key: bytes) -> None:
        if not await self.kafka.wait_connected(60):
            raise ProducerUnavailable("Kafka is not connected")
        await (await self.kafka.send(topic, value, key))

    def _record_gap(self, community: str, since: float, until: float, why: str) -> None:
        """Write a gap in the background (the request that noticed it is not held up)."""
        task = asyncio.get_running_loop().create_task(self.gaps.write(community, since, until, why))
        self._gap_tasks.add(task)
        task.add_done_callback(self._gap_tasks.discard)

    async def wait_ready(self, timeout: float) -> bool:
        return await self.kafka.wait_connected(timeout)

    # -- handlers ----------------------------------------------------------------------------------

    async def vk_callback(self, request: web.Request) -> web.Response:
        source = "vk-callback"
        try:
            body = decode_object(await self._read(request))
            kind, group_id = vk_head(body)
            community = self.secrets.community(group_id)
            if community is None:
                raise Rejection(403, "unknown_community", f"forbidden: community {group_id} is not served here")
            given = body.get("secret")
            if kind == "confirmation":
                if community.secret and given is not None and not _secret_matches(given, community.secret):
                    raise Rejection(403, "bad_secret", f"forbidden: wrong secret for community {group_id}")
                if not community.confirmation:
                    raise Rejection(
                        403, "not_configured", f"forbidden: no confirmation string configured for community {group_id}"
                    )
                self._count("vk", source, "confirmation")
                # VK asks again after it stopped sending (the server was off, or failed too often): the
                # events of a silence longer than OTKLIK_GATEWAY_SILENCE may be lost.
                page = f"vk:{group_id}"
                last, now = self.last_vk.times.get(page), time.time()
                if last is not None and now - last > self.config.silence_s:
                    self._record_gap(page, last, now, "confirmation")
                return web.Response(text=community.confirmation, content_type="text/plain")
            if not community.secret:
                raise Rejection(403, "not_configured", f"forbidden: community {group_id} has no secret configured")
            if given is None:
                raise Rejection(403, "missing_secret", f"forbidden: the event carries no secret (community {group_id})")
            if not _secret_matches(given, community.secret):
                raise Rejection(403, "bad_secret", f"forbidden: wrong secret for community {group_id}")
            event_id = vk_event_fields(body)
        except Rejection as rejection:
            return self._refuse("vk", source, rejection)
        page = f"vk:{group_id}"
        return await self._accept("vk", source, ("vk", group_id, event_id), page, page, body)

    async def tg_webhook(self, request: web.Request) -> web.Response:
        source = "tg-webhook"
        try:
            _check_header_secret(request, TG_SECRET_HEADER, self.secrets.tg_secret_token, "Telegram secret token")
            body = decode_object(await self._read(request))
            update_id = tg_update_id(body)
        except Rejection as rejection:
            return self._refuse("tg", source, rejection)
        key, community = tg_key(body, self.config.tg_links)
        return await self._accept("tg", source, ("tg", update_id), key, community, body)

    async def max_webhook(self, request: web.Request) -> web.Response:
        source = "max-webhook"
        try:
            _check_header_secret(request, MAX_SECRET_HEADER, self.secrets.max_secret, "MAX webhook secret")
            body = decode_object(await self._read(request))
            dedupe_key, key, community = max_head(body)
        except Rejection as rejection:
            return self._refuse("max", source, rejection)
        return await self._accept("max", source, dedupe_key, key, community, body)

    async def metrics_page(self, _request: web.Request) -> web.Response:
        self.metrics.inflight.set(len(self._inflight))
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(self, _request: web.Request) -> web.Response:
        ready = self.kafka.ready
        data = {
            "status": "ok" if ready else "kafka_unavailable",
            "kafka": ready,
            "producer_replacements": self.kafka.replacements,
            "inflight": len(self._inflight),
            "remembered_events": len(self.seen),
        }
        return web.json_response(data, status=200 if ready else 503)

    # -- internals ---------------------------------------------------------------------------------

    async def _read(self, request: web.Request) -> bytes:
        limit = self.config.max_body
        too_large = Rejection(
            413, "too_large", f"payload too large: the body exceeds {limit} bytes (OTKLIK_GATEWAY_MAX_BODY)"
        )
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        chunks = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _refuse(self, platform: str, source: str, rejection: Rejection) -> web.Response:
        self._count(platform, source, "rejected")
        self.metrics.rejected.labels(platform, source, rejection.reason).inc()
        headers = {"Retry-After": str(self.config.retry_after_s)} if rejection.status == 503 else None
        return web.Response(status=rejection.status, text=rejection.text, headers=headers)

    def _unavailable(self, platform: str, source: str, why: str) -> web.Response:
        return self._refuse(
            platform, source, Rejection(503, "kafka_unavailable", f"service unavailable: {why}; retry later")
        )

    def _count(self, platform: str, source: str, outcome: str) -> None:
        child = self._outcomes.get((platform, source, outcome))
        if child is None:
            child = self._outcomes[(platform, source, outcome)] = self.metrics.requests.labels(
                platform, source, outcome
            )
        child.inc()

    def _last_event(self, platform: str, source: str, community: str) -> Any:
        child = self._last_events.get((platform, source, community))
        if child is None:
            child = self._last_events[(platform, source, community)] = self.metrics.last_event.labels(
                platform, source, community
            )
        return child

    def _ok(self, platform: str, source: str, outcome: str) -> web.Response:
        self._count(platform, source, outcome)
        return web.Response(text="ok", content_type="text/plain")

    async def _accept(
        self, platform: str, source: str, dedupe_key: Hashable, key: str, community: str, body: dict[str, Any]
    ) -> web.Response:
        started = time.perf_counter()
        if dedupe_key in self.seen:
            return self._ok(platform, source, "duplicate")
        received_at = time.time()
        # What the worker would dead-letter for good (times out of range, integers over 64 bits, nesting
        # the encoder cannot write) is refused here, before Kafka, also while Kafka is down.
        problem = gateway_problem(platform, body, received_at, self.config.tg_links)
        if problem is not None:
            reason = "too_deep" if "nested deeper" in problem else "out_of_bounds"
            return self._refuse(platform, source, Rejection(400, reason, f"bad request: {problem}"))
        timeout = self.config.produce_timeout_s
        pending = self._inflight.get(dedupe_key)
        if pending is not None:
            # An earlier delivery of this event is still on its way to the broker: its outcome is ours.
            delivered = await _outcome(pending, timeout)
            if delivered:
                return self._ok(platform, source, "duplicate")
            if delivered is None:
                return self._unavailable(platform, source, "an earlier delivery of this event is still unacknowledged")
        # A producer being replaced while the broker is up is back within milliseconds: wait for it.
        if not self.kafka.connected and not await self.kafka.wait_connected(timeout, while_starting_only=True):
            return self._unavailable(platform, source, "Kafka is not connected")
        if len(self._inflight) >= MAX_INFLIGHT:
            return self._unavailable(platform, source, "too many bodies await the broker")
        try:
            value = envelope_json(platform, source, received_at, body)
        except orjson.JSONEncodeError as exc:  # parsed, but deeper than the encoder writes
            return self._refuse(platform, source, _unwritable(exc))
        # Registered before the first await, so that a concurrent redelivery waits for this copy.
        delivery = asyncio.get_running_loop().create_future()
        self._inflight[dedupe_key] = delivery
        delivery.add_done_callback(lambda fut: self._settled(dedupe_key, fut))
        try:
            acked = await self.kafka.send(self.topic, value, key.encode())
        except BaseException as exc:  # nothing was queued (no metadata in time, or no live producer)
            delivery.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            if type(exc).__name__ == "MessageSizeTooLargeError":
                return self._refuse(platform, source, _too_large_for_kafka())
            if isinstance(exc, ProducerUnavailable):
                return self._unavailable(platform, source, "Kafka is not connected")
            return self._unavailable(platform, source, f"Kafka did not take the body ({type(exc).__name__})")
        # The broker's answer settles our future, also after this request was answered 503.
        acked.add_done_callback(lambda fut: _copy_outcome(fut, delivery))
        delivered = await _outcome(delivery, max(0.0, timeout - (time.perf_counter() - started)))
        if not delivered:
            if delivered is False and type(delivery.exception()).__name__ == "MessageSizeTooLargeError":
                return self._refuse(platform, source, _too_large_for_kafka())  # the broker's limit is lower
            return self._unavailable(platform, source, "Kafka did not acknowledge the body in time")
        self.seen.add(dedupe_key)
        self._produce_seconds[platform].observe(time.perf_counter() - started)
        self._last_event(platform, source, community).set(time.time())
        if platform == "vk":
            self.last_vk.seen(community, received_at)
        return self._ok(platform, source, "accepted")

    def _settled(self, dedupe_key: Hashable, future: asyncio.Future) -> None:
        if self._inflight.get(dedupe_key) is future:
            del self._inflight[dedupe_key]
        if future.cancelled():
            return
        if future.exception() is None:
            self.seen.add(dedupe_key)  # also when the request that produced it was already answered 503
        else:  # the producer logs why (bounded); one line per body would flood the log in an outage
            log.debug("a body was not produced: %s", type(future.exception()).__name__)


def _copy_outcome(source: asyncio.Future, target: asyncio.Future) -> None:
    if target.done():
        return
    if source.cancelled():
        target.set_exception(RuntimeError("the produce was cancelled"))
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(None)


def _unwritable(exc: orjson.JSONEncodeError) -> Rejection:
    if "recursion" in str(exc).lower():
        return Rejection(
            400,
            "too_deep",
            "bad request: the body is nested too deeply: at most 253 levels of objects and arrays can be stored",
        )
    return Rejection(400, "bad_envelope", f"bad request: the body cannot be stored as JSON ({exc})")


def _too_large_for_kafka() -> Rejection:
    return Rejection(413, "too_large", "payload too large: the event exceeds the largest record Kafka accepts")


def envelope_json(platform: str, source: str, received_at: float, body: dict[str, Any]) -> bytes:
    """Exactly ``RawEnvelope(...).to_json()``, without ``asdict``'s deep copy of the body (a third of a
    millisecond per request at 1 kB: the largest cost on this path)."""
    return orjson.dumps({"platform": platform, "source": source, "received_at": received_at, "body": body})


async def _outcome(future: asyncio.Future, timeout: float) -> bool | None:
    """True when delivered, False when it failed, None when it is still pending after ``timeout``.

    Never cancels ``future`` (a body already queued keeps going; see the module's docstring). Plain
    callbacks instead of ``asyncio.wait``, which costs several times more per request."""
    if not future.done():
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = loop.call_later(timeout, wake)
        future.add_done_callback(wake)
        try:
            await waiter
        finally:
            timer.cancel()
            future.remove_done_callback(wake)
    if not future.done():
        return None
    return not future.cancelled() and future.exception() is None


# ---- command line --------------------------------------------------------------------------------


@click.command("gateway")
@click.option("--host", default=None, help="Address to listen on [env OTKLIK_GATEWAY_HOST, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [env OTKLIK_GATEWAY_PORT, 8080].")
def gateway_command(host: str | None, port: int | None) -> None:
    """Run the ingest gateway: VK Callback API, Telegram and MAX webhooks into otklik.raw.

    Secrets and confirmation strings come from OTKLIK_SECRETS_FILE or OTKLIK_VK_<GROUPID>_SECRET /
    _CONFIRMATION, OTKLIK_TG_SECRET_TOKEN, OTKLIK_MAX_SECRET; the broker and topic prefix are the
    worker's (OTKLIK_KAFKA_BROKER, OTKLIK_TOPIC_PREFIX)."""
    try:
        config = GatewaySettings.from_env(host=host, port=port)
        secrets = load_secrets()
    except SettingsError as exc:
        raise command_error(exc) from None
    config.configure_logging()
    limit_kafka_logs()
    click.echo(
        f"otklik gateway: http://{config.host}:{config.port} (/vk/callback, /tg/webhook, /max/webhook), "
        f"{len(secrets.vk)} VK communities, producing to {config.topic('raw')} on {config.bootstrap}",
        err=True,
    )
    web.run_app(Gateway(config, secrets).app(), host=config.host, port=config.port, access_log=None, print=None)
