"""`otklik moderate` and `otklik triage` as a person uses them: JSON Lines through a pipe."""

from __future__ import annotations

import subprocess

import orjson

from tests.conftest import OTKLIK


def pipe(command: str, lines: list[bytes]) -> list[dict]:
    done = subprocess.run([OTKLIK, command], input=b"\n".join(lines) + b"\n", capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def test_moderate_labels_each_line_and_survives_a_bad_one():
    out = pipe(
        "moderate",
        [
            orjson.dumps({"id": "a", "text": "Когда починят крышу спортзала?"}),
            b"{broken",
            orjson.dumps({"id": "b", "text": "Вы там совсем охуели"}),
            orjson.dumps({"id": 3, "text": "Заработок от 5000 в день без вложений, пиши в телеграм @job"}),
        ],
    )
    assert out[0] == {"id": "a", "labels": []}
    assert out[1]["id"] is None and "line 2" in out[1]["error"]
    assert out[2] == {"id": "b", "labels": ["obscene"]}
    assert out[3]["id"] == 3 and "spam" in out[3]["labels"]


def test_triage_decides_with_a_reason_and_survives_a_bad_line():
    out = pipe(
        "triage",
        [
            orjson.dumps({"id": 1, "text": "Спасибо большое!"}),
            orjson.dumps({"id": 2, "text": "Опять на Ленина яма на дороге"}),
            orjson.dumps({"id": 3, "text": "Иван, согласен с вами", "addressed_to": "citizen"}),
            orjson.dumps({"id": 4, "addressed_to": "page"}),
        ],
    )
    assert out[0] == {"id": 1, "needs_answer": False, "reason": "gratitude"}
    assert out[1]["needs_answer"] is True
    assert out[2] == {"id": 3, "needs_answer": False, "reason": "between_citizens"}
    assert out[3] == {"id": None, "error": "line 4: 'text' must be a string"}
