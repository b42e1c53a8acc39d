"""The report files: exact keys for programs, Russian titles and real number formats for people."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import orjson
import pytest

from otklik.agents.history.rating import RATING_FIELDS, ItemFacts, RatingRow, month_bounds, rate
from otklik.streams.store.formats import ITEM_FIELDS, RatingMeta, write_items, write_rating

ZONE = "Asia/Novosibirsk"
MONTH = month_bounds("2026-11", ZONE)
HOUR = 3600


def rows() -> list[RatingRow]:
    t = MONTH.start + 10 * HOUR
    items = [
        ItemFacts("vk:1", t, "answered", False, t + HOUR, 1 * HOUR),
        ItemFacts("vk:1", t, "answered", False, t + HOUR, 2 * HOUR),
        ItemFacts("vk:1", t, "answered", True, t + HOUR, 30 * HOUR),
        ItemFacts("vk:2", t, "answered", False, t + HOUR, 5400),
        ItemFacts("vk:2", t, "moderated", False, t + HOUR, None),
        ItemFacts("vk:2", t, "no_answer_needed", False, t, None),
        ItemFacts("<script>alert(1)</script>", t, "open", True, None, None, offensive_overdue=True),
    ]
    return rate(items, MONTH, min_judged=2)


def meta(by: str = "page", titles: dict[str, str] | None = None) -> RatingMeta:
    return RatingMeta(
        month="2026-11",
        zone=ZONE,
        by=by,
        min_judged=2,
        rules_version="otklik 0.9.0 rating-1",
        calendar_version="holidays 0.109",
        registry_digest="0123456789abcdef" * 4,
        generated_at=datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
        titles=titles if titles is not None else {"vk:1": "Школа № 1", "vk:2": "Библиотека"},
    )


def written(fmt: str, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    write_rating(kwargs.pop("rows", None) or rows(), kwargs.pop("meta", None) or meta(), fmt, out)
    return out.getvalue()


# ---- programs --------------------------------------------------------------------------------------


def test_json_has_one_object_per_unit_with_exactly_the_rating_fields() -> None:
    data = orjson.loads(written("json"))
    expected = [row.as_dict() for row in rows()]
    assert [list(obj) for obj in data] == [list(RATING_FIELDS)] * len(expected)
    assert data == expected
    # vk:2 answered or removed both its judged items in time; vk:1 was late once.
    assert [(obj["unit"], obj["rank"]) for obj in data[:2]] == [("vk:2", 1), ("vk:1", 2)]


def test_csv_round_trips_to_the_same_values() -> None:
    text = written("csv").decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == RATING_FIELDS
    back = list(reader)
    for row, original in zip(back, rows(), strict=True):
        for name in RATING_FIELDS:
            value = getattr(original, name)
            if value is None:
                assert row[name] == "", name
            elif isinstance(value, bool):
                assert row[name] == ("true" if value else "false"), name
            else:
                assert type(value)(row[name]) == value, name


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="'pdf' is not one of json, csv, xlsx, html"):
        written("pdf")
    with pytest.raises(ValueError, match="'html' is not one of json, csv, xlsx$"):
        write_items([], "html", io.BytesIO())


def test_meta_refuses_a_bad_unit_kind_and_a_naive_time() -> None:
    with pytest.raises(ValueError, match="by: 'city'"):
        RatingMeta("2026-11", ZONE, "city", 2, "r", "c", "d", datetime(2026, 12, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="time zone"):
        RatingMeta("2026-11", ZONE, "page", 2, "r", "c", "d", datetime(2026, 12, 1))


# ---- people: XLSX ----------------------------------------------------------------------------------


def sheet(data: bytes) -> Any:
    return openpyxl.load_workbook(io.BytesIO(data)).active


def test_xlsx_title_names_period_zone_unit_and_versions() -> None:
    ws = sheet(written("xlsx"))
    assert ws["A1"].value == "Рейтинг своевременности ответов за ноябрь 2026 г., по страницам"
    details = ws["A2"].value
    for part in ("2026-11", ZONE, "otklik 0.9.0 rating-1", "holidays 0.109", "0123456789ab", "2026-12-01 10:00"):
        assert part in details, part
    assert "не менее 2" in details


def test_xlsx_has_russian_headers_a_frozen_header_and_a_filter() -> None:
    ws = sheet(written("xlsx"))
    headers = [cell.value for cell in ws[3]]
    assert headers == [
        "Место",
        "Страница",
        "Название",
        "Получено",
        "Требовали ответа",
        "Оценено",
        "В срок",
        "С нарушением срока",
        "Доля в срок",
        "Медиана ответа, рабочие ч",
        "90-й процентиль ответа, рабочие ч",
        "Без ответа на конец месяца",
        "Удалено страницей без ответа",
        "Оскорбления дольше срока модерации",
        "В рейтинге",
    ]
    assert ws.freeze_panes == "D4"  # the header rows and the columns naming the unit stay in view
    assert ws.auto_filter.ref == f"A3:O{3 + len(rows())}"
    assert all(ws.column_dimensions[letter].width > 5 for letter in "ABCDEFGHIJKLMNO")


def test_xlsx_values_and_number_formats() -> None:
    ws = sheet(written("xlsx"))
    by_unit = {ws.cell(row=r, column=2).value: r for r in range(4, ws.max_row + 1)}
    expected = {row.unit: row for row in rows()}
    assert set(by_unit) == set(expected)
    for unit, r in by_unit.items():
        row = expected[unit]
        cells = [ws.cell(row=r, column=c) for c in range(1, 16)]
        assert cells[0].value == row.rank
        assert cells[2].value == {"vk:1": "Школа № 1", "vk:2": "Библиотека"}.get(unit)
        assert [c.value for c in cells[3:8]] == [
            row.received,
            row.needing_answer,
            row.judged,
            row.on_time,
            row.breached,
        ]
        assert cells[8].value == row.on_time_share
        assert cells[8].number_format == "0.0%"
        for cell, seconds in ((cells[9], row.median_business_s), (cells[10], row.p90_business_s)):
            assert cell.number_format == "0.0"
            assert cell.value == (None if seconds is None else pytest.approx(seconds / HOUR))
        assert cells[3].number_format == "#,##0"
        assert cells[13].value == row.offensive_overdue
        assert cells[14].value == ("да" if row.rated else "нет")
    # vk:1 answered in 1, 2 and 30 working hours: a median of 2 h.
    assert ws.cell(row=by_unit["vk:1"], column=10).value == pytest.approx(2.0)


def test_xlsx_by_sector_names_sectors_in_russian_without_a_title_mapping() -> None:
    rating = rate([ItemFacts("education", MONTH.start + HOUR, "answered", False, MONTH.start + 2 * HOUR, 60)], MONTH, 1)
    ws = sheet(written("xlsx", rows=rating, meta=meta("sector", titles={})))
    assert ws["B3"].value == "Отрасль" and ws["C3"].value == "Название"
    assert (ws["B4"].value, ws["C4"].value) == ("education", "Образование")
    assert ws["A1"].value.endswith("по отраслям")


def test_xlsx_by_municipality_without_titles_has_no_title_column() -> None:
    ws = sheet(written("xlsx", meta=meta("municipality", titles={})))
    assert [ws["A3"].value, ws["B3"].value, ws["C3"].value] == ["Место", "Муниципалитет", "Получено"]
    assert ws.freeze_panes == "C4"


# ---- people: HTML ----------------------------------------------------------------------------------


def test_html_is_a_printable_self_contained_page_with_escaped_text() -> None:
    page = written("html").decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="ru">' in page
    assert "@media print" in page
    assert "<script" not in page.lower()  # the unit named <script> is text, and there is no script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<th>Доля в срок</th>" in page
    assert "ноябрь 2026" in page and ZONE in page and "holidays 0.109" in page
    # vk:1: 2 of 3 in time, a median of 2 working hours, in Russian number style.
    assert "66,7&nbsp;%" in page and '<td class="n">2,0</td>' in page


def test_html_escapes_titles() -> None:
    page = written("html", meta=meta(titles={"vk:1": 'Школа "<b>"'})).decode("utf-8")
    assert "Школа &quot;&lt;b&gt;&quot;" in page and "<b>" not in page


# ---- items -----------------------------------------------------------------------------------------


def item(**overrides: Any) -> dict[str, Any]:
    created = MONTH.start + 10 * HOUR
    values: dict[str, Any] = {
        "item": "vk:1:wall-1_10:5",
        "page": "vk:1",
        "page_title": "Школа № 1",
        "municipality": "Бердск",
        "sector": "education",
        "platform": "vk",
        "kind": "comment",
        "created_at": created,
        "due_at": created + 8 * HOUR,
        "closed_at": created + 9 * HOUR,
        "outcome": "answered",
        "breached": True,
        "business_latency_s": 9 * HOUR,
        "latency_s": 9 * HOUR + 1800,
        "responder": "vk:user:5001",
        "reason": None,
        "link": "https://vk.com/wall-1_10?reply=5",
        "author": "vk:user:777",
    }
    values.update(overrides)
    return values


def items_written(fmt: str, rows: list[dict[str, Any]], **kwargs: Any) -> bytes:
    out = io.BytesIO()
    write_items(rows, fmt, out, zone=ZONE, **kwargs)
    return out.getvalue()


def test_items_json_has_the_columns_and_local_iso_times_and_no_author() -> None:
    data = orjson.loads(items_written("json", [item(), item(closed_at=None, outcome="open")]))
    assert [list(obj) for obj in data] == [list(ITEM_FIELDS)] * 2
    first = data[0]
    created = datetime.fromisoformat(first["created_at"])
    assert created.utcoffset() == ZoneInfo(ZONE).utcoffset(created.replace(tzinfo=None))
    assert int(created.timestamp()) == item()["created_at"]
    assert first["created_at"] == "2026-11-01T10:00:00+07:00"
    assert data[1]["closed_at"] is None
    assert first["breached"] is True and first["latency_s"] == 9 * HOUR + 1800
    assert "vk:user:777" not in str(data)


def test_items_author_only_when_asked() -> None:
    data = orjson.loads(items_written("json", [item()], with_author=True))
    assert list(data[0])[-1] == "author" and data[0]["author"] == "vk:user:777"
    text = items_written("csv", [item()], with_author=True).decode()
    assert text.splitlines()[0].endswith(",link,author")


def test_items_csv_round_trip() -> None:
    text = items_written("csv", [item(reason="question", responder=None)]).decode("utf-8")
    (row,) = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(row) == ITEM_FIELDS
    assert row["created_at"] == "2026-11-01T10:00:00+07:00"
    assert row["due_at"] == "2026-11-01T18:00:00+07:00"
    assert row["breached"] == "true" and row["responder"] == "" and row["reason"] == "question"
    assert int(row["business_latency_s"]) == 9 * HOUR
    assert row["link"] == "https://vk.com/wall-1_10?reply=5"


def test_items_xlsx_has_real_local_datetimes_hours_and_links() -> None:
    ws = sheet(items_written("xlsx", [item(), item(item="vk:1:2", closed_at=None, outcome="open")], title="Ноябрь"))
    headers = [c.value for c in ws[3]]
    assert headers[0] == "Сообщение" and headers[7] == "Получено" and "Автор" not in headers
    assert ws["A1"].value == "Ноябрь" and ZONE in ws["A2"].value
    assert ws.freeze_panes == "B4"
    created = ws.cell(row=4, column=8)
    assert created.value == datetime(2026, 11, 1, 10, 0)  # local time in ZONE, as the title says
    assert created.number_format == "yyyy-mm-dd hh:mm"
    assert ws.cell(row=5, column=10).value is None  # still open: no closing time
    assert ws.cell(row=4, column=11).value == "отвечено"
    assert ws.cell(row=4, column=13).value == pytest.approx(9.0)
    assert ws.cell(row=4, column=13).number_format == "0.0"
    link = ws.cell(row=4, column=17)
    assert link.value == "https://vk.com/wall-1_10?reply=5" and link.hyperlink.target == link.value
    assert ws.auto_filter.ref == "A3:Q5"


def test_items_xlsx_author_column_when_asked() -> None:
    ws = sheet(items_written("xlsx", [item()], with_author=True))
    assert ws.cell(row=3, column=18).value == "Автор" and ws.cell(row=4, column=18).value == "vk:user:777"


@pytest.mark.parametrize("fmt", ["json", "csv", "xlsx", "html"])
def test_an_empty_rating_is_still_a_whole_file(fmt: str) -> None:
    out = io.BytesIO()
    write_rating([], meta("region", titles={}), fmt, out)
    data = out.getvalue()
    if fmt == "json":
        assert orjson.loads(data) == []
    elif fmt == "csv":
        assert data.decode().splitlines() == [",".join(RATING_FIELDS)]
    elif fmt == "xlsx":
        ws = sheet(data)
        assert ws["B3"].value == "Регион" and ws.max_row == 3 and ws.auto_filter.ref == "A3:N3"
    else:
        assert "<tbody>\n\n</tbody>" in data.decode() and data.decode().rstrip().endswith("</html>")
