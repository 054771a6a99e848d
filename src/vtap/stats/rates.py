"""Rates from successive counter readings, and a fixed-size history of them.

A rate is the counter difference over the time between two readings. Two things make the naive
difference wrong, and both are handled here rather than in every caller:

* a counter that went *down* belongs to a new entry (the flow idled out and was installed again
  between two readings, or the switch restarted): its count since the previous reading is its
  whole value, not a negative number;
* an entry's age (OpenFlow `duration`) that went down also means a new entry, even when its
  counters already passed the old ones;
* two readings at the same instant (or a clock step backwards) carry no rate information: the
  previous rate stands.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass

MIN_AGE_FOR_AVERAGE = 0.5  # seconds


@dataclass(frozen=True, slots=True)
class Reading:
    """A counter pair as one switch reported it, and when (seconds, caller's clock)."""

    at: float
    packets: int
    bytes: int
    age: float | None = None  # how long the entry has existed, if the switch said


@dataclass(frozen=True, slots=True)
class Rate:
    pps: float = 0.0
    bps: float = 0.0  # bits per second


def restarted(previous: Reading, current: Reading) -> bool:
    """True when `current` reads a different (newer) entry than `previous` did."""
    if current.packets < previous.packets or current.bytes < previous.bytes:
        return True
    return current.age is not None and previous.age is not None and current.age < previous.age


def growth(previous: Reading | None, current: Reading) -> tuple[int, int]:
    """Packets and bytes counted between two readings (all of them for a new entry)."""
    if previous is None or restarted(previous, current):
        return current.packets, current.bytes
    return current.packets - previous.packets, current.bytes - previous.bytes


def rate(previous: Reading | None, current: Reading, last: Rate = Rate()) -> Rate:
    """The rate between two readings of one counter; `last` when they carry no time.

    With no previous reading the entry's average over its age is the best estimate there is
    (a flow the poller sees for the first time has usually existed for a fraction of a poll),
    but not over a very young entry, whose first packet alone would read as a burst.
    """
    if previous is None:
        if current.age is not None and current.age >= MIN_AGE_FOR_AVERAGE:
            return Rate(current.packets / current.age, current.bytes * 8 / current.age)
        return last
    elapsed = current.at - previous.at
    if elapsed <= 0:
        return last
    packets, octets = growth(previous, current)
    return Rate(packets / elapsed, octets * 8 / elapsed)


@dataclass(frozen=True, slots=True)
class Point:
    at: float
    pps: float
    bps: float


class History:
    """The last `size` rate points, oldest first, in one flat array of doubles.

    A controller may track thousands of flows with several switches each; a deque of tuples per
    hop costs an object per point, so the points live in a preallocated ring instead.
    """

    __slots__ = ("_data", "_len", "_next", "_size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a history holds at least one point")
        self._size = size
        self._data = array("d")
        self._next = 0
        self._len = 0

    def append(self, point: Point) -> None:
        values = (point.at, point.pps, point.bps)
        if self._len < self._size:
            self._data.extend(values)
            self._len += 1
            return
        base = self._next * 3
        self._data[base : base + 3] = array("d", values)
        self._next = (self._next + 1) % self._size

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Point]:
        start = self._next if self._len == self._size else 0
        for i in range(self._len):
            base = ((start + i) % self._size) * 3
            yield Point(self._data[base], self._data[base + 1], self._data[base + 2])

    def points(self) -> list[Point]:
        return list(self)
