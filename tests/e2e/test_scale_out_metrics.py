"""Two workers' /metrics add up to one worker's in the recording rules and the dashboards' figures
(issue 19, finding 9; docs/data-flow.md, "Several workers").

The same stream goes to two deployments on the real Kafka: one worker alone, and two workers in one
consumer group. Each deployment has its own Debian Prometheus with the shipped rules, scraping its
workers every second. The per-area figures recorded by the rules (items due, breached, the breach
ratio) and the dashboards' backlog figures must be the same in both.
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from otklik.schemas.records import RawEnvelope
from tests.conftest import WorkerProcess, free_port, produce, run
from tests.e2e.conftest import PROM_DIR, _binary

pytestmark = pytest.mark.e2e

REGION = "Томская область"
AREAS = {"Северск": range(310001, 310005), "Стрежевой": range(310011, 310015)}
LATE = {310002, 310003, 310012}  # pages with a one-minute deadline and an unanswered comment
REGISTRY = "\n".join(
    [
        "defaults:",
        "  timezone: Asia/Tomsk",
        "  calendar: none",
        '  schedule: {mon-sun: "00:00-24:00"}',
        f"  region: {REGION}",
        "  deadline: 8h working",
        "pages:",
        *[
            f"  - id: vk:{g}\n    municipality: {area}" + ("\n    deadline: 1m working" if g in LATE else "")
            for area, groups in AREAS.items()
            for g in groups
        ],
    ]
)
# Figures per area (region, municipality) from the rules, and the dashboards' backlog figures.
RECORDED = [
    "region_municipality:otklik_items_due:increase5m",
    "region_municipality:otklik_items_breached:increase5m",
    "region_municipality:otklik_items_breach_ratio:ratio5m",
    "region:otklik_items_due:increase5m",
    "region:otklik_items_breached:increase5m",
]
# The counters themselves, summed over workers: exact, without increase()'s extrapolation.
BACKLOG = [
    "sum by (region, municipality) (otklik_items_due_total)",
    "sum by (region, municipality) (otklik_items_breached_total)",
    "sum by (municipality) (otklik_page_open_items)",
    "count by (municipality) (otklik_page_oldest_deadline_ratio >= 1)",
]


def comment(group: int, cid: int, date: int, from_id: int, **extra: Any) -> tuple[bytes, bytes]:
    body = {
        "type": "wall_reply_new",
        "group_id": group,
        "event_id": f"e{group}-{cid}",
        "v": "5.199",
        "object": {
            "id": cid,
            "from_id": from_id,
            "date": date,
            "text": "Когда будет ответ?",
            "post_id": 7,
            "owner_id": -group,
            **extra,
        },
    }
    return f"vk:{group}".encode(), RawEnvelope("vk", "vk-callback", time.time(), body).to_json()


def stream(now: int) -> list[tuple[bytes, bytes]]:
    """Two comments answered in time on every page; on the late pages one more, never answered, past its
    deadline already."""
    out = []
    for groups in AREAS.values():
        for g in groups:
            for n, asked in enumerate((now - 900, now - 600)):
                cid = 100 + 10 * n
                out.append(comment(g, cid, asked, 5000 + n))
                out.append(comment(g, cid + 1, asked + 30, -g, reply_to_comment=cid, reply_to_user=5000 + n))
            if g in LATE:
                out.append(comment(g, 300, now - 120, 5009))
    return out


def start_prometheus(tmp_path: Path, name: str, targets: list[WorkerProcess], services) -> Any:  # type: ignore[no-untyped-def]
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str(PROM_DIR / "rules" / "*.rules.yml")]
    config.pop("alerting", None)
    config["scrape_configs"] = [
        {"job_name": "otklik-worker", "static_configs": [{"targets": [w.web.removeprefix("http://") for w in targets]}]}
    ]
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    port = free_port()
    argv = [
        _binary("prometheus"),
        f"--config.file={path}",
        f"--storage.tsdb.path={tmp_path / (name + '-data')}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    return services(name, argv, port, "/-/ready")


def query(prom, expr: str) -> dict[tuple[str, ...], float]:  # type: ignore[no-untyped-def]
    answer = prom.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert answer["status"] == "success", answer
    return {
        tuple(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k != "__name__"): float(r["value"][1])
        for r in answer["data"]["result"]
    }


def figures(prom) -> dict[str, dict[tuple[str, ...], float]]:  # type: ignore[no-untyped-def]
    return {expr: query(prom, expr) for expr in RECORDED + BACKLOG}


def exact(got: dict[str, dict[tuple[str, ...], float]], counter: str) -> dict[tuple[str, ...], float]:
    """A counter's sum per area and per region, from the counters themselves."""
    by_area = got[f"sum by (region, municipality) ({counter})"]
    by_region: dict[tuple[str, ...], float] = {}
    for labels, value in by_area.items():
        region = tuple(label for label in labels if label.startswith("region="))
        by_region[region] = by_region.get(region, 0.0) + value
    return {**by_area, **by_region}


def test_two_workers_record_the_figures_of_one(tmp_path, worker_factory, kafka, services) -> None:  # type: ignore[no-untyped-def]
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY, encoding="utf-8")
    env = dict(
        OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1", OTKLIK_PARTITIONS="4", OTKLIK_AGENTS="normalize,responses"
    )
    alone = worker_factory(registry, **env)
    first = worker_factory(registry, **env)
    second = WorkerProcess(
        env=dict(first.env, OTKLIK_WEB_PORT=str(free_port()), OTKLIK_DATA_DIR=str(tmp_path / "second")),
        log_path=tmp_path / "second.log",
    )
    try:
        for worker in (alone, first, second):
            worker.start()
        prom_alone = start_prometheus(tmp_path, "prometheus-alone", [alone], services)
        prom_pair = start_prometheus(tmp_path, "prometheus-pair", [first, second], services)
        for prom, n in ((prom_alone, 1), (prom_pair, 2)):
            wait(lambda p=prom, n=n: len(query(p, 'up{job="otklik-worker"} == 1')) == n, 60, "workers scraped")
        time.sleep(3)  # a few scrapes of the counters at 0

        now = int(time.time())
        events = stream(now)
        run(produce(kafka, alone.topic("otklik.raw"), events))
        run(produce(kafka, first.topic("otklik.raw"), events))
        late_items = len(LATE)
        for prom in (prom_alone, prom_pair):
            wait(
                lambda p=prom: sum(query(p, "otklik_items_breached_total").values()) == late_items,
                90,
                "every breach counted",
            )
        pair_pages = [
            query(prom_pair, f'count(otklik_page_open_items{{instance="{w.web[7:]}"}})') for w in (first, second)
        ]
        assert all(pair_pages), f"one worker of the two holds every page: the test would prove nothing ({pair_pages})"
        time.sleep(20)  # both rules' windows hold many samples after the last change
        alone_figures, pair_figures = figures(prom_alone), figures(prom_pair)
    finally:
        second.stop()

    # The counters and the backlog, summed over workers, are exactly one worker's.
    for expr in BACKLOG:
        assert alone_figures[expr], f"{expr}: no data"
        assert pair_figures[expr] == alone_figures[expr], (expr, pair_figures[expr], alone_figures[expr])
    due = exact(alone_figures, "otklik_items_due_total")
    breached = exact(alone_figures, "otklik_items_breached_total")
    assert sum(v for k, v in due.items() if len(k) == 1) == sum(len(g) for g in AREAS.values()) * 2 + late_items
    assert sum(v for k, v in breached.items() if len(k) == 1) == late_items
    # The rules' increases count every item once in both: increase() extrapolates a little past the last
    # sample (up to a scrape interval in the minute the series has existed), never below the count; an
    # item counted twice or lost (a counter first seen at 1 instead of 0: once per worker) is off by
    # more than that.
    for expr in RECORDED:
        counts = due if "due" in expr else breached
        for name, got in (("one worker", alone_figures), ("two workers", pair_figures)):
            assert got[expr].keys() == alone_figures[expr].keys() and got[expr], (expr, name, got[expr])
            for labels, value in got[expr].items():
                if "ratio" in expr:
                    assert value == pytest.approx(alone_figures[expr][labels], abs=0.02), (expr, name, labels)
                else:
                    assert counts[labels] <= value + 1e-9 < counts[labels] * 1.04 + 0.01, (expr, name, labels, value)


def wait(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    pytest.fail(f"{what}: not within {timeout}s")
