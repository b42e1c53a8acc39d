"""The faust app: built by :func:`create_app` from one :class:`WorkerSettings`, never at import time.

Building it lazily keeps faust's event-loop binding out of imports (tests and the CLI import this
module freely) and lets tests run several apps with their own topic names and ports.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import faust
import faust.web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from otklik.agents import NATIVE_STATUS
from otklik.streams.kafka_pacing import install_metadata_backoff
from otklik.streams.settings import TOPIC_NAMES, WorkerSettings
from otklik.streams.worker.api_tokens import ApiTokens
from otklik.streams.worker.fast_delivery import FastDeliveryStats, install_fast_delivery
from otklik.streams.worker.fetch_guard import install_fetch_guard
from otklik.streams.worker.kafka_watch import KafkaWatch
from otklik.streams.worker.metrics import PipelineMetrics

log = logging.getLogger("otklik")


@dataclass
class Topics:
    """The topics of the data flow (docs/data-flow.md, "Topics"). Keys and values are raw bytes: the agents decode
    them themselves, so that a record that does not decode reaches the dead-letter topic instead
    of stopping the stream inside faust's deserializer."""

    raw: faust.TopicT
    interactions: faust.TopicT
    responses: faust.TopicT
    moderation: faust.TopicT
    dead_letters: faust.TopicT
    overrides: faust.TopicT
    gaps: faust.TopicT
    managers: faust.TopicT


class FaustApp(faust.App):
    """faust's App with a cheaper hand-over of records from its consumer (see streams/worker/fast_delivery.py)
    and without the per-record statistics of faust's own Monitor sensor. ``fast_delivery=False``
    (``OTKLIK_FAST_DELIVERY``) leaves faust's own hand-over; :attr:`fast_delivery_stats` say which runs."""

    def __init__(self, *args, fast_delivery: bool = True, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fast_delivery = fast_delivery
        self.fast_delivery_stats = FastDeliveryStats()

    def _new_consumer(self):  # type: ignore[no-untyped-def]
        consumer = super()._new_consumer()
        install_fetch_guard(consumer)  # no input record skipped after a recovery (streams/worker/fetch_guard.py)
        thread = consumer._thread  # aiokafka's consumer is made there, in the thread's loop
        create = thread._create_consumer

        def _create_consumer(loop):  # type: ignore[no-untyped-def]
            made = create(loop=loop)
            install_metadata_backoff(made._client)  # paced during an outage (streams/kafka_pacing.py)
            return made

        thread._create_consumer = _create_consumer
        if self.fast_delivery:
            install_fast_delivery(consumer, self.fast_delivery_stats)
        else:
            self.fast_delivery_stats.installed = False
            self.fast_delivery_stats.reason = "switched off (OTKLIK_FAST_DELIVERY=false)"
        return consumer

    def _new_producer(self):  # type: ignore[no-untyped-def]
        producer = super()._new_producer()
        make = producer._new_producer  # makes faust's aiokafka producer when the service starts

        def _new_aiokafka_producer(transactional_id=None):  # type: ignore[no-untyped-def]
            made = make(transactional_id=transactional_id)
            install_metadata_backoff(made.client)  # paced during an outage (streams/kafka_pacing.py)
            return made

        producer._new_producer = _new_aiokafka_producer
        return producer

    def on_init_dependencies(self):  # type: ignore[no-untyped-def]
        services = super().on_init_dependencies()
        # faust's Monitor counts every message and stream event (several calls and dict updates a record)
        # for faust's own /stats views; otklik's figures are its Prometheus metrics. The Monitor object
        # stays (faust calls it directly for end offsets and commits), it just no longer hears each record.
        self.sensors.remove(self.monitor)
        return services


class OtklikApp:
    """The faust app plus what its agents share: settings, topics, metrics."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = PipelineMetrics(self.registry)
        self.started_at = time.time()
        self.faust = FaustApp(
            settings.app_id,
            fast_delivery=settings.fast_delivery,
            broker=settings.broker,
            store=settings.store,
            datadir=str(settings.data_dir),
            web_enabled=True,
            web_host=settings.web_host,
            web_port=settings.web_port,
            web_bind=settings.web_host,
            # What this worker tells its group: the others ask it for the pages it holds.
            canonical_url=settings.web_url or f"http://{settings.web_host}:{settings.web_port}",
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replicas,
            topic_allow_declare=True,
            producer_acks=-1,  # acks=all: a record we report as produced survives a broker crash
            # A few milliseconds of linger turn a batch of sends into a few produce requests.
            producer_linger_ms=5,
            producer_max_batch_size=256 * 1024,
            # Above any record the agents write (page state goes in pieces of at most
            # agents.wiring.page_pieces.PIECE_MAX).
            producer_max_request_size=9 * 1024 * 1024,
            consumer_auto_offset_reset="earliest",
            broker_rebalance_timeout=settings.rebalance_timeout_s,
            broker_session_timeout=min(settings.rebalance_timeout_s, 60.0),
            broker_heartbeat_interval=min(3.0, settings.rebalance_timeout_s / 10),
            table_cleanup_interval=60.0,
            # Room for several seconds of records while an agent works through a batch: with faust's
            # default (4,096) the consumer stalls behind a busy agent and the worker idles afterwards.
            stream_buffer_maxsize=32_768,
            # Up to 4 MiB fetched ahead per partition (faust's default: 1 MiB), so that the consumer's
            # thread has the next seconds of records ready when the agent finishes a batch.
            consumer_max_fetch_size=4 * 1024 * 1024,
            # No faust-level autodiscovery, no tracing: the agents are registered explicitly below.
            autodiscover=False,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.metrics.watch_fast_delivery(lambda: self.faust.fast_delivery_stats)
        # Whether the broker answers now: /health and otklik_worker_kafka_ready (streams/worker/kafka_watch.py).
        self.kafka_watch = KafkaWatch(lambda: self.faust.producer._ensure_producer(), what=settings.bootstrap)
        self.metrics.watch_kafka(lambda: self.kafka_watch.ready)
        self.faust.task(self.kafka_watch.run)
        self.topics = Topics(**{role: self._topic(role) for role in TOPIC_NAMES})
        # Set by register_agents: the registry in force and the cores' table-backed state.
        self.registry_watcher = None
        self.responses_state = None
        self.moderation_state = None
        self.stream_time = lambda: None  # the engine's stream time (docs/responses.md, "Stream time")
        # Who may post corrections (docs/triage.md, "Corrections"); None: nobody.
        self.api_tokens = ApiTokens.load(settings.api_tokens_file) if settings.api_tokens_file is not None else None
        self._register_web()
        from otklik.agents.wiring.pipeline import register_agents  # the thin faust wiring of the pure cores

        register_agents(self)

    def _topic(self, role: str) -> faust.TopicT:
        return self.faust.topic(
            self.settings.topic(role),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=self.settings.partitions,
        )

    def _register_web(self) -> None:
        app = self.faust

        @app.page("/metrics")
        async def metrics(web, request):  # type: ignore[no-untyped-def]
            body = generate_latest(self.registry)
            return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        @app.page("/api/pages/{page}/open-items")
        async def open_items(web, request, page: str):  # type: ignore[no-untyped-def]
            """The page's open items, oldest first, with their platform links (the notifier's links); ages
            are measured at the worker's stream time, ``as_of``, and null until it is known
            (docs/responses.md, "Stream time")."""
            from otklik.schemas.links import platform_link

            if self.responses_state is None or not self.responses_state.ready:
                return web.json({"error": "the response engine is not running here"}, status=503)
            if not self.responses_state.holds(page):
                return await self._from_holder(web, request, page)
            now = self.stream_time()
            try:
                limit = int(request.query.get("limit", "20"))
            except ValueError:
                return web.json({"error": "limit: not an integer"}, status=400)
            if not 1 <= limit <= 1000:
                return web.json({"error": "limit: must be between 1 and 1000"}, status=400)
            config = self.registry_watcher.page_config(page)
            items = self.responses_state.core.open_items(page)
            return web.json(
                {
                    "page": page,
                    "title": config.title,
                    "deadline": config.deadline.text,
                    "as_of": now,
                    "open_items": len(items),
                    "items": [
                        {
                            "item": view.item,
                            "kind": view.kind,
                            "created_at": view.created_at,
                            "due_at": view.due_at,
                            "age_s": None if now is None else max(0, now - view.created_at),
                            "business_age_s": None
                            if now is None
                            else _business_age(config.clock, view.created_at, now),
                            "link": platform_link(view.item),
                        }
                        for view in items[:limit]
                    ],
                }
            )

        otk = self

        @app.page("/api/items/{item}/override")
        class OverrideView(faust.web.View):
            """POST {"needs_answer": true|false, "note": "...", "by"?: "..."} with ``Authorization: Bearer
            TOKEN``: a correction of triage, written to otklik.overrides (202 once the broker has it) with
            the token's name as ``by``. 401 without a known token, 403 when ``by`` names someone else,
            400 names what is wrong (docs/triage.md, "Corrections")."""

            async def post(self, request, item: str):  # type: ignore[no-untyped-def]
                from otklik.agents.ingest.bounds import received_at_problem
                from otklik.schemas.overrides import Override, OverrideError

                if otk.api_tokens is None:
                    return self._unauthorized(
                        "corrections through the API are off: give the worker OTKLIK_API_TOKENS, a file of "
                        "`TOKEN NAME` lines, and send `Authorization: Bearer TOKEN`"
                    )
                name = otk.api_tokens.name_of(request.headers.get("Authorization"))
                if name is None:
                    return self._unauthorized(
                        "send `Authorization: Bearer TOKEN` with a token listed in the worker's OTKLIK_API_TOKENS",
                        error="invalid_token" if request.headers.get("Authorization") else None,
                    )
                try:
                    body = await request.json()
                except ValueError:
                    return self.json({"error": "the body is not JSON"}, status=400)
                if not isinstance(body, dict):
                    return self.json({"error": "the body is not a JSON object"}, status=400)
                if body.get("by") not in (None, name):  # the free-text `by` of anyone else is refused
                    return self.json(
                        {"error": f"by: this token is {name!r}'s; leave `by` out or send {name!r}"}, status=403
                    )
                try:
                    correction = Override.parse({**body, "by": name, "item": item})
                except OverrideError as exc:
                    return self.json({"error": str(exc)}, status=400)
                problem = received_at_problem(correction.requested_at, time.time())
                if problem is not None:  # the worker would dead-letter it (docs/data-flow.md, "Bounded input")
                    return self.json({"error": f"requested_at: {problem}"}, status=400)
                fut = await otk.topics.overrides.send(key=correction.page.encode(), value=correction.to_json())
                await fut
                return self.json({"accepted": correction.model_dump()}, status=202)

            def _unauthorized(self, message: str, error: str | None = None):  # type: ignore[no-untyped-def]
                challenge = 'Bearer realm="otklik"' + (f', error="{error}"' if error else "")
                return self.json({"error": message}, status=401, headers={"WWW-Authenticate": challenge})

        @app.page("/health")
        async def health(web, request):  # type: ignore[no-untyped-def]
            ours = self.settings.topic("raw")
            assigned = [tp for tp in app.consumer.assignment() if tp.topic == ours] if app.consumer else []
            kafka = self.kafka_watch.ready
            return web.json(
                {
                    # 503 while the broker does not answer: records wait in the producer meanwhile.
                    "status": "ok" if kafka else "kafka unreachable",
                    "kafka": kafka,
                    "app": self.settings.app_id,
                    "uptime_s": round(time.time() - self.started_at, 1),
                    "assigned_partitions": len(assigned),  # of otklik.raw
                    "rebalancing": bool(app.rebalancing),
                    "processed": self.metrics.processed,  # records each agent has processed since start
                    "core": NATIVE_STATUS,  # compiled, pure, or stale: how the core's hot modules run
                    # installed (or why not) and records by path since start
                    "fast_delivery": app.fast_delivery_stats.as_dict(),
                },
                status=200 if kafka else 503,
            )

    async def _from_holder(self, web, request, page: str):  # type: ignore[no-untyped-def]
        """The answer of the worker that holds ``page`` (its partition), asked on the caller's behalf,
        so that any worker answers for every page (docs/data-flow.md, "Several workers"). The worker's
        address is what it told its group (faust's ``canonical_url``: ``OTKLIK_WEB_URL``). 503 while
        the page is moving between workers."""
        import aiohttp

        moving = web.json(
            {"error": "the page is moving between workers: try again shortly"}, status=503, headers={"Retry-After": "5"}
        )
        if request.headers.get(_FORWARDED):
            return moving  # asked by a worker that thinks this one holds it: not yet, or no longer
        try:
            holder = self.faust.router.key_store("pages", page.encode())
        except KeyError:
            return moving
        if (holder.host, holder.port) == (self.faust.conf.canonical_url.host, self.faust.conf.canonical_url.port):
            return moving
        url = request.url.with_scheme(holder.scheme).with_host(holder.host).with_port(holder.port)
        try:
            async with self.faust.http_client.get(
                url, headers={_FORWARDED: "1"}, timeout=aiohttp.ClientTimeout(total=10)
            ) as resp:
                body = await resp.read()
                return web.bytes(body, content_type=resp.content_type, status=resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("open items of %s: the worker at %s did not answer: %s", page, holder, exc)
            return moving


# Marks a request one worker makes of another for a page it does not hold: answered, never passed on.
_FORWARDED = "X-Otklik-Forwarded"


def _business_age(clock, created_at: int, now: int) -> int | None:  # type: ignore[no-untyped-def]
    """An open item's age in working time, or None when its time is beyond the clock's calendar (an
    item held from before input was bounded, docs/data-flow.md, "Bounded input"): one item's values
    must not fail its page's answer."""
    try:
        return clock.working_seconds(created_at, now)  # type: ignore[no-any-return]
    except (ValueError, OverflowError):
        return None


def create_app(settings: WorkerSettings | None = None) -> OtklikApp:
    return OtklikApp(settings or WorkerSettings.from_env())
