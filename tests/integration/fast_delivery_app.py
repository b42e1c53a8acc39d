"""A minimal faust app on otklik's FaustApp, for tests/integration/test_fast_delivery_live.py.

``python tests/integration/fast_delivery_app.py BOOTSTRAP TOPIC TOTAL on|off OUT`` reads TOPIC from the
start with one agent that keeps every value in the order it gets them; once TOTAL have come it writes
``{"values": [...], "stats": <FastDeliveryStats>}`` to the file OUT (faust's worker takes over standard
output) and exits. The stream buffer is tiny, so that a
fetch of more records than it holds must take the fallback path for some of them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid

import orjson

from otklik.streams.worker.app import FaustApp

BUFFER = 16  # records a stream holds before a delivery has to wait


def main() -> None:
    bootstrap, topic_name, total, mode, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    app = FaustApp(
        f"test-fast-delivery-{uuid.uuid4().hex[:8]}",
        fast_delivery=mode == "on",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="otklik-fast-delivery-"),
        web_enabled=False,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=BUFFER,
        broker_rebalance_timeout=6,
        broker_session_timeout=6,
        broker_heartbeat_interval=0.6,
    )
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    values: list[str] = []

    @app.agent(topic, concurrency=1)
    async def collect(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            values.append(event.message.value.decode())
            if len(values) >= total:
                with open(out, "wb") as result:
                    result.write(orjson.dumps({"values": values, "stats": app.fast_delivery_stats.as_dict()}))
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
