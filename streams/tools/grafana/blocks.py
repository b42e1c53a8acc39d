"""The building blocks of the dashboards: identities, PromQL of the measurements, panels, variables."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
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


def prom_query(
    expr: str, ref: str = "A", legend: str | None = None, instant: bool = False, table_format: bool = False
) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(PROM)
    q = q.instant() if instant else q.range()
    if legend is not None:
        q = q.legend_format(legend)
    if table_format:
        q = q.format(PromQueryFormat.TABLE)
    return q


def threshold_steps(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(v, c) for v, c in steps])


SHARE_COLOURS = threshold_steps((None, "red"), (0.9, "orange"), (OBJECTIVE, "green"))
RATIO_COLOURS = threshold_steps((None, "green"), (0.75, "orange"), (1.0, "red"), (2.0, "dark-red"))
COUNT_COLOURS = threshold_steps((None, "green"), (1.0, "orange"))
DASHED = DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})


def stat_panel(
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
        .with_target(prom_query(expr, instant=True))
        .unit(unit)
        .thresholds(colours)
        .no_value(no_value)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(width)
        .height(5)
    )


def timeseries_panel(
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


def table_panel(
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


class Board:
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

    def link(self, title: str, uid: str) -> Board:
        self.builder = self.builder.link(_link(title, uid))
        return self

    def row(self, title: str) -> Board:
        self.builder = self.builder.with_row(dashboard.Row(title).id(self._take_id()))
        return self

    def add(self, panel: Any) -> Board:
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
    "rating": "otklik-rating",  # from the history store (history.py)
    "overdue": "otklik-overdue",
}
