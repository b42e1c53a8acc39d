"""The dashboards of the people who run otklik: moderation and the system's health."""

from __future__ import annotations

from typing import Any

from otklik.streams.tools.grafana.blocks import (
    COUNT_COLOURS,
    PLATFORM,
    UIDS,
    ZERO_IF_WORKERS_UP,
    Board,
    prom_query,
    stat_panel,
    table_panel,
    threshold_steps,
    timeseries_panel,
)


def moderation() -> dict[str, Any]:
    board = Board(
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
        stat_panel(
            "Оскорбительных текстов видно",
            "Тексты с метками модерации, которые ещё не удалены.",
            f"sum(otklik_page_offensive_visible) or {ZERO_IF_WORKERS_UP}",
            "short",
            COUNT_COLOURS,
            width=6,
        )
    )
    board.add(
        stat_panel(
            "Страниц, где пора удалить",
            "Страницы, где самый старый оскорбительный текст виден дольше срока модерации.",
            f"count(otklik_page_offensive_oldest_deadline_ratio >= 1) or {ZERO_IF_WORKERS_UP}",
            "short",
            COUNT_COLOURS,
            width=6,
        )
    )
    board.add(
        stat_panel(
            "Видно до удаления: медиана",
            "Рабочие часы страницы от появления оскорбительного текста до удаления, за период.",
            f"histogram_quantile(0.5, sum by (le) (increase({visible}_bucket[$__range])))",
            "h",
            threshold_steps((None, "blue")),
            width=6,
            no_value="удалений не было",
        )
    )
    board.add(
        stat_panel(
            "Видно до удаления: 90 %",
            "90 % оскорбительных текстов удалены не позже этого (рабочие часы).",
            f"histogram_quantile(0.9, sum by (le) (increase({visible}_bucket[$__range])))",
            "h",
            threshold_steps((None, "blue")),
            width=6,
            no_value="удалений не было",
        )
    )
    board.add(
        table_panel(
            "Страницы с видимыми оскорбительными текстами",
            "Сколько видно и доля срока модерации у самого старого (1 — пора было удалить).",
            [
                prom_query(
                    "topk(20, otklik_page_offensive_oldest_deadline_ratio)", "A", instant=True, table_format=True
                ),
                prom_query(
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
        timeseries_panel(
            "Оскорбительные тексты по меткам, за час",
            "Найдено (labelled), удалено (removed), просрочено (overdue).",
            [
                prom_query(
                    "sum by (label, event) (increase(otklik_moderation_labels_total[1h]))", "A", "{{label}}: {{event}}"
                )
            ],
            "short",
        )
    )
    board.add(
        table_panel(
            "Кто удалял и как быстро",
            "Удалённые оскорбительные тексты по тому, кто удалил: автор, страница, другой.",
            [
                prom_query(
                    f"sum by (removed_by) (increase({visible}_count[$__range]))", "A", instant=True, table_format=True
                ),
                prom_query(
                    f"histogram_quantile(0.5, sum by (le, removed_by) (increase({visible}_bucket[$__range])))",
                    "B",
                    instant=True,
                    table_format=True,
                ),
                prom_query(
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
        stat_panel(
            "Удалено модераторами до ответа",
            "Сообщения жителей, удалённые страницей до ответа: на проверку (список — исход moderated в otklik.responses).",
            f'sum(increase({closed}{{outcome="moderated"}}[$__range]))',
            "short",
            COUNT_COLOURS,
            width=6,
        )
    )
    board.add(
        stat_panel(
            "…из них уже после срока",
            "Удалены, когда срок ответа уже прошёл: считаются просроченными.",
            f'sum(increase({closed}{{outcome="moderated", breached="true"}}[$__range]))',
            "short",
            COUNT_COLOURS,
            width=6,
        )
    )
    board.add(
        stat_panel(
            "Отписки страниц",
            "Ответы страниц, которые только отсылают жителя в другое место («напишите в личные сообщения»).",
            'sum(increase(otklik_moderation_records_total{kind="deflection"}[$__range]))',
            "short",
            COUNT_COLOURS,
            width=6,
        )
    )
    board.add(
        stat_panel(
            "Не требовали ответа",
            "Благодарности, реакции, разговоры жителей между собой (по разбору текста).",
            f'sum(increase({closed}{{outcome="no_answer_needed"}}[$__range]))',
            "short",
            threshold_steps((None, "blue")),
            width=6,
        )
    )
    board.add(
        timeseries_panel(
            "Исходы сообщений за час",
            "Закрытые сообщения по исходу (в срок и после срока).",
            [
                prom_query(
                    f"sum by (outcome, breached) (increase({closed}[1h]))", "A", "{{outcome}}, просрочено: {{breached}}"
                )
            ],
            "short",
        )
    )
    board.add(
        timeseries_panel(
            "Записи модерации за час",
            "Записи otklik.moderation по виду и чей это текст (жителя или страницы).",
            [
                prom_query(
                    "sum by (kind, role) (increase(otklik_moderation_records_total[1h]))", "A", "{{kind}}: {{role}}"
                )
            ],
            "short",
        )
    )
    board.add(
        timeseries_panel(
            "Удаления и восстановления в секунду",
            "Все удаления и восстановления комментариев и сообщений на платформе.",
            [
                prom_query(
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
    board = Board(
        UIDS["health"],
        "Отклик: состояние системы",
        "Поток событий, отставание, мёртвые письма, молчащие коннекторы и доставка оповещений.",
        [PLATFORM],
    )
    board.row("Сейчас")
    board.add(
        stat_panel(
            "Воркеров в строю",
            "Процессы otklik worker, которые Prometheus опрашивает успешно.",
            'sum(up{job="otklik-worker"})',
            "short",
            threshold_steps((None, "red"), (1.0, "green")),
            width=3,
        )
    )
    board.add(
        stat_panel(
            "Шлюз подключён к Kafka",
            "1 — продюсер шлюза подключён; 0 — события получают 503 и VK доставит их позже.",
            "min(otklik_gateway_kafka_ready)",
            "short",
            threshold_steps((None, "red"), (1.0, "green")),
            width=3,
        )
    )
    board.add(
        stat_panel(
            "Воркеры подключены к Kafka",
            "1 — брокер ответил на последнюю проверку каждого воркера; 0 — хотя бы один воркер не видит Kafka"
            " (его /health отвечает 503) и события не обрабатываются.",
            "min(otklik_worker_kafka_ready)",
            "short",
            threshold_steps((None, "red"), (1.0, "green")),
            width=3,
        )
    )
    board.add(
        stat_panel(
            "Молчащих коннекторов",
            "Платформы, от которых нет событий дольше 30 минут, хотя обычно они их шлют.",
            'count(ALERTS{alertname="OtklikConnectorSilent", alertstate="firing"}) or on() vector(0)',
            "short",
            COUNT_COLOURS,
            width=4,
        )
    )
    board.add(
        stat_panel(
            "Отставание, записей",
            "Записи в назначенных воркерам партициях, ещё не прочитанные.",
            "sum(otklik_consumer_lag_records)",
            "short",
            threshold_steps((None, "green"), (1000.0, "orange")),
            width=4,
        )
    )
    board.add(
        stat_panel(
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
        stat_panel(
            "Оповещения ждут доставки",
            "Уведомления в очереди уведомителя (отложены до рабочего времени или повторяются).",
            "sum(otklik_notifier_pending_notices)",
            "short",
            threshold_steps((None, "green"), (10.0, "orange")),
            width=3,
        )
    )
    board.row("Поток событий")
    board.add(
        timeseries_panel(
            "События в секунду",
            "Записи, прочитанные из otklik.raw, по платформам, и записи, обработанные агентами с состоянием.",
            [
                prom_query(
                    'sum by (platform) (rate(otklik_raw_records_total{platform=~"$platform"}[$__rate_interval]))',
                    "A",
                    "{{platform}}",
                ),
                prom_query(
                    "sum by (agent) (rate(otklik_agent_records_total[$__rate_interval]))", "B", "агент {{agent}}"
                ),
            ],
            "ops",
        )
    )
    board.add(
        timeseries_panel(
            "Запросы к шлюзу в секунду",
            "Принятые, повторные и отклонённые вебхуки.",
            [
                prom_query(
                    'sum by (platform, outcome) (rate(otklik_gateway_requests_total{platform=~"$platform"}[$__rate_interval]))',
                    "A",
                    "{{platform}}: {{outcome}}",
                ),
                prom_query(
                    'sum by (platform, reason) (rate(otklik_gateway_rejected_total{platform=~"$platform"}[$__rate_interval]))',
                    "B",
                    "{{platform}}: отклонено, {{reason}}",
                ),
            ],
            "reqps",
        )
    )
    board.add(
        timeseries_panel(
            "Отставание по топикам",
            "Непрочитанные записи назначенных партиций, по топикам.",
            [prom_query("sum by (topic) (otklik_consumer_lag_records)", "A", "{{topic}}")],
            "short",
        )
    )
    board.add(
        timeseries_panel(
            "Мёртвые письма",
            "Записи, ушедшие в otklik.dead-letters, по этапу, который их отверг.",
            [prom_query("sum by (stage) (increase(otklik_dead_letters_total[$__rate_interval]))", "A", "{{stage}}")],
            "short",
        )
    )
    board.add(
        timeseries_panel(
            "Шлюз: запись в Kafka, 99 %",
            "От получения тела до подтверждения брокера (acks=all).",
            [
                prom_query(
                    'histogram_quantile(0.99, sum by (le, platform) (rate(otklik_gateway_produce_seconds_bucket{platform=~"$platform"}[$__rate_interval])))',
                    "A",
                    "{{platform}}",
                )
            ],
            "s",
        )
    )
    board.add(
        timeseries_panel(
            "Неотвеченные сообщения по воркерам",
            "Открытые сообщения и страницы с ними в состоянии каждого воркера.",
            [
                prom_query("sum by (instance) (otklik_open_items)", "A", "{{instance}}: сообщений"),
                prom_query("sum by (instance) (otklik_pages_with_open_items)", "B", "{{instance}}: страниц"),
            ],
            "short",
        )
    )
    board.row("Коннекторы")
    board.add(
        table_panel(
            "Тишина по платформам",
            "Сколько секунд нет событий с платформы (с учётом перезапуска воркера) и сколько записей было за сутки.",
            [
                prom_query(
                    'time() - platform:otklik_last_event_timestamp_seconds:max1d{platform=~"$platform"}',
                    "A",
                    instant=True,
                    table_format=True,
                ),
                prom_query(
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
        table_panel(
            "Тишина по источникам",
            "Секунды с последнего события каждого источника (шлюз и воркер).",
            [
                prom_query(
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
        timeseries_panel(
            "Уведомления",
            "Уведомления по каналу и итогу: отправлено, ошибка, отменено, повтор вебхука, нет канала.",
            [
                prom_query(
                    "sum by (channel, result) (increase(otklik_notifier_notices_total[$__rate_interval]))",
                    "A",
                    "{{channel}}: {{result}}",
                )
            ],
            "short",
        )
    )
    board.add(
        timeseries_panel(
            "Вебхуки Alertmanager",
            "Вебхуки, полученные уведомителем, по статусу группы.",
            [
                prom_query(
                    "sum by (status) (increase(otklik_notifier_webhooks_total[$__rate_interval]))", "A", "{{status}}"
                )
            ],
            "short",
        )
    )
    return board.build()
