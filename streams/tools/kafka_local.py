"""A local single-node Apache Kafka (KRaft) for development, `make run` and the tests.

The release is pinned by its Maven Central coordinates in ``deploy/kafka/pom.xml``; Maven fetches it
once (with every jar it needs to run) into a git-ignored cache folder. The node listens on 127.0.0.1
only. Starting it while it runs reuses it: a pid file and an exclusive lock make sure there is never a
second broker on the same data folder.
"""

from __future__ import annotations

import base64
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEPLOY_KAFKA = Path(__file__).resolve().parents[2] / "deploy" / "kafka"


class KafkaError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


def new_cluster_id(make_uuid: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64, never starting with "-" (the storage tool
    would read it as an option), as Kafka's own ``Uuid.randomUuid()`` makes them."""
    while True:
        cluster_id = base64.urlsafe_b64encode(make_uuid().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class LocalKafka:
    """Where the local broker lives: :meth:`from_env` takes it from :class:`LocalKafkaSettings`."""

    port: int
    controller_port: int
    data_dir: Path
    cache_dir: Path
    heap: str
    start_timeout_s: float = 90.0

    @classmethod
    def from_env(cls) -> LocalKafka:
        """From OTKLIK_KAFKA_PORT, _CONTROLLER_PORT, _DATA, _CACHE, _HEAP. Raises SettingsError."""
        from otklik.streams.settings import LocalKafkaSettings

        settings = LocalKafkaSettings.from_env()
        return cls(
            port=settings.kafka_port,
            controller_port=settings.controller_port,
            data_dir=settings.kafka_data,
            cache_dir=settings.kafka_cache,
            heap=settings.kafka_heap,
        )

    # -- paths -------------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def run_dir(self) -> Path:
        """Pid file, log and generated config sit beside the data folder, never inside it."""
        return self.data_dir.parent

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"kafka-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"kafka-{self.port}.log"

    @property
    def config_file(self) -> Path:
        return self.run_dir / f"server-{self.port}.properties"

    @property
    def lib_dir(self) -> Path:
        return self.cache_dir / f"kafka-{kafka_version()}" / "lib"

    # -- fetching ------------------------------------------------------------------------------

    def fetch(self) -> Path:
        """Fetch the pinned release and its runtime dependencies from Maven Central, once."""
        marker = self.lib_dir / ".complete"
        if marker.exists():
            return self.lib_dir
        self.lib_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(DEPLOY_KAFKA / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={self.lib_dir}",
        ]
        print(f"fetching Apache Kafka {kafka_version()} from Maven Central into {self.lib_dir} ...", file=sys.stderr)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except FileNotFoundError as exc:
            raise KafkaError("Maven (mvn) is not installed: it fetches Kafka from Maven Central") from exc
        if done.returncode != 0:
            raise KafkaError(
                f"Maven could not fetch Kafka (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        if not any(self.lib_dir.glob(f"kafka_2.13-{kafka_version()}.jar")):
            raise KafkaError(f"Maven finished but {self.lib_dir} holds no kafka_2.13-{kafka_version()}.jar")
        marker.touch()
        return self.lib_dir

    # -- state -----------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of our broker when it is alive, else None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid) and _is_kafka(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def accepts_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    # -- start / stop ----------------------------------------------------------------------------

    def start(self) -> str:
        """Start the broker, or reuse the one already running; return a line saying which."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            pid = self.pid()
            if pid is not None:
                self._wait_ready(pid)
                return f"Kafka already running (pid {pid}) on {self.bootstrap}: reusing it"
            if self.accepts_connections():
                raise KafkaError(
                    f"port {self.port} is taken by a process otklik did not start; "
                    f"stop it or set OTKLIK_KAFKA_PORT to another port"
                )
            lib = self.fetch()
            self._write_config()
            self._format_once(lib)
            log = open(self.log_file, "ab")
            proc = subprocess.Popen(
                [
                    "java",
                    f"-Xmx{self.heap}",
                    f"-Xms{self.heap}",
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={DEPLOY_KAFKA / 'log4j2.yaml'}",
                    f"-Dkafka.logs.dir={self.run_dir}",
                    "-cp",
                    f"{lib}/*",
                    "kafka.Kafka",
                    str(self.config_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal must not kill it mid-write; `stop` does
            )
            log.close()
            self.pid_file.write_text(str(proc.pid))
            try:
                self._wait_ready(proc.pid)
            except KafkaError:
                self._terminate(proc.pid)
                self.pid_file.unlink(missing_ok=True)
                raise
            return f"Kafka {kafka_version()} started (pid {proc.pid}) on {self.bootstrap}, data in {self.data_dir}"

    def stop(self) -> str:
        with self._lock():
            pid = self.pid()
            if pid is None:
                return "Kafka is not running"
            self._terminate(pid)
            self.pid_file.unlink(missing_ok=True)
            return f"Kafka stopped (pid {pid})"

    def status(self) -> tuple[bool, str]:
        pid = self.pid()
        if pid is None:
            return False, f"Kafka is not running (port {self.port})"
        ready = self.accepts_connections()
        return (
            ready,
            f"Kafka running (pid {pid}) on {self.bootstrap}{'' if ready else ', not accepting connections yet'}",
        )

    # -- internals --------------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.run_dir / f"kafka-{self.port}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_config(self) -> None:
        template = (DEPLOY_KAFKA / "server.properties").read_text()
        self.config_file.write_text(
            template.format(port=self.port, controller_port=self.controller_port, data_dir=self.data_dir)
        )

    def _format_once(self, lib: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = new_cluster_id()
        done = subprocess.run(
            [
                "java",
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={DEPLOY_KAFKA / 'log4j2.yaml'}",
                "-cp",
                f"{lib}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise KafkaError(f"formatting {self.data_dir} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def _wait_ready(self, pid: int) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                raise KafkaError(f"Kafka exited during start-up; the end of {self.log_file}:\n{self.log_tail()}")
            if self.accepts_connections() and _responds_to_metadata(self.bootstrap):
                return
            time.sleep(0.3)
        raise KafkaError(
            f"Kafka did not accept connections on {self.bootstrap} within {self.start_timeout_s:.0f}s; "
            f"the end of {self.log_file}:\n{self.log_tail()}"
        )

    def _terminate(self, pid: int, grace_s: float = 30.0) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log written)"


def kafka_version() -> str:
    """The pinned release, read from the pom so that there is one place to change it."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(DEPLOY_KAFKA / "pom.xml").getroot()
    node = root.find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise KafkaError(f"{DEPLOY_KAFKA / 'pom.xml'} does not set <kafka.version>")
    return node.text.strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (ours, not yet reaped) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _is_kafka(pid: int) -> bool:
    """Guards against a recycled pid: the process must be a JVM running kafka.Kafka."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"kafka.Kafka" in fh.read()
    except FileNotFoundError:
        return False


def _responds_to_metadata(bootstrap: str) -> bool:
    """A TCP accept is not enough: the KRaft node must answer a metadata request as a broker."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(client.start(), 5)
            await asyncio.wait_for(client.list_topics(), 5)
            return True
        except Exception:
            return False
        finally:
            try:
                await client.close()
            except Exception:
                pass

    return asyncio.run(probe())
