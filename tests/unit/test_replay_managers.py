"""``otklik replay`` applies changes of a page's managers as the worker does (docs/responses.md,
"Page replies"): VK ``group_officers_edit`` bodies, in every line form, and records of ``otklik.managers``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import yaml

from otklik.agents.registry import Registry
from otklik.agents.replay import replay_file, run_replay
from otklik.schemas.records import RawEnvelope
from tests.unit.test_responses import VK, at

G = 123456
PAGE = f"vk:{G}"
SMM, CITIZEN = 6001, 5001
REGISTRY = {"defaults": {"timezone": "Europe/Moscow"}, "pages": [{"id": PAGE}]}


def officers(vk: VK, user: int, old: int, new: int) -> dict[str, Any]:
    return vk._env("group_officers_edit", {"admin_id": 1, "user_id": user, "level_old": old, "level_new": new})


def asks(body: dict[str, Any]) -> dict[str, Any]:
    body["object"]["text"] = "Когда починят дорогу у школы?"  # needs an answer, as triage judges it
    return body


def day(role_line: bytes | None) -> list[bytes]:
    """A citizen's comment at 10:00; the SMM's replies at 10:30 and 12:30; ``role_line`` at 12:00."""
    vk, t = VK(), at("2025-11-26T10:00")
    lines = [
        orjson.dumps(asks(vk.comment(1, CITIZEN, t))),
        orjson.dumps(asks(vk.comment(2, SMM, t + 1800, parents=(1,), to_comment=1, to_user=CITIZEN))),
        orjson.dumps(vk.comment(3, SMM, t + 9000, parents=(1,), to_comment=1, to_user=CITIZEN)),
    ]
    if role_line is not None:
        lines.insert(2, role_line)
    return lines


def rows(lines: list[bytes]) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str]]]:
    errors: list[tuple[int, str]] = []
    out = run_replay(lines, Registry.from_mapping(REGISTRY), on_error=lambda n, r: errors.append((n, r)))
    return {row["item"]: row for row in out}, errors


def item(n: int) -> str:
    return f"vk:{G}:wall:88:{n}"


def role_lines() -> dict[str, bytes]:
    t = at("2025-11-26T12:00")
    body = officers(VK(), SMM, 0, 2)
    return {
        "body": orjson.dumps({"received_at": t, "body": body}),
        "envelope": RawEnvelope("vk", "vk-callback", t, body).to_json(),
        "record": orjson.dumps(
            {"managers": {"kind": "change", "page": PAGE, "user": f"vk:user:{SMM}", "manager": True, "at": t}}
        ),
        "list": orjson.dumps({"managers": {"kind": "list", "page": PAGE, "users": [f"vk:user:{SMM}"], "at": t}}),
    }


def test_without_the_role_the_smm_is_a_citizen() -> None:
    got, errors = rows(day(None))
    assert not errors
    assert got[item(1)]["outcome"] != "answered"
    assert item(3) in got


def test_every_form_of_the_role_change_makes_later_replies_the_pages() -> None:
    for name, line in role_lines().items():
        got, errors = rows(day(line))
        assert not errors, name
        assert (got[item(1)]["outcome"], got[item(1)]["responder"]) == ("answered", f"vk:user:{SMM}"), name
        assert got[item(2)]["author"] == f"vk:user:{SMM}", name  # written before the role: a citizen's
        assert item(3) not in got, name


def test_malformed_changes_are_reported_by_line() -> None:
    bad = [
        orjson.dumps({"managers": {"kind": "change", "page": PAGE, "manager": True, "at": 5}}),
        orjson.dumps(
            {
                "received_at": at("2025-11-26T10:00"),
                "body": {"type": "group_officers_edit", "group_id": G, "object": {}},
            }
        ),
        orjson.dumps(officers(VK(), SMM, 0, 1)),  # a bare body: no time of its own
    ]
    _, errors = rows(bad)
    assert [n for n, _ in errors] == [1, 2, 3]
    assert "user" in errors[0][1] and "user_id: missing" in errors[1][1] and "no time of its own" in errors[2][1]


def test_jobs_agree_with_one(tmp_path: Path) -> None:
    lines: list[bytes] = []
    for n, line in enumerate(role_lines().values()):
        vk, t = VK(G + n), at("2025-11-26T10:00")
        page = f"vk:{G + n}"
        line = line.replace(f"vk:{G}".encode(), page.encode()).replace(str(G).encode(), str(G + n).encode())
        lines += [
            orjson.dumps(asks(vk.comment(1, CITIZEN, t))),
            line,
            orjson.dumps(vk.comment(3, SMM, t + 9000, parents=(1,), to_comment=1, to_user=CITIZEN)),
        ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    registry = tmp_path / "registry.yaml"
    pages = [{"id": f"vk:{G + n}"} for n in range(4)]
    registry.write_text(yaml.safe_dump({"defaults": {"timezone": "Europe/Moscow"}, "pages": pages}))
    outputs = []
    for jobs in (1, 2):
        out, err = io.BytesIO(), io.StringIO()
        replay_file(str(events), str(registry), out=out, err=err, jobs=jobs)
        outputs.append(out.getvalue())
        assert err.getvalue().startswith("otklik replay: ")  # only the summary: no line was rejected
    assert outputs[0] == outputs[1]
    answered = [orjson.loads(row) for row in outputs[0].splitlines()]  # type: ignore[attr-defined]
    assert sorted(r["outcome"] for r in answered) == ["answered"] * 4
