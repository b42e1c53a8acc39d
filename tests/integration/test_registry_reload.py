"""The worker reloads the page registry when its file changes; a bad edit leaves the last good one."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

pytestmark = pytest.mark.integration

REGISTRY = """
defaults:
  calendar: none
  schedule: {{mon-sun: "00:00-24:00"}}
pages:
  - id: vk:200000701
    title: {title}
    deadline: "{deadline}"
"""


def page_view(worker) -> dict:  # type: ignore[no-untyped-def]
    with urllib.request.urlopen(worker.web + "/api/pages/vk:200000701/open-items", timeout=10) as resp:
        return json.loads(resp.read())


def wait_for(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    return predicate()


def test_the_worker_reloads_the_registry_and_keeps_the_last_good_one(worker_factory, tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY.format(title="Школа № 5", deadline="30m calendar"))
    worker = worker_factory(registry, OTKLIK_TICK_INTERVAL="1")
    worker.start()
    assert page_view(worker)["deadline"] == "30m calendar"

    registry.write_text(REGISTRY.format(title="Школа № 5 имени Пушкина", deadline="10m calendar"))
    assert wait_for(lambda: page_view(worker)["deadline"] == "10m calendar")
    assert page_view(worker)["title"] == "Школа № 5 имени Пушкина"

    registry.write_text("pages:\n  - id: vk:200000701\n    timezone: Europe/Mosow\n")  # a typo
    time.sleep(3)
    assert page_view(worker)["deadline"] == "10m calendar"
    assert worker.proc.poll() is None
    assert "registry not reloaded" in worker.log_tail(200) and "Europe/Mosow" in worker.log_tail(200)
