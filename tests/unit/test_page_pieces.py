"""Page state saved as pieces under their own keys, only what changed, or as one value when cheaper
(docs/data-flow.md, "How state survives"; issue 19, finding 10): what one event writes does not grow
with the page's backlog, the table restores the engine exactly, a save cut short anywhere restores the
last complete one, and the whole-page values of earlier releases still load."""

from __future__ import annotations

import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from otklik.agents.moderation_watch import ModerationWatch
from otklik.agents.registry import Registry
from otklik.agents.responses.engine import ResponseEngine
from otklik.agents.text.moderation import default_detector
from otklik.agents.wiring import page_pieces, pipeline
from otklik.agents.wiring.page_pieces import PieceTable
from otklik.schemas.records import Interaction
from tests.unit.test_responses import ADMIN, PAGE, Run, W, _scenario, registry

BIG = "vk:200000001"
START = 1764230400


class Recording(dict):  # type: ignore[type-arg]
    """A table that logs every write and tombstone, as its changelog would receive them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ops: list[tuple[bytes, bytes | None]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.ops.append((key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.ops.append((key, None))
        super().__delitem__(key)

    def written_since(self, n: int) -> int:
        """Bytes sent to the changelog by the operations after the first ``n``: keys and values."""
        return sum(len(key) + len(value or b"") for key, value in self.ops[n:])


def canonical(dump: bytes) -> Any:
    """A page dump as data; the kept replies in a fixed order (they are saved per object, and a
    restored page holds the objects in another order, which no outcome depends on)."""
    data = orjson.loads(dump)
    if data:
        data["replies"].sort()
    return data


def comment(page: str, n: int, t: int) -> Interaction:
    post = n // 10
    item = f"{page}:wall:{post}:{n}"
    return Interaction(
        platform="vk",
        page=page,
        action="new",
        object_kind="wall",
        object_id=f"{page}:wall:{post}",
        item=item,
        seq=n,
        received_at=t,
        created_at=t,
        event_id=f"c{n}",
        author=f"vk:user:{1_000_000 + n}",
        thread_root=item,
    )


def reply(to: Interaction, n: int, t: int) -> Interaction:
    return Interaction(
        platform="vk",
        page=to.page,
        action="new",
        object_kind="wall",
        object_id=to.object_id,
        item=f"{to.object_id}:{10_000_000 + n}",
        seq=10_000_000 + n,
        received_at=t,
        created_at=t,
        event_id=f"r{n}",
        author=to.page,
        thread_root=to.item,
        reply_to_item=to.item,
        reply_to_author=to.author,
    )


def _bytes_of_one_event_each(size: int) -> list[int]:
    """Bytes one save writes after each of a few single events on a page holding ``size`` open items."""
    reg = Registry.from_mapping({"defaults": {"deadline": "8h working"}, "pages": [{"id": BIG}]}, source="<test>")
    engine = ResponseEngine(reg.page)
    items = [comment(BIG, n, START) for n in range(size)]
    for ia in items:
        engine.process(ia)
    table = Recording()
    store = PieceTable(table)
    store.save(engine)
    assert table.written_since(0) > size * 50  # the first save holds every item
    rng = random.Random(size)
    out = []
    t = START
    for k in range(6):
        t += 1
        if k % 3 == 0:
            ia = comment(BIG, size + k, t)  # a new item
        elif k % 3 == 1:
            ia = reply(items[rng.randrange(size)], k, t)  # answers an old item
        else:
            engine.tick(t + W + 1)  # the answered item closes
            ia = comment(BIG, size + k, t + W + 1)
        engine.process(ia)
        before = len(table.ops)
        store.save(engine)
        out.append(table.written_since(before))
    return out


def test_what_one_event_writes_does_not_grow_with_the_pages_backlog() -> None:
    """After one event on a page of 100,000 open items, the save writes about what it writes on a page
    of 100: a few small pieces, not the page (before pieces it wrote the whole page, megabytes)."""
    small = _bytes_of_one_event_each(100)
    big = _bytes_of_one_event_each(100_000)
    assert max(big) < 4096, big
    assert sum(big) < 2 * sum(small), (big, small)


def _saves(seed: int) -> Iterator[tuple[Run, Recording, int, Any]]:
    """A random page history saved at random points: after each save, the run, its table, the index of
    the save's first operation in the table's log, and the page's state then."""
    reg = registry([{"id": PAGE, "administrators": [f"vk:user:{ADMIN}"], "deadline": "30m working"}])
    run = Run(reg)
    table = Recording()
    store = PieceTable(table)
    rng = random.Random(seed)
    for n, (body, received) in enumerate(sorted(_scenario(seed), key=lambda e: e[1])):
        run.send(body, received)
        if n % 5 == 3:
            run.tick(received + rng.choice([1, 3 * W, 86400 + W]))  # settles, reports, prunes
        if rng.random() < 0.5:
            first = len(table.ops)
            store.save(run.engine)
            yield run, table, first, canonical(run.engine.dump_page(PAGE))


def _loaded(table: dict[bytes, bytes], reg: Registry) -> Any:
    fresh = ResponseEngine(reg.page)
    PieceTable(table).load(fresh)
    return canonical(fresh.dump_page(PAGE))


class Choosing:
    """Decides for PieceTable whether a save is one value or pieces: always one way, at random (a page
    goes to pieces and back at any save), or as otklik does (``None``)."""

    def __init__(self, how: str | None, seed: int) -> None:
        self.how = how
        self.rng = random.Random(seed)
        self.real = PieceTable.one_value

    def __enter__(self) -> None:
        if self.how is not None:
            how, rng = self.how, self.rng
            PieceTable.one_value = staticmethod(  # type: ignore[method-assign]
                lambda *args: how == "whole" or (how == "random" and rng.random() < 0.5)
            )

    def __exit__(self, *exc: object) -> None:
        PieceTable.one_value = staticmethod(self.real)  # type: ignore[method-assign]


WAYS = ["pieces", "whole", "random", None]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**9), piece_max=st.sampled_from([64, 512 * 1024]), way=st.sampled_from(WAYS))
def test_a_save_cut_short_anywhere_restores_the_last_complete_save(seed: int, piece_max: int, way: str | None) -> None:
    """Load the table as it is after every prefix of a save's writes (a crash mid-save: the changelog
    keeps a prefix of one partition's records): the page is as of that save or of the one before, never
    a mix, whether saves go as pieces, as one value or either way. Pieces over the size bound are cut
    into parts (a tiny bound makes most of them so; a value over it is never saved whole)."""
    saved = page_pieces.PIECE_MAX
    page_pieces.PIECE_MAX = piece_max
    rng = random.Random(seed)
    with Choosing(way, seed):
        try:
            previous: Any = None
            replay: dict[bytes, bytes] = {}
            for run, table, first, state in _saves(seed):
                base = dict(replay)
                for key, value in table.ops[first:]:
                    if value is None:
                        replay.pop(key, None)
                    else:
                        replay[key] = value
                assert replay == table
                assert _loaded(dict(table), run.reg) == state  # the whole save: the page as it is
                ops = table.ops[first:]
                cuts = range(len(ops)) if len(ops) <= 30 else sorted(rng.sample(range(len(ops)), 12))
                for cut in cuts:
                    partial = dict(base)
                    for key, value in ops[:cut]:
                        if value is None:
                            partial.pop(key, None)
                        else:
                            partial[key] = value
                    assert _loaded(partial, run.reg) in (previous, state), (cut, len(ops))
                previous = state
        finally:
            page_pieces.PIECE_MAX = saved


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**9), when=st.floats(0, 1), way=st.sampled_from(WAYS))
def test_an_engine_restored_from_its_pieces_goes_on_to_the_same_records(
    seed: int, when: float, way: str | None
) -> None:
    """Restart from the table at any point (a fresh engine loads the saved pieces or value, its timers
    re-armed): every item ends with the record it gets without the restart."""
    with Choosing(way, seed):
        _restart_at(seed, when)


def _restart_at(seed: int, when: float) -> None:
    reg = registry([{"id": PAGE, "administrators": [f"vk:user:{ADMIN}"], "deadline": "30m working"}])
    events = sorted(_scenario(seed), key=lambda e: e[1])
    calm, restarted = Run(reg), Run(reg)
    table: dict[bytes, bytes] = {}
    store = PieceTable(table)
    at = int(len(events) * when)
    for n, (body, received) in enumerate(events):
        calm.send(body, received)
        if n == at:
            store.save(restarted.engine)
            restarted.engine = ResponseEngine(reg.page)
            PieceTable(table).load(restarted.engine)
        restarted.send(body, received)
        if n % 4 == 1:
            store.save(restarted.engine)
    assert restarted.final() == calm.final()


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("way", ["pieces", "whole"])
def test_a_page_saved_whole_by_an_earlier_release_still_loads(compressed: bool, way: str) -> None:
    """A worker upgraded in place recovers from a changelog holding one value per page (compressed when
    big): the page loads; its next save writes it as pieces (removing the old value) or as one value."""
    reg = registry([{"id": PAGE, "administrators": [f"vk:user:{ADMIN}"], "deadline": "30m working"}])
    run = Run(reg)
    for body, received in sorted(_scenario(7), key=lambda e: e[1]):
        run.send(body, received)
    for n in range(2000 if compressed else 0):  # a big page, as earlier releases compressed it
        run.engine.process(comment(PAGE, 50_000 + n, START))
    whole = run.engine.dump_page(PAGE)
    value = pipeline.pack_state(whole)
    assert (value[:1] == b"z") is compressed
    table: dict[bytes, bytes] = {PAGE.encode(): value}
    restored = ResponseEngine(reg.page)
    store = PieceTable(table, pipeline.unpack_state, pipeline.pack_state)
    assert store.load(restored) == 1
    assert canonical(restored.dump_page(PAGE)) == canonical(whole)
    restored.process(comment(PAGE, 90_000, START))
    with Choosing(way, 0):
        store.save(restored)
    assert (PAGE.encode() in table) is (way == "whole")
    assert (page_pieces.head_key(PAGE) in table) is (way == "pieces")
    fresh = ResponseEngine(reg.page)
    PieceTable(table, pipeline.unpack_state).load(fresh)
    assert canonical(fresh.dump_page(PAGE)) == canonical(restored.dump_page(PAGE))


def test_pieces_without_a_head_are_a_first_save_cut_short_and_go() -> None:
    reg = registry()
    run = Run(reg)
    for body, received in sorted(_scenario(3), key=lambda e: e[1]):
        run.send(body, received)
    whole = run.engine.dump_page(PAGE)
    table = Recording({PAGE.encode(): whole})  # the page saved whole, and its first save as pieces
    store = PieceTable(table)
    store.in_pieces[PAGE] = False
    with Choosing("pieces", 0):
        store.save(run.engine)
    cut = {k: v for k, v in table.items() if k != page_pieces.head_key(PAGE)}  # ...cut short before its head
    cut[PAGE.encode()] = whole
    fresh = ResponseEngine(reg.page)
    PieceTable(cut).load(fresh)
    assert canonical(fresh.dump_page(PAGE)) == canonical(whole)
    assert cut == {PAGE.encode(): whole}  # the pieces went


@pytest.mark.parametrize("way", ["pieces", "whole"])
def test_moderation_state_round_trips_through_pieces_and_loads_from_a_whole_value(way: str) -> None:
    with Choosing(way, 0):
        _moderation_round_trip(way)


def _moderation_round_trip(way: str) -> None:
    from tests.unit.test_moderation_watch import ADMIN as MOD_ADMIN
    from tests.unit.test_moderation_watch import PAGE as MOD_PAGE
    from tests.unit.test_moderation_watch import REGISTRY, T0, deletion
    from tests.unit.test_moderation_watch import comment as mod_comment

    watch = ModerationWatch(REGISTRY.page, default_detector())
    table: dict[bytes, bytes] = {}
    store = PieceTable(table)
    watch.process(mod_comment(13, "Уроды, верните деньги"))
    watch.process(mod_comment(14, "Идиоты, верните деньги"))
    store.save(watch)
    watch.process(deletion(14, MOD_ADMIN, T0 + 100))
    store.save(watch)
    whole = watch.dump_page(MOD_PAGE)
    for source in (table, {MOD_PAGE.encode(): whole}):
        fresh = ModerationWatch(REGISTRY.page, default_detector())
        PieceTable(dict(source)).load(fresh)
        assert fresh.dump_page(MOD_PAGE) == whole
        [overdue] = fresh.tick(T0 + 3601)
        assert overdue.item == f"{MOD_PAGE}:wall:1:13"
    store.save(watch)
    watch.tick(T0 + 2 * 86400)  # the removed text is forgotten after a day: its piece goes
    store.save(watch)
    assert not any(b"\x00x" in key for key in table)
    assert (MOD_PAGE.encode() in table) is (way == "whole")


def test_every_key_of_a_page_goes_to_the_pages_partition() -> None:
    """The changelog partition of each piece is the one the producer's partitioner gives the page id, as
    for the page's records on otklik.interactions, so the worker that reads a page recovers its state."""

    app = SimpleNamespace(
        Table=lambda *args, **kwargs: {}, on_partitions_assigned=SimpleNamespace(connect=lambda handler: handler)
    )
    mirror = pipeline.PageStateMirror(app, "pages", 12, lambda: None)
    partitions = list(range(12))
    moved = 0
    for g in range(1, 60):
        page = f"vk:{g}"
        expected = DefaultPartitioner()(page.encode(), partitions, partitions)
        for key in (page_pieces.head_key(page), page_pieces.piece_key(page, "i7", 1, 2), page.encode()):
            assert mirror._partition_for_key(key) == expected
            moved += DefaultPartitioner()(key, partitions, partitions) != expected
    assert moved  # hashing the whole key would have scattered a page's pieces
