"""The statistics poller against a scripted switch: one request per switch per round."""

from __future__ import annotations

import asyncio
from pathlib import Path

from vtap.compiler.forwarding import flow_match
from vtap.controller.core import Controller
from vtap.domain.network import FlowKey
from vtap.openflow.pipeline import PRIO_PATH, TABLE_FORWARD, Owner, cookie
from vtap.openflow.rules import FlowRule, FlowStat, Output
from vtap.settings import Settings
from vtap.store import MemoryPolicyRepository

KEY = FlowKey("10.0.0.1", "10.0.0.2", 6, 40000, 80)


class ScriptedSwitch:
    """Answers flow-stats requests with its entries; counts the requests it got."""

    def __init__(self, dpid: int) -> None:
        self.dpid = dpid
        self.packets = 0
        self.requests = 0

    async def multipart(self, _request: object) -> list[object]:
        self.requests += 1
        rule = FlowRule(
            TABLE_FORWARD, PRIO_PATH, flow_match(KEY), (Output(2),), cookie=cookie(Owner.FORWARDING)
        )
        return [FlowStat(rule, self.packets, self.packets * 100, 5.0)]


async def test_each_round_reads_every_switch_once_and_rates_follow(tmp_path: Path) -> None:
    now = [100.0]
    controller = Controller(Settings(state_dir=tmp_path), MemoryPolicyRepository())
    stats = controller.flowstats
    stats._wall = lambda: now[0]
    switch = ScriptedSwitch(0x201)
    controller.state.sessions[switch.dpid] = switch  # type: ignore[assignment]
    switch.packets = 10
    await stats.poll()
    switch.packets, now[0] = 60, 101.0
    await stats.poll()
    assert switch.requests == 2 and stats.round == 2
    record = stats.flows.get(KEY)
    assert record is not None
    assert record.hops[0x201].rate.pps == 50.0
    # the switch leaves: its counters go with it
    del controller.state.sessions[switch.dpid]
    await stats.poll()
    assert stats.flows.get(KEY) is None


async def test_close_wakes_every_waiter(tmp_path: Path) -> None:
    controller = Controller(Settings(state_dir=tmp_path), MemoryPolicyRepository())
    stats = controller.flowstats
    waiter = asyncio.create_task(stats.wait_round(0, timeout=30))
    await asyncio.sleep(0.01)
    await stats.close()
    assert await asyncio.wait_for(waiter, 1) == 0 and stats.closed
