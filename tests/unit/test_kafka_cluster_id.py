"""The KRaft cluster id given to Kafka's storage tool never starts with "-" (it would read as an option)."""

from __future__ import annotations

import base64
import uuid

from otklik.streams.tools.kafka_local import new_cluster_id


def test_an_id_that_would_start_with_a_dash_is_drawn_again() -> None:
    # 0xF8 as the first byte encodes to "-" first in URL-safe base64: the case that broke formatting.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    assert base64.urlsafe_b64encode(b"\xf8" + bytes(15)).decode().startswith("-")
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")


def test_random_ids_are_22_url_safe_characters() -> None:
    for _ in range(2_000):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert set(cluster_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
