"""Reports written for programs (JSON, CSV) and for people (XLSX, HTML): `otklik report rating` and `items`.

Programs get the rating rows as they are: exactly :data:`~otklik.agents.history.rating.RATING_FIELDS`,
latencies in seconds, the share as a fraction, nothing translated. People get Russian column titles, a
title naming the period, the time zone and the versions the numbers were computed with, working-time
latencies in hours with one decimal (a number, so a spreadsheet sorts and sums it) and shares as
percentages. Item times are ISO-8601 in the report's zone in JSON and CSV, and real date-times (local
to that zone, which the title names) in XLSX.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any, BinaryIO, Final
from zoneinfo import ZoneInfo

import orjson
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from otklik.agents.history.rating import RATING_FIELDS, UNIT_KINDS, RatingRow

__all__ = [
    "ITEMS_FORMATS",
    "ITEM_FIELDS",
    "RATING_FORMATS",
    "RatingMeta",
    "write_items",
    "write_rating",
]

RATING_FORMATS: Final = ("json", "csv", "xlsx", "html")
ITEMS_FORMATS: Final = ("json", "csv", "xlsx")

# The columns of `otklik report items`, in order; `author` is added at the end only when asked for
# (reports never show an author id unless asked: personal data).
ITEM_FIELDS: Final = (
    "item",
    "page",
    "page_title",
    "municipality",
    "sector",
    "platform",
    "kind",
    "created_at",
    "due_at",
    "closed_at",
    "outcome",
    "breached",
    "business_latency_s",
    "latency_s",
    "responder",
    "reason",
    "link",
)
_TIME_FIELDS: Final = frozenset({"created_at", "due_at", "closed_at"})

_MONTHS: Final = (
    "январь",
    "февраль",
    "март",
    "апрель",
    "май",
    "июнь",
    "июль",
    "август",
    "сентябрь",
    "октябрь",
    "ноябрь",
    "декабрь",
)
_UNIT_TITLES: Final = {"page": "Страница", "municipality": "Муниципалитет", "sector": "Отрасль", "region": "Регион"}
_BY_TITLES: Final = {
    "page": "по страницам",
    "municipality": "по муниципалитетам",
    "sector": "по отраслям",
    "region": "по регионам",
}
# The registry's sectors (schemas/registry.py, SECTORS) as people name them.
SECTOR_TITLES: Final = {
    "education": "Образование",
    "culture": "Культура",
    "health": "Здравоохранение",
    "sport": "Спорт",
    "social": "Социальная сфера",
    "administration": "Органы власти",
    "unknown": "Не указана",
}
# docs/responses.md, "Outcomes".
OUTCOME_TITLES: Final = {
    "answered": "отвечено",
    "moderated": "удалено без ответа",
    "withdrawn": "удалено автором",
    "open": "без ответа",
    "expired": "без ответа (срок хранения истёк)",
    "no_answer_needed": "ответ не требуется",
}
_KIND_TITLES: Final = {"comment": "комментарий", "board_post": "обсуждение", "message": "сообщение"}


@dataclass(frozen=True, slots=True)
class RatingMeta:
    """What a rating was computed from, printed in the title of the people's formats."""

    month: str  # "2026-11"
    zone: str  # the IANA zone the month's bounds were taken in
    by: str  # one of UNIT_KINDS
    min_judged: int
    rules_version: str  # e.g. "otklik 0.9.0 rating-1"
    calendar_version: str  # e.g. "holidays 0.109"
    registry_digest: str
    generated_at: datetime  # aware; shown in ``zone``
    titles: Mapping[str, str] = field(default_factory=dict)  # unit → display name (a page's title)

    def __post_init__(self) -> None:
        if self.by not in UNIT_KINDS:
            raise ValueError(f"by: {self.by!r} is not one of {', '.join(UNIT_KINDS)}")
        if self.generated_at.tzinfo is None:
            raise ValueError("generated_at must carry a time zone")

    def title_of(self, unit: str) -> str | None:
        title = self.titles.get(unit)
        if title is None and self.by == "sector":
            title = SECTOR_TITLES.get(unit)
        return title

    @property
    def has_titles(self) -> bool:
        return bool(self.titles) or self.by == "sector"

    def period(self) -> str:
        year, month = self.month.split("-")
        return f"{_MONTHS[int(month) - 1]} {year} г."

    def heading(self) -> str:
        return f"Рейтинг своевременности ответов за {self.period()}, {_BY_TITLES[self.by]}"

    def details(self) -> str:
        generated = self.generated_at.astimezone(ZoneInfo(self.zone)).strftime("%Y-%m-%d %H:%M")
        return (
            f"Период: {self.month}, часовой пояс {self.zone}. "
            f"В рейтинге: не менее {self.min_judged} оценённых сообщений. "
            f"Правила: {self.rules_version}; календарь: {self.calendar_version}; "
            f"реестр: {self.registry_digest[:12]}. Сформирован: {generated}."
        )


# ---- rating ----------------------------------------------------------------------------------------


def write_rating(rows: Sequence[RatingRow], meta: RatingMeta, fmt: str, out: BinaryIO) -> None:
    """Write the rating in ``fmt`` (json, csv, xlsx, html) to the binary stream ``out``."""
    if fmt == "json":
        out.write(orjson.dumps([row.as_dict() for row in rows], option=orjson.OPT_INDENT_2) + b"\n")
    elif fmt == "csv":
        _write_csv(RATING_FIELDS, [row.as_dict() for row in rows], out)
    elif fmt == "xlsx":
        _rating_xlsx(rows, meta, out)
    elif fmt == "html":
        out.write(_rating_html(rows, meta).encode("utf-8"))
    else:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(RATING_FORMATS)}")


@dataclass(frozen=True, slots=True)
class _Column:
    title: str
    width: float
    number_format: str | None = None


# The people's columns: value of a row → cell. Latencies are working hours with one decimal.
_HOURS_FORMAT: Final = "0.0"
_SHARE_FORMAT: Final = "0.0%"
_COUNT_FORMAT: Final = "#,##0"


def _hours(seconds: float | None) -> float | None:
    # Exact hours: the cell's format shows one decimal, sums and sorting use the whole value.
    return None if seconds is None else seconds / 3600


def _rating_columns(meta: RatingMeta) -> list[tuple[_Column, Any]]:
    columns: list[tuple[_Column, Any]] = [
        (_Column("Место", 8, "0"), lambda r: r.rank),
        (_Column(_UNIT_TITLES[meta.by], 22 if meta.by == "page" else 28), lambda r: r.unit),
    ]
    if meta.has_titles:
        columns.append((_Column("Название", 40), lambda r: meta.title_of(r.unit)))
    columns += [
        (_Column("Получено", 11, _COUNT_FORMAT), lambda r: r.received),
        (_Column("Требовали ответа", 12, _COUNT_FORMAT), lambda r: r.needing_answer),
        (_Column("Оценено", 11, _COUNT_FORMAT), lambda r: r.judged),
        (_Column("В срок", 10, _COUNT_FORMAT), lambda r: r.on_time),
        (_Column("С нарушением срока", 12, _COUNT_FORMAT), lambda r: r.breached),
        (_Column("Доля в срок", 10, _SHARE_FORMAT), lambda r: r.on_time_share),
        (_Column("Медиана ответа, рабочие ч", 13, _HOURS_FORMAT), lambda r: _hours(r.median_business_s)),
        (_Column("90-й процентиль ответа, рабочие ч", 15, _HOURS_FORMAT), lambda r: _hours(r.p90_business_s)),
        (_Column("Без ответа на конец месяца", 13, _COUNT_FORMAT), lambda r: r.unanswered_at_end),
        (_Column("Удалено страницей без ответа", 14, _COUNT_FORMAT), lambda r: r.moderated_without_answer),
        (_Column("Оскорбления дольше срока модерации", 15, _COUNT_FORMAT), lambda r: r.offensive_overdue),
        (_Column("В рейтинге", 10), lambda r: "да" if r.rated else "нет"),
    ]
    return columns


_TITLE_FONT: Final = Font(bold=True, size=13)
_HEADER_FONT: Final = Font(bold=True)
_HEADER_FILL: Final = PatternFill("solid", fgColor="DDE4EE")
_HEADER_ALIGN: Final = Alignment(wrap_text=True, vertical="center", horizontal="center")


def _sheet_with_header(
    ws: Worksheet, heading: str, details: str, columns: Sequence[_Column], frozen_columns: int
) -> int:
    """Title (row 1), details (row 2), column titles (row 3); returns the first data row."""
    ws["A1"] = heading
    ws["A1"].font = _TITLE_FONT
    ws["A2"] = details
    ws["A2"].alignment = Alignment(wrap_text=True, vertical="top")
    last = get_column_letter(len(columns))
    ws.merge_cells(f"A1:{last}1")
    ws.merge_cells(f"A2:{last}2")
    ws.row_dimensions[2].height = 32
    ws.row_dimensions[3].height = 48
    for index, column in enumerate(columns, start=1):
        cell = ws.cell(row=3, column=index, value=column.title)
        cell.font, cell.fill, cell.alignment = _HEADER_FONT, _HEADER_FILL, _HEADER_ALIGN
        ws.column_dimensions[get_column_letter(index)].width = column.width
    # The header stays in view, and so do the columns naming the row.
    ws.freeze_panes = f"{get_column_letter(frozen_columns + 1)}4"
    return 4


def _finish_sheet(ws: Worksheet, columns: Sequence[_Column], first_row: int, last_row: int) -> None:
    for index, column in enumerate(columns, start=1):
        if column.number_format is None:
            continue
        for (cell,) in ws.iter_rows(min_row=first_row, max_row=last_row, min_col=index, max_col=index):
            cell.number_format = column.number_format
    ws.auto_filter.ref = f"A3:{get_column_letter(len(columns))}{max(last_row, 3)}"


def _save(wb: Workbook, out: BinaryIO) -> None:
    buffer = io.BytesIO()  # zipfile wants a seekable file; `out` may be a pipe
    wb.save(buffer)
    out.write(buffer.getvalue())


def _rating_xlsx(rows: Sequence[RatingRow], meta: RatingMeta, out: BinaryIO) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = f"Рейтинг {meta.month}"
    columns = _rating_columns(meta)
    first = _sheet_with_header(ws, meta.heading(), meta.details(), [c for c, _ in columns], 3 if meta.has_titles else 2)
    for offset, row in enumerate(rows):
        for index, (_, value) in enumerate(columns, start=1):
            ws.cell(row=first + offset, column=index, value=value(row))
    _finish_sheet(ws, [c for c, _ in columns], first, first + len(rows) - 1)
    _save(wb, out)


# ---- HTML ------------------------------------------------------------------------------------------

_CSS: Final = """
body { font-family: "PT Sans", "Segoe UI", Arial, sans-serif; font-size: 11pt; margin: 2em; color: #111; }
h1 { font-size: 15pt; margin: 0 0 .3em; }
p.details { color: #444; margin: 0 0 1em; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #999; padding: .25em .4em; vertical-align: top; }
th { background: #dde4ee; font-weight: bold; text-align: center; }
td.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.unrated td { color: #666; }
@media print {
  @page { size: A4 landscape; margin: 12mm; }
  body { margin: 0; font-size: 9pt; }
  thead { display: table-header-group; }
  tr { page-break-inside: avoid; }
  th { background: none; }
}
""".strip()


def _ru_number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def _html_cell(value: Any, number_format: str | None) -> str:
    if value is None:
        return '<td class="n">—</td>' if number_format else "<td></td>"
    if number_format == _SHARE_FORMAT:
        return f'<td class="n">{_ru_number(value * 100, 1)}&nbsp;%</td>'
    if number_format == _HOURS_FORMAT:
        return f'<td class="n">{_ru_number(value, 1)}</td>'
    if number_format is not None:
        return f'<td class="n">{escape(str(value))}</td>'
    return f"<td>{escape(str(value))}</td>"


def _rating_html(rows: Sequence[RatingRow], meta: RatingMeta) -> str:
    columns = _rating_columns(meta)
    head = "".join(f"<th>{escape(c.title)}</th>" for c, _ in columns)
    body = []
    for row in rows:
        cells = "".join(_html_cell(value(row), c.number_format) for c, value in columns)
        body.append(f'<tr class="{"rated" if row.rated else "unrated"}">{cells}</tr>')
    return (
        "<!DOCTYPE html>\n"
        '<html lang="ru">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(meta.heading())}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        f"<h1>{escape(meta.heading())}</h1>\n"
        f'<p class="details">{escape(meta.details())}</p>\n'
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n"
        "</body>\n</html>\n"
    )


# ---- items -----------------------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _write_csv(fields: Sequence[str], rows: Sequence[Mapping[str, Any]], out: BinaryIO) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_csv_value(row.get(name)) for name in fields])
    out.write(text.getvalue().encode("utf-8"))


def _as_datetime(value: Any, zone: ZoneInfo) -> datetime | None:
    """Unix seconds (the store's times), an aware datetime or ISO-8601 text → aware, in ``zone``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, zone)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value)
    else:
        raise TypeError(f"not a time: {value!r}")
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone")
    return moment.astimezone(zone)


def write_items(
    rows: Sequence[Mapping[str, Any]],
    fmt: str,
    out: BinaryIO,
    *,
    zone: str = "Europe/Moscow",
    with_author: bool = False,
    title: str | None = None,
) -> None:
    """One row per item, columns :data:`ITEM_FIELDS` (+ ``author`` when ``with_author``), in ``fmt``.

    Times in ``rows`` are unix seconds (or aware datetimes); they are written in ``zone``. ``title`` is
    the XLSX sheet's title line (e.g. the period and the filters); other formats have none.
    """
    fields = ITEM_FIELDS + (("author",) if with_author else ())
    tz = ZoneInfo(zone)
    if fmt in ("json", "csv"):
        plain = []
        for row in rows:
            values = {name: row.get(name) for name in fields}
            for name in _TIME_FIELDS:
                moment = _as_datetime(values[name], tz)
                values[name] = None if moment is None else moment.isoformat()
            plain.append(values)
        if fmt == "json":
            out.write(orjson.dumps(plain, option=orjson.OPT_INDENT_2) + b"\n")
        else:
            _write_csv(fields, plain, out)
    elif fmt == "xlsx":
        _items_xlsx(rows, fields, tz, zone, title, out)
    else:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(ITEMS_FORMATS)}")


_DATETIME_FORMAT: Final = "yyyy-mm-dd hh:mm"

# The people's titles of the item columns, with how each is shown.
_ITEM_COLUMNS: Final = {
    "item": _Column("Сообщение", 30),
    "page": _Column("Страница", 16),
    "page_title": _Column("Название страницы", 32),
    "municipality": _Column("Муниципалитет", 22),
    "sector": _Column("Отрасль", 16),
    "platform": _Column("Платформа", 10),
    "kind": _Column("Вид", 14),
    "created_at": _Column("Получено", 17, _DATETIME_FORMAT),
    "due_at": _Column("Срок ответа", 17, _DATETIME_FORMAT),
    "closed_at": _Column("Закрыто", 17, _DATETIME_FORMAT),
    "outcome": _Column("Итог", 22),
    "breached": _Column("Срок нарушен", 10),
    "business_latency_s": _Column("Время ответа, рабочие ч", 12, _HOURS_FORMAT),
    "latency_s": _Column("Время ответа, ч", 12, _HOURS_FORMAT),
    "responder": _Column("Ответил", 18),
    "reason": _Column("Причина", 18),
    "link": _Column("Ссылка", 40),
    "author": _Column("Автор", 18),
}


def _item_cell(name: str, value: Any, tz: ZoneInfo) -> Any:
    if name in _TIME_FIELDS:
        moment = _as_datetime(value, tz)
        return None if moment is None else moment.replace(tzinfo=None)  # Excel has no zones: local time
    if name in ("business_latency_s", "latency_s"):
        return _hours(value)
    if name == "breached":
        return None if value is None else ("да" if value else "нет")
    if name == "outcome":
        return OUTCOME_TITLES.get(value, value)
    if name == "kind":
        return _KIND_TITLES.get(value, value)
    if name == "sector":
        return SECTOR_TITLES.get(value, value)
    return value


def _items_xlsx(
    rows: Sequence[Mapping[str, Any]],
    fields: Sequence[str],
    tz: ZoneInfo,
    zone: str,
    title: str | None,
    out: BinaryIO,
) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "Сообщения"
    columns = [_ITEM_COLUMNS[name] for name in fields]
    details = f"Время — местное, часовой пояс {zone}. Время ответа — в часах с одним знаком после запятой."
    first = _sheet_with_header(ws, title or "Сообщения", details, columns, 1)
    link_column = fields.index("link") + 1
    for offset, row in enumerate(rows):
        for index, name in enumerate(fields, start=1):
            cell = ws.cell(row=first + offset, column=index, value=_item_cell(name, row.get(name), tz))
            if index == link_column and cell.value:
                cell.hyperlink = str(cell.value)
                cell.style = "Hyperlink"
    _finish_sheet(ws, columns, first, first + len(rows) - 1)
    _save(wb, out)
