"""The normalize agent's wiring, with faust and Kafka replaced by recorders: every step of one record,
encoding its output included, fails for that record alone (issue 19, finding 2; docs/data-flow.md,
"Records"). The live check of the issue's own case is tests/integration/test_poison_record.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import orjson
import pytest

import otklik.agents.wiring.pipeline as pipeline
from otklik.schemas.records import RawEnvelope

GROUP = 200000313
RECORDS = 400
POISON_AT = 200  # counted from 1


class Recorder:
    """The worker app as the agents see it: agents registered, records sent and dead letters kept."""

    def __init__(self) -> None:
        self.agents: dict[str, Any] = {}
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.dead: list[dict[str, Any]] = []
        app = MagicMock()
        app.agent = lambda topic, **kw: lambda fn: self.agents.setdefault(kw["name"], fn)
        app.timer = lambda **kw: lambda fn: fn
        app.producer.send = self._send
        topics = MagicMock()
        topics.raw.get_topic_name.return_value = "otklik.raw"
        topics.interactions.get_topic_name.return_value = "otklik.interactions"
        topics.dead_letters.send = self._dead_letter
        settings = SimpleNamespace(agents=frozenset({"normalize"}), registry=None, tg_links={}, tick_interval_s=15)
        self.worker = SimpleNamespace(
            faust=app,
            topics=topics,
            metrics=MagicMock(),
            settings=settings,
            registry_watcher=None,
            responses_state=None,
            moderation_state=None,
            stream_time=None,
        )
        pipeline.register_agents(self.worker)

    async def _send(self, topic: str, key: bytes, value: bytes, *rest: Any) -> asyncio.Future:
        self.sent.append((topic, key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def _dead_letter(self, key: bytes | None, value: bytes) -> None:
        self.dead.append(orjson.loads(value))

    def normalize(self, values: list[bytes]) -> None:
        """Run the normalize agent on one batch of ``otklik.raw`` records."""
        events = [
            SimpleNamespace(message=SimpleNamespace(value=v, topic="otklik.raw", partition=0, offset=i, key=None))
            for i, v in enumerate(values)
        ]

        class Stream:
            async def take_events(self, n: int, within: float):  # type: ignore[no-untyped-def]
                yield events

        asyncio.run(self.agents["otklik.normalize"](Stream()))


def comments(now: float) -> list[bytes]:
    return [
        RawEnvelope(
            "vk",
            "test",
            now,
            {
                "type": "wall_reply_new",
                "group_id": GROUP,
                "event_id": f"e{n}",
                "object": {"id": n, "from_id": 5000 + n, "date": int(now), "text": "Вопрос", "post_id": 1},
            },
        ).to_json()
        for n in range(1, RECORDS + 1)
    ]


class Unwritable:
    """An interaction whose values the encoder cannot write (as one with a time of 1e20 was)."""

    platform, action, page = "vk", "new", f"vk:{GROUP}"

    def to_json(self) -> bytes:
        raise TypeError("Integer exceeds 64-bit range")


def test_an_output_that_cannot_be_encoded_costs_its_record_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    values = comments(1796400000.0)
    poison = values[POISON_AT - 1]
    real = pipeline.to_interactions

    def to_interactions(envelope, links):  # type: ignore[no-untyped-def]
        records = real(envelope, links)
        return [Unwritable()] if envelope.body["event_id"] == f"e{POISON_AT}" else records

    monkeypatch.setattr(pipeline, "to_interactions", to_interactions)
    monkeypatch.setattr(pipeline.time, "time", lambda: 1796400000.0)
    worker = Recorder()
    worker.normalize(values)

    items = [orjson.loads(value)["item"] for topic, _, value in worker.sent if topic == "otklik.interactions"]
    assert items == [f"vk:{GROUP}:wall:1:{n}" for n in range(1, RECORDS + 1) if n != POISON_AT]
    assert len(worker.dead) == 1
    (letter,) = worker.dead
    assert (letter["stage"], letter["offset"], letter["input"]) == ("normalize", POISON_AT - 1, poison.decode())
    assert letter["reason"] == "internal error: TypeError: Integer exceeds 64-bit range"


def test_a_record_out_of_bounds_is_a_dead_letter_and_the_batch_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.time, "time", lambda: 1796400000.0)
    values = comments(1796400000.0)
    values[POISON_AT - 1] = values[POISON_AT - 1].replace(b'"received_at":1796400000.0', b'"received_at":1e20')
    worker = Recorder()
    worker.normalize(values)

    sent = [v for topic, _, v in worker.sent if topic == "otklik.interactions"]
    assert len(sent) == RECORDS - 1
    assert [(d["stage"], d["offset"]) for d in worker.dead] == [("decode", POISON_AT - 1)]
    assert worker.dead[0]["reason"].startswith("envelope.received_at: 1e+20 is after the receiving clock")
