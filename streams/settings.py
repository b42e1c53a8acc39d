"""The worker's settings: one frozen object, every field from an environment variable.

A bad value stops start-up with the variable's name and what is wrong, never deep in a stream.
The table in README.md ("Configuration") lists the same variables; keep them together.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable holds a value otklik cannot use."""


# Topic names of DESIGN.md's data flow; a prefix (OTKLIK_TOPIC_PREFIX) lets tests use fresh ones.
TOPIC_NAMES = {
    "raw": "otklik.raw",
    "interactions": "otklik.interactions",
    "responses": "otklik.responses",
    "moderation": "otklik.moderation",
    "dead_letters": "otklik.dead-letters",
    "overrides": "otklik.overrides",
}


AGENTS = ("normalize", "responses", "moderation")


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"  # OTKLIK_KAFKA_BROKER; several as "kafka://h1:9092;kafka://h2:9092"
    app_id: str = "otklik"  # OTKLIK_APP_ID: consumer group and prefix of the table changelogs
    store: str = "memory://"  # OTKLIK_STORE: "memory://" (rebuilt from changelogs) or "rocksdb://"
    data_dir: Path = Path(".run/worker")  # OTKLIK_DATA_DIR: faust's data folder (rocksdb tables)
    web_host: str = "127.0.0.1"  # OTKLIK_WEB_HOST
    web_port: int = 6066  # OTKLIK_WEB_PORT: /metrics, /health and the read API
    partitions: int = 4  # OTKLIK_PARTITIONS: partitions of each otklik topic created by the worker
    replicas: int = 1  # OTKLIK_REPLICAS: replication factor of the topics the worker creates
    topic_prefix: str = ""  # OTKLIK_TOPIC_PREFIX: prepended to every topic name
    registry: Path | None = None  # OTKLIK_REGISTRY: the page registry (YAML); unset = every page on defaults
    rebalance_timeout_s: float = 60.0  # OTKLIK_REBALANCE_TIMEOUT: a fresh group joins after about half of it
    late_window_s: int = 600  # OTKLIK_LATE_WINDOW: how long an event about an unseen item is held
    retention_s: int = 30 * 86400  # OTKLIK_RETENTION: open items expire and closed ids are forgotten after it
    tick_interval_s: float = 15.0  # OTKLIK_TICK_INTERVAL: how often deadlines are checked (at most 60)
    log_level: str = "info"  # OTKLIK_LOG_LEVEL
    # OTKLIK_AGENTS: which agents this worker runs (moderation is CPU-heavy: it can run in a worker
    # of its own, with its own OTKLIK_APP_ID, i.e. its own consumer group)
    agents: frozenset[str] = frozenset(AGENTS)

    def __post_init__(self) -> None:
        for url in self.broker.split(";"):
            if not url.startswith("kafka://") or ":" not in url[len("kafka://") :]:
                raise SettingsError(f"OTKLIK_KAFKA_BROKER: {url!r} is not of the form kafka://HOST:PORT")
        if self.store.split("://")[0] not in ("memory", "rocksdb", "rocksdict"):
            raise SettingsError(f"OTKLIK_STORE: {self.store!r} is not memory:// or rocksdb://")
        if not 0 < self.web_port < 65536:
            raise SettingsError(f"OTKLIK_WEB_PORT: {self.web_port} is not a TCP port")
        if self.partitions < 1:
            raise SettingsError(f"OTKLIK_PARTITIONS: {self.partitions} must be at least 1")
        if self.replicas < 1:
            raise SettingsError(f"OTKLIK_REPLICAS: {self.replicas} must be at least 1")
        if self.late_window_s < 0 or self.retention_s <= self.late_window_s:
            raise SettingsError("OTKLIK_RETENTION must be longer than OTKLIK_LATE_WINDOW, and both non-negative")
        unknown = set(self.agents) - set(AGENTS)
        if unknown or not self.agents:
            raise SettingsError(
                f"OTKLIK_AGENTS: {', '.join(sorted(unknown)) or 'nothing'} is not a list of {', '.join(AGENTS)}"
            )
        if not 0 < self.tick_interval_s <= 60:
            raise SettingsError(f"OTKLIK_TICK_INTERVAL: {self.tick_interval_s} must be in (0, 60] seconds")
        if self.registry is not None and not self.registry.is_file():
            raise SettingsError(f"OTKLIK_REGISTRY: {self.registry} is not a file")

    @property
    def bootstrap(self) -> str:
        """The broker list as aiokafka wants it: "h1:9092,h2:9092"."""
        return ",".join(url[len("kafka://") :] for url in self.broker.split(";"))

    def topic(self, role: str) -> str:
        return self.topic_prefix + TOPIC_NAMES[role]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            name = ENV_NAMES[f.name]
            if name not in env:
                continue
            raw = env[name]
            try:
                values[f.name] = _convert(f.name, raw)
            except ValueError as exc:
                raise SettingsError(f"{name}: {raw!r} is not valid ({exc})") from None
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


ENV_NAMES = {
    "broker": "OTKLIK_KAFKA_BROKER",
    "app_id": "OTKLIK_APP_ID",
    "store": "OTKLIK_STORE",
    "data_dir": "OTKLIK_DATA_DIR",
    "web_host": "OTKLIK_WEB_HOST",
    "web_port": "OTKLIK_WEB_PORT",
    "partitions": "OTKLIK_PARTITIONS",
    "replicas": "OTKLIK_REPLICAS",
    "topic_prefix": "OTKLIK_TOPIC_PREFIX",
    "registry": "OTKLIK_REGISTRY",
    "rebalance_timeout_s": "OTKLIK_REBALANCE_TIMEOUT",
    "late_window_s": "OTKLIK_LATE_WINDOW",
    "retention_s": "OTKLIK_RETENTION",
    "tick_interval_s": "OTKLIK_TICK_INTERVAL",
    "log_level": "OTKLIK_LOG_LEVEL",
    "agents": "OTKLIK_AGENTS",
}


def _convert(name: str, raw: str) -> object:
    if name in ("web_port", "partitions", "replicas", "late_window_s", "retention_s"):
        return int(raw)
    if name in ("rebalance_timeout_s", "tick_interval_s"):
        return float(raw)
    if name == "agents":
        return frozenset(part.strip() for part in raw.split(",") if part.strip())
    if name == "data_dir":
        return Path(raw)
    if name == "registry":
        return Path(raw) if raw else None
    return raw
