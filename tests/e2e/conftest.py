"""Fixtures for end-to-end tests: Debian's Prometheus and Alertmanager on free loopback ports with
temporary storage, an SMTP server on loopback (aiosmtpd), and the notifier as its own process.

A service that does not come up fails the test (whatever CI says); nothing here ever skips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, free_port

PROM_DIR = REPO / "deploy" / "prometheus"
AM_DIR = REPO / "deploy" / "alertmanager"


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make deb-packages`")
    return path


@dataclass
class Service:
    """A process on a loopback port, with its log; stopped by the fixture that made it."""

    name: str
    url: str
    proc: subprocess.Popen
    log_path: Path

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.name} did not come up within {timeout}s:\n{self.log_tail()}")

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """start(name, argv, port, ready_path, env=None) → a running Service; all stopped afterwards."""
    started: list[Service] = []

    def start(name: str, argv: list[str], port: int, ready_path: str, env: dict[str, str] | None = None) -> Service:
        log_path = tmp_path / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
        service = Service(name, f"http://127.0.0.1:{port}", proc, log_path)
        started.append(service)
        service.wait_ready(ready_path)
        return service

    yield start
    for service in reversed(started):
        service.stop()


def prometheus_config(worker: str, notifier: str, alertmanager: str, interval: str | None) -> dict[str, Any]:
    """The shipped prometheus.yml pointed at the test's processes; ``interval`` overrides scrape and
    evaluation intervals (None keeps the shipped ones)."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    if interval is not None:
        config["global"].update(scrape_interval=interval, evaluation_interval=interval, scrape_timeout=interval)
    config["rule_files"] = [str(PROM_DIR / "rules" / "*.rules.yml")]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [alertmanager]}]
    targets = {"otklik-worker": worker, "otklik-notifier": notifier}
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] in targets]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def alertmanager_config(notifier_url: str, smtp: str, fast: bool) -> dict[str, Any]:
    """The shipped alertmanager.yml pointed at the test's notifier and SMTP server; ``fast`` shortens
    the page routes' waits (the shipped ones otherwise)."""
    config = yaml.safe_load((AM_DIR / "alertmanager.yml").read_text(encoding="utf-8"))
    config["global"]["smtp_smarthost"] = smtp
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = notifier_url
    if fast:
        config["route"].update(group_wait="1s", group_interval="2s")
        for route in config["route"]["routes"]:
            route.update(group_wait="1s", group_interval="2s")
    return config


@pytest.fixture
def prometheus(services, tmp_path: Path) -> Callable[..., Service]:
    def start(config: dict[str, Any]) -> Service:
        port = free_port()
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        return services(
            "prometheus",
            [
                _binary("prometheus"),
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            port,
            "/-/ready",
        )

    return start


@pytest.fixture
def alertmanager(services, tmp_path: Path) -> Callable[..., Service]:
    def start(config: dict[str, Any]) -> Service:
        port = free_port()
        path = tmp_path / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        return services(
            "alertmanager",
            [
                _binary("prometheus-alertmanager"),
                f"--config.file={path}",
                f"--storage.path={tmp_path / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            port,
            "/-/ready",
        )

    return start


@dataclass
class Mail:
    received_at: float
    mail_from: str
    rcpt_tos: list[str]
    subject: str
    text: str


@dataclass
class SmtpSink:
    host: str
    port: int
    mails: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[Mail]:
        with self.lock:
            return list(self.mails)

    def wait_for(self, predicate: Callable[[Mail], bool], timeout: float) -> Mail | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for mail in self.snapshot():
                if predicate(mail):
                    return mail
            time.sleep(0.2)
        return None


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """An SMTP server on loopback that keeps every message it receives."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink("127.0.0.1", free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            mail = message_from_bytes(envelope.content, policy=default_policy)
            body = mail.get_body(preferencelist=("plain", "html"))
            with sink.lock:
                sink.mails.append(
                    Mail(
                        time.time(),
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        str(make_header(decode_header(mail["Subject"] or ""))),
                        body.get_content() if body else "",
                    )
                )
            return "250 OK"

    controller = Controller(Handler(), hostname=sink.host, port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture
def notifier(services, tmp_path: Path) -> Callable[..., Service]:
    """`otklik notifier` in its own process (run through its click command)."""

    def start(registry: Path, worker_url: str, smtp: SmtpSink) -> Service:
        import os

        port = free_port()
        env = dict(os.environ)
        env.update(
            OTKLIK_REGISTRY=str(registry),
            OTKLIK_WORKER_URL=worker_url,
            OTKLIK_NOTIFIER_PORT=str(port),
            OTKLIK_NOTIFIER_DATA_DIR=str(tmp_path / "notifier"),
            OTKLIK_SMTP_HOST=smtp.host,
            OTKLIK_SMTP_PORT=str(smtp.port),
            OTKLIK_SMTP_FROM="otklik@example.ru",
        )
        argv = [str(Path(sys.executable).parent / "otklik"), "notifier"]
        return services("notifier", argv, port, "/health", env=env)

    return start
