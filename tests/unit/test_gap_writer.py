"""GapWriter: which windows become otklik.gaps records (docs/data-flow.md, "Gaps and catch-up")."""

from __future__ import annotations

from otklik.schemas.records import Gap
from otklik.streams.edge.gaps import GapWriter


async def test_a_gap_within_one_second_is_recorded_and_a_reversed_one_is_not() -> None:
    sent: list[tuple[str, bytes, bytes]] = []

    async def send(topic: str, value: bytes, key: bytes) -> None:
        sent.append((topic, value, key))

    writer = GapWriter(send, "otklik.gaps", "gateway")
    quick = await writer.write("vk:5", 1_790_000_000.2, 1_790_000_000.7, "gateway-restart")
    assert quick == Gap("vk:5", 1_790_000_000, 1_790_000_001, "gateway-restart", "gateway")
    assert await writer.write("vk:5", 1_790_000_010.0, 1_790_000_009.0, "gateway-restart") is None
    assert [(topic, key) for topic, _, key in sent] == [("otklik.gaps", b"vk:5")]
    assert Gap.from_json(sent[0][1]) == quick and writer.written == 1
