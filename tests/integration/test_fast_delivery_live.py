"""The fast hand-over (streams/worker/fast_delivery.py) on the pinned faust's real consumer and real Kafka.

A minimal app on otklik's FaustApp (tests/integration/fast_delivery_app.py) reads a one-partition topic:
every record must reach the agent once, in the partition's order, and each delivery must be counted on
one path. Its stream buffer is smaller than one fetch, so some deliveries have to wait and take the
fallback path, which must keep the order too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import produce, run, unique

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parent / "fast_delivery_app.py"
TOTAL = 2_000


async def _one_partition_topic(bootstrap: str, name: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


def _consume_with_the_app(bootstrap: str, topic: str, mode: str, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, str(APP), bootstrap, topic, str(TOTAL), mode, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=APP.parents[2],
    )
    assert out.exists(), f"the app wrote no result (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return orjson.loads(out.read_bytes())


@pytest.fixture
def topic(kafka: str) -> str:
    name = unique("fast-delivery")
    run(_one_partition_topic(kafka, name))
    run(produce(kafka, name, [(None, f"record {i}".encode()) for i in range(TOTAL)]))
    return name


def test_every_record_is_delivered_once_in_order_and_counted_on_its_path(
    kafka: str, topic: str, tmp_path: Path
) -> None:
    result = _consume_with_the_app(kafka, topic, "on", tmp_path / "result.json")
    assert result["values"] == [f"record {i}" for i in range(TOTAL)]
    stats = result["stats"]
    assert stats["installed"] and stats["reason"] == ""
    assert stats["fast"] + stats["fallback"] == TOTAL
    assert stats["fast"] > 0
    assert stats["fallback"] > 0  # the buffer is smaller than a fetch: some deliveries waited


def test_switched_off_faust_delivers_the_same_records_its_own_way(kafka: str, topic: str, tmp_path: Path) -> None:
    result = _consume_with_the_app(kafka, topic, "off", tmp_path / "result.json")
    assert result["values"] == [f"record {i}" for i in range(TOTAL)]
    assert result["stats"] == {
        "installed": False,
        "reason": "switched off (OTKLIK_FAST_DELIVERY=false)",
        "fast": 0,
        "fallback": 0,
    }
