"""The traffic simulator: VK's exact shapes, a realistic mix, determinism, the edges' formats."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import statistics
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import jsonschema
import orjson
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from otklik.agents.text.triage import triage
from otklik.streams.tools.simulate.edges import _shift_dates, produce, simulate_command, write_jsonl
from otklik.streams.tools.simulate.traffic import generate, registry_mapping, write_registry
from otklik.streams.tools.simulate.world import SimConfig, _local_ordinal, _work_window, add_working_seconds
from tests.conftest import SHARED_REFERENCE

NSK = ZoneInfo("Asia/Novosibirsk")
# Tuesday 17 March 2026, 10:00 in Novosibirsk: a plain working morning.
TUESDAY_MORNING = int(datetime(2026, 3, 17, 10, 0, tzinfo=NSK).timestamp())


def working_seconds_between(a: float, b: float, tz_name: str) -> float:
    """Working time between two instants (0 when ``b <= a``), by the simulator's own working days."""
    if b <= a:
        return 0.0
    total = 0.0
    ordinal = _local_ordinal(a, tz_name)
    last = _local_ordinal(b, tz_name)
    while ordinal <= last:
        window = _work_window(tz_name, ordinal)
        if window is not None:
            begin, end = max(a, window[0]), min(b, window[1])
            if end > begin:
                total += end - begin
        ordinal += 1
    return total


COMMENT_PREFIXES = {
    "wall_reply": "wall",
    "photo_comment": "photo",
    "video_comment": "video",
    "market_comment": "market",
    "board_post": "board",
}
OBJECT_FIELD = {"wall": "post_id", "photo": "photo_id", "video": "video_id", "market": "item_id", "board": "topic_id"}


def split_type(event_type: str) -> tuple[str, str] | None:
    """'wall_reply_new' -> ('wall', 'new'); None for direct messages."""
    for prefix, kind in COMMENT_PREFIXES.items():
        if event_type.startswith(prefix + "_"):
            return kind, event_type[len(prefix) + 1 :]
    return None


# ---------------------------------------------------------------------------------------------
# VK's JSON Schema, with a validator for its draft-03 style `"required": true` properties.


def _schema_dir() -> Path:
    candidates = [
        os.environ.get("OTKLIK_VK_SCHEMA_DIR", ""),
        str(SHARED_REFERENCE / "vk-api-schema"),
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "callback" / "objects.json").is_file():
            return Path(candidate)
    raise FileNotFoundError(f"VK's JSON Schema not found (set OTKLIK_VK_SCHEMA_DIR); looked in {candidates}")


SCHEMA_BASE = "https://vk-api-schema.invalid/"


def _draft3_properties(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
    if not validator.is_type(instance, "object"):
        return
    for name, subschema in properties.items():
        if name in instance:
            yield from validator.descend(instance[name], subschema, path=name, schema_path=name)
        elif isinstance(subschema, dict) and subschema.get("required") is True:
            yield jsonschema.ValidationError(f"{name!r} is a required property")


def _required_list(validator, required, instance, schema):  # type: ignore[no-untyped-def]
    # Draft 4 `required` is a list; the boolean draft-03 form is handled by `properties` above.
    if isinstance(required, list) and validator.is_type(instance, "object"):
        for name in required:
            if name not in instance:
                yield jsonschema.ValidationError(f"{name!r} is a required property")


VKValidator = validators.extend(
    jsonschema.Draft4Validator, {"properties": _draft3_properties, "required": _required_list}
)


def _patch_known_gaps(callback: dict[str, Any]) -> None:
    """The gaps docs/data-flow.md, "Platforms" names, and only those: deletions carry `deleter_id` (either it or
    `user_id`, or both), and owner ids of a community's content are negative."""
    definitions = callback["definitions"]
    for name, definition in definitions.items():
        for prop in definition.get("properties", {}).values():
            if prop.get("entity") == "owner":
                prop.pop("minimum", None)
        for part in definition.get("allOf", []):
            for prop in part.get("properties", {}).values():
                if prop.get("entity") == "owner":
                    prop.pop("minimum", None)
        if name.endswith("_delete"):
            props = definition["properties"]
            props.setdefault("deleter_id", {"type": "integer", "entity": "owner", "format": "int64"})
            for field in ("deleter_id", "user_id"):
                if field in props:
                    props[field].pop("required", None)
            definition["anyOf"] = [{"required": ["deleter_id"]}, {"required": ["user_id"]}]


def _registry(patched: bool) -> Registry:
    resources = []
    for path in _schema_dir().glob("*/objects.json"):
        contents = json.loads(path.read_text(encoding="utf-8"))
        contents.pop("$schema", None)  # "../schema.json": not a dialect the library knows
        if patched and path.parent.name == "callback":
            _patch_known_gaps(contents)
        resources.append(
            (f"{SCHEMA_BASE}{path.parent.name}/objects.json", Resource(contents=contents, specification=DRAFT4))
        )
    return Registry().with_resources(resources)


def _definition_for(event_type: str) -> str:
    if event_type == "message_new":
        return "callback_message_new"
    if event_type in ("message_reply", "message_edit"):
        return "callback_message"
    kind, action = split_type(event_type)  # type: ignore[misc]
    if kind == "wall":
        return "callback_wall_comment_delete" if action == "delete" else "callback_wall_reply_new"
    if kind == "board":
        return "callback_board_post_delete" if action == "delete" else "callback_board_post_new"
    return f"callback_{kind}_comment_delete" if action == "delete" else f"callback_{kind}_comment"


class BodyValidator:
    def __init__(self, patched: bool = True) -> None:
        registry = _registry(patched)
        self._base = VKValidator(
            {"$ref": f"{SCHEMA_BASE}callback/objects.json#/definitions/callback_base"}, registry=registry
        )
        self._registry = registry
        self._by_type: dict[str, Any] = {}

    def errors(self, body: dict[str, Any]) -> list[jsonschema.ValidationError]:
        event_type = body["type"]
        validator = self._by_type.get(event_type)
        if validator is None:
            ref = f"{SCHEMA_BASE}callback/objects.json#/definitions/{_definition_for(event_type)}"
            validator = self._by_type[event_type] = VKValidator({"$ref": ref}, registry=self._registry)
        found = list(self._base.iter_errors(body))
        if "object" not in body:
            found.append(jsonschema.ValidationError("'object' is a required property"))
        else:
            found.extend(validator.iter_errors(body["object"]))
        return found


@pytest.fixture(scope="module")
def body_validator() -> BodyValidator:
    return BodyValidator(patched=True)


# ---------------------------------------------------------------------------------------------
# Simulations shared by the tests (generated once per module).

HOUR = SimConfig(pages=50, rate=20.0, duration=3600.0, seed=7, start=TUESDAY_MORNING)
SHORT = SimConfig(pages=50, rate=8.0, duration=450.0, seed=3, start=TUESDAY_MORNING)


@pytest.fixture(scope="module")
def hour() -> list[tuple[int, dict[str, Any]]]:
    began = time.perf_counter()
    events = list(generate(HOUR))
    elapsed = time.perf_counter() - began
    print(f"\ngenerated {len(events)} events in {elapsed:.2f} s: {len(events) / elapsed:,.0f} events/s")
    return events


@pytest.fixture(scope="module")
def short() -> list[tuple[int, dict[str, Any]]]:
    return list(generate(SHORT))


@pytest.fixture(scope="module")
def admins() -> dict[int, set[int]]:
    """group id -> its administrators' user ids, from the registry the simulator describes."""
    result: dict[int, set[int]] = {}
    for page in registry_mapping(HOUR)["pages"]:
        result[int(page["id"].removeprefix("vk:"))] = {int(a.removeprefix("vk:user:")) for a in page["administrators"]}
    return result


def unique_bodies(events: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """The events without their redeliveries (first delivery kept)."""
    seen: set[str] = set()
    result = []
    for received_at, body in events:
        if body["event_id"] not in seen:
            seen.add(body["event_id"])
            result.append((received_at, body))
    return result


def comments_index(events: list[tuple[int, dict[str, Any]]]) -> dict[tuple[int, str, int, int], dict[str, Any]]:
    """(group_id, kind, object id, comment id) -> the comment as first created."""
    index: dict[tuple[int, str, int, int], dict[str, Any]] = {}
    for _, body in events:
        parsed = split_type(body["type"])
        if parsed and parsed[1] == "new":
            obj = body["object"]
            index.setdefault((body["group_id"], parsed[0], obj[OBJECT_FIELD[parsed[0]]], obj["id"]), obj)
    return index


# ---------------------------------------------------------------------------------------------
# Determinism, order, rate.


def test_same_seed_gives_the_same_stream_and_another_seed_another() -> None:
    cfg = SimConfig(pages=10, rate=10.0, duration=300.0, seed=42, start=TUESDAY_MORNING)
    first = list(generate(cfg))
    second = list(generate(SimConfig(pages=10, rate=10.0, duration=300.0, seed=42, start=TUESDAY_MORNING)))
    other = list(generate(SimConfig(pages=10, rate=10.0, duration=300.0, seed=43, start=TUESDAY_MORNING)))
    assert len(first) > 1000
    assert orjson.dumps(first) == orjson.dumps(second)
    assert [b["event_id"] for _, b in first] != [b["event_id"] for _, b in other]


def _texts(events: list[tuple[int, dict[str, Any]]]) -> list[tuple[str, str]]:
    """(event id, text) of every body with a text: comments, edits, restorations, messages."""
    found = []
    for _, body in events:
        obj = body["object"]
        text = obj["message"]["text"] if "message" in obj else obj.get("text")
        if text is not None:
            found.append((body["event_id"], text))
    return found


def test_unique_texts_repeat_no_text_but_keep_the_stream() -> None:
    def stream(unique: bool) -> list[tuple[int, dict[str, Any]]]:
        cfg = SimConfig(pages=10, rate=10.0, duration=600.0, seed=3, start=TUESDAY_MORNING, unique_texts=unique)
        return list(generate(cfg))

    plain, unique = stream(False), stream(True)
    # The same events at the same times; only the texts differ.
    assert [(t, b["type"], b["event_id"]) for t, b in plain] == [(t, b["type"], b["event_id"]) for t, b in unique]
    plain_texts, unique_texts = _texts(plain), _texts(unique)
    assert len(set(text for _, text in plain_texts)) < len(plain_texts) / 2  # the templates repeat
    # A text is seen twice only where one comment is: a redelivery (same event id) or a restoration.
    restored = {b["event_id"] for _, b in unique if b["type"].endswith("_restore")}
    firsts: dict[str, str] = {}
    for event_id, text in unique_texts:
        if event_id not in restored:
            assert firsts.setdefault(text, event_id) == event_id, text
    # Only made unique: the same text before the mark, and the same decision of triage.
    decisions = {}
    for (_, before), (_, after) in zip(plain_texts, unique_texts, strict=True):
        assert after.rsplit(" ", 1)[0] == before
        if before not in decisions:
            decisions[before] = triage(before)
        assert triage(after) == decisions[before], (before, after)
    assert any(not d.needs_answer for d in decisions.values())  # thanks and the like are in the sample


def test_start_defaults_to_now() -> None:
    before = time.time()
    events = list(generate(SimConfig(pages=5, rate=5.0, duration=60.0, seed=1)))
    assert events
    assert before - 1 <= events[0][0] <= time.time() + 60


def test_events_come_in_order_of_delivery_some_late_and_out_of_order(hour) -> None:
    received = [r for r, _ in hour]
    assert received == sorted(received)
    assert received[0] >= HOUR.start and received[-1] <= HOUR.start + HOUR.duration
    lateness = []
    overtaken = 0
    latest_date = 0
    for received_at, body in unique_bodies(hour):
        if not (body["type"].endswith("_new") or body["type"] == "message_reply"):
            continue  # deletions carry no time; edits and restorations carry the comment's own
        created = body["object"].get("date", body["object"].get("message", {}).get("date"))
        assert 0 <= received_at - created <= 60
        lateness.append(received_at - created)
        if created < latest_date - 5:
            overtaken += 1  # delivered after something written more than 5 s later
        latest_date = max(latest_date, created)
    assert Counter(lateness)[0] + Counter(lateness)[1] > 0.8 * len(lateness)  # mostly within a second or two
    assert sum(1 for late in lateness if late >= 10) > 0  # occasionally late by up to a minute
    assert overtaken > 0


def test_rate_matches_the_configuration(hour, short) -> None:
    expected_hour = HOUR.rate * HOUR.duration
    assert 0.85 * expected_hour <= len(hour) <= 1.15 * expected_hour
    expected_short = SHORT.rate * SHORT.duration
    assert 0.8 * expected_short <= len(short) <= 1.2 * expected_short


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    pages=st.integers(min_value=1, max_value=30),
    rate=st.floats(min_value=0.5, max_value=30.0),
    hour_offset=st.integers(min_value=0, max_value=24 * 7),
)
def test_invariants_for_any_seed(seed: int, pages: int, rate: float, hour_offset: int) -> None:
    cfg = SimConfig(pages=pages, rate=rate, duration=240.0, seed=seed, start=TUESDAY_MORNING + hour_offset * 3600)
    events = list(generate(cfg))
    received = [r for r, _ in events]
    assert received == sorted(received)
    bodies_by_id: dict[str, dict[str, Any]] = {}
    for received_at, body in events:
        assert set(body) == {"type", "object", "group_id", "event_id", "v"}
        assert body["v"] == "5.199"
        assert cfg.first_group_id <= body["group_id"] < cfg.first_group_id + pages
        assert re.fullmatch(r"[0-9a-f]{40}", body["event_id"])
        if body["event_id"] in bodies_by_id:
            assert bodies_by_id[body["event_id"]] == body  # a redelivery is the same body
        bodies_by_id[body["event_id"]] = body
        created = body["object"].get("date", body["object"].get("message", {}).get("date"))
        if created is not None:
            assert created <= received_at


# ---------------------------------------------------------------------------------------------
# VK's shapes.


def test_every_body_validates_against_vk_schema(short, body_validator) -> None:
    assert len(short) > 2500
    for _, body in short:
        errors = body_validator.errors(body)
        assert not errors, (body, [e.message for e in errors])


def test_rarer_bodies_of_the_long_run_validate(short, hour, body_validator) -> None:
    # Types the short run holds by the dozen are validated there in full; here every body of
    # the types it holds fewer of (edits, deletions, restorations of the rarer objects).
    in_short = Counter(body["type"] for _, body in short)
    rare = [b for _, b in hour if in_short[b["type"]] < 30]
    assert len({b["type"] for b in rare}) >= 10 and len(rare) > 500
    for body in rare:
        errors = body_validator.errors(body)
        assert not errors, (body, [e.message for e in errors])


def test_unpatched_schema_fails_only_on_the_known_gaps(short) -> None:
    strict = BodyValidator(patched=False)
    gaps = Counter()
    for _, body in short:
        for error in strict.errors(body):
            field = error.path[-1] if error.path else None
            if error.validator == "minimum" and field in (
                "deleter_id",
                "user_id",
                "owner_id",
                "photo_owner_id",
                "topic_owner_id",
            ):
                assert error.instance < 0
                gaps["negative owner id"] += 1
            elif body["type"].endswith("_delete") and error.message == "'user_id' is a required property":
                assert "deleter_id" in body["object"]
                gaps["deleter_id instead of user_id"] += 1
            else:
                pytest.fail(f"unexpected schema error {error.message} in {body}")
    assert gaps["negative owner id"] > 0  # the patch is needed, and it is all that is needed


def test_the_validator_rejects_malformed_bodies(body_validator) -> None:
    good = {
        "type": "wall_reply_new",
        "group_id": 200000001,
        "event_id": "ab" * 20,
        "v": "5.199",
        "object": {
            "id": 5,
            "from_id": 700000001,
            "date": TUESDAY_MORNING,
            "text": "ок",
            "post_id": 3,
            "owner_id": -200000001,
        },
    }
    assert body_validator.errors(good) == []
    no_author = {**good, "object": {k: v for k, v in good["object"].items() if k != "from_id"}}
    assert body_validator.errors(no_author)
    assert body_validator.errors({**good, "event_id": 5})
    assert body_validator.errors({**good, "type": "wall_reply_invented"})
    assert body_validator.errors({k: v for k, v in good.items() if k != "v"})
    message = {
        "date": TUESDAY_MORNING,
        "from_id": 700000001,
        "id": 1,
        "version": 1,
        "conversation_message_id": 1,
        "peer_id": 700000001,
        "text": "?",
    }
    assert body_validator.errors({**good, "type": "message_new", "object": {"message": message}})  # no "out"
    deletion = {**good, "type": "photo_comment_delete", "object": {"id": 5, "owner_id": -200000001, "photo_id": 7}}
    assert body_validator.errors(deletion)  # says neither who deleted it (deleter_id nor user_id)


# ---------------------------------------------------------------------------------------------
# The mix.


def test_the_mix_contains_every_kind(hour, admins) -> None:
    events = unique_bodies(hour)
    types = Counter(body["type"] for _, body in events)
    for kind in ("wall_reply", "photo_comment", "video_comment", "market_comment", "board_post"):
        assert types[f"{kind}_new"] > 0, kind
        assert types[f"{kind}_delete"] > 0, kind
        assert types[f"{kind}_edit"] > 0, kind
    assert types["wall_reply_restore"] > 0
    assert sum(types[f"{k}_restore"] for k in COMMENT_PREFIXES) > types["wall_reply_restore"]
    assert types["message_new"] > 0 and types["message_reply"] > 0
    # Comments "mostly" on wall posts.
    comment_news = sum(types[f"{k}_new"] for k in COMMENT_PREFIXES)
    assert types["wall_reply_new"] > 0.5 * comment_news

    comments = comments_index(events)
    kinds = Counter()
    for _, body in events:
        gid, obj, parsed = body["group_id"], body["object"], split_type(body["type"])
        page_admins = admins[gid]
        if parsed and parsed[1] == "new":
            author = obj["from_id"]
            if obj.get("parents_stack"):
                kinds["thread reply"] += 1
            if "reply_to_comment" in obj:
                kinds["reply_to_comment"] += 1
            if author == -gid:
                kinds["page reply by the community"] += 1
            elif author in page_admins:
                kinds["page reply by an administrator"] += 1
            elif author < 0:
                kinds["comment by another community"] += 1
            elif (
                obj.get("reply_to_user", 0) > 0
                and obj["reply_to_user"] != author
                and obj["reply_to_user"] not in page_admins
            ):
                kinds["citizens talking to each other"] += 1
            if (
                author == -gid
                and "reply_to_user" in obj
                and "reply_to_comment" not in obj
                and not obj.get("parents_stack")
            ):
                kinds["top-level page reply addressed to a citizen"] += 1
        elif parsed and parsed[1] == "delete":
            deleter = obj.get("deleter_id", obj.get("user_id"))
            comment = comments.get((gid, parsed[0], obj.get(OBJECT_FIELD[parsed[0]]), obj["id"]))
            if comment is not None and deleter == comment["from_id"]:
                kinds["deleted by its author"] += 1
            elif deleter == -gid:
                kinds["deleted by the community"] += 1
            elif deleter in page_admins:
                kinds["deleted by an administrator"] += 1
        elif body["type"] == "message_reply":
            kinds["dm reply by a person" if "admin_author_id" in obj else "dm auto-reply"] += 1
    for kind in (
        "thread reply",
        "reply_to_comment",
        "page reply by the community",
        "page reply by an administrator",
        "comment by another community",
        "citizens talking to each other",
        "top-level page reply addressed to a citizen",
        "deleted by its author",
        "deleted by the community",
        "deleted by an administrator",
        "dm reply by a person",
        "dm auto-reply",
    ):
        assert kinds[kind] > 0, kind
    texts = [b["object"]["text"] for _, b in events if "text" in b["object"]]
    assert all(t.strip() for t in texts)
    assert sum(1 for t in texts if re.search("[а-яё]", t, re.IGNORECASE)) > 0.8 * len(texts)
    assert "ок" in texts and any(t.strip().endswith("?") for t in texts)


def test_some_items_are_answered_and_some_never(hour, admins) -> None:
    """A compact form of the matching rules (docs/responses.md, "Matching rules"), enough to see both outcomes."""
    events = unique_bodies(hour)
    by_object: dict[tuple[int, str, int], list[dict[str, Any]]] = defaultdict(list)
    for _, body in events:
        parsed = split_type(body["type"])
        if parsed and parsed[1] == "new":
            by_object[(body["group_id"], parsed[0], body["object"][OBJECT_FIELD[parsed[0]]])].append(body["object"])
    answered = unanswered = quickly = 0
    for (gid, kind, _), comments in by_object.items():
        replies = [c for c in comments if c["from_id"] == -gid or c["from_id"] in admins[gid]]
        for item in comments:
            if item["from_id"] < 0 or item["from_id"] in admins[gid]:
                continue
            root = (item.get("parents_stack") or [item["id"]])[0]

            def answers(reply: dict[str, Any]) -> bool:
                if (reply["date"], reply["id"]) <= (item["date"], item["id"]):
                    return False
                if kind == "board" or reply.get("reply_to_comment") == item["id"]:
                    return True
                to_user = reply.get("reply_to_user")
                same_thread = (reply.get("parents_stack") or [reply["id"]])[0] == root
                if same_thread and to_user in (None, item["from_id"], -gid):
                    return True
                return not reply.get("parents_stack") and to_user == item["from_id"]

            first = min((r["date"] for r in replies if answers(r)), default=None)
            if first is None:
                unanswered += 1
            else:
                answered += 1
                quickly += first - item["date"] <= 600
    assert answered > 100 and unanswered > 100 and quickly > 0

    # Direct messages: a person's reply answers the peer's earlier messages; a bot's does not.
    waiting: dict[tuple[int, int], int] = {}
    dm_answered = 0
    for _, body in events:
        if body["type"] == "message_new":
            message = body["object"]["message"]
            waiting.setdefault((body["group_id"], message["peer_id"]), message["date"])
        elif body["type"] == "message_reply" and "admin_author_id" in body["object"]:
            assert body["object"]["admin_author_id"] in admins[body["group_id"]]
            assert body["object"]["from_id"] == -body["group_id"] and body["object"]["out"] == 1
            dm_answered += waiting.pop((body["group_id"], body["object"]["peer_id"]), None) is not None
    assert dm_answered > 0 and len(waiting) > 0


def test_reply_delays_count_working_hours_with_a_long_tail() -> None:
    cfg = SimConfig(pages=30, rate=0.06, duration=6 * 86400.0, seed=11, start=TUESDAY_MORNING)
    events = unique_bodies(list(generate(cfg)))
    tz_of = {int(p["id"][3:]): p["timezone"] for p in registry_mapping(cfg)["pages"]}
    comments = comments_index(events)
    delays: dict[int, list[float]] = defaultdict(list)
    wall_clock: list[float] = []
    for _, body in events:
        parsed = split_type(body["type"])
        obj = body["object"]
        gid = body["group_id"]
        if not (parsed and parsed[1] == "new" and obj["from_id"] == -gid and "reply_to_comment" in obj):
            continue
        target = comments.get((gid, parsed[0], obj[OBJECT_FIELD[parsed[0]]], obj["reply_to_comment"]))
        if target is None or target["from_id"] < 0:
            continue
        # Measured from the citizen's first comment of the thread (the reply may go to a follow-up).
        item = comments[
            (gid, parsed[0], obj[OBJECT_FIELD[parsed[0]]], (target.get("parents_stack") or [target["id"]])[0])
        ]
        if item["from_id"] != target["from_id"] or item["date"] > cfg.start + 3 * 86400:
            continue  # another citizen's thread; or too late in the run for slow replies to be seen
        delays[gid].append(working_seconds_between(item["date"], obj["date"], tz_of[gid]))
        wall_clock.append(obj["date"] - item["date"])
    everything = [d for page in delays.values() for d in page]
    assert len(everything) > 300
    median_h = statistics.median(everything) / 3600
    assert 0.7 <= median_h <= 3.5, median_h
    assert sum(1 for d in wall_clock if d <= 15 * 60) > 0.03 * len(wall_clock)  # some within minutes
    assert sum(1 for d in everything if d > 8 * 3600) > 0.03 * len(everything)  # a long tail
    medians = sorted(statistics.median(d) for d in delays.values() if len(d) >= 10)
    assert len(medians) >= 4 and medians[-1] > 3 * max(medians[0], 60.0)  # some pages much slower


def test_citizens_write_mostly_by_day_local_time() -> None:
    cfg = SimConfig(pages=20, rate=0.1, duration=2 * 86400.0, seed=5, start=TUESDAY_MORNING)
    zone_of = {int(p["id"][3:]): ZoneInfo(p["timezone"]) for p in registry_mapping(cfg)["pages"]}
    by_hour = Counter()
    for _, body in unique_bodies(list(generate(cfg))):
        obj = body["object"]
        first = body["type"] == "message_new" or (body["type"].endswith("_new") and obj.get("parents_stack") == [])
        if first and obj.get("from_id", obj.get("message", {}).get("from_id", 0)) > 0:
            created = obj.get("date", obj.get("message", {}).get("date"))
            by_hour[datetime.fromtimestamp(created, zone_of[body["group_id"]]).hour] += 1
    night = sum(by_hour[h] for h in range(1, 6)) / 5
    day = sum(by_hour[h] for h in range(11, 20)) / 9
    assert day > 20 and night < 0.2 * day


def test_activity_is_heavy_tailed_across_pages(hour) -> None:
    per_page = Counter(body["group_id"] for _, body in hour)
    counts = sorted((per_page.get(HOUR.first_group_id + i, 0) for i in range(HOUR.pages)), reverse=True)
    mean = sum(counts) / len(counts)
    assert sum(counts[:5]) > 0.35 * sum(counts)  # the busiest tenth of the pages
    assert counts[-1] < 0.2 * mean  # quiet pages


def test_duplicates_are_redeliveries_of_the_same_body(hour) -> None:
    seen: dict[str, tuple[int, dict[str, Any]]] = {}
    duplicates = 0
    for received_at, body in hour:
        first = seen.get(body["event_id"])
        if first is None:
            seen[body["event_id"]] = (received_at, body)
            continue
        duplicates += 1
        assert body == first[1] and body is not first[1]
        assert 1 <= received_at - first[0] <= 31
    assert 0.004 * len(hour) < duplicates < 0.02 * len(hour)
    assert Counter(body["event_id"] for _, body in hour).most_common(1)[0][1] == 2


def test_ids_grow_with_time_on_every_object(hour) -> None:
    comment_ids: dict[tuple[int, str, int], list[tuple[int, int]]] = defaultdict(list)
    message_ids: dict[int, list[tuple[int, int]]] = defaultdict(list)
    conversations: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for _, body in unique_bodies(hour):
        parsed = split_type(body["type"])
        obj = body["object"]
        if parsed and parsed[1] == "new":
            comment_ids[(body["group_id"], parsed[0], obj[OBJECT_FIELD[parsed[0]]])].append((obj["id"], obj["date"]))
        elif body["type"] in ("message_new", "message_reply"):
            message = obj.get("message", obj)
            message_ids[body["group_id"]].append((message["id"], message["date"]))
            conversations[(body["group_id"], message["peer_id"])].append(
                (message["conversation_message_id"], message["date"])
            )
    for series in (*comment_ids.values(), *message_ids.values(), *conversations.values()):
        ordered = sorted(series)
        assert len({i for i, _ in ordered}) == len(ordered)  # ids are unique
        dates = [d for _, d in ordered]
        assert dates == sorted(dates)  # a higher id is never older


def test_references_point_to_earlier_comments_on_the_same_object(hour) -> None:
    events = unique_bodies(hour)
    comments = comments_index(events)
    deleted: set[tuple[int, str, int, int]] = set()
    checked = Counter()
    for _, body in events:
        parsed = split_type(body["type"])
        if not parsed:
            continue
        kind, action = parsed
        obj = body["object"]
        key = (body["group_id"], kind, obj[OBJECT_FIELD[kind]])
        if action == "new":
            for ref in [obj.get("reply_to_comment"), *obj.get("parents_stack", [])]:
                if ref is None:
                    continue
                target = comments[(*key, ref)]
                assert (target["date"], target["id"]) < (obj["date"], obj["id"])
                checked["reference"] += 1
            if obj.get("parents_stack"):
                assert not comments[(*key, obj["parents_stack"][0])].get("parents_stack")  # a root is top level
        else:
            original = comments[(*key, obj["id"])]  # edits, deletions, restorations name a real comment
            if action in ("edit", "restore"):
                assert obj["date"] == original["date"] and obj["from_id"] == original["from_id"]
            if action == "delete":
                deleted.add((*key, obj["id"]))
            if action == "restore":
                assert (*key, obj["id"]) in deleted
            checked[action] += 1
    assert checked["reference"] > 1000 and checked["edit"] and checked["delete"] and checked["restore"]


# ---------------------------------------------------------------------------------------------
# The registry.


def test_registry_describes_the_simulated_pages(hour, admins) -> None:
    mapping = registry_mapping(HOUR)
    pages = mapping["pages"]
    assert [p["id"] for p in pages] == [f"vk:{HOUR.first_group_id + i}" for i in range(HOUR.pages)]
    group_ids = {body["group_id"] for _, body in hour}
    assert {f"vk:{g}" for g in group_ids} <= {p["id"] for p in pages}
    assert len(group_ids) >= 0.8 * HOUR.pages
    assert {p["sector"] for p in pages} <= {"education", "culture", "health", "sport", "social", "administration"}
    assert len({p["sector"] for p in pages}) >= 4 and len({p["municipality"] for p in pages}) >= 3
    assert len({p["timezone"] for p in pages}) >= 2
    assert any(p.get("deadline") == "4h working" for p in pages) and any("deadline" not in p for p in pages)
    for page in pages:
        assert re.search("[А-Яа-яЁё]", page["title"])
        assert page["administrators"] and all(re.fullmatch(r"vk:user:\d+", a) for a in page["administrators"])
        assert page["contacts"] and all("@" in c["email"] and c["name"] for c in page["contacts"])
        ZoneInfo(page["timezone"])
    # The administrators the stream uses are the ones the registry lists.
    for _, body in hour:
        author = body["object"].get("from_id", 0)
        if 600_000_000 <= author < 700_000_000:  # the simulator's range of administrators' ids
            assert author in admins[body["group_id"]]
    assert any(
        any(
            a == f"vk:user:{b['object'].get('from_id')}"
            for a in pages[b["group_id"] - HOUR.first_group_id]["administrators"]
        )
        for _, b in hour
    )


def test_write_registry_is_readable_yaml_in_russian(tmp_path: Path) -> None:
    cfg = SimConfig(pages=7, seed=5)
    path = tmp_path / "registry.yaml"
    write_registry(cfg, path)
    text = path.read_text(encoding="utf-8")
    assert "\\u" not in text and re.search("[А-Яа-я]", text)
    assert yaml.safe_load(text) == registry_mapping(cfg)


# ---------------------------------------------------------------------------------------------
# Edges.


def test_write_jsonl_round_trips_to_a_path_and_to_files(tmp_path: Path) -> None:
    events = list(generate(SimConfig(pages=5, rate=5.0, duration=120.0, seed=9, start=TUESDAY_MORNING)))
    assert events
    path = tmp_path / "sim.jsonl"
    assert write_jsonl(iter(events), path) == len(events)
    lines = path.read_bytes().splitlines()
    assert [(d["received_at"], d["body"]) for d in map(orjson.loads, lines)] == events
    assert set(orjson.loads(lines[0])) == {"received_at", "body"}
    text_file, binary_file = io.StringIO(), io.BytesIO()
    write_jsonl(events, text_file)
    write_jsonl(events, binary_file)
    assert text_file.getvalue().encode("utf-8") == binary_file.getvalue() == path.read_bytes()


def test_realtime_shift_moves_dates_and_keeps_intervals() -> None:
    comment = {
        "type": "wall_reply_new",
        "group_id": 1,
        "event_id": "x",
        "v": "5.199",
        "object": {"id": 1, "date": 1000},
    }
    message = {
        "type": "message_new",
        "group_id": 1,
        "event_id": "y",
        "v": "5.199",
        "object": {"message": {"date": 1010}},
    }
    shifted = [_shift_dates(b, lambda d: d + 5_000) for b in (comment, message)]
    assert shifted[0]["object"]["date"] == 6000 and shifted[1]["object"]["message"]["date"] == 6010
    assert comment["object"]["date"] == 1000 and message["object"]["message"]["date"] == 1010  # originals untouched


class _FakeProducer:
    """Stands in for aiokafka's producer: records what would be sent (no broker in unit tests)."""

    instances: list[_FakeProducer] = []

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.sent: list[tuple[str, bytes, bytes, float]] = []
        self.started = self.stopped = False
        _FakeProducer.instances.append(self)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append((topic, value, key, time.time()))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def _produce_with_fake(
    monkeypatch: pytest.MonkeyPatch, events: list[tuple[int, dict[str, Any]]], **kwargs: Any
) -> _FakeProducer:
    import aiokafka

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", _FakeProducer)
    _FakeProducer.instances.clear()
    assert asyncio.run(produce(iter(events), "127.0.0.1:9", **kwargs)) == len(events)
    (producer,) = _FakeProducer.instances
    assert producer.started and producer.stopped
    assert producer.options["acks"] == "all" and producer.options["bootstrap_servers"] == "127.0.0.1:9"
    return producer


def test_produce_fast_sends_envelopes_with_simulated_times(monkeypatch: pytest.MonkeyPatch) -> None:
    events = list(generate(SimConfig(pages=5, rate=5.0, duration=60.0, seed=4, start=TUESDAY_MORNING)))
    producer = _produce_with_fake(monkeypatch, events, topic="t.raw", realtime=False)
    assert len(producer.sent) == len(events)
    for (topic, value, key, _), (received_at, body) in zip(producer.sent, events):
        envelope = orjson.loads(value)
        assert topic == "t.raw" and key == f"vk:{body['group_id']}".encode()
        assert envelope == {"platform": "vk", "source": "simulator", "received_at": float(received_at), "body": body}


def test_produce_realtime_paces_and_moves_dates_onto_the_real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    events = list(generate(SimConfig(pages=5, rate=5.0, duration=40.0, seed=4, start=TUESDAY_MORNING - 86400)))
    span = events[-1][0] - events[0][0]
    assert span >= 20
    began = time.time()
    producer = _produce_with_fake(monkeypatch, events, realtime=True, speed=100.0)
    elapsed = time.time() - began
    assert span / 100.0 * 0.9 <= elapsed <= span / 100.0 + 2.0  # paced at 100 simulated s per real second
    stamps = [orjson.loads(value)["received_at"] for _, value, _, _ in producer.sent]
    assert stamps == sorted(stamps) and began <= stamps[0] and stamps[-1] <= time.time()
    for (_, value, _, _), (received_at, body) in zip(producer.sent, events):
        sent_body = orjson.loads(value)["body"]
        date = body["object"].get("date", body["object"].get("message", {}).get("date"))
        sent_date = sent_body["object"].get("date", sent_body["object"].get("message", {}).get("date"))
        if date is not None:
            # The same mapping as the pacing: a day-old simulated start lands on today.
            assert abs(sent_date - (began + (date - events[0][0]) / 100.0)) <= 2
        assert sent_body["event_id"] == body["event_id"]


def test_cli_writes_jsonl_and_registry(tmp_path: Path) -> None:
    runner = CliRunner()
    help_text = runner.invoke(simulate_command, ["--help"]).output
    for option in (
        "--pages",
        "--rate",
        "--duration",
        "--seed",
        "--start",
        "--out",
        "--bootstrap",
        "--fast",
        "--speed",
        "--registry-out",
    ):
        assert option in help_text
    out, registry = tmp_path / "sim.jsonl", tmp_path / "registry.yaml"
    args = ["--pages", "4", "--rate", "3", "--duration", "120", "--seed", "2", "--start", "2026-03-17T03:00:00+00:00"]
    result = runner.invoke(simulate_command, [*args, "--out", str(out), "--registry-out", str(registry)])
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    expected = list(generate(SimConfig(pages=4, rate=3.0, duration=120.0, seed=2, start=TUESDAY_MORNING)))
    assert [(d["received_at"], d["body"]) for d in lines] == expected
    ids = {p["id"] for p in yaml.safe_load(registry.read_text(encoding="utf-8"))["pages"]}
    assert {f"vk:{d['body']['group_id']}" for d in lines} <= ids
    forever = runner.invoke(simulate_command, ["--duration", "0", "--out", str(out)])
    assert forever.exit_code != 0 and "forever" in forever.output


# ---------------------------------------------------------------------------------------------
# The administrators' working-hours clock.


def _nsk(*args: int) -> float:
    return datetime(*args, tzinfo=NSK).timestamp()


def test_working_time_skips_nights_weekends_and_holidays() -> None:
    friday_17 = _nsk(2026, 3, 20, 17, 0)
    assert add_working_seconds(friday_17, 2 * 3600, "Asia/Novosibirsk") == _nsk(2026, 3, 23, 10, 0)
    night = _nsk(2026, 3, 17, 23, 30)
    assert add_working_seconds(night, 60, "Asia/Novosibirsk") == _nsk(2026, 3, 18, 9, 1)
    # 9 January 2026 is a day off moved by the decree; the next working day is Monday 12 January.
    assert add_working_seconds(_nsk(2026, 1, 8, 12, 0), 3600, "Asia/Novosibirsk") == _nsk(2026, 1, 12, 10, 0)
    assert working_seconds_between(friday_17, _nsk(2026, 3, 23, 10, 0), "Asia/Novosibirsk") == 2 * 3600
    assert working_seconds_between(_nsk(2026, 3, 23, 10, 0), friday_17, "Asia/Novosibirsk") == 0


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(min_value=TUESDAY_MORNING - 400 * 86400, max_value=TUESDAY_MORNING + 400 * 86400),
    seconds=st.integers(min_value=1, max_value=20 * 9 * 3600),
    zone=st.sampled_from(["Asia/Novosibirsk", "Europe/Moscow", "Asia/Omsk"]),
)
def test_working_time_addition_and_measure_agree(start: int, seconds: int, zone: str) -> None:
    end = add_working_seconds(start, seconds, zone)
    assert end > start
    assert working_seconds_between(start, end, zone) == pytest.approx(seconds)
    local = datetime.fromtimestamp(end, ZoneInfo(zone))
    assert holidays.country_holidays("RU").is_working_day(local.date())
    assert 9 * 3600 < local.hour * 3600 + local.minute * 60 + local.second + (end % 1) <= 18 * 3600


def test_fast_to_kafka_without_a_start_ends_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sent with the simulated times, a stream that began now would run ahead of the worker's clock,
    which refuses such times (docs/data-flow.md, "Bounded input"): it ends now instead."""
    sent: list[int] = []

    async def fake_produce(events, target, topic, realtime, speed):  # type: ignore[no-untyped-def]
        assert not realtime
        sent.extend(received_at for received_at, _ in events)
        return len(sent)

    monkeypatch.setattr("otklik.streams.tools.simulate.edges.produce", fake_produce)
    before = time.time()
    args = ["--pages", "3", "--rate", "5", "--duration", "600", "--seed", "4", "--fast", "--bootstrap", "127.0.0.1:1"]
    result = CliRunner().invoke(simulate_command, args)
    assert result.exit_code == 0, result.output
    assert sent and min(sent) >= before - 601 and max(sent) <= time.time()
    assert max(sent) - min(sent) > 300  # the simulated span, not squeezed
