"""What keeps an install round cheap must never keep it wrong: the topology view is rebuilt when
the topology changes, a switch is sent only the keys that changed (and everything after it
joined, settled or failed), and an urgent request cuts the debounce short while a burst still
makes one round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.sim.lab import Lab, ip, mac
from tests.unit.fakeswitches import TABLE_FULL, FakeSwitch, controller_with_fakes
from tests.unit.leafspine import Fabric
from vtap.compiler.alloc import Allocations
from vtap.compiler.plan import build
from vtap.compiler.topoview import TopologyView
from vtap.controller.core import Controller
from vtap.controller.reconciler import Desired, Reconciler
from vtap.domain.network import Port, PortRef
from vtap.domain.policy import PolicyPatch, PolicySpec, PolicyStatus
from vtap.openflow.pipeline import Owner, cookie
from vtap.openflow.rules import FlowRule, Match
from vtap.settings import Settings
from vtap.store.memory import MemoryPolicyRepository

# --- topology view ---------------------------------------------------------------------------


def test_a_view_compiles_exactly_as_a_fresh_one() -> None:
    lab = Lab()
    policies = [
        lab.policy(src_ip=ip(1), monitor_ip=ip(9)),
        lab.policy(dst_ip=ip(16), monitor_ip=ip(2)),
        lab.policy(
            src_ip=ip(3), dst_ip=ip(4), dst_mac=mac(4), monitor_ip=ip(9), delivery="rewrite"
        ),
    ]
    view = TopologyView(lab.topo)
    plans = []
    for v in (view, view, TopologyView(lab.topo)):  # memos filled by the first
        compiler = build(policies, v, lab.hosts, Allocations(lab.config))
        plans.append({d: dict(sw.flows) for d, sw in compiler.switches.items()})
    assert plans[0] == plans[1] == plans[2]


def test_a_view_is_memoised_per_state_and_stale_after_a_change() -> None:
    lab = Lab()
    view = TopologyView(lab.topo)
    leaf = lab.port(1).dpid
    assert view.matches(lab.topo)
    assert view.copy_tree(leaf, "m") is view.copy_tree(leaf, "m")
    assert lab.port(1).port_no in view.edge_ports(leaf)
    uplink = next(p for p in view.link_ports(leaf, 0x101))[0]

    lab.topo.port_update(leaf, Port(uplink.port_no, "x", "0a:00:00:00:00:99", up=False), 1.0)
    assert not view.matches(lab.topo)
    assert not view.matches(Lab().topo)  # another topology in the same generation
    # the old view still answers for the state it captured; a new one sees the change
    assert view.link_ports(leaf, 0x101)
    fresh = TopologyView(lab.topo)
    assert fresh.link_ports(leaf, 0x101) == []
    assert fresh.copy_tree(0x208, "m").path(leaf)[0].out_port != uplink.port_no
    assert uplink.port_no not in fresh.edge_ports(leaf)  # down: needs no guard


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[tuple[Controller, dict[int, FakeSwitch]]]:
    async with controller_with_fakes(tmp_path, Fabric(spines=2, leaves=3, hosts_per_leaf=2)) as c:
        yield c


async def test_the_controller_keeps_its_view_until_the_topology_changes(
    controller: tuple[Controller, dict[int, FakeSwitch]],
) -> None:
    ctl, _switches = controller
    await ctl.installer.wait(ctl.installer.request(urgent=True), 5)
    view = ctl.installer.topology_view()
    assert ctl.installer.topology_view() is view
    ctl.state.hosts.observe("00:00:00:00:00:99", "10.0.0.99", PortRef(0x201, 3), 5.0)
    assert ctl.installer.topology_view() is view  # hosts are not part of the view
    ctl.state.topology.port_deleted(0x201, 1, 5.0)
    assert ctl.installer.topology_view() is not view
    assert PortRef(0x201, 1) not in ctl.installer.topology_view().fabric_ports


# --- only what changed -----------------------------------------------------------------------


async def test_only_switches_whose_rules_changed_are_sent_a_bundle(
    controller: tuple[Controller, dict[int, FakeSwitch]],
) -> None:
    ctl, switches = controller
    spec = PolicySpec(name="p", src_ip="10.0.0.1", monitor_ip="10.0.0.2", ip_proto=17)
    policy = await ctl.policies.create(spec)  # monitor on the source's leaf: one switch
    assert policy.status is PolicyStatus.ACTIVE, policy.status_reason
    for fake in switches.values():
        fake.batches.clear()

    await ctl.installer.round()  # nothing changed anywhere
    assert all(not f.batches for f in switches.values())

    policy = await ctl.policies.update(policy.id, PolicyPatch(dst_port=53))
    source_leaf = ctl.state.hosts.by_ip("10.0.0.1").location.dpid  # type: ignore[union-attr]
    assert policy.status is PolicyStatus.ACTIVE, policy.status_reason
    assert [d for d, f in switches.items() if f.batches] == [source_leaf]  # a new shape there
    switches[source_leaf].batches.clear()
    policy = await ctl.policies.update(policy.id, PolicyPatch(dst_port=54))
    assert policy.status is PolicyStatus.ACTIVE, policy.status_reason
    # one bundle, to the source's leaf: one classification entry replaced (delete, add)
    assert {d: f.batches for d, f in switches.items() if f.batches} == {source_leaf: [2]}


async def test_a_switch_is_synced_in_full_after_a_rejected_bundle(
    controller: tuple[Controller, dict[int, FakeSwitch]],
) -> None:
    ctl, switches = controller
    spec = PolicySpec(name="p", src_ip="10.0.0.1", monitor_ip="10.0.0.5", ip_proto=17)
    source_leaf = ctl.state.hosts.by_ip("10.0.0.1").location.dpid  # type: ignore[union-attr]
    switches[source_leaf].reject = True
    policy = await ctl.policies.create(spec)
    assert policy.status is PolicyStatus.ERROR
    assert ctl.reconciler.needs_full(source_leaf)
    switches[source_leaf].reject = False
    # The policy is left out until it changes; the switch is diffed in full next round.
    results = await ctl.installer.round()
    assert results[source_leaf].ok and not ctl.reconciler.needs_full(source_leaf)
    policy = await ctl.policies.update(policy.id, PolicyPatch(dst_port=9))
    assert policy.status is PolicyStatus.ACTIVE, policy.status_reason


async def test_a_policy_refused_for_lack_of_space_is_active_once_there_is_room(
    controller: tuple[Controller, dict[int, FakeSwitch]],
) -> None:
    ctl, switches = controller
    source_leaf = ctl.state.hosts.by_ip("10.0.0.1").location.dpid  # type: ignore[union-attr]
    other = await ctl.policies.create(
        PolicySpec(name="elsewhere", src_ip="10.0.0.3", monitor_ip="10.0.0.5", ip_proto=6)
    )
    switches[source_leaf].reject, switches[source_leaf].error = True, TABLE_FULL
    spec = PolicySpec(name="p", src_ip="10.0.0.1", monitor_ip="10.0.0.5", ip_proto=17)
    policy = await ctl.policies.create(spec)
    assert policy.status is PolicyStatus.ERROR
    assert policy.status_reason.endswith("FLOW_MOD_FAILED/TABLE_FULL")
    # Still full: tried again, still `error` (never `pending` meanwhile).
    assert ctl.installer.retry_space() == 1
    await ctl.installer.wait(ctl.installer.request(urgent=True), 5)
    assert ctl.policies.get(policy.id).status is PolicyStatus.ERROR
    assert ctl.policies.get(other.id).status is PolicyStatus.ACTIVE, "only the affected one"
    # Room again: the next retry installs it.
    switches[source_leaf].reject = False
    assert ctl.installer.retry_space() == 1
    await ctl.installer.wait(ctl.installer.request(urgent=True), 5)
    await ctl.installer.wait(ctl.installer.request(urgent=True), 5)
    got = ctl.policies.get(policy.id)
    assert got.status is PolicyStatus.ACTIVE, got.status_reason
    assert ctl.installer.retry_space() == 0


async def test_a_rejoined_switch_is_synced_in_full(
    controller: tuple[Controller, dict[int, FakeSwitch]],
) -> None:
    ctl, switches = controller
    await ctl.installer.wait(ctl.installer.request(urgent=True), 5)
    leaf = 0x201
    switches[leaf].batches.clear()
    await ctl.reconciler.join(switches[leaf])  # type: ignore[arg-type]
    assert ctl.reconciler.needs_full(leaf)
    results = await ctl.installer.round()
    assert results[leaf].applied > 0  # the fake holds nothing: everything again
    assert switches[leaf].batches


async def test_a_settled_switch_is_synced_again_with_its_tap_rules() -> None:
    now = [0.0]
    fake = FakeSwitch(1)
    tap = FlowRule(3, 0, Match(), cookie=cookie(Owner.TAP_SHARED))
    base = FlowRule(0, 0, Match(), goto_table=1, cookie=cookie(Owner.PIPELINE))

    def desired(_dpid: int, with_tap: bool) -> Desired:
        rules = [base, tap] if with_tap else [base]
        return Desired({r.key: r for r in rules}, {})

    rec = Reconciler({1: fake}, lambda: now[0], settle=5.0)  # type: ignore[dict-item]
    await rec.join(fake)  # type: ignore[arg-type]
    first = (await rec.sync(desired, {1: None}))[1]
    assert not first.tap_synced and fake.batches == [1]
    assert not rec.needs_full(1)
    now[0] = 6.0
    assert rec.needs_full(1)
    result = (await rec.sync(desired, {1: set()}))[1]
    assert result.tap_synced and result.applied == 1 and fake.batches == [1, 1]
    assert not rec.needs_full(1)


# --- debounce ---------------------------------------------------------------------------------


async def test_urgent_requests_skip_the_debounce_and_a_burst_makes_one_round(
    tmp_path: Path,
) -> None:
    ctl = Controller(Settings(state_dir=tmp_path), MemoryPolicyRepository())
    installer = ctl.installer
    task = asyncio.create_task(installer.run(debounce=30.0))
    try:
        assert await installer.wait(installer.request(urgent=True), 5)
        assert installer.rounds == 1
        tickets = [installer.request() for _ in range(5)]
        assert not await installer.wait(tickets[-1], 0.05)  # still coalescing
        tickets.append(installer.request(urgent=True))
        assert await installer.wait(tickets[-1], 5)
        assert installer.rounds == 2  # the five and the urgent one: one round
    finally:
        task.cancel()
