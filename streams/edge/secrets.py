"""Confirmation strings, secrets and tokens of the ingest edge, from a secrets file or the environment.

They never come from the page registry (which people edit and share) and are never logged: the
objects here redact themselves in ``repr``, and every error names the file, the entry and the problem,
never the value.

Sources, later ones winning per value:

1. the file named by ``OTKLIK_SECRETS_FILE`` (YAML or JSON; a ``.json`` name is read as JSON, anything
   else as YAML, which also reads JSON)::

       vk:
         "123456": {secret: "...", confirmation: "...", token: "..."}
       telegram: {secret_token: "..."}
       max: {secret: "..."}

2. the environment: ``OTKLIK_VK_<GROUPID>_SECRET``, ``OTKLIK_VK_<GROUPID>_CONFIRMATION``,
   ``OTKLIK_VK_<GROUPID>_TOKEN`` (the Long Poll source's community token), ``OTKLIK_TG_SECRET_TOKEN``,
   ``OTKLIK_MAX_SECRET``, read as every setting is (:class:`~otklik.streams.settings.SecretsSettings`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otklik.streams.settings import SecretsSettings, SettingsError

SECRETS_FILE_ENV = "OTKLIK_SECRETS_FILE"

# Telegram's secret_token and MAX's secret allow these characters only (their APIs say so).
_HEADER_SECRET = re.compile(r"^[A-Za-z0-9_-]+$")
_VK_FIELDS = ("secret", "confirmation", "token")


class SecretsError(SettingsError):
    """The secrets file or a secret variable is unusable; the message names where and why (never the value)."""


@dataclass(frozen=True, slots=True)
class VkCommunity:
    """What the edge knows about one VK community. ``repr`` shows which values are set, not them."""

    group_id: int
    secret: str | None = None
    confirmation: str | None = None
    token: str | None = None

    def __repr__(self) -> str:
        have = [name for name in _VK_FIELDS if getattr(self, name)]
        return f"VkCommunity({self.group_id}, set: {', '.join(have) or 'nothing'})"


@dataclass(frozen=True)
class Secrets:
    vk: Mapping[int, VkCommunity] = field(default_factory=dict)
    tg_secret_token: str | None = None
    max_secret: str | None = None
    source: str = "<environment>"

    def community(self, group_id: int) -> VkCommunity | None:
        return self.vk.get(group_id)

    def __repr__(self) -> str:
        return (
            f"Secrets({self.source}: {len(self.vk)} VK communities, "
            f"telegram {'set' if self.tg_secret_token else 'unset'}, max {'set' if self.max_secret else 'unset'})"
        )


def load_secrets(env: Mapping[str, str] | None = None) -> Secrets:
    """The secrets from ``OTKLIK_SECRETS_FILE`` (when set) and the environment (default: the process's).
    Raises :class:`SecretsError` (a :class:`SettingsError`)."""
    settings = SecretsSettings.from_env(env)
    vk: dict[int, dict[str, str]] = {}
    tg: str | None = None
    mx: str | None = None
    sources = []

    if settings.secrets_file is not None:
        path = settings.secrets_file
        file_vk, tg, mx = _read_file(path)
        vk.update(file_vk)
        sources.append(str(path))

    for group, values in settings.vk.items():
        for kind, value in values.items():
            label = f"environment variable OTKLIK_VK_{group}_{kind.upper()}"
            group_id = _group_id(group, label)
            vk.setdefault(group_id, {})[kind] = _non_blank(value.get_secret_value(), label)
    if settings.tg_secret_token is not None:
        tg = _header_secret(
            settings.tg_secret_token.get_secret_value(), "environment variable OTKLIK_TG_SECRET_TOKEN", 1, 256
        )
    if settings.max_secret is not None:
        mx = _header_secret(settings.max_secret.get_secret_value(), "environment variable OTKLIK_MAX_SECRET", 5, 256)
    sources.append("environment")
    communities = {gid: VkCommunity(gid, **values) for gid, values in vk.items()}
    return Secrets(communities, tg, mx, " + ".join(sources))


def _read_file(path: Path) -> tuple[dict[int, dict[str, str]], str | None, str | None]:
    where = f"secrets file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretsError(f"{where}: no such file ({SECRETS_FILE_ENV})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretsError(f"{where}: cannot be read: {type(exc).__name__}") from None
    try:
        if path.suffix.lower() == ".json":
            import json

            data: Any = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # the parser's message may quote a line holding a secret: give its position only
        mark = getattr(exc, "problem_mark", None)
        at = (
            f" at line {mark.line + 1}"
            if mark is not None
            else (f" at line {exc.lineno}" if hasattr(exc, "lineno") else "")
        )
        raise SecretsError(f"{where}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}{at}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SecretsError(f"{where}: the top level must be a mapping with keys vk, telegram, max")
    unknown = sorted(str(k) for k in data if k not in ("vk", "telegram", "max"))
    if unknown:
        raise SecretsError(f"{where}: unknown top-level key(s) {', '.join(unknown)} (expected vk, telegram, max)")

    vk: dict[int, dict[str, str]] = {}
    section = data.get("vk") or {}
    if not isinstance(section, dict):
        raise SecretsError(f"{where}: vk: must map group ids to {{secret, confirmation, token}}")
    for key, entry in section.items():
        label = f"{where}: vk.{key}"
        group_id = _group_id(key, label)
        if not isinstance(entry, dict):
            raise SecretsError(f"{label}: must be a mapping with secret, confirmation and/or token")
        extra = sorted(str(k) for k in entry if k not in _VK_FIELDS)
        if extra:
            raise SecretsError(f"{label}: unknown key(s) {', '.join(extra)} (expected secret, confirmation, token)")
        values = {}
        for name in _VK_FIELDS:
            if name in entry:
                values[name] = _non_blank(entry[name], f"{label}.{name}")
        vk[group_id] = values

    tg = _single_secret(data, "telegram", "secret_token", where, 1, 256)
    mx = _single_secret(data, "max", "secret", where, 5, 256)
    return vk, tg, mx


def _single_secret(data: dict[str, Any], section: str, key: str, where: str, least: int, most: int) -> str | None:
    """The one header secret of a platform's section (``telegram.secret_token``, ``max.secret``), if set."""
    entry = data.get(section)
    if entry is None:
        return None
    if not isinstance(entry, dict) or set(entry) - {key}:
        raise SecretsError(f"{where}: {section}: must be a mapping with the single key {key}")
    if key not in entry:
        return None
    return _header_secret(entry[key], f"{where}: {section}.{key}", least, most)


def _group_id(raw: object, label: str) -> int:
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit() or int(text) <= 0:
        raise SecretsError(f"{label}: {text[:30]!r} is not a VK group id (a positive integer, no minus sign)")
    return int(text)


def _non_blank(value: object, label: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SecretsError(f"{label}: must be a string, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise SecretsError(f"{label}: is blank")
    if text != text.strip():
        raise SecretsError(f"{label}: has leading or trailing whitespace (a copy-paste slip?)")
    return text


def _header_secret(value: object, label: str, least: int, most: int) -> str:
    text = _non_blank(value, label)
    if not least <= len(text) <= most:
        raise SecretsError(f"{label}: must be {least}-{most} characters long, is {len(text)}")
    if not _HEADER_SECRET.match(text):
        raise SecretsError(f"{label}: may hold only A-Z, a-z, 0-9, _ and -")
    return text
