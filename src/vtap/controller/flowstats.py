"""The statistics poller: every `stats_interval`, read every switch's counters once.

One round asks each connected switch, concurrently, for the counters of its forwarding entries
(cookie mask: only the forwarding app's per-5-tuple entries) and, where the switch makes copies,
for the counters of its copy entries (table COPY). The first feed the flow table (per flow, per
switch on its path), the second the copies per policy. Live views (REST, the event stream)
read the results and wait for the next round here instead of asking the switches themselves,
so a browser left open never adds switch traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from vtap.compiler.forwarding import flow_key_of
from vtap.controller.installer import Installer
from vtap.controller.state import ControllerState
from vtap.ofchannel import codec
from vtap.ofchannel.session import SessionClosed, SwitchSession
from vtap.openflow.pipeline import COOKIE_OWNER_MASK, TABLE_COPY, TABLE_FORWARD, Owner, cookie
from vtap.openflow.rules import EntryKey, FlowStat
from vtap.stats.copies import CopyEntries, Slot, slot_totals
from vtap.stats.flowtable import EntryCounters, FlowTable
from vtap.stats.rates import Rate, Reading, rate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CopyStat:
    """Copies one monitor slot made so far, and how fast (from the last two rounds)."""

    packets: int = 0
    bytes: int = 0
    pps: float = 0.0
    bps: float = 0.0


class FlowStats:
    def __init__(
        self,
        state: ControllerState,
        installer: Installer,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._installer = installer
        self._wall = wall_clock
        self.interval = state.settings.stats_interval
        self.flows = FlowTable(state.settings.stats_history)
        self.slots: dict[Slot, CopyStat] = {}  # copies per (switch, copy key)
        self._slot_readings: dict[Slot, Reading] = {}
        self._counters: dict[int, dict[EntryKey, tuple[int, int]]] = {}
        self.round = 0
        self.closed = False
        self._waiting: Counter[int] = Counter()  # live views waiting, by the round they saw
        self._tick = asyncio.Condition()

    # ------------------------------------------------------------ rounds

    async def run(self) -> None:
        """Poll at a fixed cadence until cancelled; then wake every waiter for good."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                try:
                    await self.poll()
                except Exception:
                    log.exception("statistics round failed")
                await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))
        finally:
            await self.close()

    async def close(self) -> None:
        self.closed = True
        async with self._tick:
            self._tick.notify_all()

    async def wait_round(self, after: int, timeout: float) -> int:
        """Wait for a round later than `after` (or `timeout`); returns the latest round."""
        self._waiting[after] += 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout), self._tick:
                    await self._tick.wait_for(lambda: self.round > after or self.closed)
        finally:
            self._waiting[after] -= 1
        return self.round

    def viewers_up_to_date(self) -> int:
        """Live views that have everything up to the latest round and wait for the next."""
        return sum(n for seen, n in self._waiting.items() if seen >= self.round)

    async def poll(self) -> None:
        """One round over every connected switch."""
        sessions = dict(self._state.sessions)
        results = await asyncio.gather(
            *(self._read(dpid, s) for dpid, s in sessions.items()), return_exceptions=True
        )
        # A switch that missed this round keeps its last counters: copies must not seem to
        # drop and jump back (a spurious restart for the rate).
        counters = {d: c for d, c in self._counters.items() if d in self._state.sessions}
        for dpid, result in zip(sessions, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, SessionClosed | ConnectionError | OSError):
                    log.warning("switch %016x: statistics not read: %r", dpid, result)
                continue
            if result is None:
                counters.pop(dpid, None)
            else:
                counters[dpid] = result
        self._counters = counters
        for dpid in self.flows.switches() - set(self._state.sessions):
            self.flows.forget_switch(dpid)
        self._account_copies(counters, self._wall())
        await self.publish()

    async def publish(self) -> None:
        """A round is complete: wake the live views waiting for it."""
        self.round += 1
        async with self._tick:
            self._tick.notify_all()

    def _copy_entries(self, dpid: int) -> CopyEntries:
        compiler = self._installer.compiler
        return compiler.copy_entries(dpid) if compiler is not None else {}

    async def _read(
        self, dpid: int, session: SwitchSession
    ) -> dict[EntryKey, tuple[int, int]] | None:
        # table FORWARD only: a cookie mask alone made the switch look at every TAP entry too
        request = codec.flow_stats_request(
            cookie(Owner.FORWARDING), COOKIE_OWNER_MASK, table_id=TABLE_FORWARD
        )
        replies = await session.multipart(request)
        at = self._wall()
        entries = []
        for item in replies:
            if not isinstance(item, FlowStat):
                continue
            key = flow_key_of(item.rule.match)
            if key is not None:
                entries.append(
                    EntryCounters(key, item.packet_count, item.byte_count, item.duration_sec)
                )
        self.flows.observe(dpid, entries, at)
        if not self._copy_entries(dpid):
            return None
        copies = await session.multipart(codec.flow_stats_request(table_id=TABLE_COPY))
        return {
            c.rule.key: (c.packet_count, c.byte_count) for c in copies if isinstance(c, FlowStat)
        }

    def _account_copies(
        self, counters: dict[int, dict[EntryKey, tuple[int, int]]], at: float
    ) -> None:
        entries = {dpid: self._copy_entries(dpid) for dpid in counters}
        slots: dict[Slot, CopyStat] = {}
        readings: dict[Slot, Reading] = {}
        for slot, total in slot_totals(entries, counters).items():
            current = Reading(at, total.packets, total.bytes)
            previous = self._slot_readings.get(slot)
            last = self.slots.get(slot)
            speed = rate(previous, current, Rate(last.pps, last.bps) if last else Rate())
            slots[slot] = CopyStat(total.packets, total.bytes, speed.pps, speed.bps)
            readings[slot] = current
        self.slots, self._slot_readings = slots, readings

    def copies_of(self, policy_id: int) -> CopyStat | None:
        """Copies the policy's monitor slot made (None: no slot, or not read yet)."""
        compiler = self._installer.compiler
        placement = compiler.placement(policy_id) if compiler is not None else None
        if placement is None:
            return None
        return self.slots.get((placement.origin, placement.copy_key))
