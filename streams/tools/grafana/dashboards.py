"""Every dashboard by its file stem (= uid), and writing them to JSON files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otklik.streams.tools.grafana.area import drilldown, region_overview, single_page
from otklik.streams.tools.grafana.blocks import UIDS
from otklik.streams.tools.grafana.history import monthly_rating, overdue_items
from otklik.streams.tools.grafana.operations import moderation, system_health

# File stem (= uid) -> builder.
DASHBOARD_FILES: dict[str, Callable[[], dict[str, Any]]] = {
    UIDS["region"]: region_overview,
    UIDS["drilldown"]: drilldown,
    UIDS["page"]: single_page,
    UIDS["moderation"]: moderation,
    UIDS["health"]: system_health,
    UIDS["rating"]: monthly_rating,
    UIDS["overdue"]: overdue_items,
}


def build_dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON model (what Grafana stores)."""
    return {uid: build() for uid, build in DASHBOARD_FILES.items()}


def render(model: dict[str, Any]) -> str:
    """The checked-in text of a dashboard: stable key order, Cyrillic kept readable."""
    return json.dumps(model, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_dashboards(out_dir: Path) -> list[Path]:
    """Write every dashboard to ``out_dir/<uid>.json``; returns the paths (the edge: file I/O here only)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, model in build_dashboards().items():
        path = out_dir / f"{uid}.json"
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written
