"""The dashboards over the history store (PostgreSQL, ``streams/store/schema.py``): the monthly rating
and the overdue items.

Their SQL reads only the ``items`` table and uses no Grafana macros: Grafana puts the variables' text in
(quoted by the ``sqlstring`` format), and the tests run the same SQL against a real PostgreSQL
(tests/integration/test_history_dashboards.py). The rating follows the rules of
``otklik.agents.history.rating`` (docs/responses.md, "Outcomes"): the store writes each item's
``needs_answer`` and ``judged`` flags, so the SQL only sums them.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, table
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    VariableOption,
    VariableRefresh,
)

from otklik.streams.tools.grafana.blocks import SHARE_COLOURS, UIDS, Board, threshold_steps

STORE_DATASOURCE_UID = "otklik-store"
STORE_DATASOURCE_NAME = "otklik store"
STORE_DATASOURCE_TYPE = "grafana-postgresql-datasource"  # Grafana's built-in PostgreSQL (alias: postgres)
STORE = DataSourceRef(type_val=STORE_DATASOURCE_TYPE, uid=STORE_DATASOURCE_UID)

# The registry's default time zone (docs/registry.md, "Defaults"); the rating's months are months there.
DEFAULT_ZONE = "Europe/Moscow"
# Russia's zones, west to east: a region rates its month in its own zone.
ZONES = (
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Krasnoyarsk",
    "Asia/Irkutsk",
    "Asia/Yakutsk",
    "Asia/Vladivostok",
    "Asia/Magadan",
    "Asia/Kamchatka",
)
# How many overdue items the table shows, the longest overdue first.
OVERDUE_LIMIT = 500


# ---- SQL -------------------------------------------------------------------------------------------

# The months that have items, newest first, in the chosen zone: from the oldest and newest created_at
# (two index lookups), not a scan of the table.
MONTHS_SQL = """\
select to_char(m, 'YYYY-MM') as month
from generate_series(
  date_trunc('month', (select to_timestamp(min(created_at)) from items) at time zone ${tz:sqlstring}),
  date_trunc('month', (select to_timestamp(max(created_at)) from items) at time zone ${tz:sqlstring}),
  interval '1 month'
) as m
order by 1 desc"""

# One row per municipality for the items created within the month in the zone (start <= created_at <
# end, as rating.month_bounds). on_time = judged and not breached; the median is percentile_cont over
# the answered items' working-time latency. Unrounded: the table formats them (percent, duration).
RATING_SQL = """\
with bounds as (
  select
    extract(epoch from (${month:sqlstring} || '-01')::timestamp at time zone ${tz:sqlstring})::bigint as start_s,
    extract(epoch from ((${month:sqlstring} || '-01')::timestamp + interval '1 month')
      at time zone ${tz:sqlstring})::bigint as end_s
)
select
  i.municipality as unit,
  count(*) as received,
  count(*) filter (where i.needs_answer) as needing_answer,
  count(*) filter (where i.judged) as judged,
  count(*) filter (where i.judged and not i.breached) as on_time,
  count(*) filter (where i.judged and i.breached) as breached,
  (count(*) filter (where i.judged and not i.breached))::float8
    / nullif(count(*) filter (where i.judged), 0) as on_time_share,
  percentile_cont(0.5) within group (order by i.business_latency_s)
    filter (where i.outcome = 'answered') as median_business_s
from items as i, bounds as b
where i.created_at >= b.start_s and i.created_at < b.end_s
group by i.municipality
order by on_time_share desc nulls last, median_business_s asc nulls last, unit"""

# Still open and past the deadline now, or open with the worker's breach record already in: the
# longest overdue first.
OVERDUE_SQL = f"""\
select
  i.page,
  i.page_title,
  i.municipality,
  i.platform,
  i.kind,
  to_timestamp(i.created_at) as created,
  to_timestamp(i.due_at) as due,
  extract(epoch from now())::bigint - i.created_at as age_s,
  extract(epoch from now())::bigint - i.due_at as overdue_s,
  i.link
from items as i
where i.outcome = 'open'
  and (i.due_at < extract(epoch from now()) or i.breached)
  and i.municipality in (${{municipality:sqlstring}})
order by i.due_at asc nulls last, i.item
limit {OVERDUE_LIMIT}"""

MUNICIPALITIES_SQL = "select distinct municipality from items where outcome = 'open' order by 1"


# ---- building blocks -------------------------------------------------------------------------------


class SqlQuery(cogvariants.Dataquery):
    """A raw-SQL query of Grafana's PostgreSQL datasource (the SDK has no builder for it)."""

    def __init__(self, sql: str, ref: str) -> None:
        self.sql = sql
        self.ref = ref

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": STORE.to_json(),
            "editorMode": "code",
            "format": "table",
            "rawQuery": True,
            "rawSql": self.sql,
            "refId": self.ref,
        }


class SqlQueryBuilder(Builder[cogvariants.Dataquery]):
    def __init__(self, sql: str, ref: str = "A") -> None:
        self._query = SqlQuery(sql, ref)

    def build(self) -> cogvariants.Dataquery:
        return self._query


def _links(title: str, url: str) -> DynamicConfigValue:
    return DynamicConfigValue(id_val="links", value=[{"title": title, "url": url, "targetBlank": True}])


def _name(title: str) -> DynamicConfigValue:
    return DynamicConfigValue(id_val="displayName", value=title)


def _unit(unit: str) -> DynamicConfigValue:
    return DynamicConfigValue(id_val="unit", value=unit)


def sql_table(title: str, description: str, sql: str, *, height: int) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(STORE)
        .with_target(SqlQueryBuilder(sql))
        .span(24)
        .height(height)
    )


def _month_variable() -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable("month")
        .label("Месяц")
        .description("Календарный месяц в выбранном часовом поясе; сообщения, созданные в этом месяце.")
        .datasource(STORE)
        .query(MONTHS_SQL)
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
    )


def _zone_variable() -> dashboard.CustomVariable:
    return (
        dashboard.CustomVariable("tz")
        .label("Часовой пояс")
        .description("Границы месяца в этом поясе (по умолчанию — пояс реестра по умолчанию).")
        .values(",".join(ZONES))
        .current(VariableOption(selected=True, text=DEFAULT_ZONE, value=DEFAULT_ZONE))
    )


def _municipality_variable() -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable("municipality")
        .label("Муниципалитет")
        .datasource(STORE)
        .query(MUNICIPALITIES_SQL)
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .multi(True)
        .include_all(True)
    )


# ---- the dashboards --------------------------------------------------------------------------------

RATING_COLUMNS = {
    "unit": "Муниципалитет",
    "received": "Поступило",
    "needing_answer": "Требуют ответа",
    "judged": "Оценено по сроку",
    "on_time": "В срок",
    "breached": "С нарушением срока",
    "on_time_share": "Доля в срок",
    "median_business_s": "Медиана ответа (рабочее время)",
}


def monthly_rating() -> dict[str, Any]:
    board = Board(
        UIDS["rating"],
        "Отклик: рейтинг за месяц",
        "Рейтинг муниципалитетов за календарный месяц по истории (хранилище otklik): сколько сообщений "
        "поступило, сколько требовали ответа и были оценены по сроку, сколько отвечено в срок, медиана времени "
        "ответа в рабочих часах страницы. Те же правила, что у `otklik report rating`.",
        [],
    )
    board.builder = board.builder.with_variable(_zone_variable()).with_variable(_month_variable())
    board.builder = board.builder.time("now-1y", "now").refresh("")
    panel = (
        sql_table(
            "Муниципалитеты за ${month} (${tz})",
            "Сообщения, созданные в выбранном месяце. «Оценено по сроку»: требовали ответа и получили ответ или "
            "удалены страницей, либо остались без ответа после срока. «Доля в срок» — в срок / оценено.",
            RATING_SQL,
            height=20,
        )
        .with_transformation(DataTransformerConfig(id_val="organize", options={"renameByName": RATING_COLUMNS}))
        # Overrides match the names the organize step gave the columns (Grafana's byName matches them).
        .override_by_name(
            RATING_COLUMNS["on_time_share"],
            [
                _unit("percentunit"),
                DynamicConfigValue(id_val="thresholds", value=SHARE_COLOURS.build()),
                DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
            ],
        )
        .override_by_name(RATING_COLUMNS["median_business_s"], [_unit("s")])
        .sort_by([common_builders.TableSortByFieldState().display_name(RATING_COLUMNS["on_time_share"]).desc(True)])
    )
    board.add(panel)
    return board.build()


OVERDUE_COLUMNS = {
    "page": "Страница",
    "page_title": "Название",
    "municipality": "Муниципалитет",
    "platform": "Площадка",
    "kind": "Вид",
    "created": "Создано",
    "due": "Срок ответа",
    "age_s": "Возраст",
    "overdue_s": "Просрочено на",
    "link": "Ссылка",
}


OPEN_ON_PLATFORM = "Открыть сообщение на площадке"
# Overdue by less than a day: orange; by more: red.
OVERDUE_COLOURS = threshold_steps((None, "orange"), (86400.0, "red"))


def overdue_items() -> dict[str, Any]:
    board = Board(
        UIDS["overdue"],
        "Отклик: просроченные сообщения",
        "Сообщения жителей, которые всё ещё ждут ответа после срока (по истории в хранилище otklik), "
        "самые давние первыми, со ссылкой на сообщение на площадке.",
        [],
    )
    board.builder = board.builder.with_variable(_municipality_variable())
    panel = (
        sql_table(
            "Ждут ответа после срока",
            f"Открытые сообщения, срок ответа которых прошёл (не больше {OVERDUE_LIMIT}). Возраст — от создания, "
            "просрочка — от срока, в календарном времени.",
            OVERDUE_SQL,
            height=22,
        )
        .with_transformation(DataTransformerConfig(id_val="organize", options={"renameByName": OVERDUE_COLUMNS}))
        .override_by_name(OVERDUE_COLUMNS["age_s"], [_unit("dtdurations")])
        .override_by_name(
            OVERDUE_COLUMNS["overdue_s"],
            [
                _unit("dtdurations"),
                DynamicConfigValue(id_val="thresholds", value=OVERDUE_COLOURS.build()),
                DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
        # ${__data.fields.link} finds the SQL column by its own name, whatever the table calls it.
        .override_by_name(OVERDUE_COLUMNS["page"], [_links(OPEN_ON_PLATFORM, "${__data.fields.link}")])
        .override_by_name(OVERDUE_COLUMNS["link"], [_links(OPEN_ON_PLATFORM, "${__data.fields.link}")])
    )
    board.add(panel)
    return board.build()
