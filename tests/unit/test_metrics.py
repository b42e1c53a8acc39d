"""The worker's metrics: the engine and metrics directly, on a fresh CollectorRegistry each time."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from otklik.agents.registry import Registry
from otklik.agents.responses.engine import ResponseEngine
from otklik.schemas.records import Interaction, ResponseRecord
from otklik.streams.worker.metrics import LATENCY_BUCKETS_S, PipelineMetrics, consumer_lag

H = 3600
NOW = int(time.time())
TWENTY_FOUR_SEVEN = {"schedule": {"mon-sun": "00:00-24:00"}, "calendar": "none"}
SECTORS = ("education", "culture", "health", "sport", "social", "administration", "unknown")


def registry(pages: list[dict[str, Any]], **defaults: Any) -> Registry:
    return Registry.from_mapping({"defaults": {**TWENTY_FOUR_SEVEN, **defaults}, "pages": pages})


def comment(page: str, n: int, created: int, author: int = 9001) -> Interaction:
    group = page.split(":")[1]
    return Interaction(
        platform="vk",
        page=page,
        action="new",
        object_kind="wall",
        object_id=f"{page}:wall:1",
        item=f"{page}:wall:1:{n}",
        seq=n,
        received_at=created,
        event_id=f"e{n}",
        created_at=created,
        author=f"vk:user:{author}",
        thread_root=f"vk:{group}:wall:1:{n}",
    )


def record(page: str, outcome: str, *, breached: bool = False, business: int | None = 60) -> ResponseRecord:
    closed = None if outcome == "open" else NOW
    return ResponseRecord(
        item=f"{page}:wall:1:1",
        page=page,
        kind="comment",
        author="vk:user:9001",
        created_at=NOW - 100,
        outcome=outcome,
        closed_at=closed,
        latency_s=None if closed is None else 100,  # type: ignore[arg-type]
        business_latency_s=None if outcome == "open" else business,
        deadline="8h working",
        breached=breached,
    )


class TP(NamedTuple):  # the shape of faust's TP
    topic: str
    partition: int


def samples(reg: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in reg.collect():
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def series(reg: CollectorRegistry) -> list[str]:
    return [ln for ln in generate_latest(reg).decode().splitlines() if ln and not ln.startswith("#")]


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


# ---- the objective's counters --------------------------------------------------------------------


def test_open_record_counts_due_and_breached_at_the_deadline_and_the_late_reply_adds_nothing() -> None:
    reg = CollectorRegistry()
    m = PipelineMetrics(reg)
    page = registry([{"id": "vk:1", "municipality": "Бердск", "region": "Новосибирская область"}]).page("vk:1")
    labels = {"region": "Новосибирская область", "municipality": "Бердск"}
    m.observe_response(record("vk:1", "open", breached=True), page)
    assert value(reg, "otklik_items_due_total", **labels) == 1
    assert value(reg, "otklik_items_breached_total", **labels) == 1
    assert value(reg, "otklik_items_breached_open_total") == 1
    # The late answer finally comes: it is an outcome, but the item was judged at its deadline.
    m.observe_response(record("vk:1", "answered", breached=True, business=5 * H), page)
    assert value(reg, "otklik_items_due_total", **labels) == 1
    assert value(reg, "otklik_items_breached_total", **labels) == 1
    assert value(reg, "otklik_items_closed_total", outcome="answered", breached="true") == 1


@pytest.mark.parametrize(
    ("outcome", "breached", "due"),
    [
        ("answered", False, 1),
        ("moderated", False, 1),  # removing is a handling judged against the deadline
        ("withdrawn", False, 0),  # deleted by its author in time: not judged
        ("no_answer_needed", False, 0),
        ("expired", True, 0),  # counted when it was reported open at its deadline
        ("withdrawn", True, 0),  # likewise
    ],
)
def test_closures_count_as_due_only_when_judged_in_time(outcome: str, breached: bool, due: int) -> None:
    reg = CollectorRegistry()
    m = PipelineMetrics(reg)
    m.observe_response(record("vk:1", outcome, breached=breached), None)
    assert value(reg, "otklik_items_due_total", region="unknown", municipality="unknown") == due
    # The breach counter exists at 0 from the municipality's first record: its ratio is 0, not "no data".
    assert value(reg, "otklik_items_breached_total", region="unknown", municipality="unknown") == 0
    assert value(reg, "otklik_items_closed_total", outcome=outcome, breached=str(breached).lower()) == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["answered", "moderated", "withdrawn", "expired", "no_answer_needed"]), st.booleans()
        ),
        max_size=30,
    )
)
def test_breached_never_exceeds_due_and_each_item_is_due_at_most_once(fates: list[tuple[str, bool]]) -> None:
    """Each item: possibly an open-at-deadline record, then its final record (breached iff reported)."""
    reg = CollectorRegistry()
    m = PipelineMetrics(reg)
    judged = 0
    for outcome, late in fates:
        breached = late or outcome == "expired"
        if breached:
            m.observe_response(record("vk:1", "open", breached=True), None)
        m.observe_response(record("vk:1", outcome, breached=breached), None)
        judged += 1 if breached or outcome in ("answered", "moderated") else 0
    due = value(reg, "otklik_items_due_total", region="unknown", municipality="unknown") or 0
    bad = value(reg, "otklik_items_breached_total", region="unknown", municipality="unknown") or 0
    assert due == judged
    assert bad == sum(1 for outcome, late in fates if late or outcome == "expired")
    assert bad <= due


# ---- latency histograms ----------------------------------------------------------------------------


def test_latency_is_observed_in_working_seconds_for_answered_items_only_in_three_histograms() -> None:
    reg = CollectorRegistry()
    m = PipelineMetrics(reg)
    page = registry([{"id": "vk:1", "municipality": "Искитим", "region": "НСО", "sector": "health"}]).page("vk:1")
    m.observe_response(record("vk:1", "answered", business=2 * H + 1), page)
    m.observe_response(record("vk:1", "moderated", business=60), page)  # not a response
    m.observe_response(record("vk:1", "answered", breached=True, business=30 * H), page)
    by_muni = {"region": "НСО", "municipality": "Искитим"}
    assert value(reg, "otklik_municipality_response_working_seconds_count", **by_muni) == 2
    assert value(reg, "otklik_municipality_response_working_seconds_sum", **by_muni) == 32 * H + 1
    # 2 h + 1 s is above the 2 h bound and within 4 h; 30 h is within 48 h.
    assert value(reg, "otklik_municipality_response_working_seconds_bucket", **by_muni, le="7200.0") == 0
    assert value(reg, "otklik_municipality_response_working_seconds_bucket", **by_muni, le="14400.0") == 1
    assert value(reg, "otklik_municipality_response_working_seconds_bucket", **by_muni, le="172800.0") == 2
    assert value(reg, "otklik_sector_response_working_seconds_count", sector="health") == 2
    assert value(reg, "otklik_platform_response_working_seconds_count", platform="vk") == 2
    # Three histograms, not their cross product: no series carries both sector and municipality.
    for name, labels in samples(reg):
        keys = {k for k, _ in labels}
        assert not ({"sector", "municipality"} <= keys or {"sector", "platform"} <= keys), name


def test_buckets_sit_at_the_regulatory_deadlines() -> None:
    for hours in (1, 2, 4, 8, 9, 24):
        assert hours * H in LATENCY_BUCKETS_S
    assert list(LATENCY_BUCKETS_S) == sorted(LATENCY_BUCKETS_S)


# ---- the backlog at scrape time -----------------------------------------------------------------------


def test_backlog_is_computed_at_scrape_time_and_only_for_pages_with_open_items() -> None:
    reg_pages = registry(
        [{"id": "vk:1", "deadline": "1h working", "municipality": "Бердск"}, {"id": "vk:2"}, {"id": "vk:3"}]
    )
    engine = ResponseEngine(reg_pages.page, late_window_s=0)
    engine.process(comment("vk:1", 1, NOW - 1800))
    engine.process(comment("vk:1", 2, NOW - 60))
    reg = CollectorRegistry()
    m = PipelineMetrics(reg, clock=lambda: NOW)  # the scrape happens at NOW, however slow the run
    m.watch_engine(lambda: engine)
    page1 = {
        "page": "vk:1",
        "platform": "vk",
        "region": "unknown",
        "municipality": "Бердск",
        "timezone": "Europe/Moscow",
    }
    assert value(reg, "otklik_page_open_items", **page1) == 2
    first = value(reg, "otklik_page_oldest_deadline_ratio", **page1)
    assert first == pytest.approx(0.5, abs=0.01)
    assert value(reg, "otklik_open_items") == 2
    assert value(reg, "otklik_pages_with_open_items") == 1
    # Pages without open items or activity export nothing page-level.
    text = generate_latest(reg).decode()
    assert 'page="vk:2"' not in text and 'page="vk:3"' not in text
    # No item id, user id or text in any label.
    assert "wall:1:" not in text and "user" not in text


def test_ratio_grows_between_scrapes_without_any_event() -> None:
    engine = ResponseEngine(registry([{"id": "vk:1", "deadline": "2h calendar"}]).page, late_window_s=0)
    engine.process(comment("vk:1", 1, NOW - H))
    reg = CollectorRegistry()
    PipelineMetrics(reg).watch_engine(lambda: engine)
    labels = {
        "page": "vk:1",
        "platform": "vk",
        "region": "unknown",
        "municipality": "unknown",
        "timezone": "Europe/Moscow",
    }
    before = value(reg, "otklik_page_oldest_deadline_ratio", **labels)
    time.sleep(1.1)
    after = value(reg, "otklik_page_oldest_deadline_ratio", **labels)
    assert before is not None and after is not None and after > before


def test_recently_active_page_keeps_a_zero_backlog_series_for_an_hour_then_none() -> None:
    clock = [float(NOW)]
    reg = CollectorRegistry()
    m = PipelineMetrics(reg, clock=lambda: clock[0])
    engine = ResponseEngine(registry([{"id": "vk:5"}]).page, late_window_s=0)
    m.watch_engine(lambda: engine)
    m.observe_response(record("vk:5", "answered"), engine._page_config("vk:5"))
    labels = {
        "page": "vk:5",
        "platform": "vk",
        "region": "unknown",
        "municipality": "unknown",
        "timezone": "Europe/Moscow",
    }
    assert value(reg, "otklik_page_open_items", **labels) == 0
    assert value(reg, "otklik_page_oldest_deadline_ratio", **labels) is None
    clock[0] += 3599
    assert value(reg, "otklik_page_open_items", **labels) == 0
    clock[0] += 2  # the closure is now more than an hour old
    assert value(reg, "otklik_page_open_items", **labels) is None


# ---- consumer lag ------------------------------------------------------------------------------------


def test_consumer_lag_is_highwater_minus_position() -> None:
    a, b, c = (TP("otklik.raw", p) for p in range(3))
    consumer = SimpleNamespace(
        assignment=lambda: {a, b, c},
        highwater=lambda tp: {0: 100, 1: 7, 2: None}[tp.partition],
        _read_offset={a: 49, b: None},
    )
    assert list(consumer_lag(consumer)) == [("otklik.raw", 0, 50), ("otklik.raw", 1, 7)]
    reg = CollectorRegistry()
    PipelineMetrics(reg).watch_consumer(lambda: consumer)
    assert value(reg, "otklik_consumer_lag_records", topic="otklik.raw", partition="0") == 50
    assert value(reg, "otklik_consumer_lag_records", topic="otklik.raw", partition="2") is None


def test_lag_collector_survives_a_missing_consumer() -> None:
    reg = CollectorRegistry()
    PipelineMetrics(reg).watch_consumer(lambda: None)
    assert not [s for s in series(reg) if s.startswith("otklik_consumer_lag_records{")]


# ---- the series budget -----------------------------------------------------------------------------


def test_series_for_5000_pages_with_200_holding_open_items_stay_within_3000() -> None:
    """A region of 5,000 pages in 45 municipalities and every sector, 200 pages with open items, 500
    with a closure in the last hour, every histogram label value observed: the worker's series."""
    municipalities = [f"Муниципалитет {i}" for i in range(45)]
    pages = [
        {
            "id": f"vk:{100000 + i}",
            "municipality": municipalities[i % 45],
            "sector": SECTORS[i % 7],
            "region": "Новосибирская область",
            "deadline": "8h working",
        }
        for i in range(5000)
    ]
    reg_pages = registry(pages)
    engine = ResponseEngine(reg_pages.page, late_window_s=0)
    for i in range(200):
        page = f"vk:{100000 + i * 25}"
        for n in range(3):
            engine.process(comment(page, i * 10 + n, NOW - 7200 + n))
    reg = CollectorRegistry()
    m = PipelineMetrics(reg)
    m.watch_engine(lambda: engine)
    for i in range(500):
        page = f"vk:{100000 + i * 10 + 1}"
        m.observe_response(record(page, "answered"), reg_pages.page(page))
        m.observe_response(record(page, "open", breached=True), reg_pages.page(page))
    for i in range(45):  # every municipality's histogram holds observations
        m.observe_response(record(f"vk:{100000 + i}", "answered"), reg_pages.page(f"vk:{100000 + i}"))
    for outcome in ("answered", "moderated", "withdrawn", "expired", "no_answer_needed"):
        for breached in (False, True):
            m.observe_response(record("vk:100001", outcome, breached=breached), reg_pages.page("vk:100001"))
    for platform, source in (
        ("vk", "vk-callback"),
        ("vk", "vk-longpoll"),
        ("tg", "tg-webhook"),
        ("max", "max-webhook"),
    ):
        m.observe_envelope(platform, source, NOW)
        m.raw_records.labels(platform).inc()
        m.interactions.labels(platform, "new").inc()
    lines = series(reg)
    page_series = [ln for ln in lines if ln.startswith("otklik_page_")]
    active = {f"vk:{100000 + i * 25}" for i in range(200)} | {f"vk:{100000 + i * 10 + 1}" for i in range(500)}
    active |= {f"vk:{100000 + i}" for i in range(45)}
    assert {re.search(r'page="([^"]+)"', ln)[1] for ln in page_series} == active  # type: ignore[index]
    assert len([ln for ln in lines if ln.startswith("otklik_municipality_response_working_seconds_count")]) == 45
    print(f"\nseries exported for 5,000 pages, 200 with open items: {len(lines)}")
    assert len(lines) <= 3000
    assert value(reg, "otklik_pages_with_open_items") == 200


def test_a_normalize_batch_tally_lands_in_the_counters_and_gauges():
    from otklik.agents.ingest.envelope import NormalizeTally
    from otklik.streams.worker.metrics import PipelineMetrics

    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    tally = NormalizeTally()
    tally.raw.update({"vk": 3, "unknown": 1})
    tally.interactions.update({("vk", "new"): 2, ("vk", "delete"): 1})
    tally.last_seen["vk", "vk-callback"] = 1764230400.0
    metrics.observe_normalized(tally, 4)
    metrics.observe_normalized(NormalizeTally(raw={"vk": 2}), 2)  # type: ignore[arg-type]
    value = registry.get_sample_value
    assert value("otklik_raw_records_total", {"platform": "vk"}) == 5
    assert value("otklik_raw_records_total", {"platform": "unknown"}) == 1
    assert value("otklik_interactions_total", {"platform": "vk", "action": "new"}) == 2
    assert value("otklik_interactions_total", {"platform": "vk", "action": "delete"}) == 1
    assert (
        value("otklik_connector_last_event_timestamp_seconds", {"platform": "vk", "source": "vk-callback"})
        == 1764230400.0
    )
    assert value("otklik_agent_records_total", {"agent": "normalize"}) == 6
    assert metrics.processed == {"normalize": 6}


# ---- counters the cores keep as plain ints, read at scrape time -----------------------------------------


def _help(reg: CollectorRegistry, name: str) -> str:
    found = re.search(rf"^# HELP {name} (.+)$", generate_latest(reg).decode(), re.M)
    assert found, name
    return found.group(1)


def test_unknown_page_events_are_the_engines_own_count_read_when_scraped() -> None:
    watched = registry([{"id": "vk:1"}])
    engine = ResponseEngine(lambda page: watched.get(page))  # None: a page the registry does not list
    current = {"engine": engine}
    reg = CollectorRegistry()
    PipelineMetrics(reg).watch_unknown_page_events(lambda: current["engine"].unknown_page_events)
    assert value(reg, "otklik_unknown_page_events_total") == 0
    engine.process(comment("vk:1", 1, NOW - 60))
    engine.process(comment("vk:2", 2, NOW - 50))
    engine.process(comment("vk:3", 3, NOW - 40))
    assert value(reg, "otklik_unknown_page_events_total") == 2
    current["engine"] = ResponseEngine(watched.get)  # rebuilt after a rebalance: the count starts again
    assert value(reg, "otklik_unknown_page_events_total") == 0
    assert "registry gives their page no rules" in _help(reg, "otklik_unknown_page_events_total")


def test_fast_delivery_records_by_path_and_whether_it_is_installed() -> None:
    from otklik.streams.worker.fast_delivery import FastDeliveryStats

    stats = FastDeliveryStats()
    reg = CollectorRegistry()
    PipelineMetrics(reg).watch_fast_delivery(lambda: stats)
    assert value(reg, "otklik_fast_delivery_installed") == 0
    stats.installed, stats.fast, stats.fallback = True, 7, 2
    assert value(reg, "otklik_fast_delivery_records_total", path="fast") == 7
    assert value(reg, "otklik_fast_delivery_records_total", path="fallback") == 2
    assert value(reg, "otklik_fast_delivery_installed") == 1
    assert "by path" in _help(reg, "otklik_fast_delivery_records_total")
