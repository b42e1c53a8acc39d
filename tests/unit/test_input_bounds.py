"""Bounded input (docs/data-flow.md, "Bounded input"; issue 19, findings 2 and 6): times out of range,
integers beyond 64 bits and nesting the encoder cannot write are rejected with a reason, at each edge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from otklik.agents.ingest.bounds import (
    EARLIEST_S,
    LATEST_S,
    MAX_AHEAD_S,
    MAX_BODY_DEPTH,
    body_problem,
    created_at_problem,
    received_at_problem,
)
from otklik.agents.ingest.envelope import (
    OutOfBounds,
    RejectedRecord,
    decode_raw,
    gateway_problem,
    interaction_problem,
    normalize_body,
    to_interactions,
)
from otklik.agents.ingest.vk import NormalizeError
from otklik.agents.registry import Registry
from otklik.agents.replay import run_replay
from otklik.agents.responses.engine import ResponseEngine
from otklik.schemas.records import Interaction

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = 1_796_400_000  # the receiving clock of these tests (2026-12-04)
TG_LINKS = {-1009876543210: -1001234567890}


def fixture(platform: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / platform / f"{name}.json").read_text())


def nested(depth: int) -> Any:
    """``depth`` levels of arrays and objects around a number."""
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def vk_comment(date: Any, group: int = 200000101, cid: int = 7) -> dict[str, Any]:
    return {
        "type": "wall_reply_new",
        "group_id": group,
        "event_id": f"e{cid}",
        "object": {"id": cid, "from_id": 5001, "date": date, "text": "Когда починят?", "post_id": 1},
    }


def nested_json(depth: int) -> bytes:
    """:func:`nested` as JSON text, written by hand: deeper than any encoder writes."""
    opens = "".join("[" if level % 2 else '{"a":' for level in reversed(range(depth)))
    closes = "".join("]" if level % 2 else "}" for level in range(depth))
    return f"{opens}1{closes}".encode()


def raw(received_at: Any, body: Any = None, platform: str = "vk") -> bytes:
    """A record of otklik.raw; ``body`` as JSON text when it is bytes."""
    body = vk_comment(NOW - 10) if body is None else body
    text = body if isinstance(body, bytes) else orjson.dumps(body)
    head = orjson.dumps({"platform": platform, "source": "test", "received_at": received_at})
    return head[:-1] + b',"body":' + text + b"}"


# ---- received_at ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [EARLIEST_S, EARLIEST_S + 0.5, NOW - 3 * 365 * 86400, NOW, NOW + MAX_AHEAD_S, NOW + MAX_AHEAD_S - 0.5],
)
def test_received_at_within_bounds_is_accepted(value: float) -> None:
    """Old records (a backlog, an archive) are fine, and so is a small skew ahead of the clock."""
    assert received_at_problem(value, NOW) is None


@pytest.mark.parametrize(
    "value, says",
    [
        (EARLIEST_S - 1, "before 2006-01-01T00:00:00Z"),
        (EARLIEST_S - 0.5, "before 2006"),
        (0, "before 2006"),
        (-5, "before 2006"),
        (NOW + MAX_AHEAD_S + 1, "after the receiving clock"),
        (NOW + 400 * 86400, "after the receiving clock"),
        (NOW * 1000, "milliseconds?"),  # Date.now() from a connector
        (NOW * 1000 + 123, "milliseconds?"),
        (1e20, "after the receiving clock"),
        (2**64, "an integer of 65 bits"),
        (2**64 - 1, "after the receiving clock"),
        pytest.param(10**5000, "an integer of 16610 bits", id="5000-digits"),  # more than Python prints
        (float("inf"), "not a unix time"),
        (float("nan"), "not a unix time"),
        (True, "not a unix time"),
        ("1796400000", "not a unix time"),
        (None, "not a unix time"),
    ],
)
def test_received_at_out_of_bounds_is_refused_with_the_reason(value: Any, says: str) -> None:
    problem = received_at_problem(value, NOW)
    assert problem is not None and says in problem


def test_without_a_receiving_clock_only_the_absolute_bounds_apply() -> None:
    """A replay has no clock: an archive of next year's test data replays, milliseconds do not."""
    assert received_at_problem(NOW + 400 * 86400) is None
    assert received_at_problem(LATEST_S) is None
    assert "after 2100-01-01" in (received_at_problem(LATEST_S + 1) or "")
    assert "milliseconds?" in (received_at_problem(NOW * 1000) or "")
    assert "before 2006" in (received_at_problem(EARLIEST_S - 1) or "")


# ---- a body's own time -----------------------------------------------------------------------------


def test_a_bodys_date_may_be_at_most_the_skew_after_its_receipt() -> None:
    assert created_at_problem(NOW + MAX_AHEAD_S, NOW) is None
    assert created_at_problem(EARLIEST_S, NOW) is None  # an edit of a very old comment
    assert "after received_at" in (created_at_problem(NOW + MAX_AHEAD_S + 1, NOW) or "")
    assert "before 2006" in (created_at_problem(EARLIEST_S - 1, NOW) or "")
    assert "milliseconds?" in (created_at_problem(NOW * 1000, NOW) or "")
    assert "after received_at" in (created_at_problem(253402300800, NOW) or "")  # year 10000


@pytest.mark.parametrize(
    "platform, body, says",
    [
        ("vk", vk_comment(NOW * 1000), "vk object.date: 1796400000000 is after received_at"),
        ("vk", vk_comment(253402300800), "vk object.date: 253402300800 is after received_at"),
        ("vk", vk_comment(NOW + MAX_AHEAD_S + 1), "vk object.date"),
        ("vk", vk_comment(1000), "vk object.date: 1000 is before 2006"),
    ],
)
def test_every_platforms_date_is_bounded_by_its_receipt(platform: str, body: dict, says: str) -> None:
    with pytest.raises(OutOfBounds, match=says):
        normalize_body(platform, body, NOW)


def test_telegram_and_max_dates_are_bounded_too() -> None:
    tg = fixture("tg", "comment")  # written at 1764061200
    assert normalize_body("tg", tg, 1764061200, TG_LINKS)
    with pytest.raises(OutOfBounds, match="tg message.date: 1764061200 is after received_at"):
        normalize_body("tg", tg, 1764061200 - MAX_AHEAD_S - 1, TG_LINKS)
    tg["message"]["date"] = 1764061200 * 1000
    with pytest.raises(OutOfBounds, match="milliseconds"):
        normalize_body("tg", tg, 1764061200, TG_LINKS)

    mx = fixture("max", "chat_message_created")  # MAX writes milliseconds: 1764061200123
    assert normalize_body("max", mx, 1764061201)
    mx["message"]["timestamp"] = 1764061200  # seconds where milliseconds belong: 1970
    with pytest.raises(OutOfBounds, match=r"max message.timestamp / 1000: 1764061 is before 2006"):
        normalize_body("max", mx, 1764061201)
    mx["message"]["timestamp"] = 1764061200 * 1000 * 1000  # microseconds
    with pytest.raises(OutOfBounds, match="after received_at"):
        normalize_body("max", mx, 1764061201)


def test_deletions_carry_no_date_and_only_their_receipt_is_bounded() -> None:
    body = fixture("vk", "wall_reply_delete")
    assert normalize_body("vk", body, NOW)
    with pytest.raises(OutOfBounds, match="received_at: 5 is before 2006"):
        normalize_body("vk", body, 5)


# ---- what the encoder can write ----------------------------------------------------------------------


def test_integers_within_64_bits_are_written_and_beyond_them_refused_by_path() -> None:
    assert body_problem({"object": {"id": 2**64 - 1, "from_id": -(2**63)}}) is None
    assert body_problem({"object": {"id": 2**64}}) == (
        "body.object.id: an integer of 65 bits, beyond the 64 bits of an integer the encoder writes"
    )
    problem = body_problem({"object": {"attachments": [1, 2, -(2**63) - 1]}}, "envelope.body")
    assert problem is not None and problem.startswith("envelope.body.object.attachments[2]: an integer of 64 bits")


def test_nesting_up_to_the_encoders_limit_is_written_and_deeper_refused() -> None:
    assert body_problem(nested(MAX_BODY_DEPTH)) is None
    problem = body_problem(nested(MAX_BODY_DEPTH + 1))
    assert problem is not None and problem.endswith(f"nested deeper than {MAX_BODY_DEPTH} levels")
    assert orjson.loads(nested_json(MAX_BODY_DEPTH)) == nested(MAX_BODY_DEPTH)
    # What the bounds promise: an accepted body is written back inside its envelope.
    orjson.dumps({"body": nested(MAX_BODY_DEPTH)})
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps({"body": nested(MAX_BODY_DEPTH + 1)})


def test_an_integer_beyond_64_bits_read_as_a_float_is_named_so() -> None:
    """orjson reads JSON integers beyond 64 bits as floats: the normalizer's reason says what they were."""
    text = orjson.dumps(vk_comment(NOW)).replace(b'"id":7,', b'"id":99999999999999999999999,')
    with pytest.raises(NormalizeError, match=r"object.id: expected an integer within 64 bits, got 1e\+23"):
        normalize_body("vk", orjson.loads(text), NOW)
    with pytest.raises(NormalizeError, match=r"object.id: expected an integer, got float"):
        normalize_body("vk", {**vk_comment(NOW), "object": {**vk_comment(NOW)["object"], "id": 7.5}}, NOW)


def test_text_that_is_not_unicode_is_refused() -> None:
    assert "not valid UTF-8" in (body_problem({"text": "\ud800"}) or "")


# ---- the worker's decode -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, says",
    [
        (raw(1e20), "envelope.received_at: 1e+20 is after the receiving clock"),  # finding 2
        (b'{"platform":"vk","source":"t","received_at":18446744073709551616,"body":{}}', "envelope.received_at"),
        (raw(NOW * 1000), "milliseconds?"),
        (raw(NOW + MAX_AHEAD_S + 1), "after the receiving clock"),
        (raw(EARLIEST_S - 1), "before 2006"),
        (raw(NOW, nested_json(MAX_BODY_DEPTH + 1)), "envelope.body"),
        (raw(NOW, nested_json(1100)), "not JSON"),  # beyond even the parser's limit
    ],
)
def test_decode_refuses_records_out_of_bounds_with_the_reason(value: bytes, says: str) -> None:
    with pytest.raises(RejectedRecord, match=r"(?s)" + says.replace("?", r"\?").replace("+", r"\+")) as caught:
        decode_raw(value, NOW)
    assert caught.value.stage == "decode"


def test_decode_accepts_the_edges_and_normalizes_them() -> None:
    for received_at in (EARLIEST_S, NOW + MAX_AHEAD_S):
        envelope = decode_raw(raw(received_at, vk_comment(received_at)), NOW)
        (ia,) = to_interactions(envelope, {})
        assert ia.received_at == ia.created_at == received_at
    assert decode_raw(raw(NOW, nested_json(MAX_BODY_DEPTH)), NOW).body == nested(MAX_BODY_DEPTH)


def test_a_date_out_of_bounds_is_a_normalize_dead_letter() -> None:
    envelope = decode_raw(raw(NOW, vk_comment(253402300800)), NOW)
    with pytest.raises(RejectedRecord, match="vk object.date: 253402300800 is after received_at") as caught:
        to_interactions(envelope, {})
    assert caught.value.stage == "normalize"


# ---- interactions from any producer, the gateway, replay ----------------------------------------------


def interaction(received_at: int, created_at: int | None) -> Interaction:
    item = f"vk:1:wall:1:{received_at}"
    return Interaction("vk", "vk:1", "new", "wall", "vk:1:wall:1", item, 1, received_at, None, created_at, "vk:user:5")


def test_interaction_records_are_bounded_as_the_normalizer_bounds_them() -> None:
    assert interaction_problem(interaction(NOW, NOW)) is None
    assert interaction_problem(interaction(NOW, None)) is None
    assert "created_at: 253402300800 is after received_at" in (
        interaction_problem(interaction(NOW, 253402300800)) or ""
    )
    assert "received_at: " in (interaction_problem(interaction(-(2**63), None)) or "")
    assert "received_at: 1796400000000 is after 2100" in (interaction_problem(interaction(NOW * 1000, NOW)) or "")


def test_the_gateway_refuses_what_the_worker_would_dead_letter_and_nothing_else() -> None:
    assert gateway_problem("vk", vk_comment(NOW - 5), NOW) is None
    assert "vk object.date" in (gateway_problem("vk", vk_comment(NOW * 1000), NOW) or "")
    assert "nested deeper" in (gateway_problem("vk", {"type": "x", "o": nested(300)}, NOW) or "")
    # Bodies otklik cannot normalize for other reasons are kept: the worker names them in a dead letter.
    assert gateway_problem("vk", {"type": "wall_reply_new"}, NOW) is None
    assert gateway_problem("ok", {"anything": 1}, NOW) is None


def test_a_replay_reports_out_of_bounds_lines_and_keeps_the_others() -> None:
    registry = Registry.from_mapping({"defaults": {"timezone": "Europe/Moscow"}, "pages": [{"id": "vk:200000101"}]})
    good = [vk_comment(NOW - 100 + i, cid=i + 1) for i in range(3)]
    lines = [
        orjson.dumps({"received_at": NOW - 100, "body": good[0]}),
        orjson.dumps({"received_at": 1e20, "body": vk_comment(NOW, cid=50)}),
        orjson.dumps({"received_at": NOW - 99, "body": good[1]}),
        orjson.dumps({"received_at": NOW, "body": vk_comment(253402300800, cid=51)}),
        raw(NOW * 1000, vk_comment(NOW, cid=52)),
        orjson.dumps({"received_at": NOW - 98, "body": good[2]}),
    ]
    errors: list[tuple[int, str]] = []
    rows = run_replay(lines, registry, on_error=lambda n, reason: errors.append((n, reason)))
    assert sorted(r["item"] for r in rows) == [f"vk:200000101:wall:1:{i}" for i in (1, 2, 3)]
    assert [n for n, _ in errors] == [2, 4, 5]
    assert "received_at" in errors[0][1] and "object.date" in errors[1][1] and "milliseconds" in errors[2][1]


def test_a_replayed_correction_out_of_bounds_is_reported_not_a_crash() -> None:
    registry = Registry.from_mapping({"defaults": {"timezone": "Europe/Moscow"}, "pages": [{"id": "vk:200000101"}]})
    correction = {"item": "vk:200000101:wall:1:1", "needs_answer": False, "by": "Петрова", "note": "спам"}
    lines = [
        orjson.dumps({"received_at": NOW, "body": vk_comment(NOW, cid=1)}),
        orjson.dumps({"received_at": 1e20, "override": correction}),
        orjson.dumps({"received_at": NOW * 1000, "override": correction}),
    ]
    errors: list[tuple[int, str]] = []
    rows = run_replay(lines, registry, on_error=lambda n, reason: errors.append((n, reason)))
    assert [(r["item"], r["outcome"]) for r in rows] == [("vk:200000101:wall:1:1", "open")]
    assert [n for n, _ in errors] == [2, 3]
    assert errors[0][1].startswith("line 2: received_at: an integer of 67 bits is after 2100")
    assert errors[1][1].endswith("milliseconds?")


# ---- the views ------------------------------------------------------------------------------------------


def test_an_item_beyond_the_clocks_calendar_fails_no_view_of_its_page() -> None:
    """Finding 6: bounded input keeps such items out; one held from before must not fail its page."""
    registry = Registry.from_mapping({"defaults": {"timezone": "Europe/Moscow"}, "pages": [{"id": "vk:1"}]})
    engine = ResponseEngine(registry.page)
    for created in (NOW - 60, 253402300800 + 100):  # now, and in the year 10000
        item = f"vk:1:wall:1:{created}"
        engine.process(
            Interaction("vk", "vk:1", "new", "wall", "vk:1:wall:1", item, 1, NOW, None, created, "vk:user:5")
        )
    views = engine.open_items("vk:1")
    assert [(v.created_at, v.due_at is None) for v in views] == [(NOW - 60, False), (253402300800 + 100, True)]
    summary = engine.summary("vk:1", NOW)  # the metrics' view
    assert summary is not None and summary.open_count == 2 and summary.oldest_created_at == NOW - 60


def test_the_normalizer_and_the_stream_clock_allow_the_same_skew() -> None:
    """A record the normalizer accepts must not be one the stream clock ignores, nor the reverse."""
    from otklik.agents.wiring import stream_clock

    assert stream_clock.MAX_AHEAD_S == MAX_AHEAD_S


def test_long_poll_skips_an_update_it_cannot_write_and_produces_the_rest(tmp_path: Path) -> None:
    """Kafka refusing its batch makes Long Poll poll the same ts again: an update the encoder cannot
    write would have stopped the community's stream for good."""
    import asyncio

    from otklik.streams.edge.longpoll import LongPollConfig, LongPollSource

    class Sink:
        def __init__(self) -> None:
            self.values: list[bytes] = []

        async def produce(self, key: str, values: list[bytes]) -> None:
            self.values += values

    sink = Sink()
    config = LongPollConfig(
        api_url="http://vk.invalid", api_version="5.199", state_dir=tmp_path, bootstrap="", topic="t"
    )
    source = LongPollSource(200000101, "token", config, sink, session=None)  # type: ignore[arg-type]
    updates = [
        vk_comment(NOW, cid=1),
        {"type": "wall_reply_new", "object": nested(MAX_BODY_DEPTH)},
        vk_comment(NOW, cid=2),
    ]
    asyncio.run(source._produce(updates))
    assert [orjson.loads(v)["body"]["object"]["id"] for v in sink.values] == [1, 2]
    assert source.unwritable == 1
