"""Every ``OTKLIK_*`` environment variable, read one way: pydantic-settings classes, one per service.

The rules are the same everywhere (the base class :class:`OtklikSettings` holds them):

- a variable is named ``OTKLIK_`` + the field's name in capitals, unless the field gives its full name
  (``validation_alias``) because the attribute reads better than the variable;
- an empty value means "unset": the default applies;
- booleans accept ``true``/``false``, ``1``/``0``, ``yes``/``no`` (and ``on``/``off``, in any case);
- a bad value stops start-up with one :class:`SettingsError` naming each variable and what is wrong
  (``OTKLIK_WEB_PORT: Input should be a valid integer, got 'abc'``); the commands turn it into a message
  and exit status 2 (:func:`command_error`);
- secrets are ``SecretStr``: they never show in a ``repr``, a log line or an error;
- other ``OTKLIK_*`` variables are ignored (a service does not fail on another service's variable);
- a command-line flag overrides the variable (``from_env(**flags)``; a flag left out is ``None``).

Shared groups of variables are small bases (:class:`BrokerSettings`, :class:`KafkaSettings`,
:class:`LogSettings`, :class:`RegistrySettings`), so two services reading ``OTKLIK_KAFKA_BROKER`` read it
the same way. A new service adds its class here, built from those bases, with a ``description`` on
every field, and one entry in :data:`README_TABLES` plus a pair of markers in README.md
(``<!-- settings:NAME -->`` … ``<!-- /settings:NAME -->``); ``otklik settings docs`` then writes its
table, and tests/unit/test_settings.py fails while README's tables are stale.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as _SourceError

PREFIX = "OTKLIK_"
REPO = Path(__file__).resolve().parents[1]


class SettingsError(ValueError):
    """An environment variable holds a value otklik cannot use; the message names it (never a secret)."""


# Topic names (docs/data-flow.md, "Topics"); a prefix (OTKLIK_TOPIC_PREFIX) lets tests use fresh ones.
TOPIC_NAMES = {
    "raw": "otklik.raw",
    "interactions": "otklik.interactions",
    "responses": "otklik.responses",
    "moderation": "otklik.moderation",
    "dead_letters": "otklik.dead-letters",
    "overrides": "otklik.overrides",
    "gaps": "otklik.gaps",  # times a community's events may be missing (streams/edge/catchup.py reads it)
    "managers": "otklik.managers",  # who manages each page's VK community, and since when (schemas/managers.py)
}

AGENTS = ("normalize", "responses", "moderation")


# ---- the machinery ---------------------------------------------------------------------------------

# The environment a settings object is being built from: None = the process's own. Set only for the
# duration of one from_env(env) call, so tests and benches can pass a mapping instead of editing os.environ.
_GIVEN_ENV: ContextVar[Mapping[str, str] | None] = ContextVar("otklik_given_env", default=None)


def _environ() -> Mapping[str, str]:
    given = _GIVEN_ENV.get()
    return os.environ if given is None else given


class _Environment(EnvSettingsSource):
    """pydantic-settings' own environment source, reading the mapping given to ``from_env`` when there is one."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if _GIVEN_ENV.get() is None:
            return super()._load_env_vars()
        return {
            name.lower(): value for name, value in _environ().items() if not (self.env_ignore_empty and value == "")
        }


S = TypeVar("S", bound="OtklikSettings")


class OtklikSettings(BaseSettings):
    """The base of every settings class: the shared rules (see the module's docstring), no variables."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_ignore_empty=True,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # Variables read by name pattern rather than by field (e.g. OTKLIK_VK_<GROUPID>_SECRET), for the docs:
    # (variable, default, meaning).
    pattern_variables: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init arguments) first, then the environment; no .env file, no secrets folder.
        return init_settings, _Environment(settings_cls)

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str] | None = None, **overrides: Any) -> S:
        """The settings from ``env`` (default: the process's environment), ``overrides`` winning over it;
        an override of ``None`` is no override (a flag not given). Raises :class:`SettingsError`."""
        token = _GIVEN_ENV.set(env)
        try:
            return cls(**{name: value for name, value in overrides.items() if value is not None})
        except ValidationError as exc:
            raise SettingsError(_explain(cls, exc)) from None
        except _SourceError as exc:  # a value pydantic-settings could not even decode
            raise SettingsError(str(exc)) from None
        finally:
            _GIVEN_ENV.reset(token)

    @classmethod
    def env_name(cls, field_name: str) -> str:
        alias = cls.model_fields[field_name].validation_alias
        return alias if isinstance(alias, str) else PREFIX + field_name.upper()

    @classmethod
    def variables(cls) -> Iterator[tuple[str, str, str]]:
        """(variable, default as the README shows it, meaning) of every variable this class reads."""
        for name, info in cls.model_fields.items():
            yield cls.env_name(name), _shown_default(info), info.description or ""
        yield from cls.pattern_variables


def _is_secret(info: FieldInfo) -> bool:
    return "SecretStr" in str(info.annotation)


def _explain(cls: type[OtklikSettings], exc: ValidationError) -> str:
    """Each problem as ``OTKLIK_X: what is wrong, got 'value'``, joined by "; " (never a secret's value)."""
    by_key: dict[str, str] = {}
    secret: set[str] = set()
    for name, info in cls.model_fields.items():
        variable = cls.env_name(name)
        for key in (name, variable, variable.lower()):
            by_key[key] = variable
        if _is_secret(info):
            secret.add(variable)
    problems = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        variable = by_key.get(str(loc[0]), str(loc[0])) if loc else ""
        if error["type"] == "value_error":  # our validators' own words
            text = str(error.get("ctx", {}).get("error", error["msg"]))
        else:
            text = error["msg"]
            if variable and variable not in secret and "input" in error:
                text += f", got {error['input']!r}"
        problems.append(f"{variable}: {text}" if variable else text)
    return "; ".join(problems)


def _shown_default(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "shown_default" in extra:
        return str(extra["shown_default"])
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if value == "" or value == {}:
        return "empty"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def shown(text: str) -> dict[str, Any]:
    """``json_schema_extra`` for a field whose default README must show otherwise than its value."""
    return {"shown_default": text}


def command_error(exc: Exception) -> Exception:
    """A settings error as the command line reports it: ``Error: <message>``, exit status 2."""
    import click

    error = click.ClickException(str(exc))
    error.exit_code = 2
    return error


# ---- shared groups ------------------------------------------------------------------------------------


class BrokerSettings(OtklikSettings):
    broker: str = Field(
        "kafka://127.0.0.1:9092",
        validation_alias="OTKLIK_KAFKA_BROKER",
        description="the brokers, `kafka://h1:9092;kafka://h2:9092` for several",
    )

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        for url in value.split(";"):
            if not url.startswith("kafka://") or ":" not in url[len("kafka://") :]:
                raise ValueError(f"{url!r} is not of the form kafka://HOST:PORT")
        return value

    @property
    def bootstrap(self) -> str:
        """The broker list as aiokafka wants it: "h1:9092,h2:9092"."""
        return ",".join(url[len("kafka://") :] for url in self.broker.split(";"))


class KafkaSettings(BrokerSettings):
    topic_prefix: str = Field("", description="prepended to every topic name (tests use a fresh prefix each)")

    def topic(self, role: str) -> str:
        return self.topic_prefix + TOPIC_NAMES[role]


class LogSettings(OtklikSettings):
    log_level: str = Field("info", description="the log level: debug, info, warning or error")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"{value!r} is not a log level (debug, info, warning, error, critical)")
        return value

    def configure_logging(self) -> None:
        logging.basicConfig(level=self.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class RegistrySettings(OtklikSettings):
    registry: Path | None = Field(
        None, description="the page registry (YAML); unset: every page on the built-in defaults"
    )

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value


class TelegramLinkSettings(OtklikSettings):
    tg_links: Annotated[dict[int, int], NoDecode] = Field(
        default_factory=dict,
        description="`discussion_group=channel,...` (Bot API ids): the channel of a Telegram discussion group, "
        "where an update does not name it",
    )

    @field_validator("tg_links", mode="before")
    @classmethod
    def _tg_links(cls, value: object) -> object:
        from otklik.agents.ingest.telegram import parse_links

        return parse_links(value) if isinstance(value, str) else value


# ---- the services ----------------------------------------------------------------------------------------


class WorkerSettings(LogSettings, TelegramLinkSettings, RegistrySettings, KafkaSettings):
    """The stream worker (``otklik worker``)."""

    app_id: str = Field("otklik", description="the consumer group, and the prefix of the tables' changelog topics")
    store: str = Field(
        "memory://",
        description="faust's table store: `memory://`, rebuilt from the changelog at start (the only one "
        'otklik supports: docs/data-flow.md, "How state survives")',
    )
    data_dir: Path = Field(Path(".run/worker"), description="faust's data folder")
    web_host: str = Field("127.0.0.1", description="where `/metrics`, `/health` and the read API are served")
    web_port: int = Field(6066, gt=0, lt=65536, description="the port of `/metrics`, `/health` and the read API")
    web_url: str | None = Field(
        None,
        description="where the other workers of the group reach this one's read API (it answers for the "
        'pages it holds: docs/data-flow.md, "Several workers"); unset: `http://OTKLIK_WEB_HOST:OTKLIK_WEB_PORT`',
    )
    partitions: int = Field(
        4, ge=1, description="partitions of each otklik topic the worker creates (topics are keyed by page)"
    )
    replicas: int = Field(1, ge=1, description="replication factor of the topics the worker creates")
    rebalance_timeout_s: float = Field(
        60.0,
        gt=0,
        validation_alias="OTKLIK_REBALANCE_TIMEOUT",
        description="seconds; a fresh consumer group joins after about half of it",
    )
    late_window_s: int = Field(
        600,
        ge=0,
        validation_alias="OTKLIK_LATE_WINDOW",
        description="seconds an event about an item not seen yet is held",
    )
    retention_s: int = Field(
        30 * 86400,
        validation_alias="OTKLIK_RETENTION",
        description="seconds (30 days) after which open items expire and closed ids are forgotten",
    )
    tick_interval_s: float = Field(
        15.0,
        gt=0,
        le=60,
        validation_alias="OTKLIK_TICK_INTERVAL",
        description="seconds between deadline checks (at most 60); ages in metrics are computed at scrape time anyway",
    )
    agents: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(AGENTS),
        description="which agents this worker runs; moderation is CPU-heavy and can run in a worker of its own "
        "(with its own `OTKLIK_APP_ID`)",
        json_schema_extra=shown("`" + ",".join(AGENTS) + "`"),
    )
    fast_delivery: bool = Field(
        True,
        description="hand records from faust's consumer to the agents the cheaper way "
        "(streams/worker/fast_delivery.py); false: faust's own way",
    )
    api_tokens_file: Path | None = Field(
        None,
        validation_alias="OTKLIK_API_TOKENS",
        description="a file of `TOKEN NAME` lines: who may post corrections to `POST /api/items/ITEM/override` "
        "(`Authorization: Bearer TOKEN`; the name is recorded as `by`); read at start-up; unset: the API "
        'refuses every correction (docs/triage.md, "Corrections")',
    )

    @field_validator("api_tokens_file")
    @classmethod
    def _api_tokens(cls, value: Path | None) -> Path | None:
        from otklik.streams.worker.api_tokens import ApiTokens

        if value is not None:
            ApiTokens.load(value)  # a bad file stops start-up, naming the line (never a token)
        return value

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        scheme = value.split("://")[0]
        if scheme in ("rocksdb", "rocksdict"):
            # faust's rocksdb store writes a table only inside the event being processed, while otklik
            # saves page state after each batch: the agent would crash at its first save.
            raise ValueError(f"{value!r} is not supported: faust's rocksdb store cannot take otklik's batch saves")
        if scheme != "memory":
            raise ValueError(f"{value!r} is not memory://")
        return value

    @field_validator("agents", mode="before")
    @classmethod
    def _agents(cls, value: object) -> object:
        if isinstance(value, str):
            value = frozenset(part.strip() for part in value.split(",") if part.strip())
        unknown = set(value) - set(AGENTS)  # type: ignore[arg-type]
        if unknown or not value:
            raise ValueError(f"{', '.join(sorted(unknown)) or 'nothing'} is not a list of {', '.join(AGENTS)}")
        return frozenset(value)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _windows(self) -> WorkerSettings:
        if self.retention_s <= self.late_window_s:
            raise ValueError("OTKLIK_RETENTION must be longer than OTKLIK_LATE_WINDOW")
        return self


class OverrideSettings(KafkaSettings):
    """``otklik override``: writes ``otklik.overrides`` directly, or posts to a worker's correction API."""

    api_url: str | None = Field(
        None,
        description="a worker's address (`http://127.0.0.1:6066`): `otklik override` posts the correction to "
        "its API with a bearer token, recorded under the token's name; unset: it writes otklik.overrides "
        "directly",
    )
    api_token: SecretStr | None = Field(
        None, description="the bearer token for `OTKLIK_API_URL` (or `--token-file`): a token of the worker's file"
    )

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError(f"{value!r} is not a worker's address such as http://127.0.0.1:6066")
        return value.rstrip("/") if value is not None else None


class CoreSettings(OtklikSettings):
    """How the pure core's hot modules run. Read by ``otklik.agents`` itself when it is first imported
    (before any settings object can exist); declared here so that its rule and its row in README live
    with the others, and so that a worker refuses a value it would not understand."""

    pure_python: bool = Field(
        False,
        description="true: run the core's plain-Python modules even when compiled ones are built "
        "(`/health` says which: `core`)",
    )


class GatewaySettings(LogSettings, TelegramLinkSettings, KafkaSettings):
    """The ingest gateway (``otklik gateway``)."""

    host: str = Field("127.0.0.1", validation_alias="OTKLIK_GATEWAY_HOST", description="the address to listen on")
    port: int = Field(8080, gt=0, lt=65536, validation_alias="OTKLIK_GATEWAY_PORT", description="the port")
    max_body: int = Field(
        1 << 20,
        ge=1024,
        validation_alias="OTKLIK_GATEWAY_MAX_BODY",
        description="bytes; larger bodies get 413",
        json_schema_extra=shown("`1048576` (1 MiB)"),
    )
    produce_timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="OTKLIK_GATEWAY_PRODUCE_TIMEOUT",
        description="seconds; a body Kafka has not acknowledged by then is answered 503",
    )
    retry_after_s: int = Field(
        10, ge=1, validation_alias="OTKLIK_GATEWAY_RETRY_AFTER", description="seconds: the `Retry-After` of a 503"
    )
    dedupe_ttl_s: float = Field(
        86400.0,
        gt=0,
        validation_alias="OTKLIK_GATEWAY_DEDUPE_TTL",
        description="seconds (a day) an accepted event id is remembered",
    )
    dedupe_max: int = Field(
        500_000,
        ge=1,
        validation_alias="OTKLIK_GATEWAY_DEDUPE_MAX",
        description="at most this many remembered event ids (the oldest are forgotten first)",
    )
    linger_ms: int = Field(
        2,
        ge=0,
        validation_alias="OTKLIK_GATEWAY_LINGER_MS",
        description="milliseconds the producer waits to batch under load (invisible at p99)",
    )
    state_file: Path | None = Field(
        None,
        validation_alias="OTKLIK_GATEWAY_STATE_FILE",
        description="where the last VK event accepted per community is kept, so that a restart records the "
        "gap since then (docs/data-flow.md); unset: not kept, no restart gaps",
    )
    state_interval_s: float = Field(
        5.0, gt=0, validation_alias="OTKLIK_GATEWAY_STATE_INTERVAL", description="seconds between saves of that file"
    )
    silence_s: float = Field(
        600.0,
        gt=0,
        validation_alias="OTKLIK_GATEWAY_SILENCE",
        description="seconds: a confirmation request after a silence this long records the silence as a gap",
    )


class SecretsSettings(OtklikSettings):
    """Secrets of the ingest edge (gateway and Long Poll); streams/edge/secrets.py checks and merges them
    with the secrets file. Never in the page registry, never logged."""

    secrets_file: Path | None = Field(
        None,
        description="a YAML or JSON file of secrets (`vk: {GROUP_ID: {secret, confirmation, token}}`, "
        "`telegram: {secret_token}`, `max: {secret}`); variables win over it",
    )
    tg_secret_token: SecretStr | None = Field(None, description="Telegram's webhook secret token")
    max_secret: SecretStr | None = Field(None, description="MAX's webhook secret")
    # OTKLIK_VK_<GROUPID>_<KIND> as {"<GROUPID>": {"secret"|"confirmation"|"token": value}}, filled by
    # _VkCommunityVariables (a field per community cannot be declared).
    vk: dict[str, dict[str, SecretStr]] = Field(default_factory=dict, exclude=True)

    pattern_variables = (
        ("OTKLIK_VK_<GROUP_ID>_SECRET", "unset", "the community's Callback API secret"),
        ("OTKLIK_VK_<GROUP_ID>_CONFIRMATION", "unset", "the community's Callback API confirmation string"),
        ("OTKLIK_VK_<GROUP_ID>_TOKEN", "unset", "the community's access token (Long Poll)"),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environment(settings_cls), _VkCommunityVariables(settings_cls)

    @classmethod
    def variables(cls) -> Iterator[tuple[str, str, str]]:
        for row in super().variables():
            if row[0] != cls.env_name("vk"):
                yield row


VK_VARIABLE = re.compile(r"^OTKLIK_VK_([0-9]+)_(SECRET|CONFIRMATION|TOKEN)$")


class _VkCommunityVariables(PydanticBaseSettingsSource):
    """``OTKLIK_VK_<GROUPID>_SECRET`` / ``_CONFIRMATION`` / ``_TOKEN`` → ``{"vk": {group: {kind: value}}}``
    (the group id is checked by streams/edge/secrets.py, which names the variable)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        vk: dict[str, dict[str, str]] = {}
        for name, value in _environ().items():
            match = VK_VARIABLE.match(name)
            if match is not None and value != "":
                vk.setdefault(match.group(1), {})[match.group(2).lower()] = value
        return {"vk": vk} if vk else {}


class VkEndpointSettings(OtklikSettings):
    """Where VK's API is and which version of it we speak (Long Poll and the VK API client)."""

    api_url: str = Field(
        "https://api.vk.com/method", validation_alias="OTKLIK_VK_API_URL", description="VK API's base URL"
    )
    api_version: str = Field(
        "5.199",  # the version of the schema the client's requests and models follow
        validation_alias="OTKLIK_VK_API_VERSION",
        description="the VK API version",
    )

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return value.rstrip("/")


class LongPollSettings(VkEndpointSettings, LogSettings, KafkaSettings):
    """VK Bots Long Poll (``otklik longpoll``); tokens come from :class:`SecretsSettings`."""

    state_dir: Path = Field(
        Path(".run/longpoll"),
        validation_alias="OTKLIK_LONGPOLL_STATE_DIR",
        description="where each community's last acknowledged `ts` is kept",
    )


class VkApiSettings(VkEndpointSettings):
    """The VK API client (streams/edge/vk_api.py): its pace per token, its retries, the service token.
    Community tokens are the ones of :class:`SecretsSettings` (``OTKLIK_VK_<GROUP_ID>_TOKEN``)."""

    vk_service_token: SecretStr | None = Field(
        None, description="the app's service token: walls, comments, boards and addresses (VK requires one there)"
    )
    vk_api_user_rate: float = Field(3.0, gt=0, description="requests per second per user token")
    vk_api_service_rate: float = Field(3.0, gt=0, description="requests per second per service token")
    vk_api_group_rate: float = Field(20.0, gt=0, description="requests per second per community token")
    vk_api_attempts: int = Field(
        5,
        ge=1,
        description="tries per request, the first included, on VK errors 6, 9, 10, 29, HTTP 5xx and lost connections",
    )
    vk_api_backoff: float = Field(0.5, gt=0, description="seconds: the first pause before a retry, doubled each time")
    vk_api_max_backoff: float = Field(30.0, gt=0, description="seconds: the longest pause between retries")
    vk_api_timeout: float = Field(30.0, gt=0, description="seconds a request may take")


class CatchUpSettings(VkApiSettings, LogSettings, KafkaSettings):
    """Catch-up after a gap (``otklik catchup``): the VK API client's variables, and the margin."""

    vk_user_token: SecretStr | None = Field(
        None,
        description="a user's token, for photo, video and market comments (VK gives them to user tokens only); "
        "unset: they are not read",
    )
    catchup_margin_s: int = Field(
        60,
        ge=0,
        validation_alias="OTKLIK_CATCHUP_MARGIN",
        description="seconds read before a gap's start (the last event known may share its second with a lost one)",
    )
    managers_every_s: int = Field(
        6 * 3600,
        ge=600,
        validation_alias="OTKLIK_MANAGERS_EVERY",
        description="how often the service reads each community's managers (`6h`, `90m`, seconds; at least 10 "
        "minutes); a community new to it at once",
        json_schema_extra=shown("`6h`"),
    )
    silence_expected: float = Field(
        8.0,
        ge=0,
        validation_alias="OTKLIK_SILENCE_EXPECTED",
        description="a community's silence is a gap when its usual rate gives at least this many events in it "
        "(0: never)",
    )
    silence_margin: float = Field(
        1.5,
        ge=0,
        validation_alias="OTKLIK_SILENCE_MARGIN",
        description="a silence is a gap only when also this many times heavier than the community's heaviest "
        "silence of the last 14 days (0: its rate alone decides)",
    )
    silence_floor_s: int = Field(
        1800,
        ge=60,
        validation_alias="OTKLIK_SILENCE_FLOOR",
        description="the shortest silence that can be a gap (`30m`, `2h`, seconds)",
        json_schema_extra=shown("`30m`"),
    )
    watch_state_file: Path = Field(
        Path(".run/catchup/watch.json"),
        validation_alias="OTKLIK_CATCHUP_STATE_FILE",
        description="where the service keeps each community's learned rate of events across restarts",
    )

    @field_validator("managers_every_s", "silence_floor_s", mode="before")
    @classmethod
    def _durations(cls, value: object) -> object:
        return parse_duration(value)


class NotifierSettings(LogSettings, RegistrySettings):
    """The notifier (``otklik notifier``): Alertmanager's webhooks to the pages' people."""

    registry: Path | None = Field(
        None, description="the page registry (YAML): whom to notify; required here (or `--registry`)"
    )

    host: str = Field("127.0.0.1", validation_alias="OTKLIK_NOTIFIER_HOST", description="the address to listen on")
    port: int = Field(
        9095,
        gt=0,
        lt=65536,
        validation_alias="OTKLIK_NOTIFIER_PORT",
        description="the port of the webhook (`POST /alertmanager`) and `/metrics`",
    )
    worker_url: str = Field("http://127.0.0.1:6066", description="the worker's read API, for links and backlogs")
    data_dir: Path = Field(
        Path(".run/notifier"),
        validation_alias="OTKLIK_NOTIFIER_DATA_DIR",
        description="where `deliveries.jsonl` (what was sent to whom) is kept",
    )
    dedupe_window_s: int = Field(
        3600,
        ge=0,
        validation_alias="OTKLIK_NOTIFIER_DEDUPE_WINDOW",
        description="seconds a notice is not repeated (below Alertmanager's repeat_interval)",
    )
    max_attempts: int = Field(
        8, ge=1, validation_alias="OTKLIK_NOTIFIER_MAX_ATTEMPTS", description="attempts per notice before giving up"
    )
    backoff_s: float = Field(
        2.0,
        gt=0,
        validation_alias="OTKLIK_NOTIFIER_BACKOFF",
        description="seconds before the first retry, doubled each time",
    )
    max_backoff_s: float = Field(
        300.0, gt=0, validation_alias="OTKLIK_NOTIFIER_MAX_BACKOFF", description="the longest pause between retries"
    )
    smtp_host: str | None = Field(None, description="the SMTP server; unset: no e-mail")
    smtp_port: int = Field(25, gt=0, lt=65536, description="its port")
    smtp_from: str = Field("otklik@localhost", description="the sender of the e-mails")
    smtp_user: str | None = Field(None, description="the SMTP login")
    smtp_password: SecretStr | None = Field(None, description="the SMTP password")
    smtp_starttls: bool = Field(False, description="upgrade the connection with STARTTLS")
    smtp_ssl: bool = Field(False, description="connect over TLS from the start")
    telegram_token: SecretStr | None = Field(None, description="the Telegram bot's token; unset: no Telegram")
    telegram_api: str = Field("https://api.telegram.org", description="Telegram Bot API's base URL")
    max_token: SecretStr | None = Field(None, description="the MAX bot's token; unset: no MAX")
    max_api: str = Field("https://platform-api.max.ru", description="MAX bot API's base URL")


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> object:
    """Seconds from ``90d``, ``36h``, ``15m``, ``30s`` or a bare number of seconds; anything else as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _DURATION.match(str(value))
    if match is None:
        return value  # pydantic names it: not a valid integer
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


class StoreDatabaseSettings(OtklikSettings):
    """The history store's database, as the store, the reports and the console read it."""

    store_url: SecretStr = Field(
        SecretStr("sqlite:///.run/store/otklik.sqlite3"),
        description="the store's database: `sqlite:///FILE` (embedded) or `postgresql://USER:PASSWORD@HOST/DB`",
        json_schema_extra=shown("`sqlite:///.run/store/otklik.sqlite3`"),
    )
    report_timezone: str = Field(
        "Europe/Moscow", description="the time zone of the reports' months when the registry names none"
    )

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: SecretStr) -> SecretStr:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value.get_secret_value())
        except ArgumentError:
            raise ValueError("is not a database URL (sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DB)") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            shown_url = url.render_as_string(hide_password=True)
            raise ValueError(f"{shown_url}: only sqlite and postgresql databases are supported")
        return value


class StoreSettings(StoreDatabaseSettings, LogSettings, RegistrySettings, KafkaSettings):
    """The history store (``otklik store``) and the reports read from it (``otklik report``)."""

    store_group: str = Field("otklik-store", description="the store's consumer group")
    store_batch: int = Field(2000, ge=1, description="records written per database transaction, at most")
    text_retention_s: int = Field(
        90 * 86400,
        gt=0,
        validation_alias="OTKLIK_TEXT_RETENTION",
        description="how long comment texts are kept (`90d`, `36h`, seconds); ids and times stay",
        json_schema_extra=shown("`90d`"),
    )

    @field_validator("text_retention_s", mode="before")
    @classmethod
    def _retention(cls, value: object) -> object:
        return parse_duration(value)


class ConsoleSettings(StoreDatabaseSettings, LogSettings, RegistrySettings, KafkaSettings):
    """The operations console (``otklik console``): the web pages of the ЦУР team, read from the store."""

    registry: Path | None = Field(
        None,
        description="the page registry (YAML); unset: the newest version the store recorded, else built-in defaults",
    )
    host: str = Field("127.0.0.1", validation_alias="OTKLIK_CONSOLE_HOST", description="the address to listen on")
    port: int = Field(8090, gt=0, lt=65536, validation_alias="OTKLIK_CONSOLE_PORT", description="the port")
    secret: SecretStr | None = Field(
        None,
        validation_alias="OTKLIK_CONSOLE_SECRET",
        description="the key that signs session cookies (32 characters or more); unset: a random one per start, "
        "so a restart signs everyone out",
    )
    secure_cookies: bool = Field(
        False,
        validation_alias="OTKLIK_CONSOLE_SECURE_COOKIES",
        description="mark cookies `Secure` (set it behind TLS; they are anyway when the request came over https)",
    )
    behind_proxy: bool = Field(
        False,
        validation_alias="OTKLIK_CONSOLE_BEHIND_PROXY",
        description="true behind a reverse proxy that sets `X-Forwarded-For` and `X-Forwarded-Proto`: the sign-in "
        "limit counts the client's address (the entry the proxy added), not the proxy's; false: those headers are ignored",
    )
    user_header: str | None = Field(
        None,
        validation_alias="OTKLIK_CONSOLE_USER_HEADER",
        description="with `OTKLIK_CONSOLE_BEHIND_PROXY`: the header in which an authenticating proxy names the "
        "signed-in login (e.g. `X-Remote-User`; the proxy must drop the client's own); unset: sign-in by password only",
    )
    session_s: int = Field(
        12 * 3600,
        gt=0,
        validation_alias="OTKLIK_CONSOLE_SESSION",
        description="how long a sign-in lasts (`12h`, `30m`, seconds)",
        json_schema_extra=shown("`12h`"),
    )
    lockout_s: int = Field(
        900,
        gt=0,
        validation_alias="OTKLIK_CONSOLE_LOCKOUT",
        description="how long a login or an address is refused after ten wrong passwords in a row",
        json_schema_extra=shown("`15m`"),
    )

    @field_validator("session_s", "lockout_s", mode="before")
    @classmethod
    def _durations(cls, value: object) -> object:
        return parse_duration(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be 32 characters or more")
        return value


class LocalKafkaSettings(OtklikSettings):
    """The local single-node broker (``otklik kafka …``, ``make run``, ``make test``)."""

    kafka_port: int = Field(9092, gt=0, lt=65536, description="the broker's port on 127.0.0.1")
    kafka_controller_port: int | None = Field(
        None,
        gt=0,
        lt=65536,
        description="the KRaft controller's port",
        json_schema_extra=shown("`OTKLIK_KAFKA_PORT` + 1"),
    )
    kafka_data: Path = Field(
        REPO / "deploy" / "kafka" / ".run" / "data",
        description="the broker's data folder (its pid file and log sit beside it)",
        json_schema_extra=shown("`deploy/kafka/.run/data`"),
    )
    kafka_cache: Path = Field(
        REPO / "deploy" / "kafka" / ".cache",
        description="where the release pinned in `deploy/kafka/pom.xml` is fetched",
        json_schema_extra=shown("`deploy/kafka/.cache`"),
    )
    kafka_heap: str = Field("1g", description="the broker's Java heap")

    @property
    def controller_port(self) -> int:
        return self.kafka_controller_port or self.kafka_port + 1


class SimulatorSettings(BrokerSettings):
    """The traffic simulator (``otklik simulate``); its flags win. ``make run`` passes 200 pages, rate 1
    and speed 30 unless these are set."""

    sim_pages: int = Field(50, ge=1, description="simulated communities (`--pages`)")
    sim_rate: float = Field(20.0, gt=0, description="events per simulated second, on average (`--rate`)")
    sim_speed: float = Field(1.0, gt=0, description="realtime Kafka: simulated seconds per real second (`--speed`)")


class GrafanaSettings(OtklikSettings):
    """``otklik grafana push``; its flags win."""

    grafana_url: str | None = Field(None, description="Grafana's base URL (`--url`)")
    grafana_token: SecretStr | None = Field(
        None, description="a service-account token with rights on folders, datasources and dashboards (`--token`)"
    )
    prometheus_url: str = Field(
        "http://127.0.0.1:9090",  # as in the compose stack (host network)
        description="the Prometheus URL as Grafana's server sees it (`--prometheus-url`)",
    )


class BenchSettings(OtklikSettings):
    """The benchmarks (``python -m bench NAME``, ``make bench``); the worker they start reads its own."""

    bench_gateway_rate: int = Field(2000, ge=1, description="`bench gateway`: requests per second")
    bench_gateway_seconds: float = Field(8.0, gt=0, description="`bench gateway`: seconds of load")
    bench_live_events: int = Field(100_000, ge=1, description="`bench live`: events per run")
    bench_open_items: int = Field(1_000_000, ge=1, description="`bench memory`: open items held")
    bench_intervals: str = Field(
        "shipped",
        description="`bench alerts` sets it for its test: `shipped` (the deployed scrape and alert intervals) or "
        "anything else for 1-second ones",
    )


# ---- README's tables -----------------------------------------------------------------------------------

# Marker name in README.md → the class whose variables the table lists.
README_TABLES: dict[str, type[OtklikSettings]] = {
    "worker": WorkerSettings,
    "override": OverrideSettings,
    "core": CoreSettings,
    "gateway": GatewaySettings,
    "secrets": SecretsSettings,
    "longpoll": LongPollSettings,
    "vkapi": VkApiSettings,
    "catchup": CatchUpSettings,
    "notifier": NotifierSettings,
    "store": StoreSettings,
    "console": ConsoleSettings,
    "kafka": LocalKafkaSettings,
    "simulator": SimulatorSettings,
    "grafana": GrafanaSettings,
    "bench": BenchSettings,
}

README = REPO / "README.md"
DOCS_COMMAND = "otklik settings docs"


def table(cls: type[OtklikSettings]) -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for variable, default, meaning in cls.variables():
        rows.append(f"| `{variable}` | {default} | {meaning} |")
    return "\n".join(rows)


def render_readme(text: str) -> str:
    """README's text with every settings table written from its class (markers kept; the rest untouched)."""
    for name, cls in README_TABLES.items():
        start, end = f"<!-- settings:{name} -->", f"<!-- /settings:{name} -->"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
        if not pattern.search(text):
            raise SettingsError(f"README.md has no {start} … {end} markers")
        text = pattern.sub(lambda _: f"{start}\n{table(cls)}\n{end}", text, count=1)
    return text
