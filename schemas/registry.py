"""The page registry: which pages otklik watches, and by what rules (docs/registry.md, "The file").

The file is YAML::

    defaults:            # optional; replaces the built-in defaults key by key
      timezone: Asia/Novosibirsk
      deadline: 8h working
    pages:
      - id: vk:123456    # the only required key
        title: Школа № 1
        schedule: {mon-fri: "08:00-17:00"}

A key set on a page replaces the default's value whole (lists and maps are not merged). Unknown keys
are errors, so a typo cannot silently fall back to a default. The file is validated with pydantic
here, at the edge; the rest of otklik sees frozen :class:`PageConfig` objects with a ready
:class:`~otklik.agents.clock.WorkingClock`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError, field_validator, model_validator

from otklik.schemas.schedule import Deadline, Schedule, load_zone, parse_schedule

__all__ = [
    "SECTORS",
    "Contact",
    "PageEntry",
    "RegistryDocument",
    "RegistryError",
    "ReportEntry",
    "read_registry",
    "validate_registry",
]

SECTORS = ("education", "culture", "health", "sport", "social", "administration", "unknown")
Sector = Literal["education", "culture", "health", "sport", "social", "administration", "unknown"]

_PAGE_ID = re.compile(r"^(?:vk:[1-9][0-9]*|(?:tg|max|ok):(?:-?[1-9][0-9]*|[A-Za-z][A-Za-z0-9_]*))$")
_PERSON_ID = re.compile(r"^(vk|tg|max|ok):user:[1-9][0-9]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TELEGRAM = re.compile(r"^(?:@[A-Za-z][A-Za-z0-9_]{3,31}|-?[1-9][0-9]*)$")
_URL = re.compile(r"^https?://\S+$")


class RegistryError(ValueError):
    """A registry that cannot be used; every line of the message names the file, the entry and the problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


@dataclass(frozen=True, slots=True)
class Contact:
    """Where to reach a person about alerts."""

    name: str | None = None
    email: str | None = None
    telegram: str | None = None
    max: str | None = None


@dataclass(frozen=True, slots=True)
class PageEntry:
    """One page of the file: its own keys and, in ``values``, every setting with the defaults applied."""

    id: str
    title: str | None
    link: str | None
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """Who gets the monthly rating of a region or of a municipality (exactly one is set), and by what unit."""

    region: str | None
    municipality: str | None
    by: str
    contacts: tuple[Contact, ...]

    @property
    def scope(self) -> tuple[str, str]:
        """``("region", R)`` or ``("municipality", M)``: the registry key the rating is filtered by."""
        if self.region is not None:
            return ("region", self.region)
        return ("municipality", self.municipality or "")


@dataclass(frozen=True, slots=True)
class RegistryDocument:
    """A validated registry file: the defaults (for pages not in the file), the pages, the report recipients."""

    source: str
    digest: str
    defaults: Mapping[str, Any]
    pages: tuple[PageEntry, ...]
    reports: tuple[ReportEntry, ...] = ()


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as plain values: contacts as :class:`Contact`, lists as tuples."""
    out = dict(values)
    out["supervisors"] = _contacts(values["supervisors"])
    out["contacts"] = _contacts(values["contacts"])
    return out


# ---- validation at the edge ------------------------------------------------------------------------


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"{value!r} has a time of day; write the date only (YYYY-MM-DD)")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")


class _ContactModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    email: str | None = None
    telegram: str | None = None
    max: str | None = None

    @field_validator("telegram", "max", mode="before")
    @classmethod
    def _ids_as_text(cls, value: object) -> object:
        # Numeric chat ids arrive from YAML as integers.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @field_validator("telegram")
    @classmethod
    def _telegram(cls, value: str | None) -> str | None:
        if value is not None and not _TELEGRAM.match(value):
            raise ValueError(f"{value!r} is neither a Telegram @username nor a numeric chat id")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> _ContactModel:
        if not (self.email or self.telegram or self.max):
            raise ValueError("a contact needs at least one of email, telegram, max")
        return self


class _Settings(BaseModel):
    """Keys a page and the defaults share. ``None`` means "not set here"."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    timezone: str | None = None
    schedule: Schedule | None = None
    calendar: Literal["ru", "none"] | None = None
    deadline: Deadline | None = None
    moderation_deadline: Deadline | None = None
    administrators: tuple[str, ...] | None = None
    supervisors: tuple[_ContactModel, ...] | None = None
    contacts: tuple[_ContactModel, ...] | None = None
    bot_replies_count: StrictBool | None = None
    triage: StrictBool | None = None
    holidays: tuple[date, ...] | None = None
    short_days: tuple[date, ...] | None = None
    municipality: str | None = None
    sector: Sector | None = None
    region: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_empty_values(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key, value in data.items():
                if value is None:
                    raise ValueError(f"{key}: has no value (remove the key to use the default; write [] for none)")
        return data

    @field_validator("calendar", mode="before")
    @classmethod
    def _calendar(cls, value: object) -> object:
        if isinstance(value, bool):  # YAML 1.1 reads yes/no/on/off as booleans
            raise ValueError(f"got {value!r}: write 'calendar: ru' or 'calendar: none'")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> Schedule:
        if isinstance(value, Schedule):
            return value
        return parse_schedule(value)  # type: ignore[arg-type]

    @field_validator("deadline", "moderation_deadline", mode="before")
    @classmethod
    def _deadline(cls, value: object) -> Deadline:
        return value if isinstance(value, Deadline) else Deadline.parse(value)  # type: ignore[arg-type]

    @field_validator("administrators", mode="before")
    @classmethod
    def _administrators(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            for index, author in enumerate(value):
                if not isinstance(author, str) or not _PERSON_ID.match(author):
                    raise ValueError(f"[{index}]: {author!r} is not a person's author id like 'vk:user:5001'")
        return value

    @field_validator("holidays", "short_days", mode="before")
    @classmethod
    def _dates(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list of dates (YYYY-MM-DD), got {value!r}")
        days = []
        for index, item in enumerate(value):
            try:
                days.append(_as_date(item))
            except ValueError as exc:
                raise ValueError(f"[{index}]: {exc}") from None
        return tuple(days)

    @field_validator("municipality", "region")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank; leave the key out to use 'unknown'")
        return value.strip()


class _PageModel(_Settings):
    id: str
    title: str | None = None
    link: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: object) -> str:
        if not isinstance(value, str) or not _PAGE_ID.match(value):
            if isinstance(value, str) and value.startswith("vk:-"):
                raise ValueError(f"{value!r}: a VK page id is the positive group id, e.g. 'vk:123456'")
            raise ValueError(f"{value!r} is not a page id like 'vk:123456' (or tg:, max:, ok: with an id)")
        return value

    @field_validator("link")
    @classmethod
    def _link(cls, value: str) -> str:
        if not _URL.match(value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _administrators_on_platform(self) -> _PageModel:
        platform = self.id.split(":", 1)[0]
        for author in self.administrators or ():
            if not author.startswith(platform + ":"):
                raise ValueError(f"administrators: {author!r} is not on this page's platform ({platform})")
        return self


class _ReportModel(BaseModel):
    """One ``reports`` entry (docs/registry.md, "Monthly reports")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = None
    municipality: str | None = None
    by: Literal["page", "municipality", "sector", "region"] = "municipality"
    contacts: tuple[_ContactModel, ...]

    @model_validator(mode="before")
    @classmethod
    def _no_empty_values(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key, value in data.items():
                if value is None:
                    raise ValueError(f"{key}: has no value")
        return data

    @field_validator("municipality", "region")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank")
        return value.strip()

    @model_validator(mode="after")
    def _one_scope_and_an_address(self) -> _ReportModel:
        if (self.region is None) == (self.municipality is None):
            raise ValueError("needs exactly one of 'region' and 'municipality'")
        if not self.contacts:
            raise ValueError("contacts: name at least one recipient")
        if not any(contact.email for contact in self.contacts):
            raise ValueError("contacts: none has an email, and the monthly rating goes by e-mail")
        return self


_REPORT_KEYS = tuple(_ReportModel.model_fields)


_BUILT_IN: dict[str, Any] = {
    "timezone": "Europe/Moscow",
    "schedule": Schedule.office(),
    "calendar": "ru",
    "deadline": Deadline.parse("8h working"),
    "moderation_deadline": Deadline.parse("1h working"),
    "administrators": (),
    "supervisors": (),
    "contacts": (),
    "bot_replies_count": False,
    "triage": True,
    "holidays": (),
    "short_days": (),
    "municipality": "unknown",
    "sector": "unknown",
    "region": "unknown",
}
_SETTING_KEYS = tuple(_BUILT_IN)
_PAGE_ONLY_KEYS = ("id", "title", "link")


def _format_loc(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _problems(exc: ValidationError, allowed: tuple[str, ...]) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            loc = loc[:-1]
            if not loc and key in _PAGE_ONLY_KEYS and allowed == _SETTING_KEYS:
                message = f"{key!r} belongs to a page, not to defaults"
            else:
                keys = allowed if not loc else tuple(_ContactModel.model_fields)
                close = difflib.get_close_matches(key, keys, n=1)
                message = f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        elif kind == "missing" and len(loc) == 1 and loc[0] == "contacts":
            message = "contacts: is required (the people who get the report)"
        elif kind == "missing":
            message = "is required"
        elif kind == "value_error":
            message = str(error["ctx"]["error"])
        else:
            # People write YAML lists; pydantic calls them tuples here.
            message = f"{error['msg'].replace('valid tuple', 'list')} (got {error['input']!r})"
        path = _format_loc(loc)
        if not path or message.startswith((path + ":", path + " ")):
            problems.append(message)
        elif message.startswith("["):
            problems.append(f"{path}{message}")
        else:
            problems.append(f"{path}: {message}")
    return problems


def _contacts(models: tuple[_ContactModel, ...]) -> tuple[Contact, ...]:
    return tuple(Contact(name=m.name, email=m.email, telegram=m.telegram, max=m.max) for m in models)


def validate_registry(
    data: Any,
    source: str = "<string>",
    *,
    digest: str | None = None,
    lines: Mapping[tuple[str, int | None], int] | None = None,
) -> RegistryDocument:
    """Validate an already parsed registry; raises :class:`RegistryError` listing every problem."""
    if digest is None:
        digest = hashlib.sha256(
            orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
        ).hexdigest()
    lines = lines or {}

    def where(section: str, index: int | None = None, page_id: object = None) -> str:
        label = section if index is None else f"{section}[{index}]"
        if isinstance(page_id, str):
            label += f" ({page_id})"
        line = lines.get((section, index))
        return f"{label}, line {line}" if line else label

    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RegistryError(source, [f"expected a mapping with 'defaults' and 'pages', got {type(data).__name__}"])
    problems: list[str] = []
    for key in data:
        if key not in ("defaults", "pages", "reports"):
            problems.append(f"unknown top-level key {key!r} (expected 'defaults', 'pages' and 'reports')")

    settings = dict(_BUILT_IN)
    raw_defaults = data.get("defaults") or {}
    if not isinstance(raw_defaults, Mapping):
        problems.append(f"{where('defaults')}: expected a mapping of keys, got {type(raw_defaults).__name__}")
    else:
        try:
            defaults = _Settings.model_validate(dict(raw_defaults))
            settings.update({k: v for k, v in defaults if v is not None})
        except ValidationError as exc:
            problems.extend(f"{where('defaults')}: {p}" for p in _problems(exc, _SETTING_KEYS))

    raw_pages = data.get("pages") or []
    if not isinstance(raw_pages, list):
        problems.append(f"pages: expected a list of pages, got {type(raw_pages).__name__}")
        raw_pages = []

    pages: list[PageEntry] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(raw_pages):
        raw_id = raw.get("id") if isinstance(raw, Mapping) else None
        if not isinstance(raw, Mapping):
            problems.append(f"{where('pages', index)}: expected a mapping with at least 'id', got {raw!r}")
            continue
        if isinstance(raw_id, str):
            if raw_id in first_index:
                problems.append(
                    f"{where('pages', index, raw_id)}: duplicate id: already at pages[{first_index[raw_id]}]"
                )
                continue
            first_index[raw_id] = index
        try:
            entry = _PageModel.model_validate(dict(raw))
        except ValidationError as exc:
            label = where("pages", index, raw_id)
            problems.extend(f"{label}: {p}" for p in _problems(exc, _SETTING_KEYS + _PAGE_ONLY_KEYS))
            continue
        if problems:
            continue  # keep looking for problems, skip building
        values = dict(settings)
        values.update({k: getattr(entry, k) for k in _SETTING_KEYS if getattr(entry, k) is not None})
        pages.append(PageEntry(entry.id, entry.title, entry.link, _plain(values)))

    reports = _reports(data.get("reports"), where, problems)
    if problems:
        raise RegistryError(source, problems)
    return RegistryDocument(source, digest, _plain(settings), tuple(pages), reports)


def _reports(raw_reports: Any, where: Any, problems: list[str]) -> tuple[ReportEntry, ...]:
    """The ``reports`` entries; each problem is appended to ``problems``, naming the entry."""
    if raw_reports is None:
        return ()
    if not isinstance(raw_reports, list):
        problems.append(f"reports: expected a list of entries, got {type(raw_reports).__name__}")
        return ()
    entries: list[ReportEntry] = []
    first_index: dict[tuple[str, str, str], int] = {}
    for index, raw in enumerate(raw_reports):
        if not isinstance(raw, Mapping):
            problems.append(
                f"{where('reports', index)}: expected a mapping with 'region' or 'municipality', got {raw!r}"
            )
            continue
        label = None
        for key in ("region", "municipality"):
            if isinstance(raw.get(key), str) and raw[key].strip():
                label = f"{key} {raw[key].strip()}"
                break
        try:
            entry = _ReportModel.model_validate(dict(raw))
        except ValidationError as exc:
            problems.extend(f"{where('reports', index, label)}: {p}" for p in _problems(exc, _REPORT_KEYS))
            continue
        report = ReportEntry(entry.region, entry.municipality, entry.by, _contacts(entry.contacts))
        key = (*report.scope, report.by)
        if key in first_index:
            problems.append(f"{where('reports', index, label)}: duplicate: already at reports[{first_index[key]}]")
            continue
        first_index[key] = index
        entries.append(report)
    return tuple(entries)


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """Safe YAML without implicit timestamps: dates stay text, so a bad one gets our clear message."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _entry_lines(text: str) -> dict[tuple[str, int | None], int]:
    """Line numbers (1-based) of ``defaults`` and of each ``pages[i]``, for error messages."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return {}
    lines: dict[tuple[str, int | None], int] = {}
    if isinstance(root, yaml.MappingNode):
        for key_node, value_node in root.value:
            if key_node.value == "defaults":
                lines[("defaults", None)] = value_node.start_mark.line + 1
            elif key_node.value in ("pages", "reports") and isinstance(value_node, yaml.SequenceNode):
                for index, item in enumerate(value_node.value):
                    lines[(key_node.value, index)] = item.start_mark.line + 1
    return lines


def read_registry(path: str | os.PathLike[str]) -> RegistryDocument:
    """Read and validate a registry file; raises :class:`RegistryError` naming the file, entry and problem."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            content = file.read()
    except OSError as exc:
        raise RegistryError(source, [f"cannot read: {exc.strerror or exc}"]) from exc
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(source, [f"not UTF-8 text (byte {exc.start})"]) from exc
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RegistryError(source, [f"{where}YAML syntax error: {problem}"]) from exc
    try:
        return validate_registry(data, source, digest=hashlib.sha256(content).hexdigest())
    except RegistryError:
        pass
    # Validate again with line numbers: composing the file twice costs only on the error path.
    return validate_registry(data, source, digest=hashlib.sha256(content).hexdigest(), lines=_entry_lines(text))
