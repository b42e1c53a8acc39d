"""Prometheus metrics of the pipeline itself. No user id, item id or text in any label."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


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
