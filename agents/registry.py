"""The page registry in force: each page's rules with a ready working clock (docs/registry.md).

The file's format and its validation are ``otklik.schemas.registry``; here the validated settings
become frozen :class:`PageConfig` objects, one :class:`~otklik.agents.clock.working.WorkingClock`
shared by every page with the same schedule, zone and days off. A page not in the file gets the
defaults. :class:`RegistryWatcher` reloads the file when it changes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal

from otklik.agents.clock.calendar_ru import RUSSIA
from otklik.agents.clock.working import WorkingClock
from otklik.schemas.registry import (
    Contact,
    RegistryDocument,
    RegistryError,
    ReportEntry,
    read_registry,
    validate_registry,
)
from otklik.schemas.schedule import Deadline, Schedule

__all__ = ["PageConfig", "Registry", "RegistryError", "RegistryWatcher", "load_registry"]

_log = logging.getLogger("otklik.registry")


@dataclass(frozen=True, slots=True)
class PageConfig:
    """One page's rules, with the defaults already applied."""

    id: str
    title: str | None
    timezone: str
    schedule: Schedule
    calendar: Literal["ru", "none"]
    deadline: Deadline
    moderation_deadline: Deadline
    administrators: frozenset[str]
    supervisors: tuple[Contact, ...]
    contacts: tuple[Contact, ...]
    bot_replies_count: bool
    triage: bool
    holidays: frozenset[date]
    short_days: frozenset[date]
    municipality: str
    sector: str
    region: str
    link: str | None
    clock: WorkingClock
    registered: bool = True

    @property
    def platform(self) -> str:
        return self.id.split(":", 1)[0]


class Registry:
    """The validated registry: registered pages by id, the defaults for pages not in the file, and
    ``reports``: who gets the monthly rating of a region or a municipality."""

    # Unregistered pages seen so far; bounded so that a flood of unknown ids cannot grow it forever.
    _MAX_FALLBACKS = 100_000

    def __init__(
        self,
        pages: tuple[PageConfig, ...],
        fallback: PageConfig,
        source: str,
        digest: str,
        reports: tuple[ReportEntry, ...] = (),
    ) -> None:
        self.pages = pages
        self.reports = reports
        self.source = source
        self.digest = digest
        self._by_id = {page.id: page for page in pages}
        self._fallback = fallback
        self._unregistered: dict[str, PageConfig] = {}

    def page(self, page_id: str) -> PageConfig:
        """The page's rules; a page not in the file gets the defaults with ``registered=False``."""
        config = self._by_id.get(page_id)
        if config is not None:
            return config
        config = self._unregistered.get(page_id)
        if config is None:
            if len(self._unregistered) >= self._MAX_FALLBACKS:
                self._unregistered.clear()
            config = self._unregistered[page_id] = replace(self._fallback, id=page_id)
        return config

    def get(self, page_id: str) -> PageConfig | None:
        """A registered page, or None."""
        return self._by_id.get(page_id)

    @property
    def defaults(self) -> PageConfig:
        """What a page not in the file gets (its ``id`` is empty)."""
        return self._fallback

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._by_id

    def __len__(self) -> int:
        return len(self.pages)

    def __iter__(self) -> Iterator[PageConfig]:
        return iter(self.pages)

    def __repr__(self) -> str:
        return f"Registry({self.source!r}, {len(self.pages)} pages, digest={self.digest[:12]})"

    @classmethod
    def from_document(cls, document: RegistryDocument) -> Registry:
        """The registry of a validated file: one clock per distinct schedule, zone and days off."""
        clocks: dict[tuple[Any, ...], WorkingClock] = {}

        def build(values: Mapping[str, Any], page_id: str, title: str | None, link: str | None, registered: bool):
            holidays, short_days = frozenset(values["holidays"]), frozenset(values["short_days"])
            calendar = RUSSIA if values["calendar"] == "ru" else None
            key = (values["timezone"], values["schedule"], calendar, holidays, short_days)
            clock = clocks.get(key)
            if clock is None:
                clock = clocks[key] = WorkingClock(
                    values["timezone"], values["schedule"], calendar, holidays, short_days
                )
            return PageConfig(
                id=page_id,
                title=title,
                timezone=values["timezone"],
                schedule=values["schedule"],
                calendar=values["calendar"],
                deadline=values["deadline"],
                moderation_deadline=values["moderation_deadline"],
                administrators=frozenset(values["administrators"]),
                supervisors=values["supervisors"],
                contacts=values["contacts"],
                bot_replies_count=values["bot_replies_count"],
                triage=values["triage"],
                holidays=holidays,
                short_days=short_days,
                municipality=values["municipality"],
                sector=values["sector"],
                region=values["region"],
                link=link,
                clock=clock,
                registered=registered,
            )

        pages = tuple(build(p.values, p.id, p.title, p.link, True) for p in document.pages)
        fallback = build(document.defaults, "", None, None, False)
        return cls(pages, fallback, document.source, document.digest, document.reports)

    @classmethod
    def from_mapping(
        cls,
        data: Any,
        source: str = "<string>",
        *,
        digest: str | None = None,
        lines: Mapping[tuple[str, int | None], int] | None = None,
    ) -> Registry:
        """Validate an already parsed registry; raises :class:`RegistryError` listing every problem."""
        return cls.from_document(validate_registry(data, source, digest=digest, lines=lines))


def load_registry(path: str | os.PathLike[str]) -> Registry:
    """Read and validate a registry file; raises :class:`RegistryError` naming the file, entry and problem."""
    return Registry.from_document(read_registry(path))


class RegistryWatcher:
    """The page registry, reloaded when its file changes. A bad file at start-up stops the worker
    (with the file, the entry and the problem); a bad edit later is logged and the last good
    registry stays in force, so one typo does not stop the measurement."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.registry: Registry = load_registry(path) if path else Registry.from_mapping({}, source="<defaults>")
        self._stamp = self._stat()
        self.reloads = 0
        self.last_error: str | None = None

    def page_config(self, page: str) -> PageConfig:
        return self.registry.page(page)

    def _stat(self) -> tuple[float, int] | None:
        if not self.path:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def check(self) -> bool:
        """Reload when the file changed; True when the registry in force changed."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            fresh = load_registry(self.path)
        except RegistryError as exc:
            self.last_error = str(exc)
            _log.error("registry not reloaded, the previous one stays in force: %s", exc)
            return False
        self.last_error = None
        if fresh.digest == self.registry.digest:
            return False
        self.registry = fresh
        self.reloads += 1
        _log.info("registry reloaded: %r", fresh)
        return True
