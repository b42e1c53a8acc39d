"""Reliability scenario 5: 5,000 malformed records straight into ``otklik.raw``, in the middle of a burst
of valid ones, on the real worker (issue 19, findings 2 and 6; docs/data-flow.md, "Bounded input").

First the bystanders: a few open comments on pages of their own, which no valid record of the burst
names. Then the burst: valid comments (every other one answered by its page) on other pages, with
5,000 bad records shuffled into its middle — times out of range, in the future and in milliseconds,
huge integers, bad types, bad JSON, invalid UTF-8, deep nesting — most of them naming the bystander
pages. What must hold: each bad record is one dead letter whose reason names what is wrong; every valid
record becomes its interaction and is judged (the unanswered ones are exactly the valid pages' open
items); the bystanders' open items are the same as before, no record of theirs is written, and the
read API answers for every page; the worker never restarts an agent.
"""

from __future__ import annotations

import random
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from otklik.schemas.records import RawEnvelope
from tests.reliability.conftest import consume, metric_sum, produce_many, run, scrape, wait_for

pytestmark = pytest.mark.integration

SEED = 5
BAD = 5_000
VALID = 16_000  # comments and answers on the busy pages, around the bad records
BUSY = tuple(range(510001, 510011))  # pages of the valid burst
BYSTANDERS = tuple(range(520001, 520011))  # pages holding open items before the burst
BYSTANDER_ITEMS = 5  # open comments on each bystander page

REGISTRY = "\n".join(
    [
        "defaults:",
        "  timezone: Europe/Moscow",
        "  calendar: none",
        '  schedule: {mon-sun: "00:00-24:00"}',
        '  deadline: "24h calendar"  # nothing falls due while the test runs',
        "pages:",
        *[f"  - id: vk:{g}\n    title: Страница {g}" for g in BUSY + BYSTANDERS],
    ]
)


def body(group: int, event_id: str, obj: dict) -> dict:
    obj.setdefault("post_id", 1)
    obj.setdefault("owner_id", -group)
    return {"type": "wall_reply_new", "group_id": group, "event_id": event_id, "v": "5.199", "object": obj}


def comment(group: int, cid: int, date: int, text: str = "Когда уберут снег во дворе?") -> dict:
    return body(group, f"c{group}-{cid}", {"id": cid, "from_id": 700000 + cid, "date": date, "text": text})


def envelope(group: int, received_at: float, payload: dict) -> tuple[bytes, bytes]:
    return f"vk:{group}".encode(), RawEnvelope("vk", "vk-callback", received_at, payload).to_json()


def valid_burst(now: int) -> tuple[list[tuple[bytes, bytes]], set[str], set[str]]:
    """(records, every item, the items left unanswered) of the valid burst."""
    records: list[tuple[bytes, bytes]] = []
    items: set[str] = set()
    unanswered: set[str] = set()
    n = 0
    while len(records) < VALID:
        group = BUSY[n % len(BUSY)]
        cid = 2 * n + 1
        created = now - 120
        records.append(envelope(group, now, comment(group, cid, created)))
        item = f"vk:{group}:wall:1:{cid}"
        items.add(item)
        if (n // len(BUSY)) % 2:  # every other comment of each page
            unanswered.add(item)
        else:
            reply = {
                "id": cid + 1,
                "from_id": -group,
                "date": created + 60,
                "text": "Направили заявку в управляющую компанию.",
                "reply_to_comment": cid,
                "reply_to_user": 700000 + cid,
                "parents_stack": [cid],
            }
            records.append(envelope(group, now, body(group, f"r{group}-{cid}", reply)))
            items.add(f"vk:{group}:wall:1:{cid + 1}")
        n += 1
    return records, items, unanswered


def nested_text(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def raw_text(received_at: str, body_text: bytes, source: str) -> bytes:
    """An envelope written by hand: values no encoder writes (huge literals, deep nesting)."""
    head = f'{{"platform":"vk","source":"{source}","received_at":{received_at},"body":'.encode()
    return head + body_text + b"}"


# Each kind of bad record: (what it is, the reason's expected words, build(group, n, now) -> value).
Build = Callable[[int, int, int], bytes]


def _env(received_at: object, payload: object, n: int) -> bytes:
    return orjson.dumps({"platform": "vk", "source": f"bad-{n}", "received_at": received_at, "body": payload})


KINDS: list[tuple[str, str, Build]] = [
    (
        "received_at before 2006",
        "envelope.received_at: 1000 is before 2006",
        lambda g, n, t: _env(1000, comment(g, n, t), n),
    ),
    (
        "received_at 400 days ahead",
        "is after the receiving clock",
        lambda g, n, t: _env(t + 400 * 86400, comment(g, n, t), n),
    ),
    ("received_at in milliseconds", "milliseconds?", lambda g, n, t: _env(t * 1000, comment(g, n, t), n)),
    ("received_at 1e20", "envelope.received_at: 1e+20 is after", lambda g, n, t: _env(1e20, comment(g, n, t), n)),
    (
        "received_at a 30-digit integer",
        "envelope.received_at: 1.2345678901234568e+29 is after",
        lambda g, n, t: raw_text("123456789012345678901234567890", orjson.dumps(comment(g, n, t)), f"bad-{n}"),
    ),
    (
        "received_at a string",
        "envelope.received_at: 'yesterday' is not a unix time",
        lambda g, n, t: _env("yesterday", comment(g, n, t), n),
    ),
    (
        "date in the year 10000",
        "vk object.date: 253402300800 is after received_at",
        lambda g, n, t: _env(t, comment(g, n, 253402300800), n),
    ),
    ("date in milliseconds", "by more than 300 s; milliseconds?", lambda g, n, t: _env(t, comment(g, n, t * 1000), n)),
    ("date before 2006", "vk object.date: 5 is before 2006", lambda g, n, t: _env(t, comment(g, n, 5), n)),
    (
        "comment id beyond 64 bits",
        "object.id: expected an integer within 64 bits, got 1e+23",
        lambda g, n, t: raw_text(
            str(t),
            orjson.dumps(comment(g, n, t)).replace(f'"id":{n},'.encode(), b'"id":99999999999999999999999,'),
            f"bad-{n}",
        ),
    ),
    (
        "group id a string",
        "group_id: expected a positive integer",
        lambda g, n, t: _env(t, {**comment(g, n, t), "group_id": str(g)}, n),
    ),
    ("text a number", "object.text: expected a string", lambda g, n, t: _env(t, comment(g, n, t, text=n), n)),  # type: ignore[arg-type]
    ("body a list", "envelope.body: missing or not a JSON object", lambda g, n, t: _env(t, [comment(g, n, t)], n)),
    ("truncated JSON", "not JSON", lambda g, n, t: _env(t, comment(g, n, t), n)[:-7]),
    ("invalid UTF-8", "not JSON", lambda g, n, t: _env(t, comment(g, n, t), n).replace(b"\xd0\x9a", b"\xff\xfe", 1)),
    (
        "nested 300 deep",
        "nested deeper than 253 levels",
        lambda g, n, t: raw_text(str(t), b'{"n":%d,"x":' % n + nested_text(299) + b"}", f"bad-{n}"),
    ),
    (
        "nested 1,100 deep",
        "not JSON: ",
        lambda g, n, t: raw_text(str(t), b'{"n":%d,"x":' % n + nested_text(1099) + b"}", f"bad-{n}"),
    ),
]


def test_malformed_raw_records_are_dead_letters_and_touch_nothing_else(worker_factory, kafka, tmp_path: Path) -> None:
    started = time.monotonic()
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    worker = worker_factory(registry, OTKLIK_AGENTS="normalize,responses", OTKLIK_TICK_INTERVAL="1")
    worker.start()
    raw_topic = worker.topic("otklik.raw")
    now = int(time.time())

    # The bystanders' open items, in place before the burst.
    bystander_items = {g: {f"vk:{g}:wall:1:{cid}" for cid in range(1, BYSTANDER_ITEMS + 1)} for g in BYSTANDERS}
    run(
        produce_many(
            kafka,
            raw_topic,
            (
                envelope(g, now - 300, comment(g, cid, now - 300))
                for g in BYSTANDERS
                for cid in range(1, BYSTANDER_ITEMS + 1)
            ),
        )
    )
    wait_for(
        "the bystanders' items open",
        lambda: all(open_items(worker, g) == bystander_items[g] for g in BYSTANDERS),
        timeout=60,
        worker=worker,
    )

    # The burst: valid records, with the bad ones shuffled into its middle.
    valid, items, unanswered = valid_burst(now)
    rng = random.Random(SEED)
    bad: list[tuple[bytes, bytes]] = []
    expected: dict[str, tuple[str, str]] = {}  # the dead letter's input -> (kind, the reason's words)
    for n in range(BAD):
        kind, words, build = KINDS[n % len(KINDS)]
        group = rng.choice(BYSTANDERS) if n % 4 else rng.choice(BUSY)  # most name a bystander page
        value = build(group, 10_000 + n, now)
        bad.append((f"vk:{group}".encode(), value))
        expected[value.decode("utf-8", errors="replace")] = (kind, words)
    assert len(expected) == BAD  # each bad record is told apart by its input
    middle = valid[VALID // 4 : 3 * VALID // 4] + bad
    rng.shuffle(middle)
    burst = valid[: VALID // 4] + middle + valid[3 * VALID // 4 :]
    run(produce_many(kafka, raw_topic, burst))
    produced = time.monotonic()

    # Each bad record: one dead letter naming what is wrong.
    dead = run(consume(kafka, worker.topic("otklik.dead-letters"), expect=BAD, timeout=90))
    letters = [orjson.loads(m.value) for m in dead]
    wrong = [
        (expected.get(letter["input"], ("unknown input", ""))[0], letter["reason"])
        for letter in letters
        if letter["input"] not in expected or expected[letter["input"]][1] not in letter["reason"]
    ]
    assert not wrong, f"{len(wrong)} dead letters without the expected reason, e.g. {wrong[:5]}"
    assert len(letters) == BAD and len({letter["input"] for letter in letters}) == BAD
    kinds = Counter(expected[letter["input"]][0] for letter in letters)
    assert set(kinds) == {kind for kind, _, _ in KINDS}

    # Every valid record: its interaction, and judged.
    out = run(
        consume(kafka, worker.topic("otklik.interactions"), expect=len(items) + len(BYSTANDERS) * BYSTANDER_ITEMS)
    )
    seen = Counter(orjson.loads(m.value)["item"] for m in out)
    assert set(seen) == items | set().union(*bystander_items.values())
    assert all(count == 1 for count in seen.values())
    judged: dict[str, set[str]] = {}

    def all_judged() -> bool:
        judged["open"] = set().union(*(open_items(worker, g) for g in BUSY))
        return judged["open"] == unanswered

    try:
        wait_for("the valid pages judged", all_judged, timeout=60, worker=worker)
    finally:
        extra, missing = judged.get("open", set()) - unanswered, unanswered - judged.get("open", set())
        if extra or missing:  # say which, when it fails
            print(
                f"\nopen but answered: {len(extra)} {sorted(extra)[:3]}; unanswered not open: {len(missing)} {sorted(missing)[:3]}"
            )
    done = time.monotonic()

    # Nothing else touched: the bystanders' open items as before, no record of any page written.
    for g in BYSTANDERS:
        assert open_items(worker, g) == bystander_items[g]
    responses = run(consume(kafka, worker.topic("otklik.responses"), expect=1, timeout=3))
    assert responses == []  # nothing closed or fell due: answers settle after the late window
    text = scrape(worker)
    assert metric_sum(text, "otklik_dead_letters_total") == BAD
    assert worker.proc is not None and worker.proc.poll() is None
    assert "crashed" not in worker.log_tail(2000).lower()
    print(
        f"\nmalformed raw: {len(burst)} records ({BAD} bad, {len(burst) - BAD} valid), {len(letters)} dead letters "
        f"of {len(kinds)} kinds, {len(items) - (len(seen) - len(BYSTANDERS) * BYSTANDER_ITEMS)} valid lost; "
        f"burst produced in {produced - started:.0f}s from the start, all checked {done - produced:.0f}s after"
    )


def open_items(worker, group: int) -> set[str]:  # type: ignore[no-untyped-def]
    """The page's open items by the worker's read API, which must answer 200 for every page."""
    with urllib.request.urlopen(f"{worker.web}/api/pages/vk:{group}/open-items?limit=1000", timeout=10) as resp:
        assert resp.status == 200
        data = orjson.loads(resp.read())
    return {row["item"] for row in data["items"]}
