"""The dashboards of the measurement by area: the region, its drill-down, one page."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import text

from otklik.streams.tools.grafana.blocks import (
    AREA,
    COUNT_COLOURS,
    DASHED,
    MUNICIPALITY,
    MUNICIPALITY_LATENCY,
    PAGE_MULTI,
    PAGE_ONE,
    PAGE_SELECTOR,
    PLATFORM_LATENCY,
    RATIO_COLOURS,
    REGION,
    SECTOR,
    SECTOR_LATENCY,
    SHARE_COLOURS,
    UIDS,
    ZERO_IF_WORKERS_UP,
    Board,
    prom_query,
    response_quantile,
    share_in_time,
    stat_panel,
    table_panel,
    threshold_steps,
    timeseries_panel,
)


def region_overview() -> dict[str, Any]:
    board = (
        Board(
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
        stat_panel(
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
        stat_panel(
            "Первый ответ: медиана",
            "Время до первого ответа страницы, в рабочих часах по графику и производственному календарю страницы.",
            response_quantile(0.5, "$__range", MUNICIPALITY_LATENCY, AREA),
            "s",
            threshold_steps((None, "blue")),
            width=4,
            no_value="ответов не было",
        )
    )
    board.add(
        stat_panel(
            "Первый ответ: 90 %",
            "90 % ответов пришли не позже этого (рабочее время; точность — до границ корзин: 15 и 30 мин, 1, 2, 4, 8, 9, 24 ч …).",
            response_quantile(0.9, "$__range", MUNICIPALITY_LATENCY, AREA),
            "s",
            threshold_steps((None, "blue")),
            width=4,
            no_value="ответов не было",
        )
    )
    board.add(
        stat_panel(
            "Ждут ответа сейчас",
            "Сообщения жителей без ответа страницы на этот момент.",
            f"sum(otklik_page_open_items{{{AREA}}}) or {ZERO_IF_WORKERS_UP}",
            "short",
            COUNT_COLOURS,
            width=4,
        )
    )
    board.add(
        stat_panel(
            "Страниц с просрочкой",
            "Страницы, у которых самое старое неотвеченное сообщение ждёт дольше срока.",
            f"count(otklik_page_oldest_deadline_ratio{{{AREA}}} >= 1) or {ZERO_IF_WORKERS_UP}",
            "short",
            COUNT_COLOURS,
            width=4,
        )
    )
    board.add(
        stat_panel(
            "К прошлой неделе",
            "Доля ответов в срок за последние 7 дней минус та же доля за 7 дней до них (в процентных пунктах).",
            f"({share_in_time('7d')}) - ({share_in_time('7d', offset='1w')})",
            "percentunit",
            threshold_steps((None, "red"), (-0.01, "orange"), (0.0, "green")),
            width=3,
            no_value="нет прошлой недели",
        )
    )
    board.row("Динамика")
    board.add(
        timeseries_panel(
            "Доля ответов в срок за сутки: сейчас и неделю назад",
            "Скользящее окно в сутки; пунктир — та же величина неделей раньше.",
            [
                prom_query(share_in_time("1d"), "A", "эта неделя"),
                prom_query(share_in_time("1d", offset="1w"), "B", "неделей раньше"),
            ],
            "percentunit",
        )
        .min(0)
        .max(1)
        .override_by_query("B", [DASHED])
    )
    board.add(
        timeseries_panel(
            "Первый ответ за сутки, рабочее время",
            "Медиана и 90-й процентиль в скользящем окне в сутки.",
            [
                prom_query(response_quantile(0.5, "1d", MUNICIPALITY_LATENCY, AREA), "A", "медиана"),
                prom_query(response_quantile(0.9, "1d", MUNICIPALITY_LATENCY, AREA), "B", "90 %"),
            ],
            "s",
        )
    )
    board.add(
        timeseries_panel(
            "Ждут ответа, по муниципалитетам",
            "Неотвеченные сообщения в каждый момент.",
            [prom_query(f"sum by (municipality) (otklik_page_open_items{{{AREA}}})", "A", "{{municipality}}")],
            "short",
        )
    )
    board.add(
        table_panel(
            "Самые просроченные страницы",
            "Страницы с самым старым неотвеченным сообщением: доля срока (1 — срок сейчас) и сколько ждут ответа.",
            [
                prom_query(
                    f"topk(20, max by (page, municipality) (otklik_page_oldest_deadline_ratio{{{AREA}}}))",
                    "A",
                    instant=True,
                    table_format=True,
                ),
                prom_query(
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
        timeseries_panel(
            "Первый ответ по отраслям: 90 % за сутки",
            "По всем регионам этого Prometheus: у отраслевой гистограммы нет метки региона (три гистограммы, не их произведение).",
            [
                prom_query(
                    response_quantile(0.9, "1d", SECTOR_LATENCY, 'sector=~"$sector"', by="sector"), "A", "{{sector}}"
                )
            ],
            "s",
            width=24,
        )
    )
    return board.build()


def drilldown() -> dict[str, Any]:
    board = (
        Board(
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
        table_panel(
            "Муниципалитеты",
            "Доля ответов в срок, время первого ответа (рабочие часы), сколько сообщений оценено и сколько ждут сейчас.",
            [
                prom_query(share_in_time("$__range", by=by), "A", instant=True, table_format=True),
                prom_query(
                    response_quantile(0.5, "$__range", MUNICIPALITY_LATENCY, AREA, by=by),
                    "B",
                    instant=True,
                    table_format=True,
                ),
                prom_query(
                    response_quantile(0.9, "$__range", MUNICIPALITY_LATENCY, AREA, by=by),
                    "C",
                    instant=True,
                    table_format=True,
                ),
                prom_query(
                    f"sum by ({by}) (increase(otklik_items_due_total{{{AREA}}}[$__range]))",
                    "D",
                    instant=True,
                    table_format=True,
                ),
                prom_query(f"sum by ({by}) (otklik_page_open_items{{{AREA}}})", "E", instant=True, table_format=True),
                prom_query(
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
        timeseries_panel(
            "Доля ответов в срок за сутки, по муниципалитетам",
            "Скользящее окно в сутки.",
            [prom_query(share_in_time("1d", by="municipality"), "A", "{{municipality}}")],
            "percentunit",
        )
        .min(0)
        .max(1)
    )
    board.add(
        timeseries_panel(
            "Первый ответ за сутки (90 %), по муниципалитетам",
            "Рабочее время, скользящее окно в сутки.",
            [
                prom_query(
                    response_quantile(0.9, "1d", MUNICIPALITY_LATENCY, AREA, by="municipality"), "A", "{{municipality}}"
                )
            ],
            "s",
        )
    )
    board.row("Рейтинг страниц")
    board.add(
        table_panel(
            "Рейтинг страниц",
            "Страницы с неотвеченными сообщениями или ответами за последний час, от самой просроченной: доля срока "
            "самого старого сообщения (1 — срок сейчас) и сколько ждут ответа. Отрасль к страничным рядам не приписана.",
            [
                prom_query(
                    f"max by (page, municipality, platform) (otklik_page_oldest_deadline_ratio{{{PAGE_SELECTOR}}})",
                    "A",
                    instant=True,
                    table_format=True,
                ),
                prom_query(
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
        table_panel(
            "Отрасли",
            "Ответы по отраслям (все регионы этого Prometheus: у отраслевой гистограммы нет метки региона). "
            "«До 8 рабочих часов» — срок по умолчанию; у страниц может быть свой срок.",
            [
                prom_query(
                    f"sum by (sector) (increase({SECTOR_LATENCY}_count{{{sector}}}[$__range]))",
                    "A",
                    instant=True,
                    table_format=True,
                ),
                prom_query(
                    response_quantile(0.5, "$__range", SECTOR_LATENCY, sector, by="sector"),
                    "B",
                    instant=True,
                    table_format=True,
                ),
                prom_query(
                    response_quantile(0.9, "$__range", SECTOR_LATENCY, sector, by="sector"),
                    "C",
                    instant=True,
                    table_format=True,
                ),
                prom_query(
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
        timeseries_panel(
            "Первый ответ по платформам: 90 % за сутки",
            "Рабочее время, скользящее окно в сутки; все регионы этого Prometheus (у гистограммы платформ нет метки региона).",
            [
                prom_query(
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
        Board(
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
        stat_panel(
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
        stat_panel(
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
        table_panel(
            "Оповещения по странице",
            "Правила, которые сейчас срабатывают для этой страницы.",
            [
                prom_query(
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
        timeseries_panel(
            "Ждут ответа",
            "",
            [prom_query(f"sum(otklik_page_open_items{{{one}}})", "A", "ждут ответа")],
            "short",
        )
    )
    board.add(
        timeseries_panel(
            "Самое старое сообщение: доля срока",
            "1 — срок наступил.",
            [prom_query(f"max(otklik_page_oldest_deadline_ratio{{{one}}})", "A", "доля срока")],
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
