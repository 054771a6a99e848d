"""The statistics poller against a scripted switch: one request per switch per round."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from vtap.compiler.forwarding import flow_match
from vtap.controller.core import Controller
from vtap.domain.network import FlowKey
from vtap.domain.policy import PolicySpec
from vtap.openflow.pipeline import PRIO_PATH, TABLE_COPY, TABLE_FORWARD, Owner, cookie
from vtap.openflow.rules import FlowRule, FlowStat, Output
from vtap.settings import Settings
from vtap.store import MemoryPolicyRepository

KEY = FlowKey("10.0.0.1", "10.0.0.2", 6, 40000, 80)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


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


class CopyingSwitch:
    """Answers the forwarding request with nothing and the copy-table request with its copy
    entries, each having made `copies` copies."""

    def __init__(self, dpid: int, entries: list[FlowRule]) -> None:
        self.dpid = dpid
        self.entries = entries
        self.copies = 0
        self.tables: list[int] = []

    async def multipart(self, request: object) -> list[object]:
        table = request.table_id  # type: ignore[attr-defined]
        self.tables.append(table)
        if table != TABLE_COPY:
            return []
        return [FlowStat(r, self.copies, self.copies * 100, 5.0) for r in self.entries]


async def test_copies_per_policy_come_from_the_copy_entries_serving_it(tmp_path: Path) -> None:
    from tests.api.conftest import observe_fabric
    from tests.unit.leafspine import Fabric

    now = [100.0]
    store = MemoryPolicyRepository()
    controller = Controller(Settings(state_dir=tmp_path), store)
    observe_fabric(controller, Fabric(spines=1, leaves=2, hosts_per_leaf=2))
    near = store.add(PolicySpec(name="near", src_ip="10.0.0.1", monitor_ip="10.0.0.2"), T0)
    far = store.add(PolicySpec(name="far", src_ip="10.0.0.3", monitor_ip="10.0.0.2"), T0)
    controller.installer.policy_changed([near.id, far.id])
    await controller.installer.round()
    compiler = controller.installer.compiler
    assert compiler is not None
    leaf1 = 0x201
    copies = [r for r in compiler.switches[leaf1].flows.values() if r.table_id == TABLE_COPY]
    switch = CopyingSwitch(leaf1, copies)
    controller.state.sessions[leaf1] = switch  # type: ignore[assignment]
    stats = controller.flowstats
    stats._wall = lambda: now[0]
    switch.copies = 10
    await stats.poll()
    switch.copies, now[0] = 30, 101.0
    await stats.poll()
    assert TABLE_COPY in switch.tables
    near_copies = stats.copies_of(near.id)
    assert near_copies is not None
    assert near_copies.packets == 30 * len(copies)
    assert near_copies.pps == 20.0 * len(copies)
    assert stats.copies_of(far.id) is None  # classified on leaf 2, which was not read
