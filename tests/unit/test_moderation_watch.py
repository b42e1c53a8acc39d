"""The moderation agent's pure core: labels at creation, time visible, overdue, deflections."""

from __future__ import annotations

import pytest

from otklik.agents.moderation_watch import ModerationWatch, is_deflection
from otklik.agents.registry import Registry
from otklik.agents.text.moderation import default_detector
from otklik.schemas.records import Interaction

PAGE = "vk:200000001"
ADMIN = "vk:user:5001"
# Thursday 2025-11-27 10:00 Moscow (07:00 UTC): a working day.
T0 = 1764226800

REGISTRY = Registry.from_mapping(
    {
        "defaults": {"timezone": "Europe/Moscow"},
        "pages": [
            {"id": PAGE, "administrators": [ADMIN]},
            {"id": "vk:200000002", "moderation_deadline": "30m calendar"},
        ],
    }
)


def comment(
    cid: int,
    text: str,
    author: str = "vk:user:900",
    at: int = T0,
    action: str = "new",
    page: str = PAGE,
    received: int | None = None,
) -> Interaction:
    return Interaction(
        platform="vk",
        page=page,
        action=action,
        object_kind="wall",
        object_id=f"{page}:wall:1",
        item=f"{page}:wall:1:{cid}",
        seq=cid,
        received_at=received or at,
        event_id=f"e{cid}{action}{at}",
        created_at=at,
        author=author,
        thread_root=f"{page}:wall:1:{cid}",
        text=text,
    )


def deletion(cid: int, by: str, received: int, page: str = PAGE) -> Interaction:
    return Interaction(
        platform="vk",
        page=page,
        action="delete",
        object_kind="wall",
        object_id=f"{page}:wall:1",
        item=f"{page}:wall:1:{cid}",
        seq=cid,
        received_at=received,
        event_id=f"d{cid}{received}",
        deleted_by=by,
    )


@pytest.fixture
def watch() -> ModerationWatch:
    return ModerationWatch(REGISTRY.page, default_detector())


def test_offensive_text_is_labelled_and_its_removal_by_the_page_timed(watch):
    [labelled] = watch.process(comment(1, "Вы там совсем охуели, третий день без воды"))
    assert labelled.kind == "labelled" and "obscene" in labelled.labels and labelled.role == "citizen"
    [removed] = watch.process(deletion(1, ADMIN, T0 + 1200))
    assert removed.kind == "removed" and removed.deleted_by == "page"
    assert removed.visible_s == 1200 and removed.business_visible_s == 1200
    assert removed.within_deadline is True and removed.moderation_deadline == "1h working"
    assert watch.visible_by_page(T0 + 1300) == {}


def test_clean_text_makes_no_record_and_no_state(watch):
    assert watch.process(comment(2, "Когда отремонтируют крышу спортзала?")) == []
    assert watch.pages == {}
    assert watch.process(deletion(2, ADMIN, T0 + 60)) == []


def test_overdue_once_by_working_time_and_removal_after_it_is_late(watch):
    watch.process(comment(3, "Идиоты, сколько можно ждать"))
    # The moderation deadline is 1 working hour: due at 11:00 Moscow.
    assert watch.tick(T0 + 3599) == []
    [overdue] = watch.tick(T0 + 3601)
    assert overdue.kind == "overdue" and overdue.at == T0 + 3600
    assert watch.tick(T0 + 7200) == []  # reported once
    count, fraction = watch.visible_by_page(T0 + 7200)[PAGE]
    assert count == 1 and fraction == pytest.approx(2.0)
    [removed] = watch.process(deletion(3, PAGE, T0 + 7200))
    assert removed.within_deadline is False and removed.deleted_by == "page"


def test_night_offence_counts_visible_working_time_only(watch):
    night = T0 - 12 * 3600  # 22:00 Moscow the evening before
    watch.process(comment(4, "Пошли вы нахуй", at=night))
    [removed] = watch.process(deletion(4, ADMIN, T0 + 600))
    assert removed.visible_s == 12 * 3600 + 600
    # The clock starts at 09:00; removed at 10:10, so 70 working minutes: past the 1-hour deadline.
    assert removed.business_visible_s == 4200 and removed.within_deadline is False


def test_calendar_moderation_deadline(watch):
    page = "vk:200000002"
    watch.process(comment(5, "Сука, опять не работает", page=page))
    [overdue] = watch.tick(T0 + 1801)
    assert overdue.moderation_deadline == "30m calendar" and overdue.at == T0 + 1800


def test_author_deleting_their_own_text_and_editing_it_clean(watch):
    watch.process(comment(6, "Бля, опять автобус не пришёл", author="vk:user:77"))
    [removed] = watch.process(deletion(6, "vk:user:77", T0 + 100))
    assert removed.deleted_by == "author"
    watch.process(comment(7, "Дебилы в администрации", author="vk:user:78"))
    [edited] = watch.process(
        comment(7, "В администрации не отвечают", author="vk:user:78", action="edit", received=T0 + 300)
    )
    assert edited.kind == "removed" and edited.deleted_by == "author" and edited.extra == {"how": "edited"}
    assert edited.visible_s == 300


def test_redelivery_changes_nothing(watch):
    first = watch.process(comment(8, "Убью этого водителя"))
    assert [r.kind for r in first] == ["labelled"] and "threat" in first[0].labels
    assert watch.process(comment(8, "Убью этого водителя")) == []
    assert len(watch.process(deletion(8, ADMIN, T0 + 10))) == 1
    assert watch.process(deletion(8, ADMIN, T0 + 20)) == []
    # A late redelivery of the creation does not make the removed text visible again ...
    assert watch.process(comment(8, "Убью этого водителя", received=T0 + 30)) == []
    assert watch.visible_by_page(T0 + 40) == {}
    # ... and the memory of it lasts a day.
    watch.tick(T0 + 10 + 86401)
    assert watch.removed == {}


def test_page_replies_are_labelled_too_and_deflections_flagged(watch):
    [deflect] = watch.process(comment(9, "Здравствуйте! Напишите, пожалуйста, в личные сообщения.", author=PAGE))
    assert deflect.kind == "deflection" and deflect.role == "page"
    assert (
        watch.process(comment(10, "Напишите в ЛС, а трубу заменят до пятницы 28 ноября по графику", author=PAGE)) == []
    )
    [spam] = watch.process(comment(11, "Заработок от 5000 в день, пиши в телеграм @bestjob", author=ADMIN))
    assert spam.kind == "labelled" and spam.role == "page" and "spam" in spam.labels


def test_other_communities_are_not_moderated_here(watch):
    assert watch.process(comment(12, "Пиздец", author="vk:190000001")) == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Напишите в личные сообщения", True),
        ("Анна, напишите нам в ЛС.", True),
        ("Обратитесь по телефону горячей линии 122", True),
        ("Обратитесь в приёмную администрации", True),
        ("Вывоз мусора перенесён на четверг", False),
        ("Спасибо, передали в управляющую компанию", False),
        ("Напишите в личные сообщения, а дорогу починим в мае до 15 числа", False),
    ],
)
def test_deflection(text, expected):
    assert is_deflection(text) is expected


def test_state_survives_a_dump_and_load(watch):
    watch.process(comment(13, "Уроды, верните деньги"))
    data = {page: watch.dump_page(page) for page in watch.take_dirty()}
    assert list(data) == [PAGE]
    fresh = ModerationWatch(REGISTRY.page, default_detector())
    fresh.load_page(PAGE, data[PAGE])
    [overdue] = fresh.tick(T0 + 3601)
    assert overdue.item == f"{PAGE}:wall:1:13"
    [removed] = fresh.process(deletion(13, ADMIN, T0 + 4000))
    assert removed.visible_s == 4000 and removed.within_deadline is False


def test_a_backlog_read_after_its_deadlines_fires_no_overdue_for_texts_deleted_in_time(watch):
    """The moderation timer ticks at its agent's stream time
    (docs/moderation.md, "What the watch measures"), wired as agents/wiring/pipeline.py wires it: after
    an outage, a backlog whose deletions, in time, are still unread is not reported overdue; the texts
    nobody deleted are, once each."""
    from otklik.agents.wiring.stream_clock import IDLE_S, InputPartition, StreamClock

    page, topic = "vk:200000002", "otklik.interactions"  # 30m calendar
    events = []
    kept = set()
    for k in range(120):  # an offensive comment every 20 s, deleted by the page 10 minutes later
        created = T0 + 20 * k
        events.append(comment(k, "Вы там совсем охуели, третий день без воды", at=created, page=page))
        if k % 10 == 9:
            kept.add(f"{page}:wall:1:{k}")  # never deleted: overdue
        else:
            events.append(deletion(k, page, created + 600, page=page))
    events.sort(key=lambda ia: ia.received_at)  # one partition, in the order the gateway received them
    clock = StreamClock(topic)
    wall, mono = T0 + 3 * 3600.0, 1000.0  # the worker starts three hours later

    def tick() -> list:
        now = clock.now(wall, mono, [InputPartition(topic, 0, len(events), wall)])
        return [] if now is None else watch.tick(now)

    # The wall clock, as the timer read it before: the first batch's texts look overdue at once.
    early = ModerationWatch(REGISTRY.page, default_detector())
    for ia in events[:40]:
        early.process(ia)
    assert {r.item for r in early.tick(int(wall)) if r.kind == "overdue"} - kept

    records = tick()  # nothing read yet: no stream time, nothing judged
    assert records == []
    for start in range(0, len(events), 40):
        for offset in range(start, min(start + 40, len(events))):
            clock.processed(topic, 0, offset, mono)
            clock.observe(0, events[offset].received_at, wall)
            records.extend(watch.process(events[offset]))
        records.extend(tick())
        wall += 0.05
        mono += 0.05
    mono += IDLE_S  # caught up and idle: the wall clock takes over
    records.extend(tick())
    overdue = [r.item for r in records if r.kind == "overdue"]
    assert sorted(overdue) == sorted(kept)
    assert all(r.within_deadline for r in records if r.kind == "removed")


def test_the_offensive_gauges_measure_ages_at_the_stream_time_not_the_wall_clock(watch):
    """An alert on the moderation ratio must not fire for a text whose deletion is still unread."""
    from prometheus_client import CollectorRegistry

    from otklik.streams.worker.metrics import PipelineMetrics

    page = "vk:200000002"  # 30m calendar
    watch.process(comment(1, "Вы там совсем охуели, третий день без воды", page=page))
    stream: list[int | None] = [T0 + 900]  # read up to a quarter hour after the text; the wall clock is far ahead
    prom = CollectorRegistry()
    PipelineMetrics(prom, clock=lambda: T0 + 3 * 3600).watch_moderation(lambda: watch, lambda: stream[0])

    def samples(name: str) -> list[float]:
        return [s.value for m in prom.collect() for s in m.samples if s.name == name]

    assert samples("otklik_page_offensive_oldest_deadline_ratio") == [0.5]  # 900 s of 30 minutes
    stream[0] = None  # not known yet: the count, no ages
    assert samples("otklik_page_offensive_oldest_deadline_ratio") == []
    assert samples("otklik_page_offensive_visible") == [1]
