"""Reliability scenario 4: 5,000 fuzzed requests to the gateway on the real broker (issue 19, finding 5).

A seeded generator mixes valid events with truncated JSON, wrong types, huge strings, nesting of every
depth up to the JSON parser's limit (1,024), invalid UTF-8, wrong and missing secrets, unknown
communities and event types, times out of range, bodies just under the size limit and 2 MB ones, on
all three webhooks.
What must hold: no answer of 5xx but the documented 503 (Kafka unavailable, with ``Retry-After``),
and a 503'd event is accepted once redelivered; nothing with a wrong secret is produced; every event
answered ``ok`` is in ``otklik.raw`` exactly once; the gateway is healthy afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from otklik.streams.edge.gateway import Gateway
from otklik.streams.edge.secrets import Secrets, VkCommunity
from otklik.streams.settings import GatewaySettings, WorkerSettings
from otklik.streams.worker.topics import ensure_topics
from tests.conftest import free_port
from tests.reliability.gateway_helpers import probe, read_event_ids

pytestmark = pytest.mark.integration

SEED = 19
REQUESTS = 5_000
PARSER_DEPTH_LIMIT = 1024  # orjson refuses deeper input as not JSON
GROUP, SECRET = 410041, "fuzz-secret-410041"
UNCONFIGURED_GROUP = 410042
TG_TOKEN, MAX_SECRET = "fuzz-tg-token", "fuzz-max-secret"
MAX_BODY = 1 << 20
WALL_REPLY = (Path(__file__).resolve().parent.parent / "fixtures" / "vk" / "wall_reply_new.json").read_bytes()


@dataclass
class Case:
    kind: str
    path: str
    data: bytes
    headers: dict[str, str]
    event_id: str | None = None  # set when the body carries the right secret and may be accepted
    expect: tuple[int, ...] = ()  # the only statuses allowed besides the documented 503; () = any 2xx/4xx


def vk(event_id: str, /, **over: object) -> dict:
    body = {
        "type": "wall_reply_new",
        "group_id": GROUP,
        "event_id": event_id,
        "v": "5.199",
        "secret": SECRET,
        "object": {"id": 1, "from_id": 5001, "date": 1764000000, "text": "Когда починят?", "post_id": 88},
    }
    body.update(over)
    return body


def nested_body(event_id: str, depth: int) -> bytes:
    """A VK event whose object holds ``depth`` nested arrays (by hand: orjson cannot write them)."""
    inner = b"[" * depth + b"1" + b"]" * depth
    return b'{"type":"wall_reply_new","group_id":%d,"event_id":"%s","v":"5.199","secret":"%s","object":{"a":%s}}' % (
        GROUP,
        event_id.encode(),
        SECRET.encode(),
        inner,
    )


WRONG_VALUES: tuple[object, ...] = (None, True, 0, -1, 2**70, 1.5, "", "x" * 300, [], [1, "a"], {}, {"k": None})


def cases(rng: random.Random) -> Iterator[Case]:
    json_headers = {"Content-Type": "application/json"}
    depths = list(range(1, PARSER_DEPTH_LIMIT + 3))  # every depth, and two past the parser's limit
    rng.shuffle(depths)
    kinds = (
        ["valid"] * 8
        + ["truncated"] * 6
        + ["wrong_type"] * 8
        + ["huge_string"] * 2
        + ["invalid_utf8"] * 5
        + ["wrong_secret"] * 6
        + ["missing_secret"] * 2
        + ["unknown_community"] * 2
        + ["unknown_type"] * 3
        + ["bad_time"] * 3
        + ["not_object"] * 2
        + ["garbage"] * 2
        + ["two_megabytes"]
        + ["near_limit"]
        + ["tg"] * 2
        + ["max"] * 2
    )
    for n in range(REQUESTS):
        event_id = f"fz-{n:05d}"
        kind = "nesting" if depths and n % 4 == 0 else rng.choice(kinds)
        if kind == "nesting":
            depth = depths.pop()
            # The body's object and "object" are two levels; the parser takes 1,024 in all.
            accepted = depth + 2 <= PARSER_DEPTH_LIMIT
            yield Case(
                f"nesting_{depth}",
                "/vk/callback",
                nested_body(event_id, depth),
                json_headers,
                event_id if accepted else None,
                () if accepted else (400,),
            )
        elif kind == "valid":
            yield Case(kind, "/vk/callback", orjson.dumps(vk(event_id)), json_headers, event_id, (200,))
        elif kind == "truncated":
            raw = orjson.dumps(vk(event_id))
            yield Case(kind, "/vk/callback", raw[: rng.randrange(0, len(raw) - 1)], json_headers, None, (400,))
        elif kind == "wrong_type":
            field = rng.choice(["type", "group_id", "event_id", "v", "object", "secret"])
            value = rng.choice([v for v in WRONG_VALUES if type(v) is not type(vk("")[field])])
            body = vk(event_id, **{field: value})
            # A wrong secret is a wrong secret whatever its type: 403; the rest are 400.
            raw = json.dumps(body, ensure_ascii=False).encode()  # orjson cannot write 2**70
            yield Case(f"wrong_type_{field}", "/vk/callback", raw, json_headers, None, (400, 403))
        elif kind == "huge_string":
            size = rng.randrange(10_000, 900_000)
            where = rng.choice(["text", "event_id", "type"])
            if where == "text":
                body = vk(event_id, object={"id": 1, "text": "ы" * (size // 2)})
                yield Case("huge_text", "/vk/callback", orjson.dumps(body), json_headers, event_id, (200,))
            else:
                body = vk(event_id, **{where: "z" * size})
                yield Case(f"huge_{where}", "/vk/callback", orjson.dumps(body), json_headers, None, (400,))
        elif kind == "invalid_utf8":
            raw = orjson.dumps(vk(event_id, object={"id": 1, "text": "@@@@"}))
            bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
            yield Case(kind, "/vk/callback", raw.replace(b"@@@@", bad), json_headers, None, (400,))
        elif kind == "wrong_secret":
            body = vk(event_id, secret=rng.choice(["", SECRET + "x", SECRET[:-1], SECRET.upper(), "секрет"]))
            yield Case(kind, "/vk/callback", orjson.dumps(body), json_headers, None, (403,))
        elif kind == "missing_secret":
            body = vk(event_id)
            del body["secret"]
            yield Case(kind, "/vk/callback", orjson.dumps(body), json_headers, None, (403,))
        elif kind == "unknown_community":
            body = vk(event_id, group_id=rng.choice([UNCONFIGURED_GROUP, 1, 2**62]))
            yield Case(kind, "/vk/callback", orjson.dumps(body), json_headers, None, (403,))
        elif kind == "unknown_type":
            body = vk(event_id, type=rng.choice(["zzz_new_event", "wall_post_new_v2", "Ω", "x" * 64]))
            yield Case(kind, "/vk/callback", orjson.dumps(body), json_headers, event_id, (200,))
        elif kind == "bad_time":
            # Zero, before 2006, milliseconds, centuries ahead: the worker would dead-letter it; refused here.
            body = orjson.loads(WALL_REPLY)
            body.update(group_id=GROUP, secret=SECRET, event_id=event_id)
            body["object"]["date"] = rng.choice([0, 1_000_000_000, 1_764_000_000_000, 7_258_118_400])
            yield Case(kind, "/vk/callback", orjson.dumps(body), json_headers, None, (400,))
        elif kind == "not_object":
            raw = rng.choice([b"[]", b"[1,2]", b"42", b'"ok"', b"null", b"true", b"1e999"])
            yield Case(kind, "/vk/callback", raw, json_headers, None, (400,))
        elif kind == "garbage":
            raw = rng.randbytes(rng.randrange(1, 4000))
            yield Case(kind, rng.choice(["/vk/callback", "/tg/webhook", "/max/webhook"]), raw, {}, None, ())
        elif kind == "two_megabytes":
            body = vk(event_id, object={"id": 1, "text": "a" * (2 * 1024 * 1024)})
            yield Case(kind, "/vk/callback", orjson.dumps(body), json_headers, None, (413,))
        elif kind == "near_limit":
            # Under the gateway's body limit, over what one Kafka record may hold with its envelope.
            filler = MAX_BODY - len(orjson.dumps(vk(event_id, object={"id": 1, "text": ""}))) - rng.randrange(0, 40)
            body = vk(event_id, object={"id": 1, "text": "b" * filler})
            yield Case(kind, "/vk/callback", orjson.dumps(body), json_headers, None, (413,))
        elif kind == "tg":
            update = {"update_id": n, "message": {"message_id": n, "chat": {"id": -100123}, "date": 1764000000}}
            right = rng.random() < 0.5
            headers = {"X-Telegram-Bot-Api-Secret-Token": TG_TOKEN if right else "nope"}
            yield Case(f"tg_{right}", "/tg/webhook", orjson.dumps(update), headers, None, (200,) if right else (403,))
        else:
            update = {"update_type": "message_created", "timestamp": 1764000000000 + n, "message_id": event_id}
            right = rng.random() < 0.5
            headers = {"X-Max-Bot-Api-Secret": MAX_SECRET if right else "nope"}
            yield Case(f"max_{right}", "/max/webhook", orjson.dumps(update), headers, None, (200,) if right else (403,))


async def test_five_thousand_fuzzed_requests_get_no_5xx_but_the_documented_503(kafka: str):
    prefix = f"fuzz-{uuid.uuid4().hex[:10]}."
    await ensure_topics(WorkerSettings(broker=f"kafka://{kafka}", topic_prefix=prefix, partitions=2))
    port = free_port()
    config = GatewaySettings(broker=f"kafka://{kafka}", topic_prefix=prefix, port=port, retry_after_s=1)
    secrets = Secrets(
        vk={GROUP: VkCommunity(GROUP, secret=SECRET), UNCONFIGURED_GROUP: VkCommunity(UNCONFIGURED_GROUP)},
        tg_secret_token=TG_TOKEN,
        max_secret=MAX_SECRET,
    )
    gateway = Gateway(config, secrets)
    runner = web.AppRunner(gateway.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    statuses: collections.Counter[int] = collections.Counter()
    unexpected: list[tuple[str, int, str]] = []
    accepted: collections.Counter[str] = collections.Counter()
    refused = 0
    try:
        assert await gateway.wait_ready(30), "the gateway's producer did not connect"
        all_cases = list(cases(random.Random(SEED)))
        assert len(all_cases) == REQUESTS
        connections = asyncio.Semaphore(8)

        async def send(session: aiohttp.ClientSession, case: Case) -> None:
            nonlocal refused
            for _attempt in range(30):  # a 503 is redelivered, as VK would
                async with connections:
                    async with session.post(base + case.path, data=case.data, headers=case.headers) as resp:
                        status, text = resp.status, await resp.text()
                        retry_after = resp.headers.get("Retry-After")
                statuses[status] += 1
                if status == 503 and retry_after and "retry later" in text:
                    refused += 1
                    await asyncio.sleep(1)
                    continue
                if status >= 500 or (case.expect and status not in case.expect):
                    unexpected.append((case.kind, status, text[:160]))
                elif status == 200 and case.event_id is not None:
                    accepted[case.event_id] += 1
                return
            unexpected.append((case.kind, 503, "still 503 after 30 deliveries"))

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            await asyncio.gather(*(send(session, case) for case in all_cases))
            after = await probe(session, base)
        produced = await read_event_ids(kafka, config.topic("raw"))
    finally:
        await runner.cleanup()

    by_kind = collections.Counter(case.kind.split("_")[0] for case in all_cases)
    print(
        f"\nscenario 4: {REQUESTS} requests {dict(by_kind)}; answers {dict(sorted(statuses.items()))}; 503s {refused}"
    )
    assert not unexpected, f"{len(unexpected)} unexpected answers, e.g. {unexpected[:8]}"
    assert not [s for s in statuses if s >= 500 and s != 503]
    may_land = {case.event_id for case in all_cases if case.event_id is not None}
    vk_produced = collections.Counter(e for e in produced if e is not None and e.startswith("fz-"))
    assert set(vk_produced) <= may_land, "an event without the right secret was produced"
    assert all(n == 1 for n in vk_produced.values()), "an event is in otklik.raw more than once"
    assert set(vk_produced) == set(accepted), "an event answered ok is missing from otklik.raw"
    assert len(accepted) > 500
    assert after == (200, 1.0), f"/health and the ready metric after the fuzzing: {after}"
