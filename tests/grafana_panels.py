"""Reading the generated dashboards back: their PromQL, with Grafana's variables filled in (tests only)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # uid
    panel: str  # title
    ref: str  # refId, or "var:<name>" for a variable's query
    expr: str


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels") or [])


def panel_queries(model: dict[str, Any], *, variables: bool = False) -> list[PanelQuery]:
    """Every PromQL expression of a dashboard's panels (and of its variables' ``label_values``)."""
    uid = model["uid"]
    out = [
        PanelQuery(uid, panel.get("title", ""), target.get("refId", ""), target["expr"])
        for panel in walk_panels(model.get("panels") or [])
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


@dataclass(frozen=True)
class SqlQuery:
    dashboard: str  # uid
    panel: str  # title, or "var:<name>" for a variable's query
    sql: str


def sql_queries(model: dict[str, Any], *, variables: bool = False) -> list[SqlQuery]:
    """Every raw SQL of a dashboard's panels (PostgreSQL datasource), and of its query variables."""
    uid = model["uid"]
    out = [
        SqlQuery(uid, panel.get("title", ""), target["rawSql"])
        for panel in walk_panels(model.get("panels") or [])
        for target in panel.get("targets") or []
        if target.get("rawSql")
    ]
    if variables:
        for variable in (model.get("templating") or {}).get("list") or []:
            if variable.get("type") == "query" and variable.get("datasource", {}).get("type", "").endswith(
                "postgresql-datasource"
            ):
                out.append(SqlQuery(uid, f"var:{variable['name']}", variable["query"]))
    return out


def substitute_sql_variables(sql: str, values: dict[str, str | list[str]]) -> str:
    """``sql`` with ``${name:sqlstring}`` replaced as Grafana does: each value quoted, ``'`` doubled, a
    multi-value one joined by commas. Every variable must have a value (a KeyError names a missing one)."""

    def quoted(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        items = [value] if isinstance(value, str) else value
        return ",".join("'" + item.replace("'", "''") + "'" for item in items)

    return re.sub(r"\$\{(\w+):sqlstring\}", quoted, sql)
