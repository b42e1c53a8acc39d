"""``otklik replay --jobs N``: the same bytes on standard output and the same error reports as one job."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from otklik.agents.replay import replay_file, tick_times
from otklik.schemas.records import RawEnvelope
from otklik.streams.tools.simulate.traffic import generate, registry_mapping
from otklik.streams.tools.simulate.world import SimConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TG_LINKS = {-1009876543210: -1001234567890}
START = 1764230400  # 2025-11-27 08:00 UTC


def fixture(platform: str, name: str) -> dict[str, Any]:
    return orjson.loads((FIXTURES / platform / f"{name}.json").read_bytes())


def envelope(platform: str, body: dict[str, Any], received_at: float) -> bytes:
    return RawEnvelope(platform, "test", received_at, body).to_json()  # type: ignore[arg-type]


def sample(tmp_path: Path) -> tuple[Path, Path]:
    """Simulated VK traffic of 30 pages over a day (so the engine ticks and items expire windows),
    some of it as raw envelopes, Telegram and MAX envelopes, a correction of triage, malformed lines."""
    cfg = SimConfig(pages=30, rate=0.1, duration=86400.0, seed=5, start=START)
    lines: list[bytes] = []
    vk_items: list[str] = []
    for n, (t, body) in enumerate(generate(cfg)):
        if n % 7 == 3:
            lines.append(envelope("vk", body, t + 0.25))  # a dump of otklik.raw: decoded by every job
        else:
            lines.append(orjson.dumps({"received_at": t, "body": body}))
        obj = body.get("object", {})
        if body["type"] == "wall_reply_new" and obj.get("from_id", 0) > 0 and len(vk_items) < 5:
            vk_items.append(f"vk:{body['group_id']}:wall:{obj['post_id']}:{obj['id']}")
    at = START + 3600
    for name in ("comment", "followup_reply_to_own_comment", "other_citizen_comment", "channel_reply"):
        lines.insert(len(lines) // 3, envelope("tg", fixture("tg", name), at))
        at += 600
    for name in ("chat_message_created", "chat_admin_reply"):
        lines.insert(len(lines) // 2, envelope("max", fixture("max", name), at))
        at += 300
    for item in vk_items[:2]:
        correction = {"item": item, "needs_answer": False, "by": "test", "note": "a test"}
        lines.append(orjson.dumps({"received_at": START + 7200, "override": correction}))
    lines[10:10] = [
        b"not json",
        orjson.dumps({"received_at": START, "body": {"type": "wall_reply_new", "group_id": -5, "object": {}}}),
        orjson.dumps({"type": "wall_reply_delete", "group_id": 7, "object": {"id": 1}}),
        orjson.dumps({"received_at": START, "body": {"type": "wall_reply_new", "group_id": 200000101}}),
        orjson.dumps({"received_at": START, "override": {"item": "nonsense"}}),
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    mapping = registry_mapping(cfg)
    mapping["pages"] += [
        {"id": "tg:1001234567890"},
        {"id": "max:-68123456789", "administrators": ["max:user:40900"]},
    ]
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump(mapping, allow_unicode=True))
    return events, registry


def run(events: Path, registry: Path, jobs: int) -> tuple[bytes, list[str]]:
    out, err = io.BytesIO(), io.StringIO()
    replay_file(str(events), str(registry), out=out, err=err, tg_links=TG_LINKS, jobs=jobs)
    reports = err.getvalue().splitlines()
    assert reports[-1].startswith("otklik replay: ")  # the summary: its time differs from run to run
    return out.getvalue(), reports[:-1]


@pytest.mark.parametrize("jobs", [2, 3])
def test_jobs_give_the_same_bytes_and_the_same_error_reports(tmp_path: Path, jobs: int) -> None:
    events, registry = sample(tmp_path)
    one, one_errors = run(events, registry, 1)
    rows = [orjson.loads(line) for line in one.splitlines()]
    pages = {row["page"] for row in rows}
    # The sample is what the test claims: several platforms and pages, corrections, errors.
    assert {p.split(":")[0] for p in pages} == {"vk", "tg", "max"} and len(pages) > 20
    assert any((row.get("reason") or "") == "override" for row in rows)
    assert len(one_errors) == 5
    many, many_errors = run(events, registry, jobs)
    assert many_errors == one_errors
    assert many == one


def test_tick_times_follow_the_first_event_an_hour_after_the_last_tick() -> None:
    assert tick_times([]) == []
    assert tick_times([0, 10, 3599, 3600, 3601, 7100, 7200, 7300, 20000]) == [3600, 7200, 20000]


def malformed_throughout(data: bytes) -> bytes:
    """A malformed line at each tenth of the lines: some in every job's run."""
    lines = data.splitlines()
    for tenth in range(9, 0, -1):
        lines.insert(len(lines) * tenth // 10, b'{"received_at": ' + str(tenth).encode())
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        # Lines ending in "\r\n", one in a lone "\r", and a malformed line in the last job's run, whose
        # number counts the "\r": the jobs cannot cut the bytes at "\n" alone.
        ("crlf", lambda data: data.replace(b"\n", b"\r\n", 40).replace(b"\r\n", b"\r", 1) + b"not json\n"),
        ("no final newline, blank lines", lambda data: data.replace(b"\n", b"\n\n\n", 25).rstrip(b"\n")),
        ("fewer lines than jobs", lambda data: b"\n".join(data.splitlines()[9:11])),
        # Each job numbers its run's lines from 1: a report names the line's number in the file.
        ("malformed lines in every run", lambda data: malformed_throughout(data)),
    ],
)
def test_jobs_cut_the_file_where_its_lines_end(tmp_path: Path, name: str, edit: Any) -> None:
    events, registry = sample(tmp_path)
    events.write_bytes(edit(events.read_bytes()))
    one, one_errors = run(events, registry, 1)
    assert one_errors  # the sample's malformed lines are numbered: a wrong cut would renumber them
    for jobs in (2, 3):
        assert run(events, registry, jobs) == (one, one_errors), name


def test_a_line_whose_last_group_id_is_another_pages_gives_the_same_output(tmp_path: Path) -> None:
    """The sample that shares the pages out reads "group_id" in the raw bytes, an object's too (here
    naming another group, after the body's own); the page its events name decides which job runs
    them: output unchanged."""
    events, registry = sample(tmp_path)
    lines = events.read_bytes().splitlines()
    edited = 0
    for n in range(20, len(lines), 3):
        data = orjson.loads(lines[n])
        body = data.get("body") if type(data) is dict else None
        if type(body) is dict and type(body.get("object")) is dict and "group_id" in body:
            obj = body.pop("object")
            obj["group_id"] = body["group_id"] + 1 + n % 7  # another page, most often another job's
            body["object"] = obj  # after the body's own group_id: the line's last
            lines[n] = orjson.dumps(data)
            edited += 1
    assert edited > 50
    events.write_bytes(b"\n".join(lines) + b"\n")
    one = run(events, registry, 1)
    assert one[1]  # the sample's malformed lines, still reported once each, in order
    for jobs in (2, 3):
        assert run(events, registry, jobs) == one
