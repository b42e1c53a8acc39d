"""Run by bench/alert_latency.py (not by `make test`): the alert chain's latency."""

from __future__ import annotations

from otklik.streams.settings import BenchSettings
from tests.conftest import kafka, worker_factory  # noqa: F401  (fixtures, reused as they are)
from tests.e2e.conftest import alertmanager, notifier, prometheus, services, smtp  # noqa: F401
from tests.e2e.test_alert_chain import scenario


def test_alert_latency(tmp_path, worker_factory, kafka, prometheus, alertmanager, notifier, smtp):  # type: ignore[no-untyped-def]
    shipped = BenchSettings.from_env().bench_intervals == "shipped"
    latency = scenario(tmp_path, worker_factory, kafka, prometheus, alertmanager, notifier, smtp, shipped=shipped)
    print(f"\nOTKLIK_ALERT_LATENCY {latency:.1f}")
