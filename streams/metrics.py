"""Prometheus metrics of the pipeline itself. No user id, item id or text in any label."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class PipelineMetrics:
    """Counters of records moving through the topics, on a registry of the app's own
    (tests make a fresh one per app, as prometheus/client_python's own tests do)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.raw_records = Counter(
            "otklik_raw_records_total",
            "Records read from otklik.raw, by platform (\"unknown\" when the envelope did not decode).",
            ["platform"],
            registry=registry,
        )
        self.interactions = Counter(
            "otklik_interactions_total",
            "Interaction records written to otklik.interactions, by platform and action.",
            ["platform", "action"],
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
        self._registry = registry

    def observe_response(self, record: Any) -> None:
        if record.outcome == "open":
            self.breached_open.inc()
        else:
            self.responses.labels(record.outcome, "true" if record.breached else "false").inc()

    def watch_engine(self, engine: Callable[[], Any]) -> None:
        """Export the backlog computed from the open items at scrape time, so ages never lag a timer."""
        self._registry.register(_BacklogCollector(engine))


class _BacklogCollector(Collector):
    """Per-page series only for pages holding open items: a region's cost follows its backlog."""

    def __init__(self, engine: Callable[[], Any]) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        open_items = GaugeMetricFamily(
            "otklik_page_open_items", "Items of the page waiting for its answer.", labels=["page"]
        )
        ratio = GaugeMetricFamily(
            "otklik_page_oldest_deadline_ratio",
            "Age of the page's oldest open item as a fraction of its deadline (working or calendar time "
            "as the page's deadline says); 1 means due now.",
            labels=["page"],
        )
        engine = self._engine()
        if engine is not None:
            for summary in engine.snapshot(int(time.time())):
                open_items.add_metric([summary.page], summary.open_count)
                if summary.oldest_fraction is not None:
                    ratio.add_metric([summary.page], summary.oldest_fraction)
        yield open_items
        yield ratio
