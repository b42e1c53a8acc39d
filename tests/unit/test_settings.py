"""The rules every OTKLIK_* variable follows (streams/settings.py), and README's generated tables."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from otklik.streams.cli import main
from otklik.streams.edge.secrets import load_secrets
from otklik.streams.settings import (
    DOCS_COMMAND,
    README,
    README_TABLES,
    GrafanaSettings,
    LocalKafkaSettings,
    NotifierSettings,
    OtklikSettings,
    SecretsSettings,
    SettingsError,
    WorkerSettings,
    render_readme,
)

ROOT = Path(__file__).resolve().parents[2]
CLASSES = sorted(set(README_TABLES.values()), key=lambda cls: cls.__name__)


def documented_variables() -> set[str]:
    """Every variable README's settings tables list."""
    return {variable for cls in README_TABLES.values() for variable, _, _ in cls.variables()}


def fields_of(cls: type[OtklikSettings], kind: type) -> list[str]:
    return [name for name, info in cls.model_fields.items() if info.annotation in (kind, kind | None)]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_an_empty_value_means_unset_for_every_variable(cls: type[OtklikSettings]) -> None:
    empty = {variable: "" for variable in documented_variables() if "<" not in variable}
    assert cls.from_env(empty) == cls.from_env({})


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_a_bad_number_names_its_variable_and_the_value(cls: type[OtklikSettings]) -> None:
    numbers = fields_of(cls, int) + fields_of(cls, float)
    for name in numbers:
        variable = cls.env_name(name)
        with pytest.raises(SettingsError) as info:
            cls.from_env({variable: "abc"})
        assert str(info.value).startswith(f"{variable}: Input should be a valid ")
        assert str(info.value).endswith("got 'abc'")


@pytest.mark.parametrize(
    "text, value",
    [("true", True), ("1", True), ("yes", True), ("TRUE", True), ("false", False), ("0", False), ("no", False)],
)
def test_booleans_take_the_same_spellings_everywhere(text: str, value: bool) -> None:
    assert NotifierSettings.from_env({"OTKLIK_SMTP_STARTTLS": text}).smtp_starttls is value
    assert WorkerSettings.from_env({"OTKLIK_FAST_DELIVERY": text}).fast_delivery is value


def test_a_bad_boolean_and_a_bad_number_are_reported_together() -> None:
    with pytest.raises(SettingsError) as info:
        WorkerSettings.from_env({"OTKLIK_FAST_DELIVERY": "maybe", "OTKLIK_PARTITIONS": "0"})
    message = str(info.value)
    assert "OTKLIK_FAST_DELIVERY: Input should be a valid boolean" in message and "got 'maybe'" in message
    assert "OTKLIK_PARTITIONS: Input should be greater than or equal to 1, got '0'" in message


def test_a_flag_wins_over_its_variable_and_a_missing_flag_does_not() -> None:
    env = {"OTKLIK_WEB_PORT": "7000", "OTKLIK_LOG_LEVEL": "debug"}
    settings = WorkerSettings.from_env(env, web_port=7001, log_level=None)
    assert (settings.web_port, settings.log_level) == (7001, "debug")


def test_other_otklik_variables_are_ignored() -> None:
    assert WorkerSettings.from_env(
        {"OTKLIK_NO_SUCH_THING": "x", "OTKLIK_SMTP_PORT": "many"}
    ) == WorkerSettings.from_env({})


def test_lists_and_links_are_read_from_their_plain_forms() -> None:
    settings = WorkerSettings.from_env(
        {"OTKLIK_AGENTS": "normalize, responses", "OTKLIK_TG_LINKS": "-1001=-1002; -3=-4"}
    )
    assert settings.agents == {"normalize", "responses"} and settings.tg_links == {-1001: -1002, -3: -4}
    with pytest.raises(SettingsError, match=r"^OTKLIK_TG_LINKS: 'oops' is not '<discussion group id>=<channel id>'$"):
        WorkerSettings.from_env({"OTKLIK_TG_LINKS": "oops"})


SECRET = "s3cr3t-Value_42"
SECRET_VARIABLES = {
    "OTKLIK_SMTP_PASSWORD": SECRET,
    "OTKLIK_TELEGRAM_TOKEN": SECRET,
    "OTKLIK_MAX_TOKEN": SECRET,
    "OTKLIK_TG_SECRET_TOKEN": SECRET,
    "OTKLIK_MAX_SECRET": SECRET,
    "OTKLIK_VK_12_SECRET": SECRET,
    "OTKLIK_VK_12_TOKEN": SECRET,
    "OTKLIK_GRAFANA_TOKEN": SECRET,
}


def test_secrets_never_show_in_repr_str_logs_or_dumps(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log = logging.getLogger("otklik.test")
    objects = [cls.from_env(SECRET_VARIABLES) for cls in (NotifierSettings, SecretsSettings, GrafanaSettings)]
    objects.append(load_secrets(SECRET_VARIABLES))
    for obj in objects:
        log.info("settings: %s %r", obj, obj)
        assert SECRET not in repr(obj) and SECRET not in str(obj)
        if isinstance(obj, OtklikSettings):
            assert SECRET not in obj.model_dump_json()
    assert SECRET not in caplog.text
    # ... while the services still get the values.
    assert NotifierSettings.from_env(SECRET_VARIABLES).smtp_password.get_secret_value() == SECRET
    assert load_secrets(SECRET_VARIABLES).community(12).token == SECRET


def test_an_error_about_a_secret_does_not_quote_it() -> None:
    with pytest.raises(SettingsError) as info:
        NotifierSettings.from_env(smtp_password=["not", SECRET])
    assert str(info.value).startswith("OTKLIK_SMTP_PASSWORD: ") and SECRET not in str(info.value)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_token_password_and_secret_is_a_secret_str(cls: type[OtklikSettings]) -> None:
    for name, info in cls.model_fields.items():
        if re.search(r"token(?!s_file)|password|secret(?!s_file)", name):  # a file's path is not a secret
            assert SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ())), name


def test_the_local_kafka_controller_listens_next_to_the_broker_unless_told() -> None:
    assert LocalKafkaSettings.from_env({"OTKLIK_KAFKA_PORT": "19092"}).controller_port == 19093
    told = LocalKafkaSettings.from_env({"OTKLIK_KAFKA_PORT": "19092", "OTKLIK_KAFKA_CONTROLLER_PORT": "20000"})
    assert told.controller_port == 20000


def test_a_bad_setting_stops_a_command_with_status_2_and_one_line() -> None:
    result = CliRunner().invoke(
        main,
        ["override", "vk:1:wall:2:3", "--needs-answer", "no", "--by", "x", "--note", "y"],
        env={"OTKLIK_KAFKA_BROKER": "localhost:9092"},
    )
    assert result.exit_code == 2
    assert result.output == "Error: OTKLIK_KAFKA_BROKER: 'localhost:9092' is not of the form kafka://HOST:PORT\n"
    result = CliRunner().invoke(main, ["kafka", "status"], env={"OTKLIK_KAFKA_PORT": "abc"})
    assert result.exit_code == 2 and result.output.startswith(
        "Error: OTKLIK_KAFKA_PORT: Input should be a valid integer"
    )


def test_readme_tables_are_generated_from_the_settings_classes() -> None:
    text = README.read_text(encoding="utf-8")
    assert render_readme(text) == text, f"README.md's configuration tables are stale: run `{DOCS_COMMAND}`"
    for variable in documented_variables():
        assert f"| `{variable}` |" in text


def test_rendering_replaces_only_what_is_between_the_markers() -> None:
    text = "intro\n<!-- settings:worker -->\nold\n<!-- /settings:worker -->\nend\n"
    partial = {name: f"<!-- settings:{name} -->x<!-- /settings:{name} -->" for name in README_TABLES}
    rendered = render_readme(
        text.replace("<!-- settings:worker -->\nold\n<!-- /settings:worker -->", partial["worker"])
        + "".join(v for k, v in partial.items() if k != "worker")
    )
    assert rendered.startswith("intro\n<!-- settings:worker -->\n| variable | default | meaning |")
    assert "| `OTKLIK_WEB_PORT` | `6066` |" in rendered and "\nend\n" in rendered
    with pytest.raises(SettingsError, match="settings:worker"):
        render_readme("no markers at all")


def test_the_docs_command_rewrites_a_stale_readme_and_checks_a_fresh_one(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        README.read_text(encoding="utf-8").replace("| `OTKLIK_WEB_PORT` | `6066` |", "| `OTKLIK_WEB_PORT` | `1` |")
    )
    runner = CliRunner()
    stale = runner.invoke(main, ["settings", "docs", "--check", "--readme", str(readme)])
    assert stale.exit_code == 1 and "stale" in stale.output
    assert runner.invoke(main, ["settings", "docs", "--readme", str(readme)]).exit_code == 0
    assert readme.read_text(encoding="utf-8") == render_readme(README.read_text(encoding="utf-8"))
    assert runner.invoke(main, ["settings", "docs", "--check", "--readme", str(readme)]).exit_code == 0


def test_only_streams_settings_reads_the_environment() -> None:
    """The pure core gets its settings as arguments; the services get them from streams/settings.py.
    agents/__init__.py is the one exception (OTKLIK_PURE_PYTHON decides how the core's modules load)."""
    readers = re.compile(r"\bos\.environ\b|\bgetenv\(|\benvvar=")
    found = []
    for folder in ("agents", "schemas", "streams"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in ("streams/settings.py", "agents/__init__.py"):
                continue
            found += [
                f"{relative}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1) if readers.search(line)
            ]
    assert found == []
