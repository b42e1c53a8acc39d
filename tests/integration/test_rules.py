"""The shipped Prometheus rules and Alertmanager config, checked and unit-tested with Debian's promtool
and amtool (`make test` installs them; a missing tool fails these tests, it never skips them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
AM = REPO / "deploy" / "alertmanager"
RULE_FILES = sorted((PROM / "rules").glob("*.rules.yml"))
RULE_TESTS = sorted((PROM / "tests").glob("*_test.yml"))
ROUTE_CASES = yaml.safe_load((AM / "routes_test.yaml").read_text(encoding="utf-8"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make deb-packages` (Debian's prometheus, prometheus-alertmanager)")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120)


def test_promtool_check_config_and_rules() -> None:
    result = run(tool("promtool"), "check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    result = run(tool("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(test_file: Path) -> None:
    result = run(tool("promtool"), "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_tests_showing_it_firing_and_not_firing() -> None:
    alerts = {
        rule["alert"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts, "no alerting rules found"
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - quiet == set(), "alerts without a not-firing test"


def test_every_alert_names_its_audience() -> None:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["labels"]["audience"] in ("administrators", "supervisors", "operations"), rule["alert"]


def test_generated_slo_rules_are_fresh() -> None:
    result = run(sys.executable, str(PROM / "generate_slo_rules.py"), "--check")
    assert result.returncode == 0, result.stderr


def test_amtool_check_config() -> None:
    result = run(tool("amtool"), "check-config", str(AM / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", ROUTE_CASES, ids=[c["name"] for c in ROUTE_CASES])
def test_amtool_routes(case: dict) -> None:
    labels = [f"{k}={v}" for k, v in case["labels"].items()]
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={AM / 'alertmanager.yml'}",
        f"--verify.receivers={','.join(case['receivers'])}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_routes_test_catches_a_wrong_receiver() -> None:
    """The route cases above could not pass by accident: a wrong expectation fails."""
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={AM / 'alertmanager.yml'}",
        "--verify.receivers=notifier",
        "alertname=OtklikWorkerDown",
        "audience=operations",
        "severity=critical",
    )
    assert result.returncode != 0


def test_supervisor_notices_wait_for_waking_hours_in_each_zone() -> None:
    config = yaml.safe_load((AM / "alertmanager.yml").read_text(encoding="utf-8"))
    intervals = {ti["name"]: ti["time_intervals"] for ti in config["time_intervals"]}
    supervisors = next(r for r in config["route"]["routes"] if r["matchers"] == ['audience="supervisors"'])
    zones = set()
    for child in supervisors["routes"]:
        (matcher,) = child["matchers"]
        zone = matcher.split('"')[1]
        zones.add(zone)
        (name,) = child["active_time_intervals"]
        assert all(ti["location"] == zone for ti in intervals[name]), name
    assert {"Europe/Kaliningrad", "Europe/Moscow", "Asia/Novosibirsk", "Asia/Kamchatka"} <= zones


def test_connector_silence_inhibits_page_alerts_of_its_platform() -> None:
    config = yaml.safe_load((AM / "alertmanager.yml").read_text(encoding="utf-8"))
    rule = next(r for r in config["inhibit_rules"] if r["source_matchers"] == ['alertname="OtklikConnectorSilent"'])
    assert rule["equal"] == ["platform"]
    # The page alerts carry the platform label (from the worker's per-page series).
    pages = yaml.safe_load((PROM / "tests" / "pages_test.yml").read_text(encoding="utf-8"))
    labels = [a["exp_labels"] for t in pages["tests"] for c in t["alert_rule_test"] for a in c.get("exp_alerts", [])]
    assert labels and all("platform" in lab for lab in labels)
