"""The catch-up service's watch without a broker (streams/edge/watch.py): what counts as a community's
event, and what a round does with managers due and silences."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from otklik.agents.ingest.watch_rules import ManagersDue, SilenceRule, SilenceWatch
from otklik.schemas.records import Gap, RawEnvelope
from otklik.streams.edge.gaps import GapWriter
from otklik.streams.edge.watch import Watch

TOKENS = {1, 2}


def envelope(group_id: object, at: float, source: str = "vk-callback", platform: str = "vk") -> bytes:
    return RawEnvelope(platform, source, at, {"type": "wall_reply_new", "group_id": group_id}).to_json()  # type: ignore[arg-type]


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.synced: list[list[int]] = []
        self.fail = fail

    async def send(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, value, key))

    async def sync(self, groups: list[int]) -> dict[int, str]:
        self.synced.append(groups)
        if self.fail:
            raise ConnectionError("the broker is away")
        return {g: ("no community token" if g == 2 else "3 managers") for g in groups}


def make(recorder: Recorder, state: Path | None = None, rule: SilenceRule | None = None) -> Watch:
    return Watch(
        SilenceWatch(rule or SilenceRule()),
        ManagersDue(every_s=6 * 3600, retry_s=900),
        recorder.sync,
        GapWriter(recorder.send, "otklik.gaps", "catchup"),
        lambda g: g in TOKENS,
        state,
    )


def test_only_vk_events_received_at_the_edge_count() -> None:
    watch = make(Recorder())
    watch.event(envelope(1, 100.0))
    watch.event(envelope(3, 100.0))  # no token: its rate is learned, its managers cannot be read
    watch.event(envelope(1, 200.0, source="vk-api"))  # found late by catch-up: not a sign of life now
    watch.event(envelope(4, 100.0, platform="tg"))
    watch.event(envelope("x", 100.0))
    watch.event(b"not json")
    watch.event(None)
    assert watch.events == 2
    assert set(watch.silence.communities) == {"vk:1", "vk:3"}
    assert watch.silence.communities["vk:1"].quiet_since == 100.0
    assert watch.managers.known == {"vk:1"}


def test_a_round_reads_the_managers_due_and_retries_those_without_a_list_later() -> None:
    recorder = Recorder()
    watch = make(recorder)
    watch.managers.seen("vk:2")
    watch.event(envelope(1, 100.0))
    asyncio.run(watch.round(1000.0, judge_silence=True))
    assert recorder.synced == [[1, 2]]
    asyncio.run(watch.round(1100.0, judge_silence=True))
    assert len(recorder.synced) == 1  # nothing due yet
    asyncio.run(watch.round(1000.0 + 900, judge_silence=True))
    assert recorder.synced[1] == [2]  # the one without a list, after the retry pause
    asyncio.run(watch.round(1000.0 + 6 * 3600, judge_silence=True))
    assert recorder.synced[2] == [2, 1]  # still none for vk:2, so it comes first


def test_a_failed_round_of_managers_is_tried_again_after_the_pause() -> None:
    recorder = Recorder(fail=True)
    watch = make(recorder)
    watch.event(envelope(1, 100.0))
    asyncio.run(watch.round(1000.0, judge_silence=False))
    asyncio.run(watch.round(1500.0, judge_silence=False))
    recorder.fail = False
    asyncio.run(watch.round(1900.0, judge_silence=False))
    assert recorder.synced == [[1], [1]]


def test_a_silence_is_written_as_a_gap_only_when_the_watch_is_caught_up(tmp_path: Path) -> None:
    recorder = Recorder()
    state = tmp_path / "watch.json"
    watch = make(recorder, state, SilenceRule(expected=8, floor_s=1800))
    start = 1_796_000_000.0
    for k in range(9 * 24 * 60):  # an event a minute for nine days
        watch.event(envelope(3, start + 60 * k))
    last = start + 60 * (9 * 24 * 60 - 1)
    asyncio.run(watch.round(last + 3600, judge_silence=False))
    assert [t for t, _, _ in recorder.sent] == []
    asyncio.run(watch.round(last + 3600, judge_silence=True))
    [(topic, value, key)] = recorder.sent
    gap = Gap.from_json(value)
    assert (topic, key, gap.community, gap.why, gap.detected_by) == (
        "otklik.gaps",
        b"vk:3",
        "vk:3",
        "silent",
        "catchup",
    )
    assert (gap.since, gap.until) == (int(last), int(last + 3600) + 1)

    watch.save()
    again = make(Recorder(), state)
    again.load()
    assert again.silence.state() == orjson.loads(state.read_bytes())["silence"]
    state.write_bytes(b"{broken")
    broken = make(Recorder(), state)
    broken.load()  # logged, and learned anew
    assert broken.silence.communities == {}
