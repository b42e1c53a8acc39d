"""Telegram and MAX updates → interactions, and through the response engine's pure core (no services)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otklik.agents.ingest.envelope import RejectedRecord, to_interactions
from otklik.agents.ingest.max import normalize_max
from otklik.agents.ingest.max import page_of_update as max_page_of_update
from otklik.agents.ingest.telegram import normalize_tg, page_of_update, parse_links
from otklik.agents.ingest.vk import NormalizeError
from otklik.agents.registry import Registry
from otklik.agents.responses.engine import ResponseEngine
from otklik.schemas.records import Interaction, RawEnvelope, ResponseRecord

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CHANNEL, GROUP = -1001234567890, -1009876543210
PAGE = "tg:1001234567890"
POST = f"{PAGE}:post:410"
LINKS = {GROUP: CHANNEL}
MAX_CHAT = -68123456789
MAX_PAGE = f"max:{MAX_CHAT}"
MAX_BOT_PAGE = "max:9000123"


def tg(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "tg" / f"{name}.json").read_text())


def mx(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "max" / f"{name}.json").read_text())


def one(records: list[Interaction]) -> Interaction:
    assert len(records) == 1, records
    return records[0]


# ---- Telegram --------------------------------------------------------------------------------------


def test_a_comment_on_a_channel_post_is_an_item_of_the_channels_page():
    ia = one(normalize_tg(tg("comment"), 1764061201))
    assert (ia.platform, ia.page, ia.action, ia.object_kind) == ("tg", PAGE, "new", "wall")
    assert (ia.object_id, ia.item, ia.seq) == (POST, f"{POST}:412", 412)
    assert (ia.author, ia.created_at, ia.received_at) == ("tg:user:5550001", 1764061200, 1764061201)
    assert ia.thread_root == f"{POST}:410" and ia.reply_to_item is None and ia.reply_to_author is None
    assert ia.event_id == "tg:815000101" and ia.text.startswith("Когда отремонтируют")


def test_the_channel_is_taken_from_the_update_without_any_configuration():
    # The comment replies to the post's copy, which names the channel: no links needed.
    assert one(normalize_tg(tg("comment"), 1)).page == PAGE
    assert page_of_update(tg("comment")) == PAGE


def test_a_reply_to_a_comment_names_no_channel_so_the_configured_link_decides():
    followup = tg("followup_reply_to_own_comment")
    with pytest.raises(NormalizeError, match=r"discussion group -1009876543210 is not linked .*OTKLIK_TG_LINKS"):
        normalize_tg(followup, 1)
    assert page_of_update(followup) is None
    ia = one(normalize_tg(followup, 1, LINKS))
    assert ia.page == PAGE and ia.object_id == POST  # the same post as the comment it replies to
    assert (ia.reply_to_item, ia.reply_to_author) == (f"{POST}:412", "tg:user:5550001")
    assert ia.thread_root == f"{POST}:410"


def test_the_update_wins_over_a_stale_configured_link():
    ia = one(normalize_tg(tg("comment"), 1, {GROUP: -1005555555555}))
    assert ia.page == PAGE


def test_a_message_on_behalf_of_the_channel_is_written_by_the_page():
    reply = one(normalize_tg(tg("channel_reply"), 1, LINKS))
    assert reply.author == PAGE and reply.item == f"{POST}:420"
    assert (reply.reply_to_item, reply.reply_to_author) == (f"{POST}:415", "tg:user:5550001")
    top = one(normalize_tg(tg("channel_top_level_comment"), 1))
    assert top.author == PAGE and top.reply_to_item is None
    assert top.thread_root == top.item  # addressed to nobody: its own thread


def test_an_anonymous_group_administrator_writes_as_the_page_and_another_channel_is_not_a_person():
    update = tg("comment")
    update["message"]["sender_chat"] = {"id": GROUP, "title": "обсуждение", "type": "supergroup"}
    update["message"]["from"] = {
        "id": 1087968824,
        "is_bot": True,
        "first_name": "Group",
        "username": "GroupAnonymousBot",
    }
    assert one(normalize_tg(update, 1)).author == PAGE
    update["message"]["sender_chat"] = {"id": -1003333333333, "title": "Чужой канал", "type": "channel"}
    assert one(normalize_tg(update, 1)).author == "tg:1003333333333"


def test_edits_keep_the_original_time():
    ia = one(normalize_tg(tg("edited_comment"), 1764061600))
    assert (ia.action, ia.item, ia.created_at) == ("edit", f"{POST}:412", 1764061200)


@pytest.mark.parametrize("name", ["post_copy", "channel_post", "private_message", "general_chat_message"])
def test_updates_that_are_not_comments_give_nothing(name):
    assert normalize_tg(tg(name), 1, LINKS) == []


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda u: u.pop("update_id"), "update.update_id: missing"),
        (lambda u: u.update(update_id="1"), "update.update_id: expected an integer"),
        (lambda u: u.update(message=[]), "update.message: expected a JSON object"),
        (lambda u: u["message"].pop("chat"), "update.message.chat: missing"),
        (lambda u: u["message"].pop("date"), "update.message.date: missing"),
        (lambda u: u["message"].update(date="today"), "update.message.date: expected an integer"),
        (lambda u: u["message"].pop("from"), "update.message.from: missing"),
        (lambda u: u["message"].update(text=5), "update.message.text: expected a string"),
        (lambda u: u["message"]["reply_to_message"].pop("message_id"), "reply_to_message.message_id: missing"),
    ],
)
def test_bad_updates_name_the_field(mutate, reason):
    update = tg("comment")
    mutate(update)
    with pytest.raises(NormalizeError, match=reason.replace(".", r"\.")):
        normalize_tg(update, 1, LINKS)


def test_links_parse_and_bad_links_are_named():
    assert parse_links(" -1009876543210=-1001234567890 ; -1001=-1002 ,") == {GROUP: CHANNEL, -1001: -1002}
    with pytest.raises(ValueError, match="'oops' is not '<discussion group id>=<channel id>'"):
        parse_links("oops")


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "update_id",
                        "message",
                        "edited_message",
                        "chat",
                        "id",
                        "type",
                        "date",
                        "from",
                        "message_id",
                        "message_thread_id",
                        "reply_to_message",
                        "is_automatic_forward",
                        "sender_chat",
                        "text",
                    ]
                ),
                inner,
                max_size=6,
            )
        ),
        max_leaves=20,
    )
)
def test_any_shape_either_normalizes_or_raises_a_normalize_error(update):
    try:
        out = normalize_tg(update, 1, LINKS)
    except NormalizeError:
        return
    assert all(ia.page.startswith("tg:") for ia in out)


# ---- MAX -------------------------------------------------------------------------------------------


def test_a_citizens_message_in_a_group_chat_is_an_item():
    ia = one(normalize_max(mx("chat_message_created"), 1764061201))
    mid = "mid.0000000f3b9a1c2d019ac0a1b2c3d4e5"
    assert (ia.platform, ia.page, ia.action, ia.object_kind) == ("max", MAX_PAGE, "new", "wall")
    assert ia.object_id == f"{MAX_PAGE}:chat:{MAX_CHAT}" and ia.item == f"{ia.object_id}:{mid}"
    assert (ia.author, ia.created_at, ia.seq) == ("max:user:40001", 1764061200, 115600001000000001)
    assert ia.thread_root == ia.item and ia.reply_to_item is None
    assert max_page_of_update(mx("chat_message_created")) == MAX_PAGE


def test_a_reply_links_the_message_it_answers():
    ia = one(normalize_max(mx("chat_admin_reply"), 1))
    parent = f"{MAX_PAGE}:chat:{MAX_CHAT}:mid.0000000f3b9a1c2d019ac0a1b2c3d4e5"
    assert (ia.author, ia.reply_to_item, ia.reply_to_author, ia.thread_root) == (
        "max:user:40900",
        parent,
        "max:user:40001",
        parent,
    )


def test_removal_and_edit():
    removed = one(normalize_max(mx("chat_message_removed"), 1764062001))
    created = one(normalize_max(mx("chat_message_created"), 1))
    assert (removed.action, removed.item, removed.deleted_by, removed.created_at) == (
        "delete",
        created.item,
        "max:user:40900",
        None,
    )
    edited = one(normalize_max(mx("chat_message_edited"), 1))
    assert (edited.action, edited.item, edited.created_at) == ("edit", created.item, created.created_at)


def test_a_dialog_with_the_pages_bot():
    incoming = one(normalize_max(mx("dialog_message_created"), 1))
    assert (incoming.page, incoming.object_kind, incoming.author) == (MAX_BOT_PAGE, "dm", "max:user:40001")
    assert incoming.object_id == f"{MAX_BOT_PAGE}:dm:40001"
    outgoing = one(normalize_max(mx("dialog_bot_reply"), 1))
    assert (outgoing.page, outgoing.object_id, outgoing.author, outgoing.admin_author) == (
        MAX_BOT_PAGE,
        incoming.object_id,
        MAX_BOT_PAGE,
        None,
    )


def test_unmeasured_updates_give_nothing_and_bad_ones_name_the_field():
    assert normalize_max(mx("bot_started"), 1) == []
    update = mx("chat_message_created")
    del update["message"]["body"]["mid"]
    with pytest.raises(NormalizeError, match=r"max update\.message\.body\.mid: missing"):
        normalize_max(update, 1)
    update = mx("chat_message_created")
    update["message"]["recipient"]["chat_type"] = "group"
    with pytest.raises(NormalizeError, match="chat_type"):
        normalize_max(update, 1)
    with pytest.raises(NormalizeError, match="update_type: missing"):
        normalize_max({"timestamp": 1}, 1)


# ---- through ingest and the response engine --------------------------------------------------------


def test_ingest_dispatches_tg_and_max_and_rejects_with_the_reason(monkeypatch):
    # The links come from the caller only: the variable of the same name is not read by the core.
    monkeypatch.setenv("OTKLIK_TG_LINKS", "-1009876543210=-1001234567890")
    reply = RawEnvelope("tg", "tg-webhook", 1764062001.5, tg("followup_reply_to_own_comment"))
    assert one(to_interactions(reply, LINKS)).page == PAGE
    created = RawEnvelope("max", "max-webhook", 1764061201.0, mx("chat_message_created"))
    assert one(to_interactions(created, {})).page == MAX_PAGE
    with pytest.raises(RejectedRecord, match="not linked"):
        to_interactions(reply, {})


def engine_for(page: str, **extra: Any) -> ResponseEngine:
    reg = Registry.from_mapping(
        {
            "pages": [
                {
                    "id": page,
                    "schedule": {"mon-sun": "00:00-24:00"},
                    "calendar": "none",
                    "deadline": "24h calendar",
                    **extra,
                }
            ]
        }
    )
    return ResponseEngine(reg.page, late_window_s=600)


def run(engine: ResponseEngine, interactions: list[Interaction], end: int) -> dict[str, ResponseRecord]:
    records: list[ResponseRecord] = []
    for ia in interactions:
        records.extend(engine.process(ia))
    records.extend(engine.tick(end, report_breaches=False))
    return {r.item: r for r in records}


def tg_stream(*names: str) -> list[Interaction]:
    out: list[Interaction] = []
    for name in names:
        update = tg(name)
        message = update.get("message") or update.get("edited_message")
        out.extend(normalize_tg(update, message["date"] + 1, LINKS))
    return out


def test_telegram_channel_reply_answers_the_citizens_comments_and_not_another_citizens():
    engine = engine_for(PAGE)
    names = [
        "post_copy",
        "comment",
        "other_citizen_comment",
        "followup_reply_to_own_comment",
        "channel_reply",
        "channel_top_level_comment",
    ]
    closed = run(engine, tg_stream(*names), end=1764064900 + 3600)
    # The channel replied to Irina's follow-up: both of her comments under the post are answered.
    for n in (412, 415):
        record = closed[f"{POST}:{n}"]
        assert (record.outcome, record.responder, record.closed_at, record.breached) == (
            "answered",
            PAGE,
            1764064800,
            False,
        )
    assert closed[f"{POST}:412"].latency_s == 1764064800 - 1764061200
    # Pavel's question was in nobody's reply, and the channel's unaddressed comment answers nothing.
    assert f"{POST}:413" not in closed
    assert [v.item for v in engine.open_items(PAGE)] == [f"{POST}:413"]


def test_telegram_order_of_arrival_within_the_window_does_not_change_the_outcome():
    forward = run(engine_for(PAGE), tg_stream("comment", "followup_reply_to_own_comment", "channel_reply"), 1764070000)
    late = tg_stream("channel_reply", "followup_reply_to_own_comment", "comment")
    # Same received_at for all, so the engine sees them within one late window, reply first.
    late = [
        Interaction(**{**{f: getattr(ia, f) for f in Interaction.__slots__}, "received_at": 1764064801}) for ia in late
    ]
    backward = run(engine_for(PAGE), late, 1764070000)
    assert {k: (v.outcome, v.closed_at) for k, v in forward.items()} == {
        k: (v.outcome, v.closed_at) for k, v in backward.items()
    }
    assert len(forward) == 2


def test_max_chat_admin_reply_answers_through_the_engine_and_removal_by_admin_is_moderation():
    engine = engine_for(MAX_PAGE, administrators=["max:user:40900"])
    created = normalize_max(mx("chat_message_created"), 1764061201)
    reply = normalize_max(mx("chat_admin_reply"), 1764064801)
    closed = run(engine, created + reply, end=1764064801 + 3600)
    record = one(list(closed.values()))  # type: ignore[arg-type]
    assert (record.outcome, record.responder, record.closed_at) == ("answered", "max:user:40900", 1764064800)

    engine = engine_for(MAX_PAGE)
    removed = normalize_max(mx("chat_message_removed"), 1764062001)
    closed = run(engine, created + removed, end=1764062001 + 3600)
    record = one(list(closed.values()))  # type: ignore[arg-type]
    assert (record.outcome, record.closed_at) == ("moderated", 1764062001)


def test_max_dialog_bot_replies_count_only_when_the_registry_says_so():
    stream = normalize_max(mx("dialog_message_created"), 1764061301) + normalize_max(mx("dialog_bot_reply"), 1764061361)
    assert run(engine_for(MAX_BOT_PAGE), copy.deepcopy(stream), 1764070000) == {}
    closed = run(engine_for(MAX_BOT_PAGE, bot_replies_count=True), stream, 1764070000)
    assert one(list(closed.values())).outcome == "answered"  # type: ignore[arg-type]
