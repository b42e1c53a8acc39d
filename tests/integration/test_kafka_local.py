"""`otklik kafka start|stop|status` on a broker of the test's own (own port, own data folder)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import OTKLIK, REPO, free_port

pytestmark = pytest.mark.integration


def otklik(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([OTKLIK, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def kafka_pids(data_dir: Path) -> list[int]:
    """JVMs running kafka.Kafka with a config for this data folder (the config sits beside it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline and any(str(data_dir.parent).encode() in part for part in cmdline):
            pids.append(int(entry))
    return pids


@pytest.fixture
def own_broker_env(tmp_path: Path, kafka: str) -> dict[str, str]:
    # Depends on `kafka` only so that the release is already fetched into the shared cache.
    port = free_port()
    env = dict(os.environ)
    env.update(
        OTKLIK_KAFKA_PORT=str(port),
        OTKLIK_KAFKA_CONTROLLER_PORT=str(free_port()),
        OTKLIK_KAFKA_DATA=str(tmp_path / "kafka" / "data"),
        OTKLIK_KAFKA_HEAP="256m",
    )
    return env


def test_start_twice_stop_twice_never_two_brokers(own_broker_env, tmp_path):
    data = Path(own_broker_env["OTKLIK_KAFKA_DATA"])
    try:
        first = otklik(own_broker_env, "kafka", "start")
        assert first.returncode == 0, first.stderr
        assert "started" in first.stdout
        pids = kafka_pids(data)
        assert len(pids) == 1

        second = otklik(own_broker_env, "kafka", "start")
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout and str(pids[0]) in second.stdout
        assert kafka_pids(data) == pids

        status = otklik(own_broker_env, "kafka", "status")
        assert status.returncode == 0 and str(pids[0]) in status.stdout
    finally:
        stop1 = otklik(own_broker_env, "kafka", "stop")
    assert stop1.returncode == 0 and "stopped" in stop1.stdout
    assert kafka_pids(data) == []
    stop2 = otklik(own_broker_env, "kafka", "stop")
    assert stop2.returncode == 0 and "not running" in stop2.stdout
    status = otklik(own_broker_env, "kafka", "status")
    assert status.returncode == 3 and "not running" in status.stdout
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(own_broker_env["OTKLIK_KAFKA_PORT"])), timeout=1).close()


def test_failed_start_prints_the_log_tail_and_exits_non_zero(own_broker_env):
    # The controller's port is taken, so the broker cannot bind it and exits during start-up.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", int(own_broker_env["OTKLIK_KAFKA_CONTROLLER_PORT"])))
    blocker.listen()
    try:
        result = otklik(own_broker_env, "kafka", "start")
    finally:
        blocker.close()
        otklik(own_broker_env, "kafka", "stop")
    assert result.returncode != 0
    assert "Kafka exited during start-up" in result.stderr
    assert "Address already in use" in result.stderr or "BindException" in result.stderr
    assert kafka_pids(Path(own_broker_env["OTKLIK_KAFKA_DATA"])) == []


def test_with_ci_a_test_whose_broker_cannot_start_fails_not_skips(own_broker_env, tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", int(own_broker_env["OTKLIK_KAFKA_CONTROLLER_PORT"])))
    blocker.listen()
    env = dict(own_broker_env, CI="true")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/integration/test_worker_spine.py"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )
    finally:
        blocker.close()
        otklik(own_broker_env, "kafka", "stop")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 error" in result.stdout or "1 failed" in result.stdout, result.stdout[-2000:]
    assert "skipped" not in result.stdout
    assert "the local Kafka did not start" in result.stdout
