"""A bad `OTKLIK_STORE_URL` stops `otklik store` at start-up (issue 15, "Acceptance": bad input).

The real command in its own process: exit status 2 (a usage error, as for every bad setting), a
message naming the problem, and never the password, neither in what it prints nor in its log lines.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import OTKLIK, REPO, free_port

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pa55word"


def start_store(url: str, tmp_path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        OTKLIK_STORE_URL=url,
        OTKLIK_DATA_DIR=str(tmp_path / "data"),
        # A broker nobody listens on: start-up must stop on the database before it needs Kafka.
        OTKLIK_KAFKA_BROKER=f"kafka://127.0.0.1:{free_port()}",
        OTKLIK_LOG_LEVEL="debug",
    )
    env.pop("OTKLIK_REGISTRY", None)
    return subprocess.run([OTKLIK, "store"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_a_database_otklik_does_not_support_stops_start_up(tmp_path):
    done = start_store(f"mysql://otklik:{PASSWORD}@db.example.org/otklik", tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "OTKLIK_STORE_URL" in output
    assert "only sqlite and postgresql" in output
    assert "mysql://otklik:***@db.example.org/otklik" in output
    assert PASSWORD not in output


def test_a_postgresql_server_that_does_not_answer_stops_start_up(tmp_path):
    port = free_port()  # closed: nothing listens on it
    done = start_store(f"postgresql://otklik:{PASSWORD}@127.0.0.1:{port}/otklik", tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "cannot reach the store" in output
    assert f"otklik:***@127.0.0.1:{port}/otklik" in output
    assert "Connection refused" in output or "connection failed" in output
    assert PASSWORD not in output


def test_a_url_that_is_not_one_stops_start_up(tmp_path):
    done = start_store(f"otklik:{PASSWORD}", tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "OTKLIK_STORE_URL" in output and "not a database URL" in output
    assert PASSWORD not in output
