"""`otklik replay` and the real worker give the same records for the same bodies of VK, Telegram and MAX.

The fixtures' bodies of each platform are moved to the last hour and sent to the worker's otklik.raw;
that topic is then dumped as it is and replayed. Every item the worker closed must be a replay row with
the same fields; every item still open in the worker (its read API) must be an open row of the replay.
Deadlines are a day long, so no item is due while the test runs: the worker's timer, which works on the
wall clock, cannot judge an item between two of its events.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from otklik.agents.ingest.envelope import normalize_body
from otklik.agents.ingest.telegram import parse_links
from otklik.schemas.records import RawEnvelope
from tests.conftest import OTKLIK, consume, produce, run

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TG_LINKS = "-1009876543210=-1001234567890"  # the fixtures' discussion group and its channel

REGISTRY = """
defaults:
  timezone: Europe/Moscow
  calendar: none
  schedule: {mon-sun: "00:00-24:00"}
  deadline: "24h calendar"
pages:
  - id: max:-68123456789
    administrators: ["max:user:40900"]
  - id: vk:123456
    administrators: ["vk:user:7001"]
"""

# Restorations are left out: a restoration after a deletion reopens an item whose deletion the worker's
# timer (on the wall clock) may already have settled, which replay, on event time, would not.
SKIPPED = ("_restore",)

_SECONDS = ("date", "forward_date")  # Telegram and VK times, unix seconds
_MILLISECONDS = ("timestamp", "last_activity_time")  # MAX times, unix milliseconds


def _shifted(value: Any, by: int) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if type(v) is int and key in _SECONDS:
                out[key] = v + by
            elif type(v) is int and key in _MILLISECONDS:
                out[key] = v + by * 1000
            else:
                out[key] = _shifted(v, by)
        return out
    if isinstance(value, list):
        return [_shifted(v, by) for v in value]
    return value


def _own_time(platform: str, body: dict[str, Any]) -> int | None:
    """When the body says it happened (None: it does not say, as VK's deletions)."""
    if platform == "max":
        return body["timestamp"] // 1000
    if platform == "tg":
        message = body.get("message") or body.get("edited_message") or body.get("channel_post") or {}
        return message.get("date")
    obj = body.get("object") or {}
    return obj.get("date") or (obj.get("message") or {}).get("date")


def scenario(now: int) -> list[tuple[str, dict[str, Any], float]]:
    """(platform, body, received_at) of every fixture but restorations, moved to end a minute before
    ``now``, in order of arrival: by their own times, then the undated ones."""
    events: list[tuple[str, dict[str, Any], float]] = []
    for platform in ("vk", "tg", "max"):
        bodies = [
            orjson.loads(path.read_bytes())
            for path in sorted((FIXTURES / platform).glob("*.json"))
            if not path.stem.endswith(SKIPPED)
        ]
        latest = max(t for t in (_own_time(platform, b) for b in bodies) if t is not None)
        bodies = [_shifted(b, now - 3600 - latest) for b in bodies]
        dated = sorted((b for b in bodies if _own_time(platform, b) is not None), key=lambda b: _own_time(platform, b))
        undated = [b for b in bodies if _own_time(platform, b) is None]
        received = 0
        for body in dated + undated:
            own = _own_time(platform, body)
            received = max(received + 1, (own or 0) + 1)
            events.append((platform, body, received + 0.25))
    assert max(t for _, _, t in events) < now - 60
    return events


def _key(platform: str, body: dict[str, Any], received_at: float) -> bytes:
    """The page, as the gateway keys otklik.raw (so that a page's events stay in order)."""
    try:
        found = normalize_body(platform, body, int(received_at), parse_links(TG_LINKS))
    except ValueError:
        found = []
    return (found[0].page if found else platform).encode()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


COMPARED = (
    "item",
    "page",
    "kind",
    "author",
    "outcome",
    "latency_s",
    "business_latency_s",
    "deadline",
    "breached",
    "responder",
    "reason",
)


def _iso(t: int | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def test_the_worker_and_replay_give_the_same_records_for_every_platform(worker_factory, kafka, tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    now = int(time.time())
    events = scenario(now)
    worker = worker_factory(registry, OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1", OTKLIK_TG_LINKS=TG_LINKS)
    worker.start()
    raw = [(_key(p, b, t), RawEnvelope(p, "test", t, b).to_json()) for p, b, t in events]  # type: ignore[arg-type]
    run(produce(kafka, worker.topic("otklik.raw"), raw))

    # otklik.raw dumped as it is (one record's value a line) and replayed.
    dump = tmp_path / "raw.jsonl"
    dumped = run(consume(kafka, worker.topic("otklik.raw"), expect=len(raw)))
    assert len(dumped) == len(raw)
    dump.write_bytes(b"".join(m.value + b"\n" for m in dumped))
    replayed = subprocess.run(
        [OTKLIK, "replay", str(dump), "--registry", str(registry), "--now", str(now), "--tg-links", TG_LINKS],
        capture_output=True,
        check=True,
    )
    assert b" 0 malformed" in replayed.stderr, replayed.stderr
    rows = {row["item"]: row for row in map(orjson.loads, replayed.stdout.splitlines())}
    closed = {item: row for item, row in rows.items() if row["outcome"] != "open"}
    still_open = {item: row for item, row in rows.items() if row["outcome"] == "open"}
    # Every platform is there; some items stay open.
    assert {row["page"].split(":")[0] for row in closed.values()} == {"vk", "tg", "max"}
    assert {row["page"].split(":")[0] for row in still_open.values()} == {"tg", "max"}
    assert {"answered", "moderated", "withdrawn"} <= {row["outcome"] for row in closed.values()}

    out = run(consume(kafka, worker.topic("otklik.responses"), expect=len(closed), timeout=90))
    records: dict[str, dict[str, Any]] = {}
    for message in out:  # a page's records are in order on its partition: the last one stands
        record = orjson.loads(message.value)
        records[record["item"]] = record
    assert set(records) == set(closed), set(records) ^ set(closed)
    for item, record in records.items():
        row = closed[item]
        assert {f: record[f] for f in COMPARED} == {f: row[f] for f in COMPARED}, item
        assert (_iso(record["created_at"]), _iso(record["closed_at"])) == (row["created_at"], row["closed_at"])

    # The open items: the worker's read API, page by page.
    open_in_worker: dict[str, dict[str, Any]] = {}
    for page in sorted({row["page"] for row in rows.values()}):
        answer = _get(f"{worker.web}/api/pages/{urllib.request.quote(page, safe='')}/open-items?limit=1000")
        for view in answer["items"]:
            open_in_worker[view["item"]] = {"kind": view["kind"], "created_at": _iso(view["created_at"])}
    assert open_in_worker == {
        item: {"kind": row["kind"], "created_at": row["created_at"]} for item, row in still_open.items()
    }

    # VK lines as before ({"received_at", "body"}) replay as their envelopes do.
    wrapped = tmp_path / "vk.jsonl"
    wrapped.write_bytes(
        b"".join(orjson.dumps({"received_at": int(t), "body": b}) + b"\n" for p, b, t in events if p == "vk")
    )
    vk_only = subprocess.run(
        [OTKLIK, "replay", str(wrapped), "--registry", str(registry), "--now", str(now)],
        capture_output=True,
        check=True,
    )
    vk_rows = [orjson.loads(line) for line in vk_only.stdout.splitlines()]
    assert vk_rows and vk_rows == [row for row in rows.values() if row["page"].startswith("vk:")]
