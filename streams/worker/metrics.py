"""Prometheus metrics of the worker. No user id, item id or text in any label.

What is exported, and why (README.md, "Metrics and alerts", lists every metric with its labels):

* Per page, only for pages that hold open items or had a closure recently: the backlog and the
  oldest open item's age as a fraction of its deadline, computed when Prometheus scrapes (an alert
  never waits for a timer). A region of 5,000 pages costs series in proportion to its backlog.
* Counters for the objective "95 % of items answered within their deadline", per region and
  municipality: items *due* (their verdict is known: closed in time, or still open at the deadline)
  and items *breached* (still unanswered at the deadline — counted then, not when a late reply comes).
* First-response latency in working seconds, three histograms (per municipality, per sector, per
  platform; never their cross product), with bucket bounds at the deadlines regulations use.
* Pipeline health: records per topic, dead letters, last event per connector, consumer lag.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from otklik.agents.ingest.envelope import NormalizeTally

__all__ = ["LATENCY_BUCKETS_S", "RECENT_ACTIVITY_S", "SLO_OUTCOMES", "PipelineMetrics"]

HOUR = 3600
# Bucket bounds in working seconds (for every page, whatever the kind of its deadline, so that one
# histogram compares like with like): 15 and 30 minutes, then the regulatory deadlines 1, 2, 4, 8
# (Bashkortostan), 9 (Crimea, Sevastopol) and 24 hours (Sakhalin), then 2 and 5 working days.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    900.0,
    1800.0,
    1 * HOUR,
    2 * HOUR,
    4 * HOUR,
    8 * HOUR,
    9 * HOUR,
    24 * HOUR,
    48 * HOUR,
    120 * HOUR,
)

# A page that closed an item within this time keeps its page-level series (open items = 0) so that
# dashboards and alerts see the backlog go to zero instead of a series vanishing mid-incident.
RECENT_ACTIVITY_S = 3600

# Outcomes judged against the deadline when they close in time (docs/responses.md, "Outcomes").
# A withdrawn item is judged only when its deadline had passed, and that was counted at the deadline.
SLO_OUTCOMES = frozenset({"answered", "moderated"})

_UNKNOWN = "unknown"


def _page_labels(page_id: str, config: Any) -> tuple[str, str, str, str, str]:
    """(page, platform, region, municipality, timezone): the labels of a page-level series."""
    platform = page_id.split(":", 1)[0]
    if config is None:
        return page_id, platform, _UNKNOWN, _UNKNOWN, "Europe/Moscow"
    return (
        page_id,
        platform,
        getattr(config, "region", _UNKNOWN) or _UNKNOWN,
        getattr(config, "municipality", _UNKNOWN) or _UNKNOWN,
        getattr(config, "timezone", "Europe/Moscow") or "Europe/Moscow",
    )


class PipelineMetrics:
    """The worker's metrics, on a registry of the app's own (tests make a fresh one per app, as
    prometheus/client_python's own tests do).

    The pipeline calls :meth:`observe_response` for every record written to otklik.responses and
    :meth:`watch_engine` once; :meth:`watch_consumer` adds consumer lag when given the faust consumer.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        recent_activity_s: int = RECENT_ACTIVITY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self.recent_activity_s = recent_activity_s
        self.moderation_records = Counter(
            "otklik_moderation_records_total",
            "Records written to otklik.moderation, by kind (labelled, removed, overdue, deflection) and "
            "whose text it was (citizen, page).",
            ["kind", "role"],
            registry=self._registry,
        )
        self.moderation_labels = Counter(
            "otklik_moderation_labels_total",
            "Offensive texts by label (obscene, insult, threat, spam, flood) and event (labelled, removed, overdue).",
            ["label", "event"],
            registry=self._registry,
        )
        self.moderation_visible = Histogram(
            "otklik_moderation_visible_working_hours",
            "How long offensive texts stayed visible before removal, in working hours of the page, by who removed them.",
            ["removed_by"],
            buckets=(0.25, 0.5, 1, 2, 4, 8, 24),
            registry=self._registry,
        )
        self.raw_records = Counter(
            "otklik_raw_records_total",
            'Records read from otklik.raw, by platform ("unknown" when the envelope did not decode).',
            ["platform"],
            registry=registry,
        )
        self.interactions = Counter(
            "otklik_interactions_total",
            "Interaction records written to otklik.interactions, by platform and action.",
            ["platform", "action"],
            registry=registry,
        )
        self.processed: dict[str, int] = {}  # the same counts, plain, for /health (cheap to poll)
        self.agent_records = Counter(
            "otklik_agent_records_total",
            "Records an agent has taken from its input topic and processed, by agent (its throughput).",
            ["agent"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "otklik_dead_letters_total",
            "Records sent to otklik.dead-letters, by the stage that rejected them.",
            ["stage"],
            registry=registry,
        )
        self.last_event = Gauge(
            "otklik_last_event_timestamp_seconds",
            "Unix time at which the last record from each platform was received at the edge.",
            ["platform"],
            registry=registry,
        )
        self.connector_last_event = Gauge(
            "otklik_connector_last_event_timestamp_seconds",
            "Unix time at which the last record from each connector (platform and source) was received.",
            ["platform", "source"],
            registry=registry,
        )
        self.responses = Counter(
            "otklik_items_closed_total",
            "Items that reached a final outcome (answered, moderated, withdrawn, expired, no_answer_needed), "
            "by outcome and whether their deadline was breached.",
            ["outcome", "breached"],
            registry=registry,
        )
        self.breached_open = Counter(
            "otklik_items_breached_open_total",
            "Items still unanswered when their deadline passed (counted at the deadline, not at the late reply).",
            registry=registry,
        )
        self.items_due = Counter(
            "otklik_items_due_total",
            "Items judged against their deadline, counted once: when answered or moderated in time, or when "
            "the deadline passed with the item still open. The objective's denominator.",
            ["region", "municipality"],
            registry=registry,
        )
        self.items_breached = Counter(
            "otklik_items_breached_total",
            "Items still unanswered when their deadline passed, counted at the deadline. The objective's "
            "bad events (a subset of otklik_items_due_total).",
            ["region", "municipality"],
            registry=registry,
        )
        self.latency_by_municipality = Histogram(
            "otklik_municipality_response_working_seconds",
            "First-response time of answered items in working seconds by each page's schedule and calendar, "
            "per municipality.",
            ["region", "municipality"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.latency_by_sector = Histogram(
            "otklik_sector_response_working_seconds",
            "First-response time of answered items in working seconds, per sector.",
            ["sector"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.latency_by_platform = Histogram(
            "otklik_platform_response_working_seconds",
            "First-response time of answered items in working seconds, per platform.",
            ["platform"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        # page id -> (time of its last closure or breach, its config): pages with recent activity.
        self._recent: dict[str, tuple[float, Any]] = {}

    # ---- called by the pipeline ---------------------------------------------------------------------

    def count_processed(self, agent: str, records: int) -> None:
        """An agent finished a batch of ``records`` from its input topic (the counter, and /health's copy)."""
        self.agent_records.labels(agent).inc(records)
        self.processed[agent] = self.processed.get(agent, 0) + records

    def observe_normalized(self, tally: NormalizeTally, records: int) -> None:
        """A batch of ``records`` from otklik.raw went through normalization, as ``tally`` counted it."""
        for platform, n in tally.raw.items():
            self.raw_records.labels(platform).inc(n)
        for (platform, source), received_at in tally.last_seen.items():
            self.observe_envelope(platform, source, received_at)
        for (platform, action), n in tally.interactions.items():
            self.interactions.labels(platform, action).inc(n)
        self.count_processed("normalize", records)

    def observe_envelope(self, platform: str, source: str, received_at: float) -> None:
        """A raw record came in from a connector (the pipeline may call this instead of ``last_event``)."""
        self.last_event.labels(platform).set(received_at)
        self.connector_last_event.labels(platform, source).set(received_at)

    def prime_areas(self, pages: Any) -> None:
        """Create the SLO counters of every page's area at 0 (``pages``: the registry's PageConfigs).
        ``increase()`` counts from a series' first sample: a counter that first appears at 1 loses
        that 1, once per worker, so several workers would each lose one (docs/data-flow.md,
        "Several workers")."""
        for page in pages:
            region = getattr(page, "region", None) or _UNKNOWN
            municipality = getattr(page, "municipality", None) or _UNKNOWN
            self.items_breached.labels(region, municipality)
            self.items_due.labels(region, municipality)

    def observe_response(self, record: Any, page: Any = None) -> None:
        """One record written to otklik.responses; ``page`` is the page's registry entry (PageConfig).

        An ``open`` record (always breached) is an item still unanswered at its deadline: it is due and
        breached now. A later final record of a breached item was counted then, so it adds no due item.
        """
        region = getattr(page, "region", None) or _UNKNOWN
        municipality = getattr(page, "municipality", None) or _UNKNOWN
        # Both counters of a municipality exist from its first record on (at 0 if need be), so the
        # breach ratio is 0, not "no data", for a municipality that has never breached.
        self.items_breached.labels(region, municipality)
        self.items_due.labels(region, municipality)
        if record.outcome == "open":
            self.breached_open.inc()
            self.items_due.labels(region, municipality).inc()
            self.items_breached.labels(region, municipality).inc()
        else:
            self.responses.labels(record.outcome, "true" if record.breached else "false").inc()
            if record.outcome in SLO_OUTCOMES and not record.breached:
                self.items_due.labels(region, municipality).inc()
            if record.outcome == "answered" and record.business_latency_s is not None:
                working = float(record.business_latency_s)
                self.latency_by_municipality.labels(region, municipality).observe(working)
                self.latency_by_sector.labels(getattr(page, "sector", None) or _UNKNOWN).observe(working)
                self.latency_by_platform.labels(record.page.split(":", 1)[0]).observe(working)
        self._recent[record.page] = (self._clock(), page)

    def watch_engine(self, engine: Callable[[], Any], stream_time: Callable[[], int | None] | None = None) -> None:
        """Export the backlog computed from the open items at scrape time, so ages never lag a timer.

        ``stream_time`` returns the worker's stream time (None while unknown): ages are measured at it,
        not at the wall clock, so that a backlog not read yet makes no item look overdue (docs/responses.md,
        "Stream time"). Without it (tests of the metrics alone), the metrics' clock."""
        self._registry.register(_BacklogCollector(engine, self, stream_time))

    def watch_consumer(self, consumer: Callable[[], Any]) -> None:
        """Export the consumer lag of the worker's assigned partitions (``consumer`` returns faust's
        ``app.consumer``, or None before it exists)."""
        self._registry.register(_LagCollector(consumer))

    def watch_unknown_page_events(self, count: Callable[[], int]) -> None:
        """Export the response engine's count of events about pages it does not watch, read at scrape time."""
        self._registry.register(
            _ScrapedCounter(
                "otklik_unknown_page_events",
                "Interactions the response engine ignored because the registry gives their page no rules. "
                "Counted since the engine was last rebuilt from its table (at start and after a rebalance).",
                lambda: [((), count())],
            )
        )

    def watch_fast_delivery(self, stats: Callable[[], Any]) -> None:
        """Export the consumer's fast hand-over (streams/worker/fast_delivery.py): records by path, and
        whether it is installed. ``stats`` returns a :class:`~otklik.streams.worker.fast_delivery.FastDeliveryStats`."""
        self._registry.register(_FastDeliveryCollector(stats))

    def watch_kafka(self, ready: Callable[[], bool]) -> None:
        """``otklik_worker_kafka_ready``: ``ready()`` (streams/worker/kafka_watch.py) read at scrape time."""
        gauge = Gauge(
            "otklik_worker_kafka_ready",
            "1 while the broker answered the worker's last probe (every second); 0 during an outage.",
            registry=self._registry,
        )
        gauge.set_function(lambda: 1.0 if ready() else 0.0)

    # ---- moderation (agents/moderation_watch.py) ---------------------------------------------------

    def observe_moderation(self, record: Any) -> None:
        """Count labelled texts, removals (with how long they stayed visible) and overdue ones."""
        self.moderation_records.labels(record.kind, record.role).inc()
        if record.kind in ("labelled", "removed", "overdue"):
            for label in record.labels:
                self.moderation_labels.labels(label, record.kind).inc()
        if record.kind == "removed" and record.business_visible_s is not None:
            self.moderation_visible.labels(record.deleted_by or "other").observe(record.business_visible_s / 3600)

    def watch_moderation(self, watch: Callable[[], Any], stream_time: Callable[[], int | None] | None = None) -> None:
        """Pages with offensive texts visible now, computed at scrape time. ``stream_time`` returns the
        moderation agent's stream time (None while unknown): ages are measured at it, as the backlog's
        are, so that a deletion not read yet makes no text look overdue
        (docs/moderation.md, "What the watch measures"). Without it, the metrics' clock."""
        self._registry.register(_VisibleOffensiveCollector(watch, self._clock, stream_time))

    # ---- reading ---------------------------------------------------------------------------------

    def recent_pages(self, now: float) -> dict[str, Any]:
        """Pages with a closure or breach within ``recent_activity_s``; forgets older ones."""
        horizon = now - self.recent_activity_s
        stale = [page for page, (at, _) in self._recent.items() if at < horizon]
        for page in stale:
            del self._recent[page]
        return {page: config for page, (_, config) in self._recent.items()}


def _engine_config(engine: Any, page: str) -> Any:
    state = getattr(engine, "pages", {}).get(page)
    return getattr(state, "config", None)


class _BacklogCollector(Collector):
    """Per-page series only for pages holding open items or with recent activity."""

    def __init__(
        self, engine: Callable[[], Any], metrics: PipelineMetrics, stream_time: Callable[[], int | None] | None = None
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._stream_time = stream_time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["page", "platform", "region", "municipality", "timezone"]
        open_items = GaugeMetricFamily(
            "otklik_page_open_items",
            "Items of the page waiting for its answer (exported for pages with open items or a closure "
            "within the last hour).",
            labels=labels,
        )
        ratio = GaugeMetricFamily(
            "otklik_page_oldest_deadline_ratio",
            "Age of the page's oldest open item as a fraction of its deadline (working or calendar time "
            "as the page's deadline says), measured at the worker's stream time; 1 means due now. Exported "
            "only while the page has open items and the stream time is known.",
            labels=labels,
        )
        stream = GaugeMetricFamily(
            "otklik_stream_time_seconds",
            "The worker's stream time (unix seconds): how far it has read its input, by the records' own "
            "times; the wall clock when its input is caught up. Deadlines and ages are judged at it.",
        )
        total_open = GaugeMetricFamily("otklik_open_items", "Open items held by this worker, all pages.")
        pages_open = GaugeMetricFamily("otklik_pages_with_open_items", "Pages of this worker holding open items.")
        now = self._metrics._clock()
        at: float | None = now
        if self._stream_time is not None:
            at = self._stream_time()
            if at is not None:
                stream.add_metric([], at)
        engine = self._engine()
        seen: set[str] = set()
        count = 0
        if engine is not None:
            # Unknown stream time (a worker just started): counts only, no ages.
            for summary in engine.snapshot(int(now if at is None else at)):
                values = _page_labels(summary.page, _engine_config(engine, summary.page))
                open_items.add_metric(values, summary.open_count)
                count += summary.open_count
                seen.add(summary.page)
                if summary.oldest_fraction is not None and at is not None:
                    ratio.add_metric(values, summary.oldest_fraction)
        for page, config in sorted(self._metrics.recent_pages(now).items()):
            if page not in seen:
                open_items.add_metric(_page_labels(page, config), 0)
        total_open.add_metric([], count)
        pages_open.add_metric([], len(seen))
        yield open_items
        yield ratio
        yield total_open
        yield pages_open
        if self._stream_time is not None:
            yield stream


def consumer_lag(consumer: Any) -> Iterable[tuple[str, int, int]]:
    """(topic, partition, records not yet read) for each assigned partition whose high-water mark is known.

    faust keeps the offset of the last record it read per partition; the broker's high-water mark is
    the offset the next record will get, so ``highwater - (read + 1)`` records wait.
    """
    read_offsets = getattr(consumer, "_read_offset", {})
    for tp in sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition)):
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # not fetched yet: unknown is not zero
            continue
        if highwater is None:
            continue
        read = read_offsets.get(tp)
        lag = highwater if read is None else highwater - (read + 1)
        yield tp.topic, tp.partition, max(0, int(lag))


class _LagCollector(Collector):
    def __init__(self, consumer: Callable[[], Any]) -> None:
        self._consumer = consumer

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "otklik_consumer_lag_records",
            "Records in each assigned partition not yet read by this worker (high-water mark minus position).",
            labels=["topic", "partition"],
        )
        consumer = self._consumer()
        if consumer is not None:
            try:
                for topic, partition, records in consumer_lag(consumer):
                    lag.add_metric([topic, str(partition)], records)
            except Exception:  # a scrape must not fail because the consumer is rebalancing
                pass
        yield lag


class _VisibleOffensiveCollector(Collector):
    """Per-page series only for pages with offensive content visible now."""

    def __init__(
        self, watch: Callable[[], Any], clock: Callable[[], float], stream_time: Callable[[], int | None] | None = None
    ) -> None:
        self._watch = watch
        self._clock = clock
        self._stream_time = stream_time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        visible = GaugeMetricFamily(
            "otklik_page_offensive_visible", "Offensive texts visible on the page now.", labels=["page"]
        )
        ratio = GaugeMetricFamily(
            "otklik_page_offensive_oldest_deadline_ratio",
            "Time the page's oldest visible offensive text has been visible, as a fraction of the page's "
            "moderation deadline, measured at the moderation agent's stream time; 1 means it should have "
            "been removed by now. Exported only while the stream time is known.",
            labels=["page"],
        )
        watch = self._watch()
        if watch is not None:
            at = self._clock() if self._stream_time is None else self._stream_time()
            # Counts do not depend on the time; ages wait for the stream time (None: not known yet).
            for page, (count, fraction) in sorted(
                watch.visible_by_page(int(self._clock() if at is None else at)).items()
            ):
                visible.add_metric([page], count)
                if at is not None:
                    ratio.add_metric([page], fraction)
        yield visible
        yield ratio


class _ScrapedCounter(Collector):
    """A counter kept as a plain int by the code that counts (no Prometheus in the pure cores), read
    when Prometheus scrapes. ``values`` returns (label values, count) pairs."""

    def __init__(
        self,
        name: str,
        documentation: str,
        values: Callable[[], Iterable[tuple[tuple[str, ...], int]]],
        labels: tuple[str, ...] = (),
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._values = values
        self._labels = labels

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        for labels, count in self._values():
            family.add_metric(list(labels), count)
        yield family


class _FastDeliveryCollector(Collector):
    def __init__(self, stats: Callable[[], Any]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._stats()
        records = CounterMetricFamily(
            "otklik_fast_delivery_records",
            "Records faust's consumer handed to the agents' streams, by path: fast (delivered in the "
            "consumer's own step) or fallback (through faust's own wait_first: the stream's buffer was full, "
            "flow was suspended, or the call was not a delivery).",
            labels=["path"],
        )
        records.add_metric(["fast"], stats.fast)
        records.add_metric(["fallback"], stats.fallback)
        installed = GaugeMetricFamily(
            "otklik_fast_delivery_installed",
            "1 when the consumer's fast hand-over is installed; 0 when it is switched off (OTKLIK_FAST_DELIVERY) "
            "or could not be installed on this faust version (the worker's log and /health say why).",
        )
        installed.add_metric([], 1 if stats.installed else 0)
        yield records
        yield installed
