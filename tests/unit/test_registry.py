"""The page registry: loading, defaults, fallbacks and the errors people will see."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from otklik.agents.clock.calendar_ru import RUSSIA
from otklik.agents.registry import PageConfig, Registry, load_registry
from otklik.schemas.registry import Contact, RegistryError
from otklik.schemas.schedule import Deadline, parse_schedule
from tests.clock_helpers import around_the_clock

EXAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "registry-example.yaml"


def write(tmp_path: Path, text: str, name: str = "registry.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(data: Any) -> RegistryError:
    with pytest.raises(RegistryError) as info:
        Registry.from_mapping(data, source="test.yaml")
    return info.value


# ---- the example file ------------------------------------------------------------------------------


def test_the_example_registry_loads() -> None:
    registry = load_registry(EXAMPLE)
    assert registry.source == str(EXAMPLE)
    assert [p.id for p in registry.pages] == [
        "vk:100001",
        "vk:100002",
        "vk:100003",
        "vk:100004",
        "vk:100005",
        "tg:sport_school_7",
    ]
    flagship = registry.page("vk:100001")
    assert flagship.registered and flagship.title == "Правительство Новосибирской области"
    assert flagship.deadline == Deadline.parse("4h working")
    assert flagship.moderation_deadline == Deadline.parse("1h working")
    assert flagship.administrators == frozenset({"vk:user:5001", "vk:user:5002"})
    assert flagship.contacts[0] == Contact(
        name="Ирина Петрова", email="petrova@example.gov.ru", telegram="@petrova_smm"
    )
    assert flagship.contacts[1].max == "700123"
    assert flagship.timezone == "Asia/Novosibirsk" and flagship.clock.timezone == "Asia/Novosibirsk"
    assert flagship.link == "https://vk.com/club100001"
    assert flagship.platform == "vk"

    emergency = registry.page("vk:100003")
    assert emergency.calendar == "none" and emergency.clock.calendar is None
    assert emergency.schedule == around_the_clock()
    assert not emergency.deadline.working and emergency.bot_replies_count

    clinic = registry.page("vk:100004")
    assert clinic.timezone == "Asia/Vladivostok" and clinic.sector == "health"
    assert clinic.schedule[5] == ((540, 780),)
    assert clinic.supervisors == ()  # an empty list on the page replaces the defaults' supervisors

    library = registry.page("vk:100005")
    assert library.holidays == frozenset({date(2025, 6, 6), date(2025, 11, 6)})
    assert library.short_days == frozenset({date(2025, 6, 5)})
    assert library.clock.extra_holidays == library.holidays
    assert library.triage is False
    assert registry.page("tg:sport_school_7").platform == "tg"


def test_pages_with_the_same_clock_settings_share_one_clock() -> None:
    registry = load_registry(EXAMPLE)
    assert registry.page("vk:100001").clock is registry.page("vk:100002").clock
    assert registry.page("vk:100001").clock is not registry.page("vk:100004").clock
    assert registry.page("vk:999").clock is registry.page("vk:100002").clock


def test_digest_tells_whether_the_content_changed(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    a = load_registry(write(tmp_path, text, "a.yaml"))
    b = load_registry(write(tmp_path, text, "b.yaml"))
    c = load_registry(write(tmp_path, text.replace("deadline: 4h working", "deadline: 2h working"), "c.yaml"))
    assert a.digest == b.digest != c.digest
    assert c.page("vk:100001").deadline.seconds == 2 * 3600
    assert (
        Registry.from_mapping({"pages": [{"id": "vk:1"}]}).digest
        == Registry.from_mapping({"pages": [{"id": "vk:1"}]}).digest
    )
    assert (
        Registry.from_mapping({"pages": [{"id": "vk:1"}]}).digest
        != Registry.from_mapping({"pages": [{"id": "vk:2"}]}).digest
    )


# ---- defaults --------------------------------------------------------------------------------------


def test_built_in_defaults() -> None:
    registry = Registry.from_mapping({"pages": [{"id": "vk:123456"}]})
    page = registry.page("vk:123456")
    assert page.registered
    assert page.timezone == "Europe/Moscow"
    assert page.schedule == parse_schedule({"mon-fri": "09:00-18:00"})
    assert page.calendar == "ru" and page.clock.calendar is RUSSIA
    assert page.deadline == Deadline.parse("8h working")
    assert page.moderation_deadline == Deadline.parse("1h working")
    assert (page.municipality, page.sector, page.region) == ("unknown", "unknown", "unknown")
    assert page.administrators == frozenset() and page.contacts == () and page.supervisors == ()
    assert page.bot_replies_count is False and page.triage is True
    assert page.title is None and page.link is None


def test_a_page_key_replaces_the_default_whole() -> None:
    registry = Registry.from_mapping(
        {
            "defaults": {
                "schedule": {"mon-fri": "08:00-17:00", "sat": "10:00-14:00"},
                "administrators": ["vk:user:1", "vk:user:2"],
                "holidays": ["2025-06-06"],
                "region": "Республика Татарстан",
            },
            "pages": [
                {"id": "vk:1", "schedule": {"mon": "09:00-10:00"}, "administrators": ["vk:user:3"], "holidays": []},
                {"id": "vk:2"},
            ],
        }
    )
    one, two = registry.page("vk:1"), registry.page("vk:2")
    assert one.schedule.to_mapping() == {"mon": ["09:00-10:00"]}  # no Saturday merged in
    assert one.administrators == frozenset({"vk:user:3"})
    assert one.holidays == frozenset()
    assert one.region == "Республика Татарстан"
    assert two.schedule.to_mapping() == {
        **{d: ["08:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "sat": ["10:00-14:00"],
    }
    assert two.administrators == frozenset({"vk:user:1", "vk:user:2"})
    assert two.holidays == frozenset({date(2025, 6, 6)})


def test_an_unknown_page_falls_back_to_the_defaults() -> None:
    registry = load_registry(EXAMPLE)
    page = registry.page("vk:424242")
    assert isinstance(page, PageConfig)
    assert page.id == "vk:424242" and not page.registered
    assert page.timezone == "Asia/Novosibirsk" and page.region == "Новосибирская область"
    assert page.deadline == Deadline.parse("8h working")
    assert page.supervisors[0].email == "obrashcheniya@example.gov.ru"
    assert page.administrators == frozenset() and page.title is None
    assert registry.page("vk:424242") is page  # built once
    assert "vk:424242" not in registry and registry.get("vk:424242") is None
    assert "vk:100001" in registry and registry.get("vk:100001") is registry.page("vk:100001")
    assert len(registry) == 6


def test_an_empty_registry_measures_every_page_by_the_built_in_defaults() -> None:
    registry = Registry.from_mapping(None)
    assert registry.pages == () and registry.page("vk:1").timezone == "Europe/Moscow"


# ---- errors: each names the file, the entry and the problem ------------------------------------------


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            {"id": "vk:123456", "timezone": "Europe/Mosow"},
            "pages[0] (vk:123456): timezone: unknown time zone 'Europe/Mosow'",
        ),
        ({"id": "vk:-123456"}, "pages[0] (vk:-123456): id: 'vk:-123456': a VK page id is the positive group id"),
        ({"id": "123456"}, "pages[0] (123456): id: '123456' is not a page id like 'vk:123456'"),
        ({"id": 123456}, "pages[0]: id: 123456 is not a page id"),
        ({"title": "no id"}, "pages[0]: id: is required"),
        (
            {"id": "vk:1", "timezon": "Europe/Moscow"},
            "pages[0] (vk:1): unknown key 'timezon' (did you mean 'timezone'?)",
        ),
        (
            {"id": "vk:1", "schedule": {"mon": "18:00-09:00"}},
            "pages[0] (vk:1): schedule: mon: range '18:00-09:00' ends before it starts",
        ),
        (
            {"id": "vk:1", "schedule": {"tue": ["09:00-13:00", "12:00-18:00"]}},
            "pages[0] (vk:1): schedule: tue: ranges '09:00-13:00' and '12:00-18:00' overlap",
        ),
        ({"id": "vk:1", "schedule": {"wed": "9-18"}}, "pages[0] (vk:1): schedule: wed: bad range '9-18'"),
        ({"id": "vk:1", "calendar": "federal"}, "pages[0] (vk:1): calendar: Input should be 'ru' or 'none'"),
        ({"id": "vk:1", "deadline": "8 hours"}, "pages[0] (vk:1): deadline '8 hours' is not understood"),
        (
            {"id": "vk:1", "moderation_deadline": "soon"},
            "pages[0] (vk:1): moderation_deadline: deadline 'soon' is not understood",
        ),
        (
            {"id": "vk:1", "administrators": ["vk:user:1", "vk:5001"]},
            "pages[0] (vk:1): administrators[1]: 'vk:5001' is not a person's author id",
        ),
        (
            {"id": "vk:1", "administrators": ["tg:user:5"]},
            "pages[0] (vk:1): administrators: 'tg:user:5' is not on this page's platform (vk)",
        ),
        (
            {"id": "vk:1", "contacts": [{"name": "Иван"}]},
            "pages[0] (vk:1): contacts[0]: a contact needs at least one of email, telegram, max",
        ),
        (
            {"id": "vk:1", "contacts": [{"email": "ivan.example.ru"}]},
            "pages[0] (vk:1): contacts[0].email: 'ivan.example.ru' is not an e-mail address",
        ),
        (
            {"id": "vk:1", "supervisors": [{"emial": "a@b.ru"}]},
            "pages[0] (vk:1): supervisors[0]: unknown key 'emial' (did you mean 'email'?)",
        ),
        (
            {"id": "vk:1", "contacts": [{"telegram": "ivan petrov"}]},
            "pages[0] (vk:1): contacts[0].telegram: 'ivan petrov' is neither",
        ),
        (
            {"id": "vk:1", "bot_replies_count": "yes please"},
            "pages[0] (vk:1): bot_replies_count: Input should be a valid boolean",
        ),
        ({"id": "vk:1", "triage": 1}, "pages[0] (vk:1): triage: Input should be a valid boolean"),
        (
            {"id": "vk:1", "holidays": ["2025-13-01"]},
            "pages[0] (vk:1): holidays[0]: '2025-13-01' is not a date (YYYY-MM-DD)",
        ),
        ({"id": "vk:1", "short_days": "2025-06-05"}, "pages[0] (vk:1): short_days: expected a list of dates"),
        ({"id": "vk:1", "sector": "schools"}, "pages[0] (vk:1): sector: Input should be 'education'"),
        ({"id": "vk:1", "region": "  "}, "pages[0] (vk:1): region: is blank"),
        ({"id": "vk:1", "link": "vk.com/club1"}, "pages[0] (vk:1): link: 'vk.com/club1' is not an http(s) URL"),
        ({"id": "vk:1", "title": None}, "pages[0] (vk:1): title: has no value"),
        (
            {"id": "vk:1", "calendar": False},
            "pages[0] (vk:1): calendar: got False: write 'calendar: ru' or 'calendar: none'",
        ),
        ({"id": "vk:1", "administrators": "vk:user:1"}, "pages[0] (vk:1): administrators: Input should be a list"),
    ],
)
def test_a_bad_page_entry_names_file_entry_and_problem(page: dict, expected: str) -> None:
    error = error_of({"pages": [page]})
    assert error.source == "test.yaml"
    assert any(line.startswith("test.yaml: " + expected) for line in str(error).splitlines()), str(error)


@pytest.mark.parametrize(
    ("defaults", "expected"),
    [
        ({"timezone": "Mars/Olympus"}, "defaults: timezone: unknown time zone 'Mars/Olympus'"),
        ({"deadlin": "8h working"}, "defaults: unknown key 'deadlin' (did you mean 'deadline'?)"),
        ({"title": "Все страницы"}, "defaults: 'title' belongs to a page, not to defaults"),
        ({"id": "vk:1"}, "defaults: 'id' belongs to a page, not to defaults"),
        ({"schedule": {}}, "defaults: schedule has no working hours"),
        ("Europe/Moscow", "defaults: expected a mapping of keys, got str"),
    ],
)
def test_bad_defaults_are_named(defaults: Any, expected: str) -> None:
    error = error_of({"defaults": defaults, "pages": [{"id": "vk:1"}]})
    assert any(line.startswith("test.yaml: " + expected) for line in str(error).splitlines()), str(error)


def test_duplicate_page_ids() -> None:
    error = error_of({"pages": [{"id": "vk:1"}, {"id": "vk:2"}, {"id": "vk:1", "title": "again"}]})
    assert str(error) == "test.yaml: pages[2] (vk:1): duplicate id: already at pages[0]"


def test_shape_errors() -> None:
    assert "expected a mapping" in str(error_of(["vk:1"]))
    assert "pages: expected a list of pages, got dict" in str(error_of({"pages": {"id": "vk:1"}}))
    assert "pages[0]: expected a mapping with at least 'id', got 'vk:1'" in str(error_of({"pages": ["vk:1"]}))
    assert "unknown top-level key 'page' (expected 'defaults', 'pages' and 'reports')" in str(error_of({"page": []}))


def test_every_problem_is_reported_at_once() -> None:
    error = error_of(
        {
            "pages": [
                {"id": "vk:1", "timezone": "Nowhere/City"},
                {"id": "vk:2"},
                {"id": "vk:3", "sector": "?", "deadline": "x"},
            ]
        }
    )
    assert len(error.problems) == 3
    assert [p.split(":")[0:2] for p in error.problems] == [
        ["pages[0] (vk", "1)"],
        ["pages[2] (vk", "3)"],
        ["pages[2] (vk", "3)"],
    ]


def test_file_errors_carry_the_line_of_the_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        defaults:
          timezone: Europe/Moscow
        pages:
          - id: vk:1
          - id: vk:2
            timezone: Europe/Mosow
        """,
    )
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert str(info.value) == f"{path}: pages[1] (vk:2), line 5: timezone: unknown time zone 'Europe/Mosow'"


def test_yaml_syntax_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "pages:\n  - id: vk:1\n   title: broken indent\n")
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 3, column 4: YAML syntax error")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"nope\.yaml: cannot read"):
        load_registry(tmp_path / "nope.yaml")


def test_dates_in_yaml_are_read_as_dates_and_bad_ones_are_named(tmp_path: Path) -> None:
    good = load_registry(
        write(tmp_path, "pages:\n  - id: vk:1\n    holidays: [2025-06-06, '2025-11-06']\n", "good.yaml")
    )
    assert good.page("vk:1").holidays == frozenset({date(2025, 6, 6), date(2025, 11, 6)})
    with pytest.raises(RegistryError) as info:
        load_registry(write(tmp_path, "pages:\n  - id: vk:1\n    holidays: [2025-02-30]\n", "bad.yaml"))
    assert "pages[0] (vk:1), line 2: holidays[0]: '2025-02-30' is not a date" in str(info.value)
    with pytest.raises(RegistryError) as info:
        load_registry(write(tmp_path, "pages:\n  - id: vk:1\n    short_days: [2025-06-05 10:00:00]\n", "time.yaml"))
    assert "short_days[0]: '2025-06-05 10:00:00' is not a date" in str(info.value)


def test_the_page_clock_follows_its_settings() -> None:
    registry = Registry.from_mapping(
        {"pages": [{"id": "vk:1", "timezone": "Asia/Vladivostok", "holidays": ["2025-06-06"], "calendar": "none"}]}
    )
    clock = registry.page("vk:1").clock
    assert clock.timezone == "Asia/Vladivostok" and clock.calendar is None
    assert clock.local_ranges(date(2025, 6, 6)) == ()
    assert clock.local_ranges(date(2025, 6, 12)) == ((540, 1080),)  # calendar off: Russia Day is worked


# ---- reports: who gets the monthly rating ---------------------------------------------------------------


def test_report_recipients_are_read_with_their_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        pages:
          - id: vk:1
        reports:
          - region: Новосибирская область
            contacts: [{name: ЦУР, email: cur@example.gov.ru, telegram: "@cur_nsk"}]
          - municipality: " Бердск "
            by: page
            contacts:
              - {email: anna@berdsk.example.ru}
              - {telegram: "@only_telegram"}
        """,
    )
    registry = load_registry(path)
    first, second = registry.reports
    assert first.scope == ("region", "Новосибирская область")
    assert first.by == "municipality"
    assert first.contacts == (Contact(name="ЦУР", email="cur@example.gov.ru", telegram="@cur_nsk"),)
    assert second.scope == ("municipality", "Бердск")
    assert (second.region, second.by) == (None, "page")
    assert [c.email for c in second.contacts] == ["anna@berdsk.example.ru", None]


def test_a_registry_without_reports_has_none() -> None:
    assert Registry.from_mapping({"pages": [{"id": "vk:1"}]}).reports == ()
    assert load_registry(EXAMPLE).reports == ()


_MAIL = [{"email": "cur@example.gov.ru"}]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"region": "R", "municipality": "M", "contacts": _MAIL},
            "reports[0] (region R): needs exactly one of 'region' and 'municipality'",
        ),
        ({"by": "page", "contacts": _MAIL}, "reports[0]: needs exactly one of 'region' and 'municipality'"),
        ({"region": "R"}, "reports[0] (region R): contacts: is required"),
        ({"region": "R", "contacts": []}, "reports[0] (region R): contacts: name at least one recipient"),
        (
            {"municipality": "M", "contacts": [{"telegram": "@someone"}]},
            "reports[0] (municipality M): contacts: none has an email, and the monthly rating goes by e-mail",
        ),
        (
            {"region": "R", "by": "city", "contacts": _MAIL},
            "reports[0] (region R): by: Input should be 'page', 'municipality', 'sector' or 'region'",
        ),
        ({"regoin": "R", "contacts": _MAIL}, "reports[0]: unknown key 'regoin' (did you mean 'region'?)"),
        (
            {"region": "R", "contacts": [{"emial": "a@b.ru"}]},
            "reports[0] (region R): contacts[0]: unknown key 'emial' (did you mean 'email'?)",
        ),
        (
            {"region": "R", "contacts": [{"email": "not-an-address"}]},
            "reports[0] (region R): contacts[0].email: 'not-an-address' is not an e-mail address",
        ),
        ({"region": "  ", "contacts": _MAIL}, "reports[0]: region: is blank"),
        ({"region": None, "contacts": _MAIL}, "reports[0]: region: has no value"),
        ("R", "reports[0]: expected a mapping with 'region' or 'municipality', got 'R'"),
    ],
)
def test_a_bad_report_entry_names_the_entry_and_problem(entry: Any, expected: str) -> None:
    error = error_of({"pages": [{"id": "vk:1"}], "reports": [entry]})
    assert any(line.startswith("test.yaml: " + expected) for line in str(error).splitlines()), str(error)


def test_report_shape_and_duplicates() -> None:
    assert str(error_of({"reports": {"region": "R"}})) == "test.yaml: reports: expected a list of entries, got dict"
    entry = {"region": "R", "contacts": _MAIL}
    error = error_of({"reports": [entry, {"municipality": "R", "contacts": _MAIL}, entry]})
    assert str(error) == "test.yaml: reports[2] (region R): duplicate: already at reports[0]"
    # The same region by another unit is another report.
    registry = Registry.from_mapping({"reports": [entry, {**entry, "by": "page"}]})
    assert [r.by for r in registry.reports] == ["municipality", "page"]


def test_report_errors_carry_the_line_of_the_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        pages:
          - id: vk:1
        reports:
          - region: R
            contacts: [{email: a@example.ru}]
          - municipality: M
            contacts: [{email: a@example.ru}]
            by: town
        """,
    )
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert str(info.value).startswith(f"{path}: reports[1] (municipality M), line 6: by: Input should be")
