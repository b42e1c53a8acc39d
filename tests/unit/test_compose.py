"""deploy/compose.yaml: valid by the Compose Specification's JSON Schema, and every file it mounts or
builds from exists in the repository. (No Docker engine runs here: the stack is never started.)"""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


def shared_reference() -> Path:
    for base in (REPO.parent / "shared" / "reference", Path("/work/shared/reference")):
        if (base / "compose-spec" / "compose-spec.json").exists():
            return base
    pytest.fail("shared/reference/compose-spec/compose-spec.json not found beside the repository")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((shared_reference() / "compose-spec" / "compose-spec.json").read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


def interpolate_defaults(value: str) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR-default}`` with VAR unset: the default."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", value)


def bind_sources(compose: dict[str, Any]) -> list[tuple[str, Path, str]]:
    """(service, host path, container path) of every bind mount, relative paths from deploy/."""
    out = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                if volume.get("type") != "bind":
                    continue
                source, target = volume["source"], volume["target"]
            else:
                source, target = interpolate_defaults(volume).split(":")[:2]
                if not source.startswith((".", "/")):
                    continue  # a named volume
            out.append((name, (DEPLOY / source).resolve(), target))
    return out


def test_compose_validates_against_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.Draft7Validator
) -> None:
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_has_teeth(compose: dict[str, Any], validator: jsonschema.Draft7Validator) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["network_mod"] = "host"  # a typo Compose would refuse
    assert not validator.is_valid(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["env_file"] = [{"required": False}]  # an env file without its path
    assert not validator.is_valid(broken)


def test_the_stack_has_every_service_of_the_issue(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "worker", "gateway", "notifier", "prometheus", "alertmanager", "grafana"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    for name in ("worker", "gateway", "notifier"):
        assert services[name]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert services["worker"]["command"] == ["worker"]
    assert services["gateway"]["command"] == ["gateway"]
    assert services["notifier"]["command"] == ["notifier"]


def test_every_mounted_config_file_exists_in_the_repository(compose: dict[str, Any]) -> None:
    mounts = bind_sources(compose)
    assert len(mounts) >= 8
    missing = [(service, str(path)) for service, path, _ in mounts if not path.exists()]
    assert missing == []
    for service, path, _ in mounts:
        assert REPO in path.parents, f"{service} mounts {path}, outside the repository"
    required_env = [
        entry["path"]
        for service in compose["services"].values()
        for entry in service.get("env_file", [])
        if isinstance(entry, dict) and entry.get("required", True)
    ]
    assert all((DEPLOY / p).exists() for p in required_env), required_env


def test_build_context_and_dockerfile_exist(compose: dict[str, Any]) -> None:
    build = compose["services"]["worker"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert context == REPO and dockerfile.exists()
    text = dockerfile.read_text(encoding="utf-8")
    assert (
        text.splitlines()[[line.startswith("FROM") for line in text.splitlines()].index(True)]
        == "FROM python:3.11-slim"
    )
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), f"Dockerfile copies missing {source}"


def test_prometheus_finds_its_rules_and_grafana_its_dashboards_inside_the_containers(compose: dict[str, Any]) -> None:
    mounts = {(service, target): path for service, path, target in bind_sources(compose)}
    config_path = mounts[("prometheus", "/etc/prometheus/prometheus.yml")]
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    for pattern in config["rule_files"]:
        container_glob = Path("/etc/prometheus") / pattern  # rule_files are relative to the config file
        host_dir = mounts[("prometheus", str(container_glob.parent))]
        assert list(host_dir.glob(container_glob.name)), f"no rule files match {pattern}"
    assert mounts[("alertmanager", "/etc/alertmanager/alertmanager.yml")].name == "alertmanager.yml"

    providers = yaml.safe_load(
        mounts[("grafana", "/etc/grafana/provisioning/dashboards")].joinpath("otklik.yaml").read_text(encoding="utf-8")
    )
    dashboards_in_container = providers["providers"][0]["options"]["path"]
    host_dir = mounts[("grafana", dashboards_in_container)]
    assert sorted(p.name for p in host_dir.glob("*.json")) == sorted(
        p.name for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")
    ) and list(host_dir.glob("*.json"))
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (host_dir / Path(home).relative_to(dashboards_in_container)).exists()


def test_kafka_image_is_the_release_the_tests_run_against(compose: dict[str, Any]) -> None:
    pom = ET.parse(DEPLOY / "kafka" / "pom.xml").getroot()
    version = next(el.text for el in pom.iter() if el.tag.endswith("kafka.version"))
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{version}"


def test_ports_of_the_stack_match_the_shipped_configs(compose: dict[str, Any]) -> None:
    # Host networking: the addresses in prometheus.yml and alertmanager.yml must be where the services listen.
    services = compose["services"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in prometheus["scrape_configs"]}
    assert targets["otklik-worker"].endswith(f":{services['worker']['environment']['OTKLIK_WEB_PORT']}")
    assert targets["otklik-gateway"].endswith(f":{services['gateway']['environment']['OTKLIK_GATEWAY_PORT']}")
    assert targets["otklik-notifier"].endswith(f":{services['notifier']['environment']['OTKLIK_NOTIFIER_PORT']}")
    alert_target = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    assert any(arg == f"--web.listen-address={alert_target}" for arg in services["alertmanager"]["command"])
    alertmanager = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8")
    assert f"127.0.0.1:{services['notifier']['environment']['OTKLIK_NOTIFIER_PORT']}/alertmanager" in alertmanager
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "otklik.yaml").read_text(encoding="utf-8")
    )
    prom_listen = next(a for a in services["prometheus"]["command"] if a.startswith("--web.listen-address="))
    assert datasources["datasources"][0]["url"] == "http://" + prom_listen.split("=", 1)[1]
    assert all(s.get("network_mode") == "host" for s in services.values())


def test_the_store_writes_to_the_stack_s_postgresql(compose: dict[str, Any]) -> None:
    services = compose["services"]
    store = services["store"]
    assert store["command"] == ["store"]
    assert store["depends_on"]["postgres"]["condition"] == "service_healthy"
    url = store["environment"]["OTKLIK_STORE_URL"]
    assert url.startswith("postgresql://otklik:") and url.endswith("@127.0.0.1:5432/otklik")
    assert "port=5432" in services["postgres"]["command"]
    # No password of ours in the file: compose refuses to start until the operator sets one.
    assert "${OTKLIK_STORE_PASSWORD:?" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_the_console_reads_the_store_s_postgresql_behind_tls(compose: dict[str, Any]) -> None:
    services = compose["services"]
    console = services["console"]
    assert console["command"] == ["console"]
    assert console["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    env = console["environment"]
    assert env["OTKLIK_STORE_URL"] == services["store"]["environment"]["OTKLIK_STORE_URL"]
    assert console["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Loopback only, for the TLS proxy in front; cookies marked Secure, the client's address from the proxy.
    assert env["OTKLIK_CONSOLE_HOST"] == "127.0.0.1"
    assert (env["OTKLIK_CONSOLE_SECURE_COOKIES"], env["OTKLIK_CONSOLE_BEHIND_PROXY"]) == ("true", "true")
    assert "TLS in" in (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
