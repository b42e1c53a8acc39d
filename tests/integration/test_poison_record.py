"""One poison record in a batch of otklik.raw costs that record, never the rest of its batch (issue 19,
finding 2; docs/data-flow.md, "Bounded input").

The issue's case: 400 records in ``otklik.raw`` before the worker starts (so that they come in one
batch), the 200th with ``received_at`` 1e20. The normalizer used to build an interaction the encoder
could not write, outside the agent's ``try``: faust restarted the agent and committed the batch's
offsets, and the 199 records after the poison were lost without a trace.
"""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request

import orjson
import pytest

from otklik.schemas.records import RawEnvelope
from tests.reliability.conftest import consume, create_topics, metric_sum, produce, produce_many, run, wait_for

pytestmark = pytest.mark.integration

GROUP = 200000919
RECORDS = 400
POISON_AT = 200  # its position in the batch, counted from 1


def comment(n: int, received_at: float) -> tuple[bytes, bytes]:
    body = {
        "type": "wall_reply_new",
        "group_id": GROUP,
        "event_id": f"p{n}",
        "v": "5.199",
        "object": {"id": n, "from_id": 5000 + n, "date": int(received_at), "text": f"Вопрос {n}", "post_id": 1},
    }
    return f"vk:{GROUP}".encode(), RawEnvelope("vk", "test", received_at, body).to_json()


def test_a_poison_record_costs_itself_alone(worker_factory, kafka) -> None:
    worker = worker_factory(OTKLIK_AGENTS="normalize")
    create_topics(worker)
    now = time.time()
    records = [comment(n, now - 60) for n in range(1, RECORDS + 1)]
    key, _ = records[POISON_AT - 1]
    records[POISON_AT - 1] = (
        key,
        orjson.dumps({"platform": "vk", "source": "test", "received_at": 1e20, "body": orjson.loads(_)["body"]}),
    )
    run(produce_many(kafka, worker.topic("otklik.raw"), records))
    worker.start()

    out = run(consume(kafka, worker.topic("otklik.interactions"), expect=RECORDS - 1, timeout=60))
    items = sorted(int(orjson.loads(m.value)["item"].rsplit(":", 1)[1]) for m in out)
    assert items == [n for n in range(1, RECORDS + 1) if n != POISON_AT]

    dead = run(consume(kafka, worker.topic("otklik.dead-letters"), expect=1, timeout=30))
    assert len(dead) == 1
    letter = orjson.loads(dead[0].value)
    assert letter["stage"] == "decode" and letter["offset"] == POISON_AT - 1
    assert letter["reason"].startswith("envelope.received_at: 1e+20 is after the receiving clock")
    text = worker.metrics()
    assert metric_sum(text, "otklik_dead_letters_total") == 1
    assert metric_sum(text, "otklik_interactions_total") == RECORDS - 1
    assert worker.proc is not None and worker.proc.poll() is None


def test_a_correction_dated_beyond_the_clock_is_refused_and_costs_nothing(worker_factory, kafka, tmp_path) -> None:
    """A correction's time goes into its page's state: one of 1e20 could never be saved again, and
    every later save of the page failed with it. The API refuses it (400) and the worker dead-letters
    one written straight to otklik.overrides; the page's state keeps being saved."""
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"defaults:\n  timezone: Europe/Moscow\npages:\n  - id: vk:{GROUP}\n")
    token = secrets.token_urlsafe(32)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{token} Петрова (ЦУР)\n")
    worker = worker_factory(registry, OTKLIK_AGENTS="normalize,responses", OTKLIK_API_TOKENS=str(tokens))
    worker.start()
    item = f"vk:{GROUP}:wall:1:1"
    poison = {"needs_answer": False, "by": "Петрова (ЦУР)", "note": "спам", "requested_at": 1e20}
    request = urllib.request.Request(
        f"{worker.web}/api/items/{item}/override",
        method="POST",
        data=orjson.dumps(poison),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400 and b"requested_at: 1e+20 is after the receiving clock" in refused.value.read()

    run(
        produce(
            kafka, worker.topic("otklik.overrides"), [(f"vk:{GROUP}".encode(), orjson.dumps({**poison, "item": item}))]
        )
    )
    dead = run(consume(kafka, worker.topic("otklik.dead-letters"), expect=1, timeout=30))
    letters = [orjson.loads(m.value) for m in dead]
    assert [letter["stage"] for letter in letters] == ["overrides"]
    assert letters[0]["reason"].startswith("requested_at: 1e+20 is after the receiving clock")
    # The page's state is saved after the next batch, as before the correction: nothing saved it yet.
    run(produce(kafka, worker.topic("otklik.raw"), [comment(1, time.time() - 60)]))
    saved = run(consume(kafka, worker.env["OTKLIK_APP_ID"] + "-pages-changelog", expect=1, timeout=30))
    assert saved
    assert "Crashed" not in worker.log_tail(500)


def test_an_interaction_dated_after_the_year_9999_is_refused_and_its_page_answers(
    worker_factory, kafka, tmp_path
) -> None:
    """Finding 6: such an item, once held, made /api/pages/PAGE/open-items answer 500 for its page.
    Any producer may write otklik.interactions: the responses agent bounds its times as the normalizer
    does, and the page's open items are read as before."""
    import msgspec

    from otklik.schemas.records import Interaction

    registry = tmp_path / "registry.yaml"
    registry.write_text(f"defaults:\n  timezone: Europe/Moscow\npages:\n  - id: vk:{GROUP}\n")
    worker = worker_factory(registry, OTKLIK_AGENTS="normalize,responses")
    worker.start()
    now = int(time.time())
    page = f"vk:{GROUP}"

    def interaction(cid: int, created_at: int) -> tuple[bytes, bytes]:
        item = f"{page}:wall:1:{cid}"
        ia = Interaction(
            "vk", page, "new", "wall", f"{page}:wall:1", item, cid, now, f"i{cid}", created_at, "vk:user:9", item
        )
        ia = msgspec.structs.replace(ia, text="Когда починят фонарь у дома?")
        return page.encode(), ia.to_json()

    # The good item first, alone: once it is open, the page's answer is known to work.
    run(produce(kafka, worker.topic("otklik.interactions"), [interaction(1, now - 60)]))
    wait_for("the first item open", lambda: open_items(worker, page) == [f"{page}:wall:1:1"], 30, worker)
    run(produce(kafka, worker.topic("otklik.interactions"), [interaction(2, 253402300800), interaction(3, now - 30)]))
    # The third comes after the bad one in the same partition: once it is open, the bad one was read.
    wait_for("the third item open", lambda: len(open_items(worker, page)) == 2, 30, worker)
    assert open_items(worker, page) == [f"{page}:wall:1:1", f"{page}:wall:1:3"]

    dead = run(consume(kafka, worker.topic("otklik.dead-letters"), expect=1, timeout=30))
    letters = [orjson.loads(m.value) for m in dead]
    assert [letter["stage"] for letter in letters] == ["responses"]
    assert letters[0]["reason"].startswith("created_at: 253402300800 is after received_at")


def open_items(worker, page: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The page's open items by the read API, which must answer 200."""
    with urllib.request.urlopen(f"{worker.web}/api/pages/{page}/open-items", timeout=10) as resp:
        assert resp.status == 200
        return [row["item"] for row in orjson.loads(resp.read())["items"]]
