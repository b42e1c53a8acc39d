"""otklik's Grafana dashboards, written in code with grafana-foundation-sdk.

``otklik grafana generate`` (or ``make dashboards``) writes them to ``deploy/grafana/dashboards/*.json``,
which Grafana's file provisioning and ``otklik grafana push`` both read; a unit test fails when the
checked-in JSON is not what this module generates.

Every panel reads only what the worker, the gateway and the notifier export (streams/worker/metrics.py,
streams/edge/gateway.py, streams/notify/notifier.py), the recording rules in deploy/prometheus/rules/, or
Prometheus's own ``up`` and ``ALERTS``; the unit test checks that too. What the metrics cannot say,
the panels do not pretend to: there is no per-page latency (DESIGN forbids per-page histograms), and
the sector histogram has no region label (three histograms, never their cross product).

Identities are stable: fixed dashboard uids, one folder uid, one datasource uid (STYLE.md, "Stable
identities in Grafana").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, text, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

__all__ = [
    "DASHBOARD_FILES",
    "DATASOURCE_NAME",
    "DATASOURCE_UID",
    "FOLDER_TITLE",
    "FOLDER_UID",
    "PanelQuery",
    "build_dashboards",
    "metric_names",
    "panel_queries",
    "render",
    "substitute_variables",
    "write_dashboards",
]

DATASOURCE_UID = "otklik-prometheus"
DATASOURCE_NAME = "otklik Prometheus"
FOLDER_UID = "otklik"
FOLDER_TITLE = "Отклик"

PROM = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)

# Label selectors shared by the panels. Multi-value variables expand to regex alternatives, so `=~`.
AREA = 'region=~"$region", municipality=~"$municipality"'
# 0 instead of "no data" only while every worker is being scraped: an empty backlog of a live worker
# is zero, a worker that is down is unknown (and must not look like a region with nothing to do).
ZERO_IF_WORKERS_UP = 'on() (0 * (min(up{job="otklik-worker"}) == 1))'

OBJECTIVE = 0.95  # deploy/prometheus/slo.yaml


# ---- PromQL of the measurements --------------------------------------------------------------------


def share_in_time(window: str, selector: str = AREA, by: str = "", offset: str = "") -> str:
    """Share of items judged against their deadline that were answered (or moderated) in time.

    Items due are the denominator and breached ones (counted at the deadline) the bad events, as
    in the SLO rules; a window with nothing due has no share (not 100 %)."""
    group = f" by ({by})" if by else ""
    shift = f" offset {offset}" if offset else ""
    return (
        f"1 - sum{group} (increase(otklik_items_breached_total{{{selector}}}[{window}]{shift}))"
        f" / (sum{group} (increase(otklik_items_due_total{{{selector}}}[{window}]{shift})) > 0)"
    )


def response_quantile(q: float, window: str, histogram: str, selector: str, by: str = "") -> str:
    """Quantile of first-response time in working seconds from one of the three latency histograms."""
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (increase({histogram}_bucket{{{selector}}}[{window}])))"


MUNICIPALITY_LATENCY = "otklik_municipality_response_working_seconds"
SECTOR_LATENCY = "otklik_sector_response_working_seconds"
PLATFORM_LATENCY = "otklik_platform_response_working_seconds"
PAGE_SELECTOR = f'{AREA}, page=~"$page"'


# ---- building blocks -------------------------------------------------------------------------------


def _query(
    expr: str, ref: str = "A", legend: str | None = None, instant: bool = False, table_format: bool = False
) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(PROM)
    q = q.instant() if instant else q.range()
    if legend is not None:
        q = q.legend_format(legend)
    if table_format:
        q = q.format(PromQueryFormat.TABLE)
    return q


def _thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(v, c) for v, c in steps])


SHARE_COLOURS = _thresholds((None, "red"), (0.9, "orange"), (OBJECTIVE, "green"))
RATIO_COLOURS = _thresholds((None, "green"), (0.75, "orange"), (1.0, "red"), (2.0, "dark-red"))
COUNT_COLOURS = _thresholds((None, "green"), (1.0, "orange"))
DASHED = DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})


def _stat(
    title: str,
    description: str,
    expr: str,
    unit: str,
    colours: dashboard.ThresholdsConfig,
    *,
    width: int,
    no_value: str = "нет данных",
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROM)
        .with_target(_query(expr, instant=True))
        .unit(unit)
        .thresholds(colours)
        .no_value(no_value)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(width)
        .height(5)
    )


def _timeseries(
    title: str, description: str, targets: list[prometheus.Dataquery], unit: str, *, width: int = 12, height: int = 8
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROM)
        .unit(unit)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
        .span(width)
        .height(height)
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def _table(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    columns: dict[str, str],
    *,
    width: int = 24,
    height: int = 10,
    sort_by: str | None = None,
) -> table.Panel:
    """An instant table: each query one column, merged on their labels, columns renamed in Russian."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(PROM)
        .span(width)
        .height(height)
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "job": True, "instance": True, "timezone": True, "__name__": True},
                    "renameByName": columns,
                },
            )
        )
    )
    if sort_by is not None:
        panel = panel.sort_by([common_builders.TableSortByFieldState().display_name(sort_by).desc(True)])
    for target in targets:
        panel = panel.with_target(target)
    return panel


def _variable(name: str, label: str, query: str, *, multi: bool = True) -> dashboard.QueryVariable:
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(PROM)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )
    if multi:
        variable = variable.multi(True).include_all(True).all_value(".*")
    return variable


REGION = _variable("region", "Регион", "label_values(otklik_items_due_total, region)")
MUNICIPALITY = _variable(
    "municipality", "Муниципалитет", 'label_values(otklik_items_due_total{region=~"$region"}, municipality)'
)
SECTOR = _variable("sector", "Отрасль", "label_values(otklik_sector_response_working_seconds_count, sector)")
# Page-level series exist only for pages with open items or recent activity: so does this list.
PAGE_MULTI = _variable("page", "Страница", f"label_values(otklik_page_open_items{{{AREA}}}, page)")
PAGE_ONE = _variable("page", "Страница", f"label_values(otklik_page_open_items{{{AREA}}}, page)", multi=False)
PLATFORM = _variable("platform", "Платформа", "label_values(otklik_raw_records_total, platform)")


def _link(title: str, uid: str) -> dashboard.DashboardLink:
    return (
        dashboard.DashboardLink(title)
        .type(DashboardLinkType.LINK)
        .url(f"/d/{uid}")
        .include_vars(True)
        .keep_time(True)
        .icon("dashboard")
    )


class _Board:
    """A dashboard under construction: panel ids in order, the common settings of every otklik board."""

    def __init__(self, uid: str, title: str, description: str, variables: list[dashboard.QueryVariable]) -> None:
        self.builder = (
            dashboard.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(["otklik"])
            .timezone("browser")
            .time("now-7d", "now")
            .refresh("1m")
            .tooltip(DashboardCursorSync.CROSSHAIR)
            .editable()
        )
        for variable in variables:
            self.builder = self.builder.with_variable(variable)
        self._next_id = 1

    def link(self, title: str, uid: str) -> _Board:
        self.builder = self.builder.link(_link(title, uid))
        return self

    def row(self, title: str) -> _Board:
        self.builder = self.builder.with_row(dashboard.Row(title).id(self._take_id()))
        return self

    def add(self, panel: Any) -> _Board:
        self.builder = self.builder.with_panel(panel.id(self._take_id()))
        return self

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def build(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.builder.build(), cls=JSONEncoder, ensure_ascii=False))


UIDS = {
    "region": "otklik-region-overview",
    "drilldown": "otklik-drilldown",
    "page": "otklik-page",
    "moderation": "otklik-moderation",
    "health": "otklik-health",
}


# ---- the dashboards --------------------------------------------------------------------------------


def region_overview() -> dict[str, Any]:
    board = (
        _Board(
            UIDS["region"],
            "Отклик: обзор региона",
            "Как быстро госпаблики региона отвечают жителям: доля ответов в срок, время первого ответа "
            "в рабочих часах, что ждёт ответа сейчас и как неделя выглядит против прошлой.",
            [REGION, MUNICIPALITY, SECTOR],
        )
        .link("Муниципалитеты и отрасли", UIDS["drilldown"])
        .link("Страница", UIDS["page"])
    )
    board.row("Итоги за выбранный период")
    board.add(
        _stat(
            "Доля ответов в срок",
            "Из сообщений, срок которых наступил за период: ответ или удаление модератором до срока. "
            "Неотвеченное сообщение считается просроченным в момент срока, а не когда придёт поздний ответ. Цель — 95 %.",
            share_in_time("$__range"),
            "percentunit",
            SHARE_COLOURS,
            width=5,
            no_value="срок ни у кого не наступал",
        )
    )
    board.add(
        _stat(
            "Первый ответ: медиана",
            "Время до первого ответа страницы, в рабочих часах по графику и производственному календарю страницы.",
            response_quantile(0.5, "$__range", MUNICIPALITY_LATENCY, AREA),
            "s",
            _thresholds((None, "blue")),
            width=4,
            no_value="ответов не было",
        )
    )
    board.add(
        _stat(
            "Первый ответ: 90 %",
            "90 % ответов пришли не позже этого (рабочее время; точность — до границ корзин: 15 и 30 мин, 1, 2, 4, 8, 9, 24 ч …).",
            response_quantile(0.9, "$__range", MUNICIPALITY_LATENCY, AREA),
            "s",
            _thresholds((None, "blue")),
            width=4,
            no_value="ответов не было",
        )
    )
    board.add(
        _stat(
            "Ждут ответа сейчас",
            "Сообщения жителей без ответа страницы на этот момент.",
            f"sum(otklik_page_open_items{{{AREA}}}) or {ZERO_IF_WORKERS_UP}",
            "short",
            COUNT_COLOURS,
            width=4,
        )
    )
    board.add(
        _stat(
            "Страниц с просрочкой",
            "Страницы, у которых самое старое неотвеченное сообщение ждёт дольше срока.",
            f"count(otklik_page_oldest_deadline_ratio{{{AREA}}} >= 1) or {ZERO_IF_WORKERS_UP}",
            "short",
            COUNT_COLOURS,
            width=4,
        )
    )
    board.add(
        _stat(
            "К прошлой неделе",
            "Доля ответов в срок за последние 7 дней минус та же доля за 7 дней до них (в процентных пунктах).",
            f"({share_in_time('7d')}) - ({share_in_time('7d', offset='1w')})",
            "percentunit",
            _thresholds((None, "red"), (-0.01, "orange"), (0.0, "green")),
            width=3,
            no_value="нет прошлой недели",
        )
    )
    board.row("Динамика")
    board.add(
        _timeseries(
            "Доля ответов в срок за сутки: сейчас и неделю назад",
            "Скользящее окно в сутки; пунктир — та же величина неделей раньше.",
            [
                _query(share_in_time("1d"), "A", "эта неделя"),
                _query(share_in_time("1d", offset="1w"), "B", "неделей раньше"),
            ],
            "percentunit",
        )
        .min(0)
        .max(1)
        .override_by_query("B", [DASHED])
    )
    board.add(
        _timeseries(
            "Первый ответ за сутки, рабочее время",
            "Медиана и 90-й процентиль в скользящем окне в сутки.",
            [
                _query(response_quantile(0.5, "1d", MUNICIPALITY_LATENCY, AREA), "A", "медиана"),
                _query(response_quantile(0.9, "1d", MUNICIPALITY_LATENCY, AREA), "B", "90 %"),
            ],
            "s",
        )
    )
    board.add(
        _timeseries(
            "Ждут ответа, по муниципалитетам",
            "Неотвеченные сообщения в каждый момент.",
            [_query(f"sum by (municipality) (otklik_page_open_items{{{AREA}}})", "A", "{{municipality}}")],
            "short",
        )
    )
    board.add(
        _table(
            "Самые просроченные страницы",
            "Страницы с самым старым неотвеченным сообщением: доля срока (1 — срок сейчас) и сколько ждут ответа.",
            [
                _query(
                    f"topk(20, max by (page, municipality) (otklik_page_oldest_deadline_ratio{{{AREA}}}))",
                    "A",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    f"sum by (page, municipality) (otklik_page_open_items{{{AREA}}}) and on (page) topk(20, max by (page) (otklik_page_oldest_deadline_ratio{{{AREA}}}))",
                    "B",
                    instant=True,
                    table_format=True,
                ),
            ],
            {"page": "Страница", "municipality": "Муниципалитет", "Value #A": "Доля срока", "Value #B": "Ждут ответа"},
            width=12,
            height=8,
            sort_by="Доля срока",
        )
    )
    board.row("Отрасли")
    board.add(
        _timeseries(
            "Первый ответ по отраслям: 90 % за сутки",
            "По всем регионам этого Prometheus: у отраслевой гистограммы нет метки региона (три гистограммы, не их произведение).",
            [_query(response_quantile(0.9, "1d", SECTOR_LATENCY, 'sector=~"$sector"', by="sector"), "A", "{{sector}}")],
            "s",
            width=24,
        )
    )
    return board.build()


def drilldown() -> dict[str, Any]:
    board = (
        _Board(
            UIDS["drilldown"],
            "Отклик: муниципалитеты и отрасли",
            "Сравнение муниципалитетов и отраслей и рейтинг страниц: где отвечают в срок, где копится очередь.",
            [REGION, MUNICIPALITY, SECTOR, PAGE_MULTI],
        )
        .link("Обзор региона", UIDS["region"])
        .link("Страница", UIDS["page"])
    )
    by = "region, municipality"
    board.row("Муниципалитеты за выбранный период")
    board.add(
        _table(
            "Муниципалитеты",
            "Доля ответов в срок, время первого ответа (рабочие часы), сколько сообщений оценено и сколько ждут сейчас.",
            [
                _query(share_in_time("$__range", by=by), "A", instant=True, table_format=True),
                _query(
                    response_quantile(0.5, "$__range", MUNICIPALITY_LATENCY, AREA, by=by),
                    "B",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    response_quantile(0.9, "$__range", MUNICIPALITY_LATENCY, AREA, by=by),
                    "C",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    f"sum by ({by}) (increase(otklik_items_due_total{{{AREA}}}[$__range]))",
                    "D",
                    instant=True,
                    table_format=True,
                ),
                _query(f"sum by ({by}) (otklik_page_open_items{{{AREA}}})", "E", instant=True, table_format=True),
                _query(
                    f"count by ({by}) (otklik_page_oldest_deadline_ratio{{{AREA}}} >= 1)",
                    "F",
                    instant=True,
                    table_format=True,
                ),
            ],
            {
                "region": "Регион",
                "municipality": "Муниципалитет",
                "Value #A": "Доля в срок",
                "Value #B": "Медиана ответа",
                "Value #C": "90 % ответов",
                "Value #D": "Срок наступил",
                "Value #E": "Ждут ответа",
                "Value #F": "Страниц с просрочкой",
            },
            sort_by="Ждут ответа",
        )
    )
    board.add(
        _timeseries(
            "Доля ответов в срок за сутки, по муниципалитетам",
            "Скользящее окно в сутки.",
            [_query(share_in_time("1d", by="municipality"), "A", "{{municipality}}")],
            "percentunit",
        )
        .min(0)
        .max(1)
    )
    board.add(
        _timeseries(
            "Первый ответ за сутки (90 %), по муниципалитетам",
            "Рабочее время, скользящее окно в сутки.",
            [
                _query(
                    response_quantile(0.9, "1d", MUNICIPALITY_LATENCY, AREA, by="municipality"), "A", "{{municipality}}"
                )
            ],
            "s",
        )
    )
    board.row("Рейтинг страниц")
    board.add(
        _table(
            "Рейтинг страниц",
            "Страницы с неотвеченными сообщениями или ответами за последний час, от самой просроченной: доля срока "
            "самого старого сообщения (1 — срок сейчас) и сколько ждут ответа. Отрасль к страничным рядам не приписана.",
            [
                _query(
                    f"max by (page, municipality, platform) (otklik_page_oldest_deadline_ratio{{{PAGE_SELECTOR}}})",
                    "A",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    f"sum by (page, municipality, platform) (otklik_page_open_items{{{PAGE_SELECTOR}}})",
                    "B",
                    instant=True,
                    table_format=True,
                ),
            ],
            {
                "page": "Страница",
                "municipality": "Муниципалитет",
                "platform": "Платформа",
                "Value #A": "Доля срока",
                "Value #B": "Ждут ответа",
            },
            height=12,
            sort_by="Доля срока",
        )
    )
    board.row("Отрасли за выбранный период")
    sector = 'sector=~"$sector"'
    board.add(
        _table(
            "Отрасли",
            "Ответы по отраслям (все регионы этого Prometheus: у отраслевой гистограммы нет метки региона). "
            "«До 8 рабочих часов» — срок по умолчанию; у страниц может быть свой срок.",
            [
                _query(
                    f"sum by (sector) (increase({SECTOR_LATENCY}_count{{{sector}}}[$__range]))",
                    "A",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    response_quantile(0.5, "$__range", SECTOR_LATENCY, sector, by="sector"),
                    "B",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    response_quantile(0.9, "$__range", SECTOR_LATENCY, sector, by="sector"),
                    "C",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    f'sum by (sector) (increase({SECTOR_LATENCY}_bucket{{{sector}, le="28800.0"}}[$__range])) '
                    f"/ (sum by (sector) (increase({SECTOR_LATENCY}_count{{{sector}}}[$__range])) > 0)",
                    "D",
                    instant=True,
                    table_format=True,
                ),
            ],
            {
                "sector": "Отрасль",
                "Value #A": "Ответов",
                "Value #B": "Медиана ответа",
                "Value #C": "90 % ответов",
                "Value #D": "До 8 рабочих часов",
            },
            sort_by="Ответов",
        )
    )
    board.add(
        _timeseries(
            "Первый ответ по платформам: 90 % за сутки",
            "Рабочее время, скользящее окно в сутки; все регионы этого Prometheus (у гистограммы платформ нет метки региона).",
            [
                _query(
                    response_quantile(0.9, "1d", PLATFORM_LATENCY, 'platform=~".+"', by="platform"), "A", "{{platform}}"
                )
            ],
            "s",
            width=24,
        )
    )
    return board.build()


def single_page() -> dict[str, Any]:
    board = (
        _Board(
            UIDS["page"],
            "Отклик: страница",
            "Одна страница: сколько сообщений ждут ответа и насколько близко самое старое к сроку. "
            "Ряды страницы есть, пока у неё есть неотвеченные сообщения или был ответ за последний час.",
            [REGION, MUNICIPALITY, PAGE_ONE],
        )
        .link("Обзор региона", UIDS["region"])
        .link("Муниципалитеты и отрасли", UIDS["drilldown"])
    )
    one = 'page="$page"'
    board.add(
        _stat(
            "Ждут ответа",
            "Неотвеченные сообщения страницы сейчас.",
            f"sum(otklik_page_open_items{{{one}}})",
            "short",
            COUNT_COLOURS,
            width=6,
            no_value="нет активности за час",
        )
    )
    board.add(
        _stat(
            "Самое старое сообщение: доля срока",
            "Возраст самого старого неотвеченного сообщения в долях срока страницы (рабочее или календарное время, "
            "как задан срок): 75 % — предупреждение администраторам, 100 % — срок прошёл, 200 % — руководителю.",
            f"max(otklik_page_oldest_deadline_ratio{{{one}}})",
            "percentunit",
            RATIO_COLOURS,
            width=6,
            no_value="ничего не ждёт",
        )
    )
    board.add(
        _table(
            "Оповещения по странице",
            "Правила, которые сейчас срабатывают для этой страницы.",
            [
                _query(
                    f'max by (alertname, severity, audience) (ALERTS{{{one}, alertstate="firing"}})',
                    "A",
                    instant=True,
                    table_format=True,
                )
            ],
            {"alertname": "Правило", "severity": "Важность", "audience": "Кому", "Value #A": "Активно"},
            width=12,
            height=5,
        )
    )
    board.add(
        _timeseries(
            "Ждут ответа",
            "",
            [_query(f"sum(otklik_page_open_items{{{one}}})", "A", "ждут ответа")],
            "short",
        )
    )
    board.add(
        _timeseries(
            "Самое старое сообщение: доля срока",
            "1 — срок наступил.",
            [_query(f"max(otklik_page_oldest_deadline_ratio{{{one}}})", "A", "доля срока")],
            "percentunit",
        ).thresholds(RATIO_COLOURS)
    )
    board.add(
        text.Panel()
        .title("Почему здесь нет времени ответа")
        .span(24)
        .height(4)
        .content(
            "Время первого ответа не выгружается по каждой странице (это стоило бы рядов на каждую из тысяч страниц): "
            "смотрите муниципалитет страницы на панели «Муниципалитеты и отрасли» или записи топика otklik.responses."
        )
    )
    return board.build()


def moderation() -> dict[str, Any]:
    board = _Board(
        UIDS["moderation"],
        "Отклик: модерация",
        "Что ждёт модератора (мат, оскорбления, угрозы, спам, флуд) и как долго это было видно, чем закончились "
        "сообщения жителей и отписки страниц. Удаление справедливой жалобы — не ответ: такие удаления идут на проверку.",
        [PLATFORM],
    ).link("Обзор региона", UIDS["region"])
    closed = "otklik_items_closed_total"
    visible = "otklik_moderation_visible_working_hours"
    board.row("Сейчас")
    board.add(
        _stat(
            "Оскорбительных текстов видно",
            "Тексты с метками модерации, которые ещё не удалены.",
            f"sum(otklik_page_offensive_visible) or {ZERO_IF_WORKERS_UP}",
            "short",
            COUNT_COLOURS,
            width=6,
        )
    )
    board.add(
        _stat(
            "Страниц, где пора удалить",
            "Страницы, где самый старый оскорбительный текст виден дольше срока модерации.",
            f"count(otklik_page_offensive_oldest_deadline_ratio >= 1) or {ZERO_IF_WORKERS_UP}",
            "short",
            COUNT_COLOURS,
            width=6,
        )
    )
    board.add(
        _stat(
            "Видно до удаления: медиана",
            "Рабочие часы страницы от появления оскорбительного текста до удаления, за период.",
            f"histogram_quantile(0.5, sum by (le) (increase({visible}_bucket[$__range])))",
            "h",
            _thresholds((None, "blue")),
            width=6,
            no_value="удалений не было",
        )
    )
    board.add(
        _stat(
            "Видно до удаления: 90 %",
            "90 % оскорбительных текстов удалены не позже этого (рабочие часы).",
            f"histogram_quantile(0.9, sum by (le) (increase({visible}_bucket[$__range])))",
            "h",
            _thresholds((None, "blue")),
            width=6,
            no_value="удалений не было",
        )
    )
    board.add(
        _table(
            "Страницы с видимыми оскорбительными текстами",
            "Сколько видно и доля срока модерации у самого старого (1 — пора было удалить).",
            [
                _query("topk(20, otklik_page_offensive_oldest_deadline_ratio)", "A", instant=True, table_format=True),
                _query(
                    "otklik_page_offensive_visible and on (page) topk(20, otklik_page_offensive_oldest_deadline_ratio)",
                    "B",
                    instant=True,
                    table_format=True,
                ),
            ],
            {"page": "Страница", "Value #A": "Доля срока", "Value #B": "Видно текстов"},
            height=8,
            sort_by="Доля срока",
        )
    )
    board.row("За период")
    board.add(
        _timeseries(
            "Оскорбительные тексты по меткам, за час",
            "Найдено (labelled), удалено (removed), просрочено (overdue).",
            [
                _query(
                    "sum by (label, event) (increase(otklik_moderation_labels_total[1h]))", "A", "{{label}}: {{event}}"
                )
            ],
            "short",
        )
    )
    board.add(
        _table(
            "Кто удалял и как быстро",
            "Удалённые оскорбительные тексты по тому, кто удалил: автор, страница, другой.",
            [
                _query(
                    f"sum by (removed_by) (increase({visible}_count[$__range]))", "A", instant=True, table_format=True
                ),
                _query(
                    f"histogram_quantile(0.5, sum by (le, removed_by) (increase({visible}_bucket[$__range])))",
                    "B",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    f"histogram_quantile(0.9, sum by (le, removed_by) (increase({visible}_bucket[$__range])))",
                    "C",
                    instant=True,
                    table_format=True,
                ),
            ],
            {"removed_by": "Кто удалил", "Value #A": "Удалено", "Value #B": "Медиана, ч", "Value #C": "90 %, ч"},
            width=12,
            height=8,
            sort_by="Удалено",
        )
    )
    board.add(
        _stat(
            "Удалено модераторами до ответа",
            "Сообщения жителей, удалённые страницей до ответа: на проверку (список — исход moderated в otklik.responses).",
            f'sum(increase({closed}{{outcome="moderated"}}[$__range]))',
            "short",
            COUNT_COLOURS,
            width=6,
        )
    )
    board.add(
        _stat(
            "…из них уже после срока",
            "Удалены, когда срок ответа уже прошёл: считаются просроченными.",
            f'sum(increase({closed}{{outcome="moderated", breached="true"}}[$__range]))',
            "short",
            COUNT_COLOURS,
            width=6,
        )
    )
    board.add(
        _stat(
            "Отписки страниц",
            "Ответы страниц, которые только отсылают жителя в другое место («напишите в личные сообщения»).",
            'sum(increase(otklik_moderation_records_total{kind="deflection"}[$__range]))',
            "short",
            COUNT_COLOURS,
            width=6,
        )
    )
    board.add(
        _stat(
            "Не требовали ответа",
            "Благодарности, реакции, разговоры жителей между собой (по разбору текста).",
            f'sum(increase({closed}{{outcome="no_answer_needed"}}[$__range]))',
            "short",
            _thresholds((None, "blue")),
            width=6,
        )
    )
    board.add(
        _timeseries(
            "Исходы сообщений за час",
            "Закрытые сообщения по исходу (в срок и после срока).",
            [
                _query(
                    f"sum by (outcome, breached) (increase({closed}[1h]))", "A", "{{outcome}}, просрочено: {{breached}}"
                )
            ],
            "short",
        )
    )
    board.add(
        _timeseries(
            "Записи модерации за час",
            "Записи otklik.moderation по виду и чей это текст (жителя или страницы).",
            [_query("sum by (kind, role) (increase(otklik_moderation_records_total[1h]))", "A", "{{kind}}: {{role}}")],
            "short",
        )
    )
    board.add(
        _timeseries(
            "Удаления и восстановления в секунду",
            "Все удаления и восстановления комментариев и сообщений на платформе.",
            [
                _query(
                    'sum by (platform, action) (rate(otklik_interactions_total{platform=~"$platform", action=~"delete|restore"}[$__rate_interval]))',
                    "A",
                    "{{platform}}: {{action}}",
                )
            ],
            "ops",
            width=24,
        )
    )
    return board.build()


def system_health() -> dict[str, Any]:
    board = _Board(
        UIDS["health"],
        "Отклик: состояние системы",
        "Поток событий, отставание, мёртвые письма, молчащие коннекторы и доставка оповещений.",
        [PLATFORM],
    )
    board.row("Сейчас")
    board.add(
        _stat(
            "Воркеров в строю",
            "Процессы otklik worker, которые Prometheus опрашивает успешно.",
            'sum(up{job="otklik-worker"})',
            "short",
            _thresholds((None, "red"), (1.0, "green")),
            width=4,
        )
    )
    board.add(
        _stat(
            "Шлюз подключён к Kafka",
            "1 — продюсер шлюза подключён; 0 — события получают 503 и VK доставит их позже.",
            "min(otklik_gateway_kafka_ready)",
            "short",
            _thresholds((None, "red"), (1.0, "green")),
            width=4,
        )
    )
    board.add(
        _stat(
            "Молчащих коннекторов",
            "Платформы, от которых нет событий дольше 30 минут, хотя обычно они их шлют.",
            'count(ALERTS{alertname="OtklikConnectorSilent", alertstate="firing"}) or on() vector(0)',
            "short",
            COUNT_COLOURS,
            width=4,
        )
    )
    board.add(
        _stat(
            "Отставание, записей",
            "Записи в назначенных воркерам партициях, ещё не прочитанные.",
            "sum(otklik_consumer_lag_records)",
            "short",
            _thresholds((None, "green"), (1000.0, "orange")),
            width=4,
        )
    )
    board.add(
        _stat(
            "Мёртвые письма за период",
            "Записи, отправленные в otklik.dead-letters.",
            "sum(increase(otklik_dead_letters_total[$__range]))",
            "short",
            COUNT_COLOURS,
            width=4,
            no_value="0",
        )
    )
    board.add(
        _stat(
            "Оповещения ждут доставки",
            "Уведомления в очереди уведомителя (отложены до рабочего времени или повторяются).",
            "sum(otklik_notifier_pending_notices)",
            "short",
            _thresholds((None, "green"), (10.0, "orange")),
            width=4,
        )
    )
    board.row("Поток событий")
    board.add(
        _timeseries(
            "События в секунду",
            "Записи, прочитанные из otklik.raw, по платформам, и записи, обработанные агентами с состоянием.",
            [
                _query(
                    'sum by (platform) (rate(otklik_raw_records_total{platform=~"$platform"}[$__rate_interval]))',
                    "A",
                    "{{platform}}",
                ),
                _query("sum by (agent) (rate(otklik_agent_records_total[$__rate_interval]))", "B", "агент {{agent}}"),
            ],
            "ops",
        )
    )
    board.add(
        _timeseries(
            "Запросы к шлюзу в секунду",
            "Принятые, повторные и отклонённые вебхуки.",
            [
                _query(
                    'sum by (platform, outcome) (rate(otklik_gateway_requests_total{platform=~"$platform"}[$__rate_interval]))',
                    "A",
                    "{{platform}}: {{outcome}}",
                ),
                _query(
                    'sum by (platform, reason) (rate(otklik_gateway_rejected_total{platform=~"$platform"}[$__rate_interval]))',
                    "B",
                    "{{platform}}: отклонено, {{reason}}",
                ),
            ],
            "reqps",
        )
    )
    board.add(
        _timeseries(
            "Отставание по топикам",
            "Непрочитанные записи назначенных партиций, по топикам.",
            [_query("sum by (topic) (otklik_consumer_lag_records)", "A", "{{topic}}")],
            "short",
        )
    )
    board.add(
        _timeseries(
            "Мёртвые письма",
            "Записи, ушедшие в otklik.dead-letters, по этапу, который их отверг.",
            [_query("sum by (stage) (increase(otklik_dead_letters_total[$__rate_interval]))", "A", "{{stage}}")],
            "short",
        )
    )
    board.add(
        _timeseries(
            "Шлюз: запись в Kafka, 99 %",
            "От получения тела до подтверждения брокера (acks=all).",
            [
                _query(
                    'histogram_quantile(0.99, sum by (le, platform) (rate(otklik_gateway_produce_seconds_bucket{platform=~"$platform"}[$__rate_interval])))',
                    "A",
                    "{{platform}}",
                )
            ],
            "s",
        )
    )
    board.add(
        _timeseries(
            "Неотвеченные сообщения по воркерам",
            "Открытые сообщения и страницы с ними в состоянии каждого воркера.",
            [
                _query("sum by (instance) (otklik_open_items)", "A", "{{instance}}: сообщений"),
                _query("sum by (instance) (otklik_pages_with_open_items)", "B", "{{instance}}: страниц"),
            ],
            "short",
        )
    )
    board.row("Коннекторы")
    board.add(
        _table(
            "Тишина по платформам",
            "Сколько секунд нет событий с платформы (с учётом перезапуска воркера) и сколько записей было за сутки.",
            [
                _query(
                    'time() - platform:otklik_last_event_timestamp_seconds:max1d{platform=~"$platform"}',
                    "A",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    'platform:otklik_raw_records:increase1d{platform=~"$platform"}',
                    "B",
                    instant=True,
                    table_format=True,
                ),
            ],
            {"platform": "Платформа", "Value #A": "Тишина, с", "Value #B": "Записей за сутки"},
            width=12,
            height=8,
            sort_by="Тишина, с",
        )
    )
    board.add(
        _table(
            "Тишина по источникам",
            "Секунды с последнего события каждого источника (шлюз и воркер).",
            [
                _query(
                    'time() - max by (platform, source) (otklik_connector_last_event_timestamp_seconds{platform=~"$platform"})',
                    "A",
                    instant=True,
                    table_format=True,
                )
            ],
            {"platform": "Платформа", "source": "Источник", "Value": "Тишина, с"},
            width=12,
            height=8,
            sort_by="Тишина, с",
        )
    )
    board.row("Доставка оповещений")
    board.add(
        _timeseries(
            "Уведомления",
            "Уведомления по каналу и итогу: отправлено, ошибка, отменено, повтор вебхука, нет канала.",
            [
                _query(
                    "sum by (channel, result) (increase(otklik_notifier_notices_total[$__rate_interval]))",
                    "A",
                    "{{channel}}: {{result}}",
                )
            ],
            "short",
        )
    )
    board.add(
        _timeseries(
            "Вебхуки Alertmanager",
            "Вебхуки, полученные уведомителем, по статусу группы.",
            [_query("sum by (status) (increase(otklik_notifier_webhooks_total[$__rate_interval]))", "A", "{{status}}")],
            "short",
        )
    )
    return board.build()


# File stem (= uid) -> builder.
DASHBOARD_FILES: dict[str, Callable[[], dict[str, Any]]] = {
    UIDS["region"]: region_overview,
    UIDS["drilldown"]: drilldown,
    UIDS["page"]: single_page,
    UIDS["moderation"]: moderation,
    UIDS["health"]: system_health,
}


def build_dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON model (what Grafana stores)."""
    return {uid: build() for uid, build in DASHBOARD_FILES.items()}


def render(model: dict[str, Any]) -> str:
    """The checked-in text of a dashboard: stable key order, Cyrillic kept readable."""
    return json.dumps(model, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_dashboards(out_dir: Path) -> list[Path]:
    """Write every dashboard to ``out_dir/<uid>.json``; returns the paths (the edge: file I/O here only)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, model in build_dashboards().items():
        path = out_dir / f"{uid}.json"
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written


# ---- reading panels back (tests, e2e) --------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # uid
    panel: str  # title
    ref: str  # refId, or "var:<name>" for a variable's query
    expr: str


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def panel_queries(model: dict[str, Any], *, variables: bool = False) -> list[PanelQuery]:
    """Every PromQL expression of a dashboard's panels (and of its variables' ``label_values``)."""
    uid = model["uid"]
    out = [
        PanelQuery(uid, panel.get("title", ""), target.get("refId", ""), target["expr"])
        for panel in _panels(model.get("panels") or [])
        for target in panel.get("targets") or []
        if target.get("expr")
    ]
    if variables:
        for variable in (model.get("templating") or {}).get("list") or []:
            query = variable.get("query")
            match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query or "")
            if match:
                out.append(PanelQuery(uid, variable["name"], f"var:{variable['name']}", match.group(1)))
    return out


# Grafana's built-in range variables, as plain durations PromQL accepts.
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def substitute_variables(
    expr: str, values: dict[str, str] | None = None, intervals: dict[str, str] | None = None
) -> str:
    """``expr`` with Grafana's interval variables replaced by durations and ``$name`` by a plain value
    (default ``.*``: what "All" sends), so promtool and Prometheus can take it."""
    for name, duration in {**GRAFANA_INTERVALS, **(intervals or {})}.items():
        expr = expr.replace(name, duration)
    values = values or {}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), ".*"), expr)


_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (a small lexer: enough for otklik's own panels).

    Removes string literals, label matchers, ranges and grouping clauses, then keeps identifiers that
    are not function calls or keywords."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    stripped = re.sub(r"\{[^}]*\}", " ", stripped)
    stripped = re.sub(r"\[[^\]]*\]", " ", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" ", stripped)
    stripped = re.sub(r"\boffset\s+-?\w+", " ", stripped)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", stripped):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names
