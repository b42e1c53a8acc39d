"""Settings from the environment and decoding of otklik.raw records (pure, no services)."""

from __future__ import annotations

import subprocess

import orjson
import pytest

from otklik.agents.ingest.envelope import RejectedRecord, decode_raw, to_interactions
from otklik.streams.settings import SettingsError, WorkerSettings
from tests.conftest import OTKLIK


def test_settings_defaults_and_overrides_from_env():
    s = WorkerSettings.from_env({})
    assert s.bootstrap == "127.0.0.1:9092" and s.web_port == 6066 and s.partitions == 4
    s = WorkerSettings.from_env(
        {"OTKLIK_KAFKA_BROKER": "kafka://a:1;kafka://b:2", "OTKLIK_PARTITIONS": "8", "OTKLIK_TOPIC_PREFIX": "x."}
    )
    assert s.bootstrap == "a:1,b:2" and s.partitions == 8 and s.topic("dead_letters") == "x.otklik.dead-letters"


@pytest.mark.parametrize(
    "env, names",
    [
        ({"OTKLIK_WEB_PORT": "http"}, "OTKLIK_WEB_PORT"),
        ({"OTKLIK_WEB_PORT": "70000"}, "OTKLIK_WEB_PORT"),
        ({"OTKLIK_PARTITIONS": "0"}, "OTKLIK_PARTITIONS"),
        ({"OTKLIK_KAFKA_BROKER": "localhost:9092"}, "OTKLIK_KAFKA_BROKER"),
        ({"OTKLIK_STORE": "redis://"}, "OTKLIK_STORE"),
        ({"OTKLIK_REGISTRY": "/no/such/registry.yaml"}, "OTKLIK_REGISTRY"),
        ({"OTKLIK_LATE_WINDOW": "100", "OTKLIK_RETENTION": "50"}, "OTKLIK_RETENTION"),
    ],
)
def test_bad_settings_name_the_variable(env, names):
    with pytest.raises(SettingsError, match=names):
        WorkerSettings.from_env(env)


def test_the_rocksdb_store_is_refused_with_the_reason():
    """faust's rocksdb store crashes on otklik's batch saves (docs/data-flow.md, "How state survives")."""
    for value in ("rocksdb://", "rocksdict://"):
        with pytest.raises(SettingsError, match=r"OTKLIK_STORE: .*not supported.*batch saves"):
            WorkerSettings.from_env({"OTKLIK_STORE": value})
    assert WorkerSettings.from_env({"OTKLIK_STORE": "memory://"}).store == "memory://"


def envelope(**over):
    data = {"platform": "vk", "source": "test", "received_at": 1764000000, "body": {"type": "x"}}
    data.update(over)
    return orjson.dumps(data)


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"", "empty record"),
        (None, "empty record"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (envelope(platform="myspace"), "envelope.platform"),
        (envelope(received_at="yesterday"), "envelope.received_at"),
        (envelope(received_at=True), "envelope.received_at"),
        (envelope(received_at=-5), "envelope.received_at"),
        (envelope(body=[1]), "envelope.body"),
        (envelope(source=5), "envelope.source"),
    ],
)
def test_undecodable_records_are_rejected_with_a_reason(value, reason):
    with pytest.raises(RejectedRecord, match=reason) as info:
        decode_raw(value)
    assert info.value.stage == "decode"


def test_a_body_the_normalizer_rejects_is_rejected_at_the_normalize_stage():
    env = decode_raw(envelope(body={"type": "wall_reply_new", "group_id": 5, "object": {"id": 1}}))
    with pytest.raises(RejectedRecord) as info:
        to_interactions(env, {})
    assert info.value.stage == "normalize" and "wall_reply_new" in info.value.reason


def test_events_otklik_does_not_measure_give_no_interactions():
    env = decode_raw(envelope(body={"type": "group_join", "group_id": 5, "event_id": "a", "object": {"user_id": 1}}))
    assert to_interactions(env, {}) == []


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["worker"],
        ["kafka"],
        ["kafka", "start"],
        ["kafka", "stop"],
        ["kafka", "status"],
        ["simulate"],
        ["version"],
        ["replay"],
    ],
)
def test_every_command_has_help(args):
    done = subprocess.run([OTKLIK, *args, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage: otklik" in done.stdout and len(done.stdout.splitlines()) > 3


def test_version_names_the_pinned_kafka():
    done = subprocess.run([OTKLIK, "version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Apache Kafka 4." in done.stdout and "faust-streaming 0.15.3" in done.stdout
