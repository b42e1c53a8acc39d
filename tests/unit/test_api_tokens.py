"""The correction API's token file (streams/worker/api_tokens.py) and its setting, OTKLIK_API_TOKENS."""

from __future__ import annotations

import secrets

import pytest

from otklik.streams.settings import SettingsError, WorkerSettings
from otklik.streams.worker.api_tokens import ApiTokens, ApiTokensError

ALICE = secrets.token_urlsafe(32)
BOB = secrets.token_urlsafe(32)


def test_each_token_names_its_holder_and_nothing_else_does() -> None:
    tokens = ApiTokens.parse(f"# the ЦУР team\n\n{ALICE} Петрова (ЦУР)\n{BOB}\tbot\n")
    assert tokens.name_of(f"Bearer {ALICE}") == "Петрова (ЦУР)"
    assert tokens.name_of(f"bearer {BOB}") == "bot"  # the scheme is case-insensitive (RFC 7235)
    assert tokens.name_of(f"Bearer {ALICE[:-1]}") is None
    assert tokens.name_of(f"Bearer {ALICE}x") is None
    assert tokens.name_of(ALICE) is None  # no scheme
    assert tokens.name_of(f"Basic {ALICE}") is None
    assert tokens.name_of("") is None
    assert tokens.name_of(None) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"{ALICE} a\n{ALICE[:10]} b\n", "line 2: the token is shorter than 32 characters"),
        (f"# x\n{ALICE}\n", "line 2: no name after the token"),
        (f"{ALICE} a\n\n{ALICE} b\n", "line 3: the same token as an earlier line"),
        (f"{ALICE}ж a\n", "line 1: the token has characters other than"),
        ("# nobody yet\n", "no tokens"),
    ],
)
def test_a_bad_file_names_the_line_and_never_a_token(text: str, problem: str) -> None:
    with pytest.raises(ApiTokensError) as refused:
        ApiTokens.parse(text, "tokens.txt")
    assert problem in str(refused.value)
    assert ALICE[:10] not in str(refused.value)


def test_a_bad_file_stops_the_worker_at_start_up(tmp_path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{ALICE} Петрова\n{BOB}\n")
    with pytest.raises(SettingsError) as refused:
        WorkerSettings.from_env({"OTKLIK_API_TOKENS": str(path)})
    assert str(refused.value) == f"OTKLIK_API_TOKENS: {path}, line 2: no name after the token (expected `TOKEN NAME`)"
    with pytest.raises(SettingsError, match="OTKLIK_API_TOKENS: .*cannot be read"):
        WorkerSettings.from_env({"OTKLIK_API_TOKENS": str(tmp_path / "missing.txt")})
    path.write_text(f"{ALICE} Петрова\n")
    assert WorkerSettings.from_env({"OTKLIK_API_TOKENS": str(path)}).api_tokens_file == path
    assert WorkerSettings.from_env({}).api_tokens_file is None


def test_otklik_override_says_what_it_needs_before_reaching_anything() -> None:
    from click.testing import CliRunner

    from otklik.streams.cli import main

    command = ["override", "vk:1:wall:2:3", "--needs-answer", "no", "--note", "спам"]
    unset = {"OTKLIK_API_URL": None, "OTKLIK_API_TOKEN": None}
    direct = CliRunner().invoke(main, command, env=unset)
    assert direct.exit_code == 2 and "--by is required when the correction is written to Kafka" in direct.output
    no_token = CliRunner().invoke(main, [*command, "--api", "http://127.0.0.1:9"], env=unset)
    assert no_token.exit_code == 1 and "the API needs a token: --token-file FILE or OTKLIK_API_TOKEN" in no_token.output
    bad_url = CliRunner().invoke(main, command, env={**unset, "OTKLIK_API_URL": "127.0.0.1:6066"})
    assert bad_url.exit_code == 2 and "OTKLIK_API_URL: '127.0.0.1:6066' is not a worker's address" in bad_url.output
