"""Every query of the region overview returns data from a real Prometheus scraping a real worker.

Real Kafka, a real `otklik worker` and Debian's Prometheus with the shipped rules: one page answers two
comments (first-response latency, items due in time), another leaves a comment past its one-minute
deadline (a breach, an open item, a page past its deadline). A fresh Prometheus has no last week, so
a week-old history of the SLO counters is backfilled with `promtool tsdb create-blocks-from
openmetrics` before it starts: the "trend against last week" queries read that, and everything else
reads what the worker exports now.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from otklik.schemas.records import RawEnvelope
from otklik.streams.tools.grafana import dashboards
from tests import grafana_panels
from tests.conftest import produce, run
from tests.e2e.conftest import PROM_DIR

pytestmark = pytest.mark.e2e

FAST, LATE = 300000011, 300000012
REGION, MUNICIPALITY = "Новосибирская область", "Бердск"
REGISTRY = f"""
defaults:
  timezone: Asia/Novosibirsk
  calendar: none
  schedule: {{mon-sun: "00:00-24:00"}}
  region: {REGION}
  municipality: {MUNICIPALITY}
pages:
  - id: vk:{FAST}
    title: Школа № 3
    sector: education
    deadline: 8h working
  - id: vk:{LATE}
    title: Поликлиника
    sector: health
    deadline: 1m working
"""


def comment(group: int, cid: int, date: int, from_id: int, **extra: object) -> bytes:
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
    return RawEnvelope("vk", "vk-callback", time.time(), body).to_json()


def answered_pair(group: int, cid: int, citizen: int, asked: int, answered: int) -> list[tuple[bytes, bytes]]:
    key = f"vk:{group}".encode()
    return [
        (key, comment(group, cid, asked, citizen)),
        (
            key,
            comment(group, cid + 1, answered, -group, reply_to_comment=cid, reply_to_user=citizen, parents_stack=[cid]),
        ),
    ]


def backfill_last_week(data_dir: Path, now: float) -> None:
    """A day of SLO counters a week ago (90 % in time), written as TSDB blocks where Prometheus will look."""
    labels = f'region="{REGION}",municipality="{MUNICIPALITY}",job="otklik-worker",instance="backfill"'
    start = int(now - 8 * 86400 + 600)
    steps = range(0, 86400 - 1200, 300)
    lines = ["# TYPE otklik_items_due counter"]
    lines += [f"otklik_items_due_total{{{labels}}} {i * 10} {start + s}" for i, s in enumerate(steps)]
    lines += ["# TYPE otklik_items_breached counter"]
    lines += [f"otklik_items_breached_total{{{labels}}} {i} {start + s}" for i, s in enumerate(steps)]
    lines += ["# EOF"]
    source = data_dir.parent / "last-week.om"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    promtool = shutil.which("promtool") or pytest.fail("promtool is not installed: run `make deb-packages`")
    done = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def query(prom, expr: str) -> list[dict]:  # type: ignore[no-untyped-def]
    answer = prom.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def wait_for(prom, expr: str, timeout: float, what: str) -> list[dict]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query(prom, expr)
        if result:
            return result
        time.sleep(1)
    pytest.fail(f"{what}: no data for {expr} within {timeout}s\n{prom.log_tail()}")


def test_every_region_overview_query_returns_data(tmp_path, worker_factory, kafka, prometheus) -> None:  # type: ignore[no-untyped-def]
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY, encoding="utf-8")
    worker = worker_factory(registry, OTKLIK_LATE_WINDOW="5", OTKLIK_TICK_INTERVAL="1")
    worker.start()

    backfill_last_week(tmp_path / "prometheus-data", time.time())  # the path the prometheus fixture uses
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str(PROM_DIR / "rules" / "*.rules.yml")]
    config.pop("alerting", None)
    config["scrape_configs"] = [
        {"job_name": "otklik-worker", "static_configs": [{"targets": [worker.web.removeprefix("http://")]}]}
    ]
    prom = prometheus(config)
    wait_for(prom, 'up{job="otklik-worker"} == 1', 60, "worker scraped")

    now = int(time.time())
    # The first answered item creates the municipality's series; the later ones change them while
    # Prometheus watches, which is what increase() needs.
    run(
        produce(
            kafka,
            worker.topic("otklik.raw"),
            [
                *answered_pair(FAST, 100, 5001, now - 600, now - 300),
                (f"vk:{LATE}".encode(), comment(LATE, 500, now, 5003)),
            ],
        )
    )
    # The counters exist at 0 from the start (prime_areas): wait for the first answer itself.
    wait_for(prom, "otklik_municipality_response_working_seconds_count > 0", 60, "first answer counted")
    time.sleep(3)  # a few scrapes with the first values
    later = int(time.time())
    run(produce(kafka, worker.topic("otklik.raw"), answered_pair(FAST, 200, 5002, later - 3600, later - 1800)))
    # The late page's comment passes its one-minute deadline: a breach, counted at the deadline.
    wait_for(prom, "otklik_items_breached_total > 0", 150, "breach at the deadline")
    wait_for(prom, "otklik_page_oldest_deadline_ratio >= 1", 30, "page past its deadline")
    time.sleep(3)

    model = dashboards.build_dashboards()["otklik-region-overview"]
    queries = grafana_panels.panel_queries(model)
    assert len(queries) >= 11
    empty, results = [], {}
    for q in queries:
        expr = grafana_panels.substitute_variables(q.expr, {"region": REGION}, intervals={"$__range": "15m"})
        result = query(prom, expr)
        results[(q.panel, q.ref)] = result
        if not result:
            empty.append((q.panel, q.ref, expr))
    assert empty == [], "queries of the region overview without data:\n" + json.dumps(
        empty, ensure_ascii=False, indent=1
    )

    def value(panel: str, ref: str = "A") -> float:
        return float(results[(panel, ref)][0]["value"][1])

    # The numbers are the scenario's, not just "something".
    assert 0 < value("Доля ответов в срок") < 1  # two in time, one breached
    assert value("Ждут ответа сейчас") == 1  # the late page's comment
    assert value("Страниц с просрочкой") == 1
    assert 0 < value("Первый ответ: медиана") <= value("Первый ответ: 90 %") <= 3600
    last_week = value("Доля ответов в срок за сутки: сейчас и неделю назад", "B")
    assert last_week == pytest.approx(0.9, abs=0.01)  # the backfilled week: 1 breach in 10
    past = {r["metric"]["page"] for r in results[("Самые просроченные страницы", "A")]}
    assert past == {f"vk:{LATE}"}
