"""Replay throughput through the pure core, beside JSON decoding alone of the same lines."""

from __future__ import annotations

import time

import orjson

from otklik.agents.replay import run_replay
from otklik.schemas.registry import Registry
from otklik.streams.simulate import SimConfig, generate, registry_mapping

EVENTS = 200_000


def sample_lines(events: int = EVENTS) -> tuple[list[bytes], Registry]:
    cfg = SimConfig(pages=500, rate=50.0, duration=events / 50.0, seed=11, start=1764230400)  # 2025-11-27 08:00 UTC
    lines = [orjson.dumps({"received_at": t, "body": body}) for t, body in generate(cfg)]
    return lines[:events], Registry.from_mapping(registry_mapping(cfg), source="<simulated>")


def main() -> None:
    lines, registry = sample_lines()
    n = len(lines)
    t0 = time.perf_counter()
    for line in lines:
        orjson.loads(line)
    decode_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    rows = run_replay(lines, registry)
    replay_s = time.perf_counter() - t0
    print(f"events                         {n:>12,}")
    print(f"items in the output            {len(rows):>12,}")
    print(f"baseline: orjson.loads alone   {n / decode_s:>12,.0f} events/s")
    print(f"replay through the core        {n / replay_s:>12,.0f} events/s   (target >= 100,000)")
    print(f"ratio replay / decode          {decode_s / replay_s:>12.3f}")


if __name__ == "__main__":
    main()
