"""VK callback bodies → Interaction records.

Every fixture in tests/fixtures/vk/ is first validated against VK's own JSON Schema (5.199, in
/work/shared/reference/vk-api-schema, or $OTKLIK_VK_SCHEMA), with only the known gaps of that schema
patched in this test's copy (docs/data-flow.md, "Platforms": deletions carry ``deleter_id``; community
content has negative owner ids). Every normalized record is validated against schemas/json/interaction.json.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from otklik.agents.ingest.vk import NormalizeError, normalize_vk
from otklik.schemas.records import Interaction

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "vk"
VK_SCHEMA = Path(os.environ.get("OTKLIK_VK_SCHEMA", "/work/shared/reference/vk-api-schema"))
BASE_URI = "file:///vk-api-schema/"
RECEIVED = 1764144100

# Which VK schema definition describes each event type's object (the fixture's file name starts with it).
OBJECT_DEFINITION = {
    "wall_reply_new": "callback_wall_reply_new",
    "wall_reply_edit": "callback_wall_reply_edit",
    "wall_reply_restore": "callback_wall_reply_restore",
    "wall_reply_delete": "callback_wall_comment_delete",
    "photo_comment_new": "callback_photo_comment",
    "photo_comment_edit": "callback_photo_comment",
    "photo_comment_restore": "callback_photo_comment",
    "photo_comment_delete": "callback_photo_comment_delete",
    "video_comment_new": "callback_video_comment",
    "video_comment_edit": "callback_video_comment",
    "video_comment_restore": "callback_video_comment",
    "video_comment_delete": "callback_video_comment_delete",
    "market_comment_new": "callback_market_comment",
    "market_comment_edit": "callback_market_comment",
    "market_comment_restore": "callback_market_comment",
    "market_comment_delete": "callback_market_comment_delete",
    "board_post_new": "callback_board_post_new",
    "board_post_edit": "callback_board_post_edit",
    "board_post_restore": "callback_board_post_restore",
    "board_post_delete": "callback_board_post_delete",
    "message_new": "callback_message_new",
    "message_reply": "callback_message",
    "message_edit": "callback_message",
    "wall_post_new": "callback_wall_post_new",
    "group_join": "callback_group_join",
}
DELETE_DEFINITIONS = [d for e, d in OBJECT_DEFINITION.items() if e.endswith("_delete")]


def _draft03_required(node: Any) -> Any:
    """VK marks required properties draft-03 style (``"required": true`` inside each property)."""
    if isinstance(node, list):
        return [_draft03_required(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _draft03_required(v) for k, v in node.items() if k != "$schema"}
    props = node.get("properties")
    if isinstance(props, dict):
        required = [name for name, p in props.items() if isinstance(p, dict) and p.get("required") is True]
        for name in required:
            out["properties"][name].pop("required", None)
        if required:
            out["required"] = required
    return out


def _patch_known_gaps(files: dict[str, dict[str, Any]]) -> None:
    """The schema's known gaps against VK's prose docs (docs/data-flow.md, "Platforms"), patched in this copy only."""

    # 1. A community's content has a negative owner id; the schema says minimum 0 for some of them.
    def relax_owner_ids(node: Any) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if name.endswith("owner_id") and isinstance(prop, dict):
                    prop.pop("minimum", None)
            for v in node.values():
                relax_owner_ids(v)
        elif isinstance(node, list):
            for v in node:
                relax_owner_ids(v)

    relax_owner_ids(files["callback"])
    # 2. Deletions carry deleter_id (the schema knows user_id only, for some): either or both.
    defs = files["callback"]["definitions"]
    for name in DELETE_DEFINITIONS:
        d = defs[name]
        d["properties"].setdefault("deleter_id", {"type": "integer", "format": "int64"})
        if name != "callback_board_post_delete":
            d["required"] = [r for r in d.get("required", []) if r not in ("user_id", "deleter_id")]
            d["anyOf"] = [{"required": ["deleter_id"]}, {"required": ["user_id"]}]


def _load_vk(patched: bool) -> Registry:
    files = {p.parent.name: _draft03_required(json.loads(p.read_text())) for p in VK_SCHEMA.glob("*/objects.json")}
    assert "callback" in files, f"VK's JSON Schema not found in {VK_SCHEMA}: set OTKLIK_VK_SCHEMA to its folder"
    if patched:
        _patch_known_gaps(files)
    resources = [
        (f"{BASE_URI}{name}/objects.json", Resource.from_contents(doc, default_specification=DRAFT202012))
        for name, doc in files.items()
    ]
    return Registry().with_resources(resources)


@pytest.fixture(scope="module")
def vk_registry() -> Registry:
    return _load_vk(patched=True)


def _validator(registry: Registry, definition: str) -> Draft202012Validator:
    schema = {"$ref": f"{BASE_URI}callback/objects.json#/definitions/{definition}"}
    return Draft202012Validator(schema, registry=registry)


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.json"))


def _event_of(path: Path) -> str:
    return max((e for e in OBJECT_DEFINITION if path.stem.startswith(e)), key=len, default="confirmation")


INTERACTION_SCHEMA = Draft202012Validator(json.loads((ROOT / "schemas" / "json" / "interaction.json").read_text()))


def test_every_measured_event_type_has_a_fixture() -> None:
    events = {_event_of(p) for p in _fixtures()}
    measured = {e for e in OBJECT_DEFINITION if e not in ("wall_post_new", "group_join")}
    assert measured <= events


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.stem)
def test_fixture_is_valid_by_vks_schema(path: Path, vk_registry: Registry) -> None:
    body = json.loads(path.read_text())
    errors = list(_validator(vk_registry, "callback_base").iter_errors(body))
    assert not errors, [e.message for e in errors]
    event = _event_of(path)
    if event != "confirmation":
        definition = OBJECT_DEFINITION[event]
        if path.stem == "message_new_flat_5_80":
            definition = "callback_message"  # before API 5.103 the message came flat
        errors = list(_validator(vk_registry, definition).iter_errors(body["object"]))
        assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_the_schema_patches_are_needed() -> None:
    """The unpatched schema rejects real bodies exactly where docs/data-flow.md, "Platforms" says it has gaps."""
    registry = _load_vk(patched=False)
    wall_delete = json.loads((FIXTURES / "wall_reply_delete.json").read_text())["object"]
    assert not _validator(registry, "callback_wall_comment_delete").is_valid(wall_delete)  # no user_id
    photo = json.loads((FIXTURES / "photo_comment_new.json").read_text())["object"]
    assert not _validator(registry, "callback_photo_comment").is_valid(photo)  # negative photo_owner_id
    assert _validator(_load_vk(patched=True), "callback_photo_comment").is_valid(photo)


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.stem)
def test_normalized_records_match_the_interaction_schema(path: Path) -> None:
    for record in normalize_vk(json.loads(path.read_text()), RECEIVED):
        errors = list(INTERACTION_SCHEMA.iter_errors(json.loads(record.to_json())))
        assert not errors, [e.message for e in errors]
        assert Interaction.from_json(record.to_json()) == record  # as the worker's agents decode it


def _one(name: str, received_at: int = RECEIVED) -> Interaction:
    records = normalize_vk(json.loads((FIXTURES / f"{name}.json").read_text()), received_at)
    assert len(records) == 1
    return records[0]


def test_wall_comment_identifiers() -> None:
    ia = _one("wall_reply_new")
    assert (ia.page, ia.item, ia.object_id, ia.object_kind) == (
        "vk:123456",
        "vk:123456:wall:88:1024",
        "vk:123456:wall:88",
        "wall",
    )
    assert (ia.action, ia.author, ia.created_at, ia.seq, ia.received_at) == (
        "new",
        "vk:user:5001",
        1764144000,
        1024,
        RECEIVED,
    )
    assert ia.thread_root == ia.item  # top level: its own thread
    assert ia.reply_to_item is None and ia.reply_to_author is None
    assert ia.event_id == "a1f3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b3d5f7a9"
    assert ia.text.startswith("Когда")


def test_community_reply_in_a_thread() -> None:
    ia = _one("wall_reply_new_threaded")
    assert ia.author == "vk:123456"  # from_id -123456: the community, positive id
    assert ia.thread_root == "vk:123456:wall:88:1024"  # parents_stack[0]
    assert ia.reply_to_item == "vk:123456:wall:88:1024"
    assert ia.reply_to_author == "vk:user:5001"


def test_reply_to_a_community_is_a_community_author() -> None:
    body = json.loads((FIXTURES / "wall_reply_new.json").read_text())
    body["object"].update(reply_to_user=-777, reply_to_comment=1000, parents_stack=[999, 1000])
    ia = normalize_vk(body, RECEIVED)[0]
    assert ia.reply_to_author == "vk:777"
    assert ia.thread_root == "vk:123456:wall:88:999"
    assert ia.reply_to_item == "vk:123456:wall:88:1000"


@pytest.mark.parametrize(
    ("name", "item"),
    [
        ("photo_comment_new", "vk:123456:photo:457239017:77"),
        ("video_comment_new", "vk:123456:video:456239018:12"),
        ("market_comment_new", "vk:123456:market:9012345:5"),
        ("board_post_new", "vk:123456:board:39391577:3"),
        ("message_new", "vk:123456:dm:5004:17"),
        ("message_new_flat_5_80", "vk:123456:dm:5004:18"),
        ("message_reply", "vk:123456:dm:5004:19"),
    ],
)
def test_item_identifiers(name: str, item: str) -> None:
    ia = _one(name)
    assert ia.item == item
    assert ia.object_id == item.rsplit(":", 1)[0]
    assert ia.seq == int(item.rsplit(":", 1)[1])


def test_board_posts_have_no_threads() -> None:
    body = json.loads((FIXTURES / "board_post_new.json").read_text())
    body["object"]["reply_to_comment"] = 1  # even if present, a topic has no threads
    ia = normalize_vk(body, RECEIVED)[0]
    assert ia.thread_root is None and ia.reply_to_item is None and ia.object_kind == "board"


@pytest.mark.parametrize(
    ("name", "deleted_by"),
    [
        ("wall_reply_delete", "vk:user:7001"),  # deleter_id only
        ("photo_comment_delete", "vk:user:5001"),  # both: deleter_id wins
        ("video_comment_delete", "vk:user:7001"),
        ("market_comment_delete", "vk:user:7001"),
        ("board_post_delete", "vk:user:7001"),
    ],
)
def test_deletions(name: str, deleted_by: str) -> None:
    ia = _one(name, received_at=1764150000)
    assert ia.action == "delete"
    assert ia.deleted_by == deleted_by
    assert ia.created_at is None and ia.author is None
    assert ia.received_at == 1764150000  # a deletion takes effect when it is received


def test_deletion_takes_deleter_id_else_user_id() -> None:
    body = json.loads((FIXTURES / "market_comment_delete.json").read_text())
    body["object"]["deleter_id"] = 42
    body["object"]["user_id"] = 5002
    assert normalize_vk(body, RECEIVED)[0].deleted_by == "vk:user:42"
    del body["object"]["deleter_id"]
    assert normalize_vk(body, RECEIVED)[0].deleted_by == "vk:user:5002"


def test_board_deletion_may_name_nobody() -> None:
    body = json.loads((FIXTURES / "board_post_delete.json").read_text())
    del body["object"]["deleter_id"]
    assert normalize_vk(body, RECEIVED)[0].deleted_by is None


def test_restore_keeps_the_original_creation_time() -> None:
    ia = _one("wall_reply_restore", received_at=1764199999)
    assert ia.action == "restore" and ia.created_at == 1764144000 and ia.received_at == 1764199999


def test_messages() -> None:
    new = _one("message_new")
    assert (new.author, new.object_kind, new.admin_author, new.created_at) == ("vk:user:5004", "dm", None, 1764144000)
    reply = _one("message_reply")
    assert (reply.action, reply.author, reply.admin_author) == ("new", "vk:123456", "vk:user:7001")
    bot = _one("message_reply_bot")
    assert (bot.author, bot.admin_author) == ("vk:123456", None)
    edit = _one("message_edit")
    assert (edit.action, edit.item) == ("edit", "vk:123456:dm:5004:19")


def test_chat_messages_are_not_direct_messages() -> None:
    body = json.loads((FIXTURES / "message_new.json").read_text())
    body["object"]["message"]["peer_id"] = 2_000_000_001
    assert normalize_vk(body, RECEIVED) == []


@pytest.mark.parametrize("name", ["confirmation", "wall_post_new", "group_join"])
def test_unmeasured_events_give_nothing(name: str) -> None:
    assert normalize_vk(json.loads((FIXTURES / f"{name}.json").read_text()), RECEIVED) == []


def _broken(name: str, path: tuple[str, ...], value: Any = "__delete__") -> dict[str, Any]:
    body = copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))
    node = body
    for key in path[:-1]:
        node = node[key]
    if value == "__delete__":
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


MALFORMED = [
    ("wall_reply_new", ("object", "date"), "__delete__", "wall_reply_new: object.date: missing"),
    ("wall_reply_new", ("object", "date"), "1764144000", "wall_reply_new: object.date: expected an integer"),
    ("wall_reply_new", ("object", "date"), 1.5, "wall_reply_new: object.date: expected an integer"),
    ("wall_reply_new", ("object", "date"), True, "wall_reply_new: object.date: expected an integer"),
    ("wall_reply_new", ("object", "date"), -5, "wall_reply_new: object.date: negative"),
    ("wall_reply_new", ("object", "id"), "__delete__", "wall_reply_new: object.id: missing"),
    ("wall_reply_new", ("object", "id"), 0, "wall_reply_new: object.id: expected a positive integer"),
    ("wall_reply_new", ("object", "from_id"), "__delete__", "wall_reply_new: object.from_id: missing"),
    ("wall_reply_new", ("object", "from_id"), 0, "wall_reply_new: object.from_id: 0"),
    ("wall_reply_new", ("object", "post_id"), "__delete__", "wall_reply_new: object.post_id: missing"),
    ("wall_reply_new", ("object", "text"), 5, "wall_reply_new: object.text: expected a string"),
    ("wall_reply_new", ("object", "parents_stack"), "1,2", "wall_reply_new: object.parents_stack"),
    ("wall_reply_new", ("object", "parents_stack"), ["a"], "wall_reply_new: object.parents_stack"),
    ("wall_reply_new", ("object", "reply_to_user"), "5001", "wall_reply_new: object.reply_to_user"),
    ("wall_reply_new", ("object", "reply_to_comment"), [1], "wall_reply_new: object.reply_to_comment"),
    ("wall_reply_new", ("object",), "__delete__", "wall_reply_new: object: missing"),
    ("wall_reply_new", ("object",), [], "wall_reply_new: object: expected a JSON object"),
    ("wall_reply_new", ("group_id",), "__delete__", "wall_reply_new: group_id: missing"),
    ("wall_reply_new", ("group_id",), -123456, "wall_reply_new: group_id: expected a positive integer"),
    ("wall_reply_new", ("group_id",), 0, "wall_reply_new: group_id: expected a positive integer"),
    ("wall_reply_new", ("group_id",), "123456", "wall_reply_new: group_id: expected a positive integer"),
    ("wall_reply_new", ("event_id",), 17, "wall_reply_new: event_id: expected a string"),
    ("wall_reply_new", ("type",), "__delete__", "body.type: missing"),
    ("wall_reply_new", ("type",), 3, "body.type: expected a string"),
    ("photo_comment_new", ("object", "photo_id"), "__delete__", "photo_comment_new: object.photo_id: missing"),
    ("video_comment_edit", ("object", "video_id"), None, "video_comment_edit: object.video_id: missing"),
    ("market_comment_new", ("object", "item_id"), "__delete__", "market_comment_new: object.item_id: missing"),
    ("board_post_new", ("object", "topic_id"), "x", "board_post_new: object.topic_id: expected an integer"),
    ("wall_reply_delete", ("object", "deleter_id"), "__delete__", "wall_reply_delete: object.deleter_id: missing"),
    ("photo_comment_delete", ("object", "deleter_id"), "7", "photo_comment_delete: object.deleter_id"),
    ("video_comment_delete", ("object", "id"), "__delete__", "video_comment_delete: object.id: missing"),
    ("board_post_delete", ("object", "topic_id"), "__delete__", "board_post_delete: object.topic_id: missing"),
    ("message_new", ("object", "message", "peer_id"), "__delete__", "message_new: object.message.peer_id: missing"),
    ("message_new", ("object", "message", "date"), "x", "message_new: object.message.date: expected an integer"),
    ("message_new", ("object", "message", "from_id"), "__delete__", "message_new: object.message.from_id: missing"),
    (
        "message_new",
        ("object", "message", "conversation_message_id"),
        0,
        "message_new: object.message.conversation_message_id: expected a positive integer",
    ),
    ("message_new", ("object", "message"), "hi", "message_new: object.message: expected a JSON object"),
    ("message_new_flat_5_80", ("object", "peer_id"), "__delete__", "message_new: object.peer_id: missing"),
    (
        "message_reply",
        ("object", "conversation_message_id"),
        "__delete__",
        "message_reply: object.conversation_message_id",
    ),
    ("message_reply", ("object", "admin_author_id"), "7001", "message_reply: object.admin_author_id"),
    ("message_edit", ("object", "date"), "__delete__", "message_edit: object.date: missing"),
]


@pytest.mark.parametrize(("name", "path", "value", "reason"), MALFORMED)
def test_malformed_bodies_name_the_event_and_field(name: str, path: tuple[str, ...], value: Any, reason: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        normalize_vk(_broken(name, path, value), RECEIVED)
    assert caught.value.reason.startswith(reason), caught.value.reason


def test_body_must_be_an_object() -> None:
    with pytest.raises(NormalizeError, match="body: expected a JSON object"):
        normalize_vk([1, 2], RECEIVED)  # type: ignore[arg-type]


def test_unused_fields_are_ignored_leniently() -> None:
    body = json.loads((FIXTURES / "wall_reply_new.json").read_text())
    body["object"].update(attachments="not even a list", likes=None, something_new={"a": 1})
    body["secret"] = 12345  # the gateway checks the secret, not the normalizer
    del body["v"]
    assert normalize_vk(body, RECEIVED)[0].item == "vk:123456:wall:88:1024"


vk_ids = st.integers(min_value=1, max_value=2**40)


@settings(max_examples=200, deadline=None)
@given(
    group=vk_ids,
    post=vk_ids,
    cid=vk_ids,
    from_id=st.integers(min_value=-(2**40), max_value=2**40).filter(bool),
    date=st.integers(min_value=0, max_value=2**33),
    parents=st.lists(vk_ids, max_size=3),
    to_user=st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**40)),
)
def test_any_well_formed_wall_comment_normalizes_to_a_valid_record(
    group: int, post: int, cid: int, from_id: int, date: int, parents: list[int], to_user: int | None
) -> None:
    obj: dict[str, Any] = {"id": cid, "from_id": from_id, "date": date, "text": "?", "post_id": post}
    obj["parents_stack"] = parents
    if to_user is not None:
        obj["reply_to_user"] = to_user
    body = {"type": "wall_reply_new", "group_id": group, "event_id": "e", "v": "5.199", "object": obj}
    (ia,) = normalize_vk(body, date + 1)
    assert not list(INTERACTION_SCHEMA.iter_errors(json.loads(ia.to_json())))
    assert ia.author == (f"vk:user:{from_id}" if from_id > 0 else f"vk:{-from_id}")
    assert ia.thread_root == f"vk:{group}:wall:{post}:{parents[0] if parents else cid}"


def test_interaction_records_keep_their_fields_json_and_immutability() -> None:
    from otklik.schemas.records import INTERACTION_FIELDS, Interaction

    body = json.loads((FIXTURES / "wall_reply_new.json").read_text())
    (ia,) = normalize_vk(body, RECEIVED)
    assert INTERACTION_FIELDS == (
        "platform",
        "page",
        "action",
        "object_kind",
        "object_id",
        "item",
        "seq",
        "received_at",
        "event_id",
        "created_at",
        "author",
        "thread_root",
        "reply_to_item",
        "reply_to_author",
        "deleted_by",
        "admin_author",
        "text",
        "attachments",
    )
    data = json.loads(ia.to_json())
    assert list(data) == list(INTERACTION_FIELDS)  # the topic's JSON shape, in field order
    assert data == {f: getattr(ia, f) for f in INTERACTION_FIELDS}
    assert data["item"] == ia.item and data["received_at"] == RECEIVED
    assert Interaction(**data) == ia and hash(Interaction(**data)) == hash(ia)
    assert Interaction(**{f: getattr(ia, f) for f in Interaction.__slots__}) == ia  # as other modules build it
    with pytest.raises(AttributeError):
        ia.item = "vk:1:wall:1:1"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Interaction(**{**data, "unknown": 1})
    minimal = Interaction(
        platform="vk",
        page="vk:1",
        action="delete",
        object_kind="wall",
        object_id="vk:1:wall:2",
        item="vk:1:wall:2:3",
        seq=3,
        received_at=5,
    )
    assert (minimal.event_id, minimal.created_at, minimal.text) == (None, None, "")
