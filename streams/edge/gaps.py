"""Recording gaps at the edge: times in which a community's events may not have reached otklik
(docs/data-flow.md, "Gaps and catch-up"). ``otklik catchup`` reads them back with the VK API.

:class:`GapWriter` writes a :class:`~otklik.schemas.records.Gap` to ``otklik.gaps``; one it cannot write
is logged with the ``otklik catchup`` command that reads the same window by hand. :class:`LastEvents`
keeps the time of the last event the gateway accepted from each VK community in a small file, so that
a restarted gateway knows where its silence began.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from otklik.schemas.records import Gap

log = logging.getLogger("otklik.gaps")

Send = Callable[[str, bytes, bytes], Awaitable[Any]]  # (topic, value, key): acknowledged when it returns


class GapWriter:
    def __init__(self, send: Send, topic: str, detected_by: str) -> None:
        self._send = send
        self.topic = topic
        self.detected_by = detected_by
        self.written = 0

    async def write(self, community: str, since: float, until: float, why: str) -> Gap | None:
        """Write the gap ``[since, until]`` of ``community`` (``vk:<group_id>``) in whole seconds; None when
        ``until`` is before ``since`` or it could not be written (then the log says how to catch it up by
        hand). A gap within one second is still a gap: a restart that quick can miss an event."""
        if until < since:
            return None
        since_s, until_s = int(since), int(until) + 1
        gap = Gap(community, since_s, until_s, why, self.detected_by)
        try:
            await self._send(self.topic, gap.to_json(), community.encode())
        except Exception as exc:
            log.error(
                "%s: the gap [%d, %d) (%s) could not be recorded (%s): run `otklik catchup --group %s --since %d "
                "--until %d`",
                community,
                since_s,
                until_s,
                why,
                type(exc).__name__,
                community.split(":", 1)[1],
                since_s,
                until_s,
            )
            return None
        self.written += 1
        log.warning("%s: events of [%d, %d) may be missing (%s): gap recorded", community, since_s, until_s, why)
        return gap


class LastEvents:
    """Community (``vk:<group_id>``) → unix time of the last event accepted from it, saved atomically to
    ``path`` (temp file, fsync, rename) by :meth:`save`; no file kept when ``path`` is None."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.times: dict[str, float] = {}
        self._dirty = False
        self._failing = False  # the last save failed (logged once until one succeeds)

    def load(self) -> dict[str, float]:
        """The times saved by the last run ({} without a file; an unreadable one is logged and ignored)."""
        if self.path is None:
            return {}
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            log.error("%s: unreadable (%s): no gap can be recorded for the last restart", self.path, type(exc).__name__)
            return {}
        if not isinstance(data, dict):
            return {}
        saved = {k: float(v) for k, v in data.items() if isinstance(k, str) and isinstance(v, int | float)}
        for community, t in saved.items():
            self.times.setdefault(community, t)
        return saved

    def seen(self, community: str, at: float) -> None:
        self.times[community] = at
        self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(orjson.dumps({k: int(v) for k, v in self.times.items()}))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:  # the gateway serves on; only the next restart's gaps are at stake
            if not self._failing:
                log.error("%s: cannot be written (%s): a restart will not know its gaps", self.path, exc)
            self._failing = True
            return
        self._dirty = self._failing = False
