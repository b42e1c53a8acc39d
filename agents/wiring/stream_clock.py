"""The worker's stream time: how far it has read its input, by the records' own times (docs/responses.md,
"Stream time").

Plain code, no faust: the wiring tells it what each agent processed and, when asked, what the consumer
knows of each input partition (its high-water mark and when that was last fetched); the response engine
gets the result as an argument (``tick(now)``), never the raw wall clock while the worker is behind.

* A partition's clock is the latest ``received_at`` of the interactions processed from it; a time more
  than :data:`MAX_AHEAD_S` ahead of the wall clock at processing is not used (one bad record must not
  move any clock).
* A partition whose input is caught up (every record the broker holds, on ``otklik.interactions`` and on
  ``otklik.raw`` for the same partition number, is processed, by a high-water mark fetched within
  :data:`FRESH_S`) and idle (nothing processed from it for :data:`IDLE_S`) reads the wall clock.
* The stream time is the earliest of the partitions' clocks, at most the wall clock, and never goes
  back. It is None until every partition has a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["FRESH_S", "IDLE_S", "MAX_AHEAD_S", "InputPartition", "StreamClock"]

# Event times more than this ahead of the wall clock at processing move no clock: clocks of
# well-run machines agree within seconds, and a record dated later is a bad one (milliseconds, a typo).
MAX_AHEAD_S = 300
# A caught-up partition reads the wall clock only after this long without a record: records the
# normalize agent has just written may not be in the consumer's view of the high-water mark yet.
IDLE_S = 5.0
# A high-water mark fetched longer ago than this is not trusted: during a broker outage nothing is
# fetched, and the partition counts as behind (its clock stops at its last record).
FRESH_S = 10.0


@dataclass(frozen=True, slots=True)
class InputPartition:
    """What the consumer knows of one assigned input partition when the stream time is computed."""

    topic: str
    partition: int
    highwater: int | None  # the offset the next record will get; None: not fetched yet
    fetched_at: float | None  # wall time of the fetch that told it; None: unknown
    committed: int | None = None  # the group's committed offset (the next to read) at assignment


@dataclass(slots=True)
class _Partition:
    event_time: int | None = None  # latest received_at processed (within the limit)
    active_at: float | None = None  # monotonic time of the last record processed from it (any input topic)


@dataclass
class StreamClock:
    """Per-partition clocks from the records processed, and the stream time they give.

    ``interactions`` and ``raw`` name the input topics; ``positions`` holds, per (topic, partition),
    the offset after the last record processed (the next to process).
    """

    interactions: str
    raw: str | None = None
    max_ahead_s: int = MAX_AHEAD_S
    idle_s: float = IDLE_S
    fresh_s: float = FRESH_S
    _partitions: dict[int, _Partition] = field(default_factory=dict)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    _last: int | None = None
    ignored: int = 0  # event times beyond the limit, not used

    def limit(self, wall: float) -> int:
        """The latest event time the receiving clock allows at wall time ``wall``."""
        return int(wall) + self.max_ahead_s

    def processed(self, topic: str, partition: int, offset: int, mono: float) -> None:
        """An agent processed the record at ``offset`` of ``topic``/``partition`` (monotonic time ``mono``)."""
        key = (topic, partition)
        if offset + 1 > self.positions.get(key, -1):
            self.positions[key] = offset + 1
        self._partition(partition).active_at = mono

    def observe(self, partition: int, received_at: int, wall: float) -> bool:
        """An interaction received at ``received_at`` was processed from ``partition`` at wall time
        ``wall``; returns False when its time is out of range and moved nothing."""
        if received_at > self.limit(wall):
            self.ignored += 1
            return False
        p = self._partition(partition)
        if p.event_time is None or received_at > p.event_time:
            p.event_time = received_at
        return True

    def forget(self, keep: Iterable[int]) -> None:
        """Partitions were reassigned: drop what is known of the others (their records are another
        worker's now, or will be read again). The stream time starts afresh, as the engine does: a
        partition taken over from another worker may be behind."""
        self._last = None
        kept = set(keep)
        for partition in list(self._partitions):
            if partition not in kept:
                del self._partitions[partition]
        for key in list(self.positions):
            if key[1] not in kept:
                del self.positions[key]

    def _partition(self, partition: int) -> _Partition:
        p = self._partitions.get(partition)
        if p is None:
            p = self._partitions[partition] = _Partition()
        return p

    def _caught_up(self, inp: InputPartition, wall: float) -> bool:
        if inp.highwater is None or inp.fetched_at is None or wall - inp.fetched_at > self.fresh_s:
            return False
        position = self.positions.get((inp.topic, inp.partition))
        if position is None:
            position = inp.committed if inp.committed is not None else 0
        return position >= inp.highwater

    def partition_clocks(self, wall: float, mono: float, inputs: Iterable[InputPartition]) -> dict[int, int | None]:
        """Each assigned partition of ``otklik.interactions`` and its clock (None: not known yet)."""
        behind: set[int] = set()
        numbers: set[int] = set()
        for inp in inputs:
            if inp.topic == self.interactions:
                numbers.add(inp.partition)
            elif inp.topic != self.raw:
                continue
            if not self._caught_up(inp, wall):
                behind.add(inp.partition)
        clocks: dict[int, int | None] = {}
        for number in sorted(numbers):
            p = self._partitions.get(number) or _Partition()
            idle = p.active_at is None or mono - p.active_at >= self.idle_s
            if number not in behind and idle:
                clocks[number] = int(wall)
            else:
                clocks[number] = p.event_time
        return clocks

    def now(self, wall: float, mono: float, inputs: Iterable[InputPartition]) -> int | None:
        """The stream time: the earliest partition clock, at most ``wall``, never earlier than the last
        one given; None while some partition's clock is not known (and none was ever given)."""
        clocks = self.partition_clocks(wall, mono, inputs)
        if clocks and None not in clocks.values():
            value = min(min(c for c in clocks.values() if c is not None), int(wall))
            if self._last is None or value > self._last:
                self._last = value
        return self._last

    @property
    def last(self) -> int | None:
        """The stream time last given by :meth:`now` (None before the first)."""
        return self._last
