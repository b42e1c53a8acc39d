"""`otklik grafana generate` and `otklik grafana push`: dashboards as code, delivered.

``generate`` writes the dashboards of :mod:`otklik.streams.tools.grafana.dashboards` to JSON files (what
Grafana's file provisioning reads). ``push`` puts the folder, the Prometheus datasource and every
dashboard into a running Grafana over its HTTP API with grafana-client, idempotently: it reads what
is there first, writes only what differs, always with the fixed uids, the folder's uid and
``overwrite`` (an update without the folder would move a dashboard to "General"), and reports what it
created, changed or left alone. A second run against the same Grafana changes nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click

__all__ = ["DEFAULT_DASHBOARD_DIR", "Change", "GrafanaTarget", "datasource_model", "grafana_command", "push"]

Action = Literal["created", "updated", "unchanged"]

# deploy/grafana/dashboards of a source checkout (the CLI's default for `generate`).
DEFAULT_DASHBOARD_DIR = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dashboards"


@dataclass(frozen=True)
class Change:
    kind: Literal["folder", "datasource", "dashboard"]
    uid: str
    title: str
    action: Action

    def __str__(self) -> str:
        return f"{self.kind} {self.uid} ({self.title}): {self.action}"


@dataclass(frozen=True)
class GrafanaTarget:
    folder_uid: str
    folder_title: str
    datasource: dict[str, Any]
    dashboards: Mapping[str, dict[str, Any]]  # uid -> dashboard JSON model


def datasource_model(prometheus_url: str) -> dict[str, Any]:
    """The Prometheus datasource every panel names by uid (the same as the provisioning file's)."""
    from otklik.streams.tools.grafana.blocks import DATASOURCE_NAME, DATASOURCE_UID

    return {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "prometheus",
        "access": "proxy",
        "url": prometheus_url,
        "isDefault": False,
        "jsonData": {"httpMethod": "POST", "timeInterval": "15s"},  # the scrape interval of prometheus.yml
    }


def default_target(prometheus_url: str) -> GrafanaTarget:
    from otklik.streams.tools.grafana.blocks import FOLDER_TITLE, FOLDER_UID
    from otklik.streams.tools.grafana.dashboards import build_dashboards

    return GrafanaTarget(FOLDER_UID, FOLDER_TITLE, datasource_model(prometheus_url), build_dashboards())


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "status_code", None) == 404


# Fields Grafana adds or bumps on save: not ours to compare.
_SERVER_FIELDS = ("id", "version")


def _same_dashboard(stored: Mapping[str, Any], ours: Mapping[str, Any]) -> bool:
    def strip(model: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in model.items() if k not in _SERVER_FIELDS}

    return strip(stored) == strip(ours)


def _same_datasource(stored: Mapping[str, Any], ours: Mapping[str, Any]) -> bool:
    for key, value in ours.items():
        if key == "jsonData":
            held = stored.get("jsonData") or {}
            if any(held.get(k) != v for k, v in value.items()):
                return False
        elif stored.get(key) != value:
            return False
    return True


def push(api: Any, target: GrafanaTarget, message: str = "otklik grafana push") -> list[Change]:
    """Bring a Grafana (a ``grafana_client.GrafanaApi``) to ``target``; returns what happened to each object."""
    changes: list[Change] = []

    try:
        folder = api.folder.get_folder(target.folder_uid)
    except Exception as exc:
        if not _not_found(exc):
            raise
        api.folder.create_folder(target.folder_title, uid=target.folder_uid)
        changes.append(Change("folder", target.folder_uid, target.folder_title, "created"))
    else:
        if folder.get("title") != target.folder_title:
            api.folder.update_folder(target.folder_uid, title=target.folder_title, overwrite=True)
            changes.append(Change("folder", target.folder_uid, target.folder_title, "updated"))
        else:
            changes.append(Change("folder", target.folder_uid, target.folder_title, "unchanged"))

    ds = target.datasource
    try:
        stored_ds = api.datasource.get_datasource_by_uid(ds["uid"])
    except Exception as exc:
        if not _not_found(exc):
            raise
        api.datasource.create_datasource(ds)
        changes.append(Change("datasource", ds["uid"], ds["name"], "created"))
    else:
        if _same_datasource(stored_ds, ds):
            changes.append(Change("datasource", ds["uid"], ds["name"], "unchanged"))
        else:
            api.datasource.update_datasource_by_uid(ds["uid"], ds)
            changes.append(Change("datasource", ds["uid"], ds["name"], "updated"))

    for uid, model in target.dashboards.items():
        action: Action = "created"
        try:
            stored = api.dashboard.get_dashboard(uid)
        except Exception as exc:
            if not _not_found(exc):
                raise
        else:
            in_folder = (stored.get("meta") or {}).get("folderUid") == target.folder_uid
            if in_folder and _same_dashboard(stored.get("dashboard") or {}, model):
                changes.append(Change("dashboard", uid, model.get("title", uid), "unchanged"))
                continue
            action = "updated"
        api.dashboard.update_dashboard(
            {"dashboard": model, "folderUid": target.folder_uid, "overwrite": True, "message": message}
        )
        changes.append(Change("dashboard", uid, model.get("title", uid), action))
    return changes


def connect(url: str, token: str, timeout: float = 15.0) -> Any:
    from grafana_client import GrafanaApi

    # grafana-client joins the URL path and "api" without a slash: give it one (Grafana under /grafana/).
    return GrafanaApi.from_url(url.rstrip("/") + "/", credential=token, timeout=timeout)


# ---- the commands --------------------------------------------------------------------------------


@click.group("grafana")
def grafana_command() -> None:
    """Grafana dashboards as code: write them to JSON, or push them to a running Grafana."""


@grafana_command.command("generate")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DASHBOARD_DIR,
    show_default=True,
    help="Folder for the dashboard JSON files.",
)
def generate_command(out_dir: Path) -> None:
    """Write every dashboard to OUT/<uid>.json (what Grafana's file provisioning reads)."""
    from otklik.streams.tools.grafana.dashboards import write_dashboards

    for path in write_dashboards(out_dir):
        click.echo(f"wrote {path}")


@grafana_command.command("push")
@click.option("--url", default=None, help="Grafana's base URL [env OTKLIK_GRAFANA_URL].")
@click.option(
    "--token",
    default=None,
    help="A service-account token with rights on folders, datasources and dashboards [env OTKLIK_GRAFANA_TOKEN].",
)
@click.option(
    "--prometheus-url",
    default=None,
    help="The Prometheus URL as Grafana's server sees it [env OTKLIK_PROMETHEUS_URL, http://127.0.0.1:9090].",
)
@click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds per HTTP request.")
def push_command(url: str | None, token: str | None, prometheus_url: str | None, timeout: float) -> None:
    """Create or update the otklik folder, datasource and dashboards; print what changed."""
    from grafana_client.client import GrafanaException

    from otklik.streams.settings import GrafanaSettings, SettingsError, command_error

    try:
        settings = GrafanaSettings.from_env(grafana_url=url, grafana_token=token, prometheus_url=prometheus_url)
    except SettingsError as exc:
        raise command_error(exc) from None
    if settings.grafana_url is None or settings.grafana_token is None:
        missing = "--url (OTKLIK_GRAFANA_URL)" if settings.grafana_url is None else "--token (OTKLIK_GRAFANA_TOKEN)"
        raise click.UsageError(f"Missing option {missing}.")
    grafana = connect(settings.grafana_url, settings.grafana_token.get_secret_value(), timeout)
    _run(lambda: push(grafana, default_target(settings.prometheus_url)), GrafanaException)


def _run(action: Callable[[], list[Change]], errors: type[Exception]) -> None:
    try:
        changes = action()
    except errors as exc:
        status = getattr(exc, "status_code", None)
        raise click.ClickException(f"Grafana refused the request ({status}): {getattr(exc, 'message', exc)}") from None
    for change in changes:
        click.echo(str(change))
    written = sum(change.action != "unchanged" for change in changes)
    click.echo(f"{written} created or updated, {len(changes) - written} unchanged", file=sys.stderr)
