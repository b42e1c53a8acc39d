"""``otklik replay``: lines in, one row per item out; order of lines within the window does not matter."""

from __future__ import annotations

import io
import random
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otklik.agents.registry import Registry
from otklik.agents.replay import ROW_FIELDS, iso, parse_time, replay_file, run_replay

G = 123456
PAGE = f"vk:{G}"
H = 3600
ADMIN = 7001


def at(text: str, tz: str = "Europe/Moscow") -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp())


T = at("2025-11-26T10:00")  # a Wednesday


def reg(**page: Any) -> Registry:
    return Registry.from_mapping(
        {
            "defaults": {"timezone": "Europe/Moscow"},
            "pages": [{"id": PAGE, "administrators": [f"vk:user:{ADMIN}"], **page}],
        }
    )


_n = 0


def comment(
    cid: int, from_id: int, date: int, parents: tuple[int, ...] = (), event: str = "wall_reply_new", **extra: Any
) -> dict[str, Any]:
    global _n
    _n += 1
    obj = {
        "id": cid,
        "from_id": from_id,
        "date": date,
        "text": "Когда починят освещение во дворе?",
        "post_id": 88,
        "owner_id": -G,
        "parents_stack": list(parents),
        **extra,
    }
    return {"type": event, "group_id": G, "event_id": f"ev{_n}", "v": "5.199", "object": obj}


def delete(cid: int, deleter: int) -> dict[str, Any]:
    global _n
    _n += 1
    return {
        "type": "wall_reply_delete",
        "group_id": G,
        "event_id": f"ev{_n}",
        "object": {"owner_id": -G, "id": cid, "post_id": 88, "deleter_id": deleter},
    }


def line(body: dict[str, Any], received_at: Any = None) -> bytes:
    if received_at is None:
        return orjson.dumps(body)
    return orjson.dumps({"received_at": received_at, "body": body})


def item(n: int) -> str:
    return f"vk:{G}:wall:88:{n}"


def test_rows_have_exactly_the_documented_fields_and_formats() -> None:
    lines = [
        line(comment(1, 5001, T)),  # bare body: received at its date
        line(comment(2, -G, T + 1800, parents=(1,), reply_to_comment=1, reply_to_user=5001), "2025-11-26T07:30:05Z"),
        line(comment(3, 5002, T + 60), T + 61),
    ]
    rows = run_replay(lines, reg(), now=T + 2 * H)
    assert [tuple(r) for r in rows] == [ROW_FIELDS, ROW_FIELDS]
    answered, still_open = rows
    assert answered == {
        "item": item(1),
        "page": PAGE,
        "kind": "comment",
        "author": "vk:user:5001",
        "created_at": "2025-11-26T07:00:00Z",
        "outcome": "answered",
        "closed_at": "2025-11-26T07:30:00Z",
        "latency_s": 1800,
        "business_latency_s": 1800,
        "age_s": None,
        "business_age_s": None,
        "deadline": "8h working",
        "breached": False,
        "responder": PAGE,
        "reason": None,
    }
    assert still_open["item"] == item(3) and still_open["outcome"] == "open"
    assert (still_open["closed_at"], still_open["latency_s"], still_open["business_latency_s"]) == (None, None, None)
    assert (still_open["age_s"], still_open["business_age_s"], still_open["breached"]) == (
        2 * H - 60,
        2 * H - 60,
        False,
    )


def test_rows_are_ordered_by_creation_time_then_item_id() -> None:
    lines = [line(comment(n, 5000 + n, T + (10 if n % 2 else 0)), T + 20 - n) for n in (5, 2, 4, 3, 1)]
    rows = run_replay(lines, reg())
    assert [r["item"] for r in rows] == [item(2), item(4), item(1), item(3), item(5)]


def test_now_defaults_to_the_last_event_and_judges_open_items() -> None:
    lines = [line(comment(1, 5001, T)), line(comment(2, 5002, at("2025-11-27T11:00")))]
    (first, _second) = run_replay(lines, reg())
    assert (first["age_s"], first["business_age_s"], first["breached"]) == (25 * H, 10 * H, True)
    (first, _second) = run_replay(lines, reg(), now=T + H)
    assert (first["business_age_s"], first["breached"]) == (H, False)


def test_lines_are_processed_in_order_of_received_at() -> None:
    # In the file: deletion, page reply, comment. Received: comment, deletion, then the reply was written.
    lines = [
        line(delete(1, ADMIN), "2025-11-26T07:05:00Z"),
        line(comment(2, -G, T + 600, parents=(1,)), T + 600),
        line(comment(1, 5001, T), T),
    ]
    (row,) = run_replay(lines, reg())
    assert (row["outcome"], row["latency_s"]) == ("moderated", 300)


def test_bare_deletions_and_restorations_are_rejected_with_the_line_number() -> None:
    errors: list[tuple[int, str]] = []
    lines = [
        line(comment(1, 5001, T)),
        line(delete(1, 5001)),
        b"",
        line(comment(1, 5001, T, event="wall_reply_restore")),
    ]
    rows = run_replay(lines, reg(), on_error=lambda n, why: errors.append((n, why)))
    assert [n for n, _ in errors] == [2, 4]
    assert "line 2: a bare wall_reply_delete body has no time of its own" in errors[0][1]
    assert "received_at" in errors[0][1]
    assert rows[0]["outcome"] == "open"  # the rejected lines changed nothing


def test_malformed_lines_are_reported_counted_and_skipped() -> None:
    errors: list[tuple[int, str]] = []
    lines = [
        b"{not json",
        b"[1, 2]",
        line(comment(1, 5001, T), "yesterday"),
        line(comment(1, 5001, T), "2025-11-26T10:00:00"),  # no time zone: ambiguous
        orjson.dumps({"body": comment(1, 5001, T)}),
        line({"type": "wall_reply_new", "group_id": G, "object": {"id": 1, "post_id": 88}}, T),
        line(comment(9, 5009, T)),
    ]
    rows = run_replay(lines, reg(), on_error=lambda n, why: errors.append((n, why)))
    assert [n for n, _ in errors] == [1, 2, 3, 4, 5, 6]
    reasons = [why for _, why in errors]
    assert reasons[0].startswith("line 1: not JSON")
    assert reasons[1] == "line 2: expected a JSON object, got list"
    assert reasons[2].startswith("line 3: received_at:")
    assert "time zone" in reasons[3]
    assert reasons[4] == "line 5: received_at: missing"
    assert reasons[5] == "line 6: wall_reply_new: object.from_id: missing"
    assert [r["item"] for r in rows] == [item(9)]


def test_unmeasured_bare_events_without_a_date_are_fine() -> None:
    confirmation = orjson.dumps({"type": "confirmation", "group_id": G})
    errors: list[Any] = []
    assert run_replay([confirmation], reg(), on_error=lambda *a: errors.append(a)) == []
    assert errors == []


def test_parse_time() -> None:
    assert parse_time(1764144000) == parse_time("1764144000") == parse_time("2025-11-26T08:00:00Z")
    assert parse_time("2025-11-26T11:00:00+03:00") == 1764144000
    assert parse_time(1764144000.9) == 1764144000
    assert iso(1764144000) == "2025-11-26T08:00:00Z"
    with pytest.raises(ValueError, match="time zone"):
        parse_time("2025-11-26T08:00:00")
    with pytest.raises(ValueError):
        parse_time(True)


def test_replay_file(tmp_path: Path) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"defaults:\n  timezone: Europe/Moscow\npages:\n  - id: {PAGE}\n    deadline: 4h working\n")
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"\n".join([line(comment(1, 5001, T)), b"oops", line(comment(2, -G, T + 60, parents=(1,)))]) + b"\n"
    )
    out = tmp_path / "out.jsonl"
    err = io.StringIO()
    counts = replay_file(str(events), str(registry), None, str(out), err=err)
    assert counts == {"lines": 3, "malformed": 1, "items": 1}
    assert f"{events}: line 2: not JSON" in err.getvalue()
    (row,) = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert (row["item"], row["outcome"], row["deadline"]) == (item(1), "answered", "4h working")
    sink = io.BytesIO()
    replay_file(str(events), str(registry), "2025-11-27T00:00:00Z", sink, err=io.StringIO())
    assert orjson.loads(sink.getvalue().splitlines()[0]) == row


def _history(seed: int) -> list[tuple[int, bytes]]:
    """A random page history as (received_at, line): many events share a received_at second."""
    rng = random.Random(seed)
    t = T
    out: list[tuple[int, bytes]] = []
    comments: list[tuple[int, int, int]] = []
    for cid in range(1, rng.randint(5, 50)):
        t += rng.choice([0, 0, 0, 1, 30, 200])
        roll = rng.random()
        if roll < 0.5 or not comments:
            author = rng.choice([5001, 5002, 5003])
            parent = rng.choice([None, *comments])
            parents = () if parent is None else (parent[0],)
            out.append((t, line(comment(cid, author, t - rng.randint(0, 5), parents=parents), t)))
            comments.append((cid, author, t))
        elif roll < 0.85:
            target = rng.choice(comments)
            body = comment(
                cid,
                rng.choice([-G, ADMIN]),
                t - rng.randint(0, 5),
                parents=(target[0],),
                reply_to_user=rng.choice([target[1], None]) or 0,
            )
            out.append((t, line(body, t)))
        else:
            target = rng.choice(comments)
            out.append((t, line(delete(target[0], rng.choice([target[1], ADMIN])), t)))
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**9), shuffle_seed=st.integers(0, 10**9))
def test_the_same_file_shuffled_within_ten_minutes_gives_identical_output(seed: int, shuffle_seed: int) -> None:
    history = _history(seed)
    rng = random.Random(shuffle_seed)
    shuffled = [x for _, x in sorted(history, key=lambda h: h[0] + rng.uniform(0, 600))]
    registry = reg()
    assert run_replay(shuffled, registry) == run_replay([x for _, x in history], registry)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**9), form=st.sampled_from(["iso", "string digits", "float", "bare"]))
def test_every_form_of_received_at_gives_the_same_output(seed: int, form: str) -> None:
    """Lines with integer ``received_at`` take a short path; ISO-8601, digit strings, floats and bare
    bodies take the general one: both must read the same events the same way."""
    history = _history(seed)
    registry = reg()
    expected = run_replay([x for _, x in history], registry)
    rewritten = []
    for t, raw in history:
        data = orjson.loads(raw)
        body = data["body"]
        if form == "iso":
            rewritten.append(line(body, datetime.fromtimestamp(t, ZoneInfo("Asia/Yekaterinburg")).isoformat()))
        elif form == "string digits":
            rewritten.append(line(body, str(t)))
        elif form == "float":
            rewritten.append(line(body, t + 0.25))
        elif body["type"].endswith("_delete"):
            rewritten.append(line(body, t))  # bare deletions are rejected: keep them wrapped
        else:
            # A bare body is received at its own date; the history's comments are received up to 5 s
            # after it, so compare with the wrapped file received at the dates.
            rewritten.append(line(body))
    if form == "bare":
        wrapped_at_date = []
        for t, raw in history:
            body = orjson.loads(raw)["body"]
            wrapped_at_date.append(line(body, t if body["type"].endswith("_delete") else body["object"]["date"]))
        expected = run_replay(wrapped_at_date, registry)
    assert run_replay(rewritten, registry) == expected


def test_a_line_received_before_the_previous_one_is_processed_first() -> None:
    """The file is sorted by received_at when (and only when) it is out of order, stably."""
    reply = line(comment(2, -G, T + 60, parents=(1,)), T + 60)
    first = line(comment(1, 5001, T), T)
    late_duplicate_id = line(comment(3, 5002, T + 60), T + 60)  # same received_at as the reply: file order
    in_order = run_replay([first, reply, late_duplicate_id], reg())
    assert run_replay([reply, first, late_duplicate_id], reg()) == in_order
    assert [r["outcome"] for r in in_order] == ["answered", "open"]


def test_an_item_closed_and_restored_is_one_open_row() -> None:
    lines = [
        line(comment(1, 5001, T), T),
        line(delete(1, ADMIN), T + 60),
        line(comment(1, 5001, T, event="wall_reply_restore"), T + 3 * H),  # after the window: reopens
    ]
    (row,) = run_replay(lines, reg())
    assert (row["item"], row["outcome"], row["closed_at"]) == (item(1), "open", None)


def test_iso_formats_every_second_of_a_day_like_strftime() -> None:
    import time

    day = T - T % 86400
    for t in range(day - 5, day + 86400 + 5, 7):
        assert iso(t) == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    assert iso(None) is None


# ---- every platform: raw envelopes as the gateway writes them to otklik.raw ---------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TG_LINKS = {-1009876543210: -1001234567890}  # the discussion group of the fixtures -> its channel


def fixture(platform: str, name: str) -> dict[str, Any]:
    return orjson.loads((FIXTURES / platform / f"{name}.json").read_bytes())


def envelope(platform: str, body: dict[str, Any], received_at: float, source: str = "test") -> bytes:
    from otklik.schemas.records import RawEnvelope

    return RawEnvelope(platform, source, received_at, body).to_json()  # type: ignore[arg-type]


def test_raw_envelopes_of_every_platform_replay_through_the_workers_normalizers() -> None:
    """Telegram: a channel reply to a citizen's follow-up answers it and the citizen's first comment (same
    author, same post); MAX: an operator's reply answers the message it links; VK as an envelope too."""
    lines = [
        envelope("tg", fixture("tg", "comment"), 1764061200.5),
        envelope("tg", fixture("tg", "followup_reply_to_own_comment"), 1764062000.2),
        envelope("tg", fixture("tg", "other_citizen_comment"), 1764062001.0),
        envelope("tg", fixture("tg", "channel_reply"), 1764064800.9),
        envelope("max", fixture("max", "chat_message_created"), 1764061200.4),
        envelope("max", fixture("max", "chat_admin_reply"), 1764064800.5),
        envelope("vk", comment(1, 5001, T), T + 0.7, source="vk-callback"),
    ]
    errors: list[tuple[int, str]] = []
    registry = Registry.from_mapping(
        {
            "defaults": {"timezone": "Europe/Moscow"},
            "pages": [{"id": "max:-68123456789", "administrators": ["max:user:40900"]}],
        }
    )
    rows = run_replay(lines, registry, now=1764070000, tg_links=TG_LINKS, on_error=lambda *e: errors.append(e))
    assert errors == []
    outcome = {r["item"]: (r["outcome"], r["responder"]) for r in rows}
    tg, mx = "tg:1001234567890", "max:-68123456789"
    assert outcome == {
        f"{tg}:post:410:412": ("answered", tg),
        f"{tg}:post:410:415": ("answered", tg),
        f"{tg}:post:410:413": ("open", None),  # another citizen's comment: not addressed
        f"{mx}:chat:-68123456789:mid.0000000f3b9a1c2d019ac0a1b2c3d4e5": ("answered", "max:user:40900"),
        item(1): ("open", None),
    }


def test_an_envelope_and_a_wrapped_vk_line_replay_alike() -> None:
    bodies = [comment(1, 5001, T), comment(2, -G, T + 300, parents=(1,)), delete(1, ADMIN)]
    wrapped = [line(b, T + 400 * i) for i, b in enumerate(bodies)]
    enveloped = [envelope("vk", b, float(T + 400 * i)) for i, b in enumerate(bodies)]
    assert run_replay(enveloped, reg()) == run_replay(wrapped, reg())


def test_telegram_links_come_from_the_caller_and_a_missing_one_is_reported() -> None:
    # A citizen's reply to their own comment names no channel: only the link does.
    reply = envelope("tg", fixture("tg", "followup_reply_to_own_comment"), 1764062000)
    errors: list[tuple[int, str]] = []
    assert run_replay([reply], reg(), on_error=lambda *e: errors.append(e)) == []
    ((number, reason),) = errors
    assert number == 1 and "discussion group -1009876543210 is not linked" in reason
    assert [r["item"] for r in run_replay([reply], reg(), tg_links=TG_LINKS)] == ["tg:1001234567890:post:410:415"]


def test_bad_envelopes_are_rejected_with_the_workers_reason_and_the_line_number() -> None:
    errors: list[tuple[int, str]] = []
    lines = [
        orjson.dumps({"platform": "xx", "source": "test", "received_at": T, "body": {}}),
        orjson.dumps({"platform": "vk", "source": "test", "received_at": "yesterday", "body": comment(1, 5001, T)}),
        envelope("ok", {"anything": 1}, T),
        envelope("max", {"update_type": "message_created", "timestamp": 1, "message": {}}, T),
        envelope("vk", comment(2, 5002, T), T),
    ]
    rows = run_replay(lines, reg(), on_error=lambda *e: errors.append(e))
    assert [n for n, _ in errors] == [1, 2, 3, 4]
    reasons = [why for _, why in errors]
    assert reasons[0].startswith("line 1: envelope.platform: 'xx' is not one of")
    assert reasons[1].startswith("line 2: envelope.received_at:")
    assert reasons[2] == "line 3: platform 'ok' has no normalizer yet"
    assert reasons[3].startswith("line 4: max ")
    assert [r["item"] for r in rows] == [item(2)]


def test_the_cli_takes_telegram_links_from_the_option_or_the_workers_variable(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from otklik.streams.cli import main

    registry = tmp_path / "registry.yaml"
    registry.write_text("defaults:\n  timezone: Europe/Moscow\n")
    events = tmp_path / "raw.jsonl"
    events.write_bytes(envelope("tg", fixture("tg", "followup_reply_to_own_comment"), 1764062000) + b"\n")
    args = ["replay", str(events), "--registry", str(registry)]
    runner = CliRunner()
    by_env = runner.invoke(main, args, env={"OTKLIK_TG_LINKS": "-1009876543210=-1001234567890"})
    by_option = runner.invoke(main, [*args, "--tg-links", "-1009876543210=-1001234567890"])
    for result in (by_env, by_option):
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout.splitlines()[0])["item"] == "tg:1001234567890:post:410:415"
    unlinked = runner.invoke(main, args, env={"OTKLIK_TG_LINKS": ""})
    assert "is not linked" in unlinked.stderr and unlinked.stdout == ""
    bad = runner.invoke(main, [*args, "--tg-links", "oops"])
    assert bad.exit_code == 2 and "--tg-links" in bad.output
