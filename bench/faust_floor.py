"""The faust floor: a faust agent that only decodes each record (orjson) and does nothing else.

Run by ``bench.live`` as ``python -m bench.faust_floor BOOTSTRAP TOPIC TOTAL [fast]``: it consumes TOPIC from the
start with the worker's batching (``take_events``), prints one JSON line with its wall and CPU rates once
TOTAL records have passed, and exits. Whatever a real agent costs beyond this is ours; this much is
faust's own per-record machinery (its consumer wraps every record in asyncio tasks). With ``fast`` the
app is otklik's (streams/worker/app.py), with the cheaper hand-over of streams/worker/fast_delivery.py.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid

import faust
import orjson


def sensor_cost(app: faust.App, records: int = 200_000) -> float:
    """CPU µs per record of the sensor calls faust makes for every record (message in and out, stream event
    in and out), in this process, with the sensors ``app`` keeps (faust's Monitor unless the app drops it)."""
    from faust.types import TP

    list(app.on_init_dependencies())  # where the sensors are registered
    sensors, tp = app.sensors, TP("bench", 0)
    message = type("Message", (), {"tp": tp, "offset": 0, "refcount": 0, "acked": False, "stream_meta": {}})()
    event = type("Event", (), {"message": message})()
    stream = type("Stream", (), {"shortlabel": "bench"})()
    stream.task_owner = stream  # the Monitor looks the stream's task up by it
    started = time.process_time()
    for offset in range(records):
        sensors.on_message_in(tp, offset, message)
        state = sensors.on_stream_event_in(tp, offset, stream, event)
        sensors.on_stream_event_out(tp, offset, stream, event, state)
        sensors.on_message_out(tp, offset, message)
    return (time.process_time() - started) / records * 1e6


def main() -> None:
    bootstrap, topic_name, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fast = sys.argv[4:] == ["fast"]
    app_class = faust.App
    if fast:
        from otklik.streams.worker.app import FaustApp

        app_class = FaustApp
    app = app_class(
        f"bench-floor-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="otklik-floor-"),
        web_enabled=False,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=6,
        broker_session_timeout=6,
        broker_heartbeat_interval=0.6,
    )
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "wall": 0.0, "cpu": 0.0}

    @app.agent(topic, concurrency=1)
    async def floor(stream):  # type: ignore[no-untyped-def]
        async for events in stream.take_events(20_000, within=1.0):
            if not seen["n"]:
                seen["wall"], seen["cpu"] = time.perf_counter(), time.process_time()
            for event in events:
                orjson.loads(event.message.value)
            seen["n"] += len(events)
            if seen["n"] >= total:
                wall, cpu = time.perf_counter() - seen["wall"], time.process_time() - seen["cpu"]
                print(orjson.dumps({"events": seen["n"], "wall_s": wall, "cpu_s": cpu}).decode(), flush=True)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
