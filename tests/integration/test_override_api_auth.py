"""The worker's correction API takes a correction only with a bearer token from OTKLIK_API_TOKENS, records
the token's name as `by`, and never writes the token to its log; `otklik override --api` goes through it
(docs/triage.md, "Corrections")."""

from __future__ import annotations

import secrets
import subprocess
import urllib.error
import urllib.request

import orjson
import pytest

from tests.conftest import OTKLIK, consume, run

pytestmark = pytest.mark.integration

GROUP = 200000733
ITEM = f"vk:{GROUP}:wall:4:1"


def post(worker, body: dict, authorization: str | None = None) -> tuple[int, dict[str, str], dict]:  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(
        f"{worker.web}/api/items/{ITEM}/override", method="POST", data=orjson.dumps(body), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), orjson.loads(exc.read())


def test_corrections_need_a_known_token_and_carry_its_name(worker_factory, kafka, tmp_path) -> None:
    correction = {"needs_answer": True, "note": "это жалоба"}
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"pages:\n  - id: vk:{GROUP}\n")
    worker = worker_factory(registry, OTKLIK_AGENTS="normalize,responses", OTKLIK_LOG_LEVEL="debug")

    # Unset: secure by default, and the refusal says how to configure it.
    worker.start()
    status, headers, answer = post(worker, correction, f"Bearer {secrets.token_urlsafe(32)}")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert "OTKLIK_API_TOKENS" in answer["error"]
    worker.stop()

    token, other = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"# who may correct\n{token} Петрова (ЦУР)\n{other} Сидоров\n")
    worker.env["OTKLIK_API_TOKENS"] = str(tokens)
    worker.start()

    status, headers, _ = post(worker, correction)
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="otklik"'
    status, headers, _ = post(worker, correction, f"Bearer {secrets.token_urlsafe(32)}")
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    status, _, answer = post(worker, {**correction, "by": "Сидоров"}, f"Bearer {token}")
    assert status == 403 and "Петрова (ЦУР)" in answer["error"]

    status, _, answer = post(worker, correction, f"Bearer {token}")
    assert status == 202 and answer["accepted"]["by"] == "Петрова (ЦУР)"
    status, _, answer = post(worker, {**correction, "by": "Сидоров"}, f"Bearer {other}")
    assert status == 202 and answer["accepted"]["by"] == "Сидоров"

    # `otklik override --api` posts the same way, with a token from a file or OTKLIK_API_TOKEN.
    token_file = tmp_path / "my-token"
    token_file.write_text(other + "\n")
    command = [OTKLIK, "override", ITEM, "--needs-answer", "no", "--note", "спам"]
    done = subprocess.run(
        [*command, "--api", worker.web, "--token-file", str(token_file)],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "by Сидоров" in done.stdout, done.stderr
    refused = subprocess.run(
        [*command, "--by", "Сидоров"],
        env={**worker.env, "OTKLIK_API_URL": worker.web, "OTKLIK_API_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "answered 403" in refused.stderr, refused.stderr
    assert token not in refused.stdout + refused.stderr

    written = run(consume(kafka, worker.topic("otklik.overrides"), expect=3, timeout=30))
    assert [orjson.loads(m.value)["by"] for m in written] == ["Петрова (ЦУР)", "Сидоров", "Сидоров"]
    assert [orjson.loads(m.value)["needs_answer"] for m in written] == [True, True, False]
    worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "the correction API accepts 2 token(s)" in log  # the log holds the worker's own output
    assert token not in log and other not in log
