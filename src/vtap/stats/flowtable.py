"""In-flight flows as the switches count them: per 5-tuple, per switch on its path.

Each poll of a switch returns *every* forwarding entry it holds, so one switch's answer is
complete: a flow entry missing from it is gone from that switch (idled out, removed after a
failure). A flow stays in the table while at least one switch still holds an entry for it.

Times are the caller's (the poller passes wall-clock seconds so that `first_seen` and
`last_seen` can be shown as dates); nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from vtap.domain.network import FlowKey
from vtap.stats.rates import History, Point, Rate, Reading, growth, rate

DEFAULT_HISTORY = 120


@dataclass(frozen=True, slots=True)
class EntryCounters:
    """One forwarding entry as a switch reported it."""

    key: FlowKey
    packets: int
    bytes: int
    age: float  # seconds since the switch installed the entry


@dataclass(slots=True)
class HopStats:
    """A flow's entry on one switch: its latest reading, rate and rate history."""

    dpid: int
    reading: Reading
    rate: Rate
    history: History


@dataclass(slots=True)
class FlowRecord:
    key: FlowKey
    first_seen: float  # when the oldest of its entries was installed
    last_seen: float  # when any of its counters last grew (first_seen if never)
    hops: dict[int, HopStats] = field(default_factory=dict)
    updated: float = 0.0  # time of the latest reading of any hop
    version: int = 0  # bumped on every reading: a cheap "did it change?" for live views

    @property
    def packets(self) -> int:
        """The most any switch on the path counted (the first hop, unless entries restarted)."""
        return max((h.reading.packets for h in self.hops.values()), default=0)

    @property
    def bytes(self) -> int:
        return max((h.reading.bytes for h in self.hops.values()), default=0)


class FlowTable:
    """Flow records keyed by 5-tuple, fed one switch answer at a time."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self._history = history
        self._flows: dict[FlowKey, FlowRecord] = {}
        self._on_switch: dict[int, set[FlowKey]] = {}

    def observe(self, dpid: int, entries: Iterable[EntryCounters], at: float) -> None:
        """Record one switch's complete list of forwarding entries, read at time `at`."""
        seen: set[FlowKey] = set()
        for entry in entries:
            seen.add(entry.key)
            self._observe_entry(dpid, entry, at)
        for key in self._on_switch.get(dpid, set()) - seen:
            self._drop_hop(key, dpid)
        if seen:
            self._on_switch[dpid] = seen
        else:
            self._on_switch.pop(dpid, None)

    def _observe_entry(self, dpid: int, entry: EntryCounters, at: float) -> None:
        installed = at - entry.age
        record = self._flows.get(entry.key)
        if record is None:
            record = self._flows[entry.key] = FlowRecord(entry.key, installed, installed)
        record.first_seen = min(record.first_seen, installed)
        current = Reading(at, entry.packets, entry.bytes, entry.age)
        hop = record.hops.get(dpid)
        previous = hop.reading if hop is not None else None
        new_rate = rate(previous, current, hop.rate if hop is not None else Rate())
        if hop is None:
            hop = record.hops[dpid] = HopStats(dpid, current, new_rate, History(self._history))
        else:
            hop.reading, hop.rate = current, new_rate
        hop.history.append(Point(at, new_rate.pps, new_rate.bps))
        packets, _ = growth(previous, current)
        if packets > 0:
            record.last_seen = max(record.last_seen, at)
        record.updated = max(record.updated, at)
        record.version += 1

    def _drop_hop(self, key: FlowKey, dpid: int) -> None:
        record = self._flows.get(key)
        if record is None:
            return
        record.hops.pop(dpid, None)
        record.version += 1
        if not record.hops:
            del self._flows[key]

    def forget_switch(self, dpid: int) -> None:
        """A switch disconnected: its counters are no longer current."""
        for key in self._on_switch.pop(dpid, set()):
            self._drop_hop(key, dpid)

    def switches(self) -> set[int]:
        return set(self._on_switch)

    def get(self, key: FlowKey) -> FlowRecord | None:
        return self._flows.get(key)

    def __iter__(self) -> Iterator[FlowRecord]:
        return iter(list(self._flows.values()))

    def __len__(self) -> int:
        return len(self._flows)
