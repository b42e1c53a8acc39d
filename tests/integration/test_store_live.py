"""A simulated month through the live worker into the store gives the rating `otklik replay` gives
(issue 15, "Acceptance"; docs/history.md, "The monthly rating").

`otklik simulate` writes five weeks of traffic of 20 pages around a month boundary, in the replay
format, with the registry of its pages. The same bodies go to a real `otklik worker`'s otklik.raw, and a
real `otklik store` reads the worker's topics into a fresh database (SQLite, then PostgreSQL). The
simulated weeks end more than the retention horizon ago (docs/responses.md, "Retention and expiry"),
so once the worker's stream time reaches the wall clock every item has its final record, in the worker
and in a replay measured now alike. `otklik report rating --format json` of each month, by page and by
municipality, must then equal `rate()` over the replay's rows: every unit, every number.

A record that does not validate, written to otklik.responses before the traffic, must end in
otklik.dead-letters (stage `store`, with its reason) while the store goes on to keep every item.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import yaml
from sqlalchemy import select

from otklik.agents.history.rating import ItemFacts, Month, month_bounds, rate
from otklik.agents.replay import parse_time
from otklik.schemas.records import RawEnvelope
from tests.conftest import OTKLIK, REPO, WorkerProcess, consume, produce, run, unique

pytestmark = pytest.mark.integration

PAGES = 20
RATE = 0.002  # events per simulated second over all pages: a few thousand in five weeks
DAYS_BEFORE, DAYS_AFTER = 17, 18  # simulated days either side of the month boundary
RETENTION_DAYS = 30  # the worker's default horizon (docs/responses.md, "Retention and expiry")

# Not compared: the moderation watch's findings come from the live worker only; a replay writes none.
NOT_FROM_REPLAY = ("offensive_overdue",)


@dataclass(frozen=True)
class Simulation:
    events: Path  # JSON Lines {"received_at", "body"}: what `otklik replay` reads
    registry: Path
    zone: str
    months: tuple[Month, Month]  # the month before the boundary and the month after it

    def municipality(self) -> dict[str, str]:
        document = yaml.safe_load(self.registry.read_text(encoding="utf-8"))
        return {page["id"]: page["municipality"] for page in document["pages"]}

    def envelopes(self) -> list[tuple[bytes, bytes]]:
        """The bodies as the simulator sends them to otklik.raw: envelopes keyed by page."""
        out = []
        for line in self.events.read_bytes().splitlines():
            data = orjson.loads(line)
            body = data["body"]
            envelope = RawEnvelope(platform="vk", source="simulator", received_at=data["received_at"], body=body)
            out.append((f"vk:{body['group_id']}".encode(), envelope.to_json()))
        return out


def simulate(folder: Path, *, pages: int = PAGES, rate: float = RATE, seed: int = 7, now: float | None = None):
    """Five simulated weeks around the first of the latest month whose weeks all end more than the
    retention horizon before ``now``: every item is past its deadline and past its horizon."""
    zone = "Asia/Novosibirsk"  # the simulator's registry's default time zone (checked below)
    tz = ZoneInfo(zone)
    latest_end = datetime.fromtimestamp(now or time.time(), tz) - timedelta(days=RETENTION_DAYS + 1)
    boundary = (latest_end - timedelta(days=DAYS_AFTER)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = boundary - timedelta(days=DAYS_BEFORE)
    folder.mkdir(parents=True, exist_ok=True)
    events, registry = folder / "events.jsonl", folder / "registry.yaml"
    subprocess.run(
        [
            OTKLIK,
            "simulate",
            f"--pages={pages}",
            f"--rate={rate}",
            f"--duration={(DAYS_BEFORE + DAYS_AFTER) * 86400}",
            f"--start={int(start.timestamp())}",
            f"--seed={seed}",
            f"--out={events}",
            f"--registry-out={registry}",
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    assert yaml.safe_load(registry.read_text(encoding="utf-8"))["defaults"]["timezone"] == zone
    before = boundary - timedelta(days=1)
    months = (month_bounds(f"{before:%Y-%m}", zone), month_bounds(f"{boundary:%Y-%m}", zone))
    return Simulation(events, registry, zone, months)


def replay(sim: Simulation, now: int) -> dict[str, dict[str, Any]]:
    """`otklik replay` of the simulation, measured at ``now``: item → row."""
    done = subprocess.run(
        [OTKLIK, "replay", str(sim.events), "--registry", str(sim.registry), "--now", str(now)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    assert b" 0 malformed" in done.stderr, done.stderr
    return {row["item"]: row for row in map(orjson.loads, done.stdout.splitlines())}


def expected_rating(rows: dict[str, dict[str, Any]], units: dict[str, str] | None, month: Month) -> list[dict]:
    """`rate()` straight from the replay's rows; ``units`` maps a page to its unit (None: by page)."""
    facts = [
        ItemFacts(
            unit=row["page"] if units is None else units[row["page"]],
            created_at=parse_time(row["created_at"]),
            outcome=row["outcome"],
            breached=row["breached"],
            closed_at=parse_time(row["closed_at"]) if row["closed_at"] is not None else None,
            business_latency_s=row["business_latency_s"],
        )
        for row in rows.values()
    ]
    return [_compared(row.as_dict()) for row in rate(facts, month)]


def _compared(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in NOT_FROM_REPLAY}


@dataclass
class StoreProcess:
    """A real `otklik store` reading a worker's topics into ``url`` with its own consumer group."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0

    @classmethod
    def beside(cls, worker: WorkerProcess, url: str, registry: Path, log_path: Path, **extra: str) -> StoreProcess:
        env = dict(worker.env)
        env.update(
            OTKLIK_STORE_URL=url,
            OTKLIK_STORE_GROUP=unique("store"),
            OTKLIK_REGISTRY=str(registry),
            OTKLIK_LOG_LEVEL="info",
        )
        env.update(extra)
        return cls(env, log_path)

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [OTKLIK, "store"], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, kill: bool = False) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.kill() if kill else self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"


def judged_items(url: str) -> dict[str, tuple[str, bool]]:
    """item → (outcome, breached) of every item the store holds a worker's record of (version > 0)."""
    from otklik.streams.store.db import open_engine
    from otklik.streams.store.schema import items

    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            query = select(items.c.item, items.c.outcome, items.c.breached).where(items.c.version > 0)
            return {row.item: (row.outcome, bool(row.breached)) for row in connection.execute(query)}
    except Exception:  # not created yet: the store is starting
        return {}
    finally:
        engine.dispose()


def wait_for_items(
    url: str, expected: dict[str, tuple[str, bool]], store: StoreProcess, worker: WorkerProcess, timeout: float
) -> dict[str, tuple[str, bool]]:
    """Wait until the store holds exactly ``expected``; fail with the differences after ``timeout``."""
    deadline = time.monotonic() + timeout
    found: dict[str, tuple[str, bool]] = {}
    while time.monotonic() < deadline:
        if not store.alive():
            pytest.fail(f"the store exited with {store.proc and store.proc.returncode}:\n{store.log_tail()}")
        found = judged_items(url)
        if found == expected:
            return found
        time.sleep(1.0)
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    other = sorted(item for item in set(found) & set(expected) if found[item] != expected[item])
    pytest.fail(
        f"the store's items are not the replay's within {timeout}s: {len(missing)} missing (e.g. {missing[:3]}), "
        f"{len(extra)} not in the replay (e.g. {extra[:3]}), {len(other)} judged otherwise "
        f"(e.g. {[(i, found[i], expected[i]) for i in other[:3]]})\n"
        f"--- store ---\n{store.log_tail()}\n--- worker ---\n{worker.log_tail(20)}"
    )


def report(url: str, sim: Simulation, month: Month, by: str) -> list[dict[str, Any]]:
    env = dict(os.environ, OTKLIK_STORE_URL=url)
    done = subprocess.run(
        [
            OTKLIK,
            "report",
            "rating",
            f"--month={month.label}",
            f"--by={by}",
            "--format=json",
            f"--registry={sim.registry}",
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    return [_compared(row) for row in orjson.loads(done.stdout)]


BAD_RECORD = b'{"item": "vk:1:wall:1:1", "page": 5, "outcome": "answered"}'


def test_a_simulated_month_through_the_worker_and_store_rates_as_replay_does(
    worker_factory, kafka, store_url, tmp_path
):
    sim = simulate(tmp_path / "sim")
    raw = sim.envelopes()
    assert 2000 <= len(raw) <= 10_000

    worker = worker_factory(sim.registry, OTKLIK_TICK_INTERVAL="1")
    worker.start()
    store = StoreProcess.beside(worker, store_url, sim.registry, tmp_path / "store.log")
    store.start()
    try:
        run(produce(kafka, worker.topic("otklik.responses"), [(b"vk:1", BAD_RECORD)]))
        run(produce(kafka, worker.topic("otklik.raw"), raw))

        # Every simulated item is past its horizon by now: the replay's rows are final, none open.
        rows = replay(sim, int(time.time()))
        assert rows and "open" not in {row["outcome"] for row in rows.values()}
        expected = {item: (row["outcome"], row["breached"]) for item, row in rows.items()}
        wait_for_items(store_url, expected, store, worker, timeout=90)

        # The bad record: a dead letter of the store's, with the reason, and the store still running.
        letters = [orjson.loads(m.value) for m in run(consume(kafka, worker.topic("otklik.dead-letters"), expect=1))]
        mine = [letter for letter in letters if letter["stage"] == "store"]
        assert len(mine) == 1, letters
        assert mine[0]["input"] == BAD_RECORD.decode()
        assert mine[0]["topic"] == worker.topic("otklik.responses")
        assert "response record" in mine[0]["reason"] and "page" in mine[0]["reason"], mine[0]
        assert store.alive(), store.log_tail()
    finally:
        store.stop()
        worker.stop()

    municipalities = sim.municipality()
    boundary_crossers = 0
    for month in sim.months:
        in_month = [row for row in rows.values() if month.start <= parse_time(row["created_at"]) < month.end]
        boundary_crossers += sum(
            1 for row in in_month if row["closed_at"] is not None and parse_time(row["closed_at"]) >= month.end
        )
        for by, units in (("page", None), ("municipality", municipalities)):
            got = report(store_url, sim, month, by)
            want = expected_rating(rows, units, month)
            assert len(want) > 1 and any(row["rated"] for row in want)
            assert got == want, (month.label, by)
    # The months' edges were crossed: items created in one month and closed in the next.
    assert boundary_crossers > 0
