"""The gateway records gaps (docs/data-flow.md, "Gaps and catch-up"): on a restart, from the last VK event
it accepted per community before it stopped; on a confirmation request after a long silence."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from otklik.schemas.records import Gap
from tests.integration.test_gateway import GROUP, OTHER_GROUP, post, read_topic, start_gateway, vk_event

pytestmark = pytest.mark.integration


async def gaps(running) -> list[Gap]:
    topic = running.gateway.config.topic("gaps")
    return [Gap.from_json(r.value) for r in await read_topic(running.bootstrap, topic)]


async def test_a_restart_and_a_confirmation_after_silence_record_gaps(kafka: str, tmp_path: Path):
    prefix = f"gwgap-{uuid.uuid4().hex[:10]}."
    state = tmp_path / "gateway" / "last-events.json"
    first = await start_gateway(kafka, prefix, state_file=state, silence_s=600)
    async with aiohttp.ClientSession() as session:
        # Until the new topics have leaders the gateway answers 503 and VK delivers again: so does this.
        deadline, first_try = time.monotonic() + 30, int(time.time())
        while True:
            status, text, _ = await post(session, first.url + "/vk/callback", vk_event("e1"))
            if status != 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert (status, text) == (200, "ok")
        accepted_at = int(time.time())
        # A confirmation right after an event: no silence, no gap.
        status, _, _ = await post(session, first.url + "/vk/callback", {"type": "confirmation", "group_id": GROUP})
        assert status == 200
    await first.stop()
    assert await gaps(first) == []  # a first start knows no earlier event

    second = await start_gateway(kafka, prefix, state_file=state, silence_s=600)
    async with aiohttp.ClientSession() as session:
        # A community silent for longer than OTKLIK_GATEWAY_SILENCE asks for confirmation again.
        second.gateway.last_vk.seen(f"vk:{OTHER_GROUP}", time.time() - 3600)
        status, text, _ = await post(
            session, second.url + "/vk/callback", {"type": "confirmation", "group_id": OTHER_GROUP}
        )
    await second.stop()  # waits for the gaps being written
    assert (status, text) == (200, "zzz")
    recorded = await gaps(second)
    by_why = {g.why: g for g in recorded}
    assert sorted(by_why) == ["confirmation", "gateway-restart"] and len(recorded) == 2
    restart = by_why["gateway-restart"]
    assert (restart.community, restart.detected_by) == (f"vk:{GROUP}", "gateway")
    # From the last VK event the gateway saw (a refused delivery counts: the wider window is the safe one).
    assert first_try - 1 <= restart.since <= accepted_at < restart.until
    silence = by_why["confirmation"]
    assert silence.community == f"vk:{OTHER_GROUP}" and silence.until - silence.since >= 3600
