"""The Grafana dashboards: the checked-in JSON is what the code generates, every panel's PromQL parses
(promtool), and every metric a panel reads is exported by the worker, gateway or notifier, or recorded
by a rule in deploy/prometheus/rules/."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from otklik.streams.tools.grafana import blocks, dashboards, history
from tests import grafana_panels
from tests.conftest import REPO

DASHBOARD_DIR = REPO / "deploy" / "grafana" / "dashboards"
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
# Series Prometheus makes itself: scrape health and the state of alerting rules.
PROMETHEUS_BUILTINS = {"up", "ALERTS"}


@pytest.fixture(scope="module")
def models() -> dict[str, dict]:
    return dashboards.build_dashboards()


def all_queries(models: dict[str, dict]) -> list[grafana_panels.PanelQuery]:
    return [q for model in models.values() for q in grafana_panels.panel_queries(model, variables=True)]


# ---- freshness and identity --------------------------------------------------------------------------


def test_checked_in_json_is_what_the_code_generates(tmp_path: Path) -> None:
    written = dashboards.write_dashboards(tmp_path)
    fresh = {p.name: p.read_text(encoding="utf-8") for p in written}
    checked_in = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARD_DIR.glob("*.json")}
    assert sorted(checked_in) == sorted(fresh), "dashboard files differ: run `make dashboards`"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert stale == [], f"stale dashboards {stale}: run `make dashboards`"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in dashboards.write_dashboards(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in dashboards.write_dashboards(tmp_path / "b")}
    assert first == second


def test_stable_uids_russian_titles_and_unique_panel_ids(models: dict[str, dict]) -> None:
    assert set(models) == {
        "otklik-region-overview",
        "otklik-drilldown",
        "otklik-page",
        "otklik-moderation",
        "otklik-health",
        "otklik-rating",
        "otklik-overdue",
    }
    # The history dashboards read the store's PostgreSQL, the others Prometheus.
    store_boards = {"otklik-rating", "otklik-overdue"}
    for uid, model in models.items():
        datasource = history.STORE_DATASOURCE_UID if uid in store_boards else blocks.DATASOURCE_UID
        assert model["uid"] == uid
        assert re.search("[А-Яа-я]", model["title"]), model["title"]
        panels = list(grafana_panels.walk_panels(model["panels"]))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{uid}: duplicate panel ids"
        for panel in panels:
            assert re.search("[А-Яа-я]", panel["title"]), f"{uid}: panel without a Russian title: {panel['title']!r}"
            if panel["type"] != "row" and panel.get("targets"):
                assert panel["datasource"]["uid"] == datasource
                assert all(t["datasource"]["uid"] == datasource for t in panel["targets"])


def test_variables_cover_region_municipality_sector_and_page(models: dict[str, dict]) -> None:
    names = {uid: [v["name"] for v in model["templating"]["list"]] for uid, model in models.items()}
    assert names["otklik-region-overview"][:3] == ["region", "municipality", "sector"]
    assert names["otklik-drilldown"] == ["region", "municipality", "sector", "page"]
    assert names["otklik-page"] == ["region", "municipality", "page"]
    # A variable is used by the panels of its dashboard (an unused filter would mislead).
    for uid, model in models.items():
        text = " ".join(q.expr for q in grafana_panels.panel_queries(model, variables=True))
        text += " ".join(q.sql for q in grafana_panels.sql_queries(model, variables=True))
        for name in names[uid]:
            assert re.search(rf"\$\{{?{name}\b", text), f"{uid}: variable ${name} is used by no query"


def test_region_overview_has_the_measurements_the_issue_asks_for(models: dict[str, dict]) -> None:
    queries = grafana_panels.panel_queries(models["otklik-region-overview"])
    exprs = [q.expr for q in queries]
    assert any("otklik_items_breached_total" in e and "otklik_items_due_total" in e for e in exprs), "share in time"
    assert any(e.startswith("histogram_quantile(0.5,") for e in exprs), "median first response"
    assert any(e.startswith("histogram_quantile(0.9,") for e in exprs), "p90 first response"
    assert any(e.startswith("sum(otklik_page_open_items") for e in exprs), "open items"
    assert any("otklik_page_oldest_deadline_ratio" in e and ">= 1" in e for e in exprs), "pages past deadline"
    assert any("offset 1w" in e for e in exprs), "trend against last week"


def test_provisioning_names_the_same_datasource_and_folder() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "otklik.yaml").read_text(encoding="utf-8"))
    (ds,) = datasources["datasources"]
    assert (ds["uid"], ds["type"]) == (blocks.DATASOURCE_UID, "prometheus")
    store = yaml.safe_load((PROVISIONING / "datasources" / "otklik-store.yaml").read_text(encoding="utf-8"))
    (ds,) = store["datasources"]
    assert (ds["uid"], ds["type"]) == (history.STORE_DATASOURCE_UID, history.STORE_DATASOURCE_TYPE)
    assert ds["jsonData"]["database"] == "otklik"
    # the password comes from Grafana's environment, never from the repository
    assert ds["secureJsonData"]["password"].startswith("${")
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "otklik.yaml").read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    assert provider["folderUid"] == blocks.FOLDER_UID
    assert provider["folder"] == blocks.FOLDER_TITLE
    assert provider["type"] == "file"


# ---- PromQL parses ---------------------------------------------------------------------------------


def promtool_check(exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not installed: run `make deb-packages`"
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": f"otklik:dashboard_query_{i}", "expr": expr} for i, expr in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.rules.yml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_every_panel_query_parses_with_promtool(models: dict[str, dict], tmp_path: Path) -> None:
    queries = all_queries(models)
    exprs = [
        grafana_panels.substitute_variables(q.expr, {"region": "Новосибирская область", "page": "vk:1"})
        for q in queries
    ]
    assert not any("$" in e for e in exprs), [e for e in exprs if "$" in e]
    result = promtool_check(exprs, tmp_path)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert f"{len(exprs)} rules found" in result.stdout


def test_promtool_check_rejects_a_broken_query(tmp_path: Path) -> None:
    # The check above would be worthless if promtool accepted anything.
    result = promtool_check(["sum by (le (rate(otklik_raw_records_total[5m]))"], tmp_path)
    assert result.returncode != 0


# ---- every metric exists -----------------------------------------------------------------------------


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Sample names a registry exports (the metric families' names plus their type's suffixes)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def worker_names() -> set[str]:
    from otklik.streams.worker.metrics import PipelineMetrics

    registry = CollectorRegistry()  # as streams/worker/app.py builds it, with both scrape-time collectors
    metrics = PipelineMetrics(registry)
    metrics.watch_engine(lambda: None)
    metrics.watch_consumer(lambda: None)
    metrics.watch_moderation(lambda: None)
    metrics.watch_kafka(lambda: True)  # the broker probe streams/worker/app.py registers
    return exported_names(registry)


def gateway_names() -> set[str]:
    from otklik.streams.edge.gateway import GatewayMetrics

    registry = CollectorRegistry()
    GatewayMetrics(registry)
    return exported_names(registry)


def notifier_names(tmp_path: Path) -> set[str]:
    from otklik.streams.notify.notifier import Notifier, NotifierSettings

    notifier = Notifier(NotifierSettings(data_dir=tmp_path / "notifier"), senders={}, background=False)
    return exported_names(notifier.metrics)


def recorded_names() -> set[str]:
    names = set()
    for path in RULES_DIR.glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def test_exported_names_are_read_from_the_real_registries(tmp_path: Path) -> None:
    worker = worker_names()
    assert {
        "otklik_items_due_total",
        "otklik_page_open_items",
        "otklik_consumer_lag_records",
        "otklik_municipality_response_working_seconds_bucket",
    } <= worker
    assert "otklik_gateway_requests_total" in gateway_names()
    assert "otklik_notifier_notices_total" in notifier_names(tmp_path)
    assert "platform:otklik_last_event_timestamp_seconds:max1d" in recorded_names()


def test_every_metric_a_panel_uses_exists(models: dict[str, dict], tmp_path: Path) -> None:
    known = worker_names() | gateway_names() | notifier_names(tmp_path) | recorded_names() | PROMETHEUS_BUILTINS
    missing = {
        (q.dashboard, q.panel, name)
        for q in all_queries(models)
        for name in grafana_panels.metric_names(q.expr)
        if name not in known
    }
    assert missing == set()


def test_every_worker_metric_family_appears_on_some_dashboard(models: dict[str, dict]) -> None:
    used = {name for q in all_queries(models) for name in grafana_panels.metric_names(q.expr)}
    # the worker's per-platform gauge is read through its recording rule, which survives restarts
    used |= (
        {"otklik_last_event_timestamp_seconds"}
        if "platform:otklik_last_event_timestamp_seconds:max1d" in used
        else set()
    )
    families = {re.sub(r"_(bucket|count|sum|created)$", "", n) for n in worker_names() if not n.endswith("_created")}
    unused = {f for f in families if not any(u == f or u.startswith(f + "_") for u in used)}
    # otklik_items_breached_open_total is the unlabelled total of otklik_items_breached_total.
    assert unused <= {"otklik_items_breached_open_total"}, unused


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (increase(a_bucket{le="28800.0", x=~"$y"}[5m] offset 1w))', {"a_bucket"}),
        ("1 - sum(b_total) / (sum(c_total) > 0)", {"b_total", "c_total"}),
        ('count(r:m:ratio1d >= 1) or on() (0 * (min(up{job="w"}) == 1))', {"r:m:ratio1d", "up"}),
        ("histogram_quantile(0.9, sum without (instance) (rate(h_bucket[1m])))", {"h_bucket"}),
        ('x and on (page) topk(20, max by (page) (y{a="by (z)"}))', {"x", "y"}),
        ("time() - 1e3 * vector(2)", set()),
    ],
)
def test_metric_names_finds_exactly_the_series(expr: str, names: set[str]) -> None:
    assert grafana_panels.metric_names(expr) == names


def test_substitute_variables_fills_intervals_and_values() -> None:
    out = grafana_panels.substitute_variables(
        'rate(x{r=~"$region", p="${page}"}[$__rate_interval]) [$__range]', {"page": "vk:1"}
    )
    assert out == 'rate(x{r=~".*", p="vk:1"}[1m]) [1h]'
